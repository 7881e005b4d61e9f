"""Distribution scores on feature arrays [N, D] (numpy or torch): FID, KID and the copying score."""

import dataclasses

import numpy as np
import torch

#----------------------------------------------------------------------------

def as_features(feats, what='features'):
    """numpy or torch [N, D] -> float64 numpy [N, D]; ValueError for other shapes or non-finite values."""
    a = feats.detach().cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats)
    a = a.astype(np.float64, copy=False)
    if a.ndim != 2:
        raise ValueError(f'{what} must be [N, D], got {list(a.shape)}')
    if not np.isfinite(a).all():
        raise ValueError(f'{what} have non-finite values')
    return a

def _pair(feats_a, feats_b, min_rows):
    a, b = as_features(feats_a, 'feats_a'), as_features(feats_b, 'feats_b')
    if a.shape[1] != b.shape[1]:
        raise ValueError(f'feature lengths differ: {a.shape[1]} and {b.shape[1]}')
    if min(len(a), len(b)) < min_rows:
        raise ValueError(f'need at least {min_rows} samples on each side, got {len(a)} and {len(b)}')
    return a, b

#----------------------------------------------------------------------------
# Frechet distance of two Gaussians (Heusel et al. 2017, FID):
#   |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)),
# with tr((S_a S_b)^(1/2)) = sum sqrt(eig(S_a^(1/2) S_b S_a^(1/2))): the same number as scipy.linalg.sqrtm's
# (S_a S_b has the eigenvalues of that symmetric PSD matrix), from two symmetric eigendecompositions, which
# stay real and stable when the covariances are singular (fewer samples than dimensions).

def _sqrt_psd(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

def fid(feats_a, feats_b):
    """Frechet distance between Gaussians fitted to two feature sets [N, D] (unbiased covariances, as NVlabs,
    pytorch-fid and torch-fidelity). Needs at least 2 samples on each side."""
    a, b = _pair(feats_a, feats_b, 2)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = _sqrt_psd(s_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s_b @ root), 0, None)).sum()
    return float(np.square(mu_a - mu_b).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)

#----------------------------------------------------------------------------
# Kernel Inception Distance (Binkowski et al. 2018), with the semantics of NVlabs stylegan2-ada-pytorch
# metrics/kernel_inception_distance.py (written here from the definition): subsets of m = min(n_a, n_b,
# max_subset_size) samples of each side, drawn without replacement (feats_a first, then feats_b, from one
# numpy RandomState(seed): NVlabs's draws, gen first, after np.random.seed(seed)); cubic polynomial kernel
# k(x, y) = (x.y / d + 1)^3; the unbiased MMD^2 estimate per subset; the mean over subsets.

def _poly_kernel(x, y):
    return (x @ y.T / x.shape[1] + 1) ** 3

def _mmd2_unbiased(x, y):
    m = len(x)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return within - 2 * kxy.sum() / (m * m)

def kid(feats_a, feats_b, num_subsets=100, max_subset_size=1000, seed=0):
    """Kernel Inception Distance between two feature sets [N, D] (see the comment above for the exact rule).
    Needs at least 2 samples on each side. Pass generated features first to draw as NVlabs does."""
    a, b = _pair(feats_a, feats_b, 2)
    m = min(len(a), len(b), max_subset_size)
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        total += _mmd2_unbiased(x, y)
    return float(total / num_subsets)

#----------------------------------------------------------------------------
# Copying score: how much closer generated samples come to individual training samples than training samples
# come to each other (the idea of MiFID's memorisation distance, Bai et al. 2021, and of the "authenticity" of
# Alaa et al. 2022). For a generated g with nearest training sample t*:
#     r = d(g, t*) / d(t*, nearest other training sample)        (Euclidean in feature space)
# A copy of a training image (even re-rendered with small changes) has r near 0; an independent sample of the
# same distribution has r around 1.
#
# The flag compares the share of generated samples with r < threshold against the same share for the training
# set itself, left out one at a time (each t_i scored against the others: an honest sample of exactly this
# distribution, at this set size), so low-dimensional feature sets, where near neighbours are common, are not
# flagged for it:     flagged = fraction > baseline + MARGIN.
# MARGIN calibrated on synthetic features (Gaussians and 10-cluster mixtures of intrinsic dimension 2-64 in
# 512-d, 10 draws each, training sets of 30-1000, 16-1000 generated; threshold 0.5): an honest generator
# (independent samples) gave fraction - baseline of at most +0.21 (30 training, 16 generated; +0.18 at
# 50/50, +0.13 at 300 or more); a generator returning training samples plus noise of 10% of the nearest-
# neighbour distance gave at least +0.54 (+0.87 from intrinsic dimension 4 up); one returning such copies for
# half its samples +0.10 to +0.30 at intrinsic dimension 2, +0.34 to +0.50 from 3 up (300 or more).
# Intrinsic dimension 1 (a curve) is out of reach: there honest and copied sets overlap.

COPY_MARGIN = 0.25

@dataclasses.dataclass
class CopyScore:
    fraction:     float         # share of generated samples with ratio < threshold
    median_ratio: float         # median of the ratios (about 1 for an honest generator, near 0 for a copier)
    ratios:       np.ndarray = dataclasses.field(repr=False)   # [N_gen] d(g, t*) / d(t*, its nearest other training sample)
    flagged:      bool          # fraction > level
    threshold:    float         # the ratio below which a sample counts as a copy
    baseline:     float         # the same fraction for held-out training samples (honest, this distribution)
    level:        float         # baseline + margin (COPY_MARGIN): the fraction above which the set is flagged

def _nearest(a, b, k, exclude_self=False, chunk=1024):
    """Distances and indices [len(a), k] of the k nearest rows of b to each row of a (Euclidean), in chunks;
    with exclude_self (a is b), a row is not its own neighbour."""
    b2 = (b * b).sum(axis=1)
    dist, idx = [], []
    for i in range(0, len(a), chunk):
        block = a[i: i + chunk]
        d2 = (block * block).sum(axis=1)[:, None] + b2[None, :] - 2 * block @ b.T
        if exclude_self:
            d2[np.arange(len(block)), np.arange(i, i + len(block))] = np.inf
        order = np.argsort(d2, axis=1)[:, :k]
        idx.append(order)
        dist.append(np.sqrt(np.clip(np.take_along_axis(d2, order, axis=1), 0, None)))
    return np.concatenate(dist), np.concatenate(idx)

def _ratio(num, den):
    return np.where(num == 0, 0.0, num / np.where(den == 0, np.finfo(np.float64).tiny, den))

def copying(gen_feats, train_feats, threshold=0.5, margin=COPY_MARGIN):
    """Copying score of generated features [N_gen, D] against training features [N_train, D] (N_train >= 3);
    see CopyScore and the comment above."""
    g, t = _pair(gen_feats, train_feats, 1)
    if len(t) < 3:
        raise ValueError(f'the copying score needs at least 3 training samples, got {len(t)}')
    t_dist, t_idx = _nearest(t, t, 2, exclude_self=True)            # each training sample's two nearest others
    g_dist, g_idx = _nearest(g, t, 1)
    star = g_idx[:, 0]
    ratios = _ratio(g_dist[:, 0], t_dist[star, 0])
    # Held out: t_i's nearest other j; j's nearest other than j and t_i.
    j = t_idx[:, 0]
    second = np.where(t_idx[j, 0] == np.arange(len(t)), t_dist[j, 1], t_dist[j, 0])
    baseline = float((_ratio(t_dist[:, 0], second) < threshold).mean())
    fraction = float((ratios < threshold).mean())
    level = baseline + margin
    return CopyScore(fraction, float(np.median(ratios)), ratios, fraction > level, threshold, baseline, level)
