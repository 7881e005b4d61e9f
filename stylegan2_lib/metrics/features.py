"""Feature extractors for the distribution metrics: images (uint8 [N, H, W, 3]) -> features [N, D] float64.

- `inception()`: Inception-v3 2048-d pool features with the standard FID weights (the TensorFlow network of
  2015-12-05 that pytorch-fid, torch-fidelity and NVlabs use), through torch-fidelity's
  FeatureExtractorInceptionV3 (TF-compatible resize to 299, the TF network's layers): FID/KID numbers from it
  can be compared with published ones. The weights are downloaded once, sha256-checked, and read with the
  library's restricted unpickler; torch-fidelity never opens the downloaded file.
- `discriminator_features(D)`: the offline option, from a StyleGAN2 discriminator (e.g. the base network's):
  no download, but numbers only comparable with other numbers from the same D.
"""

import importlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoints import CheckpointError
from ..devices import default_device, on_device
from ..downloads import CACHE, DownloadError, download, sha256_of
from ..perceptual import read_state_dict

INCEPTION_URL = 'https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth'
INCEPTION_FILE = 'weights-inception-2015-12-05-6726825d.pth'
INCEPTION_SHA256_PREFIX = '6726825d'        # torch hub's convention: the name carries its sha256's first digits

#----------------------------------------------------------------------------
# Images in any of the accepted forms -> uint8 tensors [N, 3, H, W].

def as_uint8_batch(images):
    """uint8 [N, H, W, 3] or one [H, W, 3] (numpy or torch) -> uint8 numpy [N, H, W, 3]."""
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f'images must be [N, H, W, 3] or [H, W, 3] (as images.to_uint8 gives), got {list(a.shape)}')
    if a.dtype != np.uint8:
        raise ValueError(f'images must be uint8 [0, 255] (as images.to_uint8 gives), got {a.dtype}')
    return a

def to_nchw(batch, device):
    """uint8 numpy [N, H, W, 3] -> uint8 tensor [N, 3, H, W] on device."""
    return torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2)

#----------------------------------------------------------------------------

class Features:
    """A feature extractor: `feats = extractor(images, batch_size=32, progress=False)` -> float64 [N, dim].

    name:       what the features are (shown next to scores);
    dim:        feature length;
    comparable: True only for the standard FID Inception network, whose FID/KID can be compared with
                published numbers;
    device:     where the network runs."""

    def __init__(self, name, dim, comparable, device, embed):
        self.name, self.dim, self.comparable, self.device = name, dim, comparable, torch.device(device)
        self._embed = embed                     # uint8 tensor [n, 3, H, W] on device -> float tensor [n, dim]

    @torch.no_grad()
    def __call__(self, images, batch_size=32, progress=False):
        a = as_uint8_batch(images)
        out = []
        for i in tqdm(range(0, len(a), batch_size), desc=self.name, unit='batch', disable=not progress):
            out.append(self._embed(to_nchw(a[i: i + batch_size], self.device)).double().cpu())
        feats = torch.cat(out).numpy() if out else np.zeros([0, self.dim])
        assert feats.shape == (len(a), self.dim), (feats.shape, self.dim)
        return feats

    def __repr__(self):
        return f'Features({self.name!r}, dim={self.dim}, comparable={self.comparable}, device={self.device})'

#----------------------------------------------------------------------------
# Inception-v3 through torch-fidelity.

def _fidelity_inception_class():
    try:
        importlib.import_module('torch_fidelity')      # the package first: a failed import leaves submodules behind
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ModuleNotFoundError as e:
        missing = 'torch-fidelity' if e.name == 'torch_fidelity' else f'{e.name} (for torch-fidelity)'
        raise ImportError(f'Inception features need {missing}: pip install "stylegan2_lib[metrics]" '
                          '(or use discriminator_features(D), which needs nothing downloaded)') from None
    except RuntimeError as e:       # torchvision (imported by torch_fidelity) built for another torch
        raise ImportError(f'torch-fidelity is installed but its torchvision does not load beside torch '
                          f'{torch.__version__} ({e}); install the torchvision release made for this torch '
                          f'(PyPI\'s torchvision wheels need a CUDA build of torch), or use '
                          f'discriminator_features(D)') from None
    return FeatureExtractorInceptionV3

def inception_weights(cache_dir=None, progress=True, url=INCEPTION_URL):
    """Path of torch-fidelity's Inception-v3 FID weights in the cache, downloaded on first use; the file's sha256
    must start with INCEPTION_SHA256_PREFIX, checked on download and on every use (DownloadError otherwise)."""
    path = Path(cache_dir or CACHE / 'metrics') / INCEPTION_FILE
    if path.exists():
        digest = sha256_of(path)
        if not digest.startswith(INCEPTION_SHA256_PREFIX):
            raise DownloadError(f'{path}: checksum mismatch (sha256 {digest[:16]}..., expected '
                                f'{INCEPTION_SHA256_PREFIX}...); delete it to download it again')
        return path
    try:
        download(url, path, sha256_prefix=INCEPTION_SHA256_PREFIX, progress=progress)
    except DownloadError:
        raise
    except OSError as e:
        raise DownloadError(f'{url}: the Inception weights could not be downloaded ({e}); download '
                            f'{INCEPTION_FILE} elsewhere and pass weights_path=, or use discriminator_features(D)') from None
    return path

def read_inception_state(path):
    """The state dict in an Inception weights file, read by the restricted unpickler (nothing in the file runs;
    a pickle naming any other global is refused with CheckpointError); every tensor must be finite."""
    state = read_state_dict(path)
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(path, f'not Inception weights: {str(key)[:80]!r} is not a tensor')
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(path, f'not Inception weights: {key} has non-finite values')
    return state

def _fidelity_module(cls, state, path):
    # torch-fidelity's constructor reads its weights with torch.load(weights_only=False), which would run
    # code from a hostile pickle, so it never sees the downloaded file: the state dict read safely above is
    # written again by torch.save into memory and that buffer is what it loads. Those bytes were produced here
    # from plain tensors, so unpickling them runs nothing but torch's own tensor rebuilders. (Building the
    # module without weights is not offered by its constructor; this keeps its code path exactly as released.)
    buf = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in state.items()}, buf)
    buf.seek(0)
    try:
        return cls('inception-v3-compat', ['2048'], feature_extractor_weights_path=buf)
    except RuntimeError as e:                   # load_state_dict: missing or unexpected keys, wrong shapes
        raise CheckpointError(path, f'not torch-fidelity Inception-v3 weights ({str(e).splitlines()[0]})') from None

def inception(device=None, cache_dir=None, weights_path=None, progress=True):
    """Inception-v3 2048-d pool features with the standard FID weights (torch-fidelity's network).

    device:       where it runs (None: cuda when available, else cpu);
    cache_dir:    where the weights are downloaded (default: the library's cache, metrics/);
    weights_path: a local weights file instead (same format); the features are `comparable` only when its
                  sha256 is that of the standard file."""
    cls = _fidelity_inception_class()                   # fail before a 95 MB download when it cannot run
    path = Path(weights_path) if weights_path is not None else inception_weights(cache_dir, progress)
    comparable = weights_path is None or sha256_of(path).startswith(INCEPTION_SHA256_PREFIX)
    device = default_device(device)
    model = _fidelity_module(cls, read_inception_state(path), path).to(device)
    name = 'inception-v3 (FID weights 2015-12-05)' if comparable else f'inception-v3 ({path.name}, not the standard weights)'
    return Features(name, 2048, comparable, device, lambda x: model(x)[0])

#----------------------------------------------------------------------------
# Discriminator features: the offline option.
#
# The mean-pooled outputs of D's last (lowest-resolution) blocks, concatenated: for every standard config the
# blocks whose outputs are 32, 16, 8 and 4 px, 4 x 512 = 2048 values (the demo's 32 px D: its 3 blocks). These
# layers see every scale through the layers before them, pooling makes the vector independent of position
# (as Inception's pool features), and D's epilogue is avoided on purpose: its minibatch-stddev layer mixes
# the images of a batch, so a feature there would depend on what else is in the batch.

DEFAULT_D_BLOCKS = 4

def _d_blocks(D, block):
    if block is None:
        return list(D.block_resolutions[-DEFAULT_D_BLOCKS:])
    chosen = [block] if isinstance(block, int) else list(block)
    unknown = [r for r in chosen if r not in D.block_resolutions]
    if unknown:
        raise ValueError(f'block {unknown[0]}: D has blocks {list(D.block_resolutions)}')
    return chosen

def discriminator_input(x, D):
    """uint8 [N, 3, H, W] -> float [-1, 1] at D's resolution (antialiased bilinear when the size differs)."""
    x = x.float() / 127.5 - 1
    r = D.img_resolution
    return x if x.shape[-1] == r and x.shape[-2] == r else F.interpolate(x, size=(r, r), mode='bilinear',
                                                                           antialias=True, align_corners=False)

def discriminator_block_outputs(D, x):
    """Outputs of every block of D, highest resolution first, for float images [N, 3, r, r] in [-1, 1]."""
    feats, h = [], None
    for res in D.block_resolutions:
        h = getattr(D, f'b{res}')(h, x, force_fp32=True)
        feats.append(h)
    return feats

def discriminator_features(D, device=None, block=None):
    """Features from a StyleGAN2 discriminator: the mean-pooled outputs of its last four blocks (or of the
    block resolutions `block`, an int or a list), concatenated. Not comparable with published FID/KID.

    device: where D runs (None: where D is); D itself is not moved (a copy is, when needed)."""
    if D.img_channels != 3:
        raise ValueError(f'D takes {D.img_channels}-channel images; features need an RGB discriminator')
    device = torch.device(device) if device is not None else next(D.parameters()).device
    given = D
    D = on_device(D, device)            # not put in eval mode or frozen: it may be a trainer's (its blocks have no
                                        # mode-dependent layers, and features are computed under no_grad)
    blocks = _d_blocks(D, block)
    keep = [D.block_resolutions.index(r) for r in blocks]
    dim = sum(getattr(D, f'b{r}').conv1.out_channels for r in blocks)

    def pool(outs):
        return torch.cat([outs[i].float().mean(dim=[2, 3]) for i in keep], dim=1)

    def embed(x):
        return pool(discriminator_block_outputs(D, discriminator_input(x, D)))

    span = f'b{blocks[0]}' if len(blocks) == 1 else f'b{blocks[0]}-b{blocks[-1]}'
    feats = Features(f'discriminator ({D.img_resolution}px, {span} pooled; not comparable with published FID/KID)',
                     dim, False, device, embed)
    # What a caller that already has D's block outputs for the same images needs (similarity.features_and_likeness
    # shares one pass of D between these features and the structural likeness): the D given, and the pooling.
    feats.discriminator, feats.pool = given, pool
    return feats

#----------------------------------------------------------------------------
# The last resort offline: small images themselves (colour and layout, nothing learned), for a base without a
# discriminator and no Inception weights (e.g. the bundled demo pair, which ships G_ema only).

def pixel_features(size=16, device='cpu'):
    """Antialiased size x size RGB thumbnails in [-1, 1], flattened (3 * size^2 values). Not comparable with
    published FID/KID; ranks blends of one base by colour and layout only."""
    device = torch.device(device)

    def embed(x):
        x = x.float() / 127.5 - 1
        return F.interpolate(x, size=(size, size), mode='bilinear', antialias=True, align_corners=False).flatten(1)

    return Features(f'pixels ({size}x{size} thumbnails; not comparable with published FID/KID)', 3 * size * size, False,
                    device, embed)

#----------------------------------------------------------------------------
# Which features to use: given, or by name, with an offline fallback that says why it was taken.

FEATURE_CHOICES = ('auto', 'inception', 'discriminator', 'pixels')

def pick_features(features='auto', D=None, device=None):
    """A Features: an instance as given; 'inception' (the FID network: downloads its weights once, needs the
    `metrics` extra); 'discriminator' (D's, offline); 'pixels' (offline); 'auto': Inception when it can be had,
    else D's when there is a D, else pixels. A fallback records why in `.fallback_reason`."""
    if isinstance(features, Features):
        return features
    if features not in FEATURE_CHOICES:
        raise ValueError(f'features must be one of {FEATURE_CHOICES} or a metrics.Features, got {features!r}')
    device = default_device(device)
    reason = None
    if features in ('inception', 'auto'):
        try:
            return inception(device=device)
        except Exception as e:                      # noqa: BLE001 (no internet, no torch-fidelity: go offline)
            if features == 'inception':
                raise
            reason = f'Inception unavailable ({type(e).__name__}: {str(e)[:200]})'
    if features == 'discriminator' and D is None:
        raise ValueError("features='discriminator' needs a discriminator (the base file holds none): use 'pixels' or 'inception'")
    extractor = discriminator_features(D, device=device) if features in ('discriminator', 'auto') and D is not None \
        else pixel_features(device=device)
    extractor.fallback_reason = reason
    return extractor
