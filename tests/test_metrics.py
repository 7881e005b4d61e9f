"""stylegan2_lib.metrics: FID and KID against direct numpy/scipy forms and torch-fidelity's own functions, the
Inception extractor against torch-fidelity's with the same test-made weights (read safely: a hostile file or a
wrong checksum is refused), the copying score, likeness (dlib faces; the structural fallback on the demo pair)
and the offline discriminator features. Offline; small inputs."""

import importlib
import io
import itertools
import os
import pickle

import numpy as np
import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import metrics
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON


def _fidelity(module):
    """A torch-fidelity module, or a skip saying why it does not import here (a failure where
    STYLEGAN2_LIB_REQUIRE_FIDELITY=1 says the parity tests must run)."""
    try:
        importlib.import_module('torch_fidelity')    # the package first: a failed import leaves submodules behind
        return importlib.import_module(f'torch_fidelity.{module}')
    except (ImportError, RuntimeError) as e:     # RuntimeError: a torchvision built for another torch
        why = f'torch-fidelity does not import here ({type(e).__name__}: {str(e)[:120]})'
        if os.environ.get('STYLEGAN2_LIB_REQUIRE_FIDELITY') == '1':
            pytest.fail(why)
        pytest.skip(why)


def _features(n, d, seed, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift

#----------------------------------------------------------------------------
# FID and KID.

def _fid_direct(a, b):
    scipy_linalg = pytest.importorskip('scipy.linalg', reason='the direct FID uses scipy (the align extra)')
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy_linalg.sqrtm(s_a @ s_b).real
    return np.square(a.mean(0) - b.mean(0)).sum() + np.trace(s_a + s_b - 2 * covmean)


def _kid_direct(a, b, num_subsets, subset_size, seed):
    """The unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 written out pair by pair, subsets drawn as NVlabs."""
    rng, d, total = np.random.RandomState(seed), a.shape[1], 0.0
    k = lambda x, y: (x @ y / d + 1) ** 3                                        # noqa: E731
    for _ in range(num_subsets):
        x = a[rng.choice(len(a), subset_size, replace=False)]
        y = b[rng.choice(len(b), subset_size, replace=False)]
        m = subset_size
        xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
        total += xx + yy - 2 * xy
    return total / num_subsets


@pytest.mark.parametrize('n_a, n_b, d', [(60, 50, 12), (9, 11, 24)])      # the second: singular covariances
def test_fid_matches_scipy(n_a, n_b, d):
    a, b = _features(n_a, d, 1), _features(n_b, d, 2, shift=0.3)
    assert metrics.fid(a, b) == pytest.approx(_fid_direct(a, b), rel=1e-6, abs=1e-9)
    assert metrics.fid(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(_fid_direct(a, b), rel=1e-4)
    assert abs(metrics.fid(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))


def test_kid_matches_direct():
    a, b = _features(20, 8, 3), _features(16, 8, 4, shift=0.2)
    assert metrics.kid(a, b, num_subsets=3, max_subset_size=10, seed=5) == pytest.approx(_kid_direct(a, b, 3, 10, 5), rel=1e-9)
    # Subsets of m = min(n_a, n_b, max_subset_size): 16 here.
    assert metrics.kid(a, b, num_subsets=2, seed=1) == pytest.approx(_kid_direct(a, b, 2, 16, 1), rel=1e-9)
    assert metrics.kid(torch.from_numpy(a), b, num_subsets=2, seed=1) == pytest.approx(_kid_direct(a, b, 2, 16, 1), rel=1e-9)


def test_fid_kid_refuse_bad_input():
    with pytest.raises(ValueError, match='feature lengths differ'):
        metrics.fid(_features(5, 3, 0), _features(5, 4, 0))
    with pytest.raises(ValueError, match='at least 2'):
        metrics.kid(_features(1, 3, 0), _features(5, 3, 0))
    with pytest.raises(ValueError, match='non-finite'):
        metrics.fid(np.full([4, 3], np.nan), _features(5, 3, 0))


def test_fid_kid_match_torch_fidelity():
    fid_mod, kid_mod = _fidelity('metric_fid'), _fidelity('metric_kid')
    a, b = _features(80, 32, 5), _features(70, 32, 6, shift=0.1)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    theirs = fid_mod.fid_statistics_to_metric(fid_mod.fid_features_to_statistics(ta),
                                              fid_mod.fid_features_to_statistics(tb), verbose=False)['frechet_inception_distance']
    assert metrics.fid(a, b) == pytest.approx(theirs, rel=1e-6)
    kw = dict(kid_degree=3, kid_gamma=None, kid_coef0=1, verbose=False)
    for size in (70, 25):           # every sample (no sampling to differ), and subsets drawn as both draw them
        theirs = kid_mod.kid_features_to_metric(ta, tb, kid_subsets=7, kid_subset_size=size, rng_seed=3, **kw)
        assert metrics.kid(a, b, num_subsets=7, max_subset_size=size, seed=3) == \
            pytest.approx(theirs['kernel_inception_distance_mean'], rel=1e-9)

#----------------------------------------------------------------------------
# Inception features: torch-fidelity's network with weights read by the restricted unpickler.

def _random_inception_file(path):
    """A state dict for torch-fidelity's Inception-v3 with random weights, written with torch.save."""
    inc = _fidelity('feature_extractor_inceptionv3')
    cls = inc.FeatureExtractorInceptionV3
    original = cls.load_state_dict
    try:                                # build it without weights (its constructor insists on loading some)
        cls.load_state_dict = lambda self, state: None
        torch.manual_seed(0)
        model = cls('inception-v3-compat', ['2048'], feature_extractor_weights_path=_empty_state())
    finally:
        cls.load_state_dict = original
    gen = torch.Generator().manual_seed(1)
    def randomised(key, v):             # He-scaled convolutions, batch norms near identity: a live signal
        if v.ndim == 4:
            return torch.randn(v.shape, generator=gen) * np.sqrt(2 / v[0].numel())
        if key.endswith(('running_var', 'bn.weight')):
            return 1 + 0.1 * torch.rand(v.shape, generator=gen)
        return 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
    torch.save({k: randomised(k, v) for k, v in model.state_dict().items()}, path)
    return cls


def _empty_state():
    buf = io.BytesIO()
    torch.save({}, buf)
    buf.seek(0)
    return buf


def test_inception_matches_torch_fidelity(tmp_path, monkeypatch):
    weights = tmp_path / 'random-inception.pth'
    cls = _random_inception_file(weights)
    theirs = cls('inception-v3-compat', ['2048'], feature_extractor_weights_path=str(weights)).eval()
    loaded = []
    real_load = torch.load
    monkeypatch.setattr(torch, 'load', lambda f, *a, **kw: loaded.append(f) or real_load(f, *a, **kw))
    ours = metrics.inception(device='cpu', weights_path=weights, progress=False)
    assert all(isinstance(f, io.BytesIO) for f in loaded) and loaded      # never the file itself
    assert (ours.name, ours.dim, ours.comparable, ours.device.type) == ('inception-v3 (random-inception.pth, not the standard weights)', 2048, False, 'cpu')
    images = np.random.default_rng(0).integers(0, 256, [3, 64, 64, 3], dtype=np.uint8)
    got = ours(images, batch_size=2)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(images).permute(0, 3, 1, 2))[0].double().numpy()
    assert got.shape == (3, 2048) and got.dtype == np.float64
    assert np.isfinite(got).all() and (got.std(axis=0) > 0).mean() > 0.5       # features that differ per image
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ours(images[1]), expected[1:2])


def test_inception_without_torch_fidelity_names_the_extra(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'torch_fidelity', None)         # as if not installed
    with pytest.raises(ImportError, match=r'stylegan2_lib\[metrics\]'):
        metrics.inception(weights_path=tmp_path / 'never-read.pth')


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.mark.parametrize('container', ['zip', 'legacy', 'pickle'])
def test_inception_weights_refuse_hostile_file(tmp_path, container):
    marker, path = tmp_path / 'ran', tmp_path / 'weights.pth'
    payload = {'Conv2d_1a_3x3.conv.weight': _Hostile(marker)}
    if container == 'pickle':
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=(container == 'zip'))
    with pytest.raises(sg.CheckpointError, match='system'):
        metrics.read_inception_state(path)
    assert not marker.exists()


def test_inception_weights_refuse_wrong_checksum(tmp_path, http_folder):
    served, url = http_folder
    (served / metrics.INCEPTION_FILE).write_bytes(b'not the weights')
    cache = tmp_path / 'cache'
    with pytest.raises(sg.downloads.DownloadError, match='checksum mismatch'):
        metrics.inception_weights(cache, progress=False, url=f'{url}/{metrics.INCEPTION_FILE}')
    assert not cache.exists() or not any(cache.iterdir())          # nothing left that looks downloaded
    cache.mkdir(exist_ok=True)
    (cache / metrics.INCEPTION_FILE).write_bytes(b'a corrupt copy in the cache')
    with pytest.raises(sg.downloads.DownloadError, match='checksum mismatch'):
        metrics.inception_weights(cache, progress=False, url=f'{url}/{metrics.INCEPTION_FILE}')

#----------------------------------------------------------------------------
# Discriminator features.

def test_discriminator_features(tiny32):
    D = sg.Discriminator(tiny32.D.cfg).train()                      # as a trainer holds it
    D.load_state_dict(tiny32.D.state_dict())
    feats = metrics.discriminator_features(D)
    assert feats.dim == sum(getattr(D, f'b{r}').conv1.out_channels for r in D.block_resolutions[-4:])
    assert 'discriminator' in feats.name and not feats.comparable
    images = np.random.default_rng(0).integers(0, 256, [5, 32, 32, 3], dtype=np.uint8)
    a, b = feats(images, batch_size=5), feats(images, batch_size=2)
    assert a.shape == (5, feats.dim) and a.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)           # no batch effects (no minibatch-std)
    np.testing.assert_array_equal(a, feats(images, batch_size=5))
    np.testing.assert_allclose(feats(images[0]), a[:1], rtol=1e-5, atol=1e-6)
    assert feats(np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)).shape == (5, feats.dim)   # resized to 32
    assert D.training and all(p.requires_grad for p in D.parameters())   # left as the trainer had it
    one = metrics.discriminator_features(D, block=16)
    assert one.dim == D.b16.conv1.out_channels and 'b16' in one.name
    with pytest.raises(ValueError, match='blocks'):
        metrics.discriminator_features(D, block=64)
    with pytest.raises(ValueError, match='uint8'):
        feats(images.astype(np.float32))

#----------------------------------------------------------------------------
# Copying.

def test_copying_flags_copies_not_independent_samples():
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((16, 256))                           # 16-d intrinsic, 256-d features
    sample = lambda n: rng.standard_normal((n, 16)) @ basis          # noqa: E731
    train = sample(300)
    honest = metrics.copying(sample(300), train)
    assert not honest.flagged and honest.fraction < 0.05 and 0.7 < honest.median_ratio < 1.5
    nn = np.sort(np.linalg.norm(train[:, None] - train[None], axis=2), axis=1)[:, 1].mean()
    copies = train[rng.integers(0, 300, 300)] + rng.standard_normal((300, 256)) * 0.1 * nn / 16
    copied = metrics.copying(copies, train)
    assert copied.flagged and copied.fraction > 0.9 and copied.median_ratio < 0.2
    assert copied.ratios.shape == (300,) and copied.threshold == 0.5 and copied.level == pytest.approx(copied.baseline + 0.25)


def test_copying_of_generated_images():
    """A 'generator' that returns its training images with a little pixel noise is flagged (its KID is even
    better than an honest one's); independent samples of the same network are not."""
    G = sg.load(DEMO_TOON).G_ema
    D = sg.load(DEMO_BASE)                                           # G_ema only: a D of the same shape
    D = sg.Discriminator(sg.DiscriminatorConfig.matching(D.G_ema.cfg)).eval()
    torch.manual_seed(0)
    feats = metrics.discriminator_features(D)
    train = sg.to_uint8(sg.generate_images(G, range(48), progress=False))
    honest = sg.to_uint8(sg.generate_images(G, range(1000, 1048), progress=False))
    noise = np.random.default_rng(0).integers(-3, 4, train.shape)
    copies = np.clip(train.astype(int) + noise, 0, 255).astype(np.uint8)
    ft, fh, fc = feats(train), feats(honest), feats(copies)
    assert not metrics.copying(fh, ft).flagged
    assert metrics.copying(fc, ft).flagged
    assert metrics.kid(fc, ft) < metrics.kid(fh, ft)

#----------------------------------------------------------------------------
# Likeness.

@pytest.fixture(scope='module')
def two_faces():
    """FFHQ-aligned 256 px crops of Grace Hopper (matplotlib) and the astronaut (scikit-image)."""
    pytest.importorskip('dlib', reason='alignment needs the [align] extra')
    pytest.importorskip('matplotlib', reason='the sample photo comes with matplotlib (the notebook extra)')
    astronaut = pytest.importorskip('skimage.data', reason='the astronaut photo comes with scikit-image (the test extra)').astronaut
    from PIL import Image
    from stylegan2_lib import samples
    faces = [sg.align_face(samples.grace_hopper(), 256), sg.align_face(Image.fromarray(astronaut()), 256)]
    return np.stack([np.asarray(f) for f in faces])


def _resized(images, factor):
    from PIL import Image
    size = images.shape[1]
    return np.stack([np.asarray(Image.fromarray(a).resize((int(size * factor),) * 2, Image.LANCZOS).resize((size, size), Image.LANCZOS))
                     for a in images])


def test_likeness_faces(two_faces):
    same = metrics.likeness(two_faces, two_faces)
    assert (same.method, same.identity, same.landmark_error, same.face_rate, same.score) == ('faces', 1.0, 0.0, 1.0, 1.0)
    resized = metrics.likeness(two_faces, _resized(two_faces, 0.8))
    swapped = metrics.likeness(two_faces, two_faces[::-1].copy())
    assert resized.identity > 0.85 and resized.landmark_error < 0.05
    assert swapped.identity < 0.6 and swapped.identity < resized.identity - 0.3
    assert swapped.method == 'faces' and swapped.score == swapped.identity
    base = metrics.likeness_base(two_faces)                          # described once, for many blends
    assert metrics.likeness(base, _resized(two_faces, 0.8)) == resized
    assert metrics.likeness(base, two_faces[::-1].copy()) == swapped


def test_likeness_counts_lost_faces(two_faces):
    blank = np.full_like(two_faces[:1], 128)
    lost = metrics.likeness(two_faces, np.concatenate([two_faces[:1], blank]))
    assert lost.face_rate == 0.5 and lost.identity == 1.0 and lost.score == 0.5


def _demo_images(seeds=range(8)):
    base, toon = sg.load(DEMO_BASE).G_ema, sg.load(DEMO_TOON).G_ema
    render = lambda G: sg.to_uint8(sg.generate_images(G, seeds, truncation_psi=0.7, progress=False))   # noqa: E731
    return render(base), render(sg.blend(base, toon, 8)), render(toon)


@pytest.mark.parametrize('with_d', [False, True])
def test_likeness_structural_on_the_demo_pair(with_d):
    """The demo's 32 px drawn faces: dlib finds none, so the structural measure is the score."""
    base, blend, toon = _demo_images()
    D = None
    if with_d:
        torch.manual_seed(0)
        D = sg.Discriminator(sg.DiscriminatorConfig.matching(sg.load(DEMO_BASE).G_ema.cfg)).eval()
    same = metrics.likeness(base, base, D)
    assert (same.method, same.identity, same.face_rate, same.score) == ('structural', None, None, 1.0)
    # why no identity: dlib found no face in the 8 images, or (without the align extra) could not look
    try:
        import dlib  # noqa: F401
        with_dlib = True
    except ImportError:
        with_dlib = False
    assert ('face in 0 of 8' if with_dlib else 'faces not measured (face alignment needs dlib') in same.note
    blended, far, unrelated = (metrics.likeness(base, x, D).score for x in (blend, toon, np.roll(base, 1, axis=0)))
    assert 1.0 > blended > far > unrelated and unrelated < 0.2
    assert metrics.structural_similarity(base, blend, D) == blended
    prepared = metrics.likeness_base(base, D)
    assert metrics.likeness(prepared, blend).score == pytest.approx(blended, rel=1e-6)


def test_likeness_without_dlib_falls_back(monkeypatch):
    from stylegan2_lib.metrics import similarity as mod
    def unavailable(image, upsample=1):
        raise sg.align.AlignmentUnavailable('face alignment needs dlib')
    monkeypatch.setattr(mod, 'face_landmarks', unavailable)
    base, blend, _ = _demo_images(range(4))
    got = metrics.likeness(base, blend)
    assert got.method == 'structural' and 'needs dlib' in got.note and 0 < got.score < 1
    assert metrics.likeness(base[:1], blend[:1]).score is None            # one pair: nothing to compare with
    with pytest.raises(ValueError, match='pairs'):
        metrics.likeness(base, blend[:2])


def test_features_and_likeness_share_one_pass_of_d_and_agree_with_separate_calls():
    base, blend, _ = _demo_images(range(6))
    torch.manual_seed(0)
    D = sg.Discriminator(sg.DiscriminatorConfig.matching(sg.load(DEMO_BASE).G_ema.cfg)).eval()
    extractor = metrics.discriminator_features(D, block=list(D.block_resolutions))
    prepared = metrics.likeness_base(base, D)
    calls = []
    hooks = [getattr(D, f'b{r}').register_forward_hook(lambda *_: calls.append(1)) for r in D.block_resolutions]
    try:
        feats, like = metrics.features_and_likeness(extractor, prepared, blend)
        shared = len(calls)
        calls.clear()
        want_feats, want_like = extractor(blend), metrics.likeness(prepared, blend)
        separate = len(calls)
    finally:
        for h in hooks:
            h.remove()
    assert separate == 2 * shared == 2 * len(D.block_resolutions)        # one batch of 6: each block once, not twice
    np.testing.assert_allclose(feats, want_feats, rtol=1e-6, atol=1e-9)
    assert like.method == want_like.method and like.score == pytest.approx(want_like.score, rel=1e-9)
    # features of another network, or a base prepared without D: the two separate calls, same numbers
    other = metrics.pixel_features()
    f2, l2 = metrics.features_and_likeness(other, prepared, blend)
    np.testing.assert_array_equal(f2, other(blend))
    assert l2.score == pytest.approx(want_like.score, rel=1e-12)
