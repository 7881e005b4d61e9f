"""Image distances for projection: LPIPS-style VGG16, discriminator features, pixels.

Each distance is a module called as `dist(synth, target_features)` after `target_features =
dist.features(target)`, with images in [-1, 1], [N, 3, H, W].

- VGG16 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"):
  activations after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of ImageNet VGG16, each unit-normalised
  over channels; the squared difference is weighted per channel (LPIPS's learned linear layers when given,
  else uniformly), averaged over pixels and summed over layers. Weights: torchvision's
  `vgg16-397923af.pth` state dict (and optionally LPIPS v0.1 `vgg.pth`), read with the library's restricted
  unpickler; `load_vgg16(download=True)` fetches them (progress bar, checksum) where there is internet.
- Discriminator: the same normalised-difference metric on the outputs of every block of a StyleGAN2 D
  (no extra weights, works offline).
- Pixel: mean squared error, optionally also on 2x, 4x, ... downsampled copies.
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoints import CheckpointError
from .checkpoints.safe_pickle import load_torch_legacy, load_torch_zip
from .downloads import CACHE, download

VGG16_URL = 'https://download.pytorch.org/models/vgg16-397923af.pth'
VGG16_SHA256_PREFIX = '397923af'           # torchvision names its files after their sha256
LPIPS_URL = 'https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth'

# torchvision vgg16 `features` indices: convs (3x3, padding 1) and the max-pools between stages.
_VGG_STAGES = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]
_VGG_CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                 (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

#----------------------------------------------------------------------------
# The LPIPS-style metric on a list of feature maps: unit-normalise over channels, weighted squared
# difference, mean over pixels, sum over layers.

def _unit(f, eps=1e-10):
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + eps)

def feature_distance(feats, target_feats, weights=None):
    total = 0
    for i, (a, b) in enumerate(zip(feats, target_feats)):
        d = (_unit(a) - _unit(b)).square()                              # [N, C, H, W]
        d = (d * weights[i]).sum(dim=1) if weights is not None else d.mean(dim=1)
        total = total + d.mean(dim=[1, 2])
    return total                                                        # [N]

#----------------------------------------------------------------------------

class VGG16Distance(torch.nn.Module):
    """LPIPS-style VGG16 distance. `state` is torchvision's vgg16 state dict (features.* used)."""
    def __init__(self, state, lpips_state=None):
        super().__init__()
        convs = [i for stage in _VGG_STAGES for i in stage]
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(cin, cout, 3, padding=1) for cin, cout in _VGG_CHANNELS)
        with torch.no_grad():
            for conv, idx in zip(self.convs, convs):
                conv.weight.copy_(state[f'features.{idx}.weight'])
                conv.bias.copy_(state[f'features.{idx}.bias'])
        self.stage_sizes = [len(s) for s in _VGG_STAGES]
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).reshape(1, 3, 1, 1))
        self.lin = None
        if lpips_state is not None:
            self.lin = torch.nn.ParameterList(torch.nn.Parameter(lpips_state[f'lin{i}.model.1.weight'].reshape(1, -1, 1, 1))
                                              for i in range(5))
        self.requires_grad_(False).eval()

    def features(self, img):                                          # [-1, 1] -> 5 feature maps
        x = (img + 1) / 2
        if x.shape[2] > 256:
            x = F.interpolate(x, size=(256, 256), mode='area')          # VGG was trained on ~224 px
        x = (x - self.mean) / self.std
        feats, k = [], 0
        for stage, n in enumerate(self.stage_sizes):
            if stage > 0:
                x = F.max_pool2d(x, 2)
            for _ in range(n):
                x = F.relu(self.convs[k](x))
                k += 1
            feats.append(x)
        return feats

    def forward(self, img, target_feats):
        return feature_distance(self.features(img), target_feats, None if self.lin is None else list(self.lin))

#----------------------------------------------------------------------------

class DiscriminatorDistance(torch.nn.Module):
    """The same metric on the block outputs of a StyleGAN2 discriminator (no weights to download)."""
    def __init__(self, D):
        super().__init__()
        self.D = D.eval().requires_grad_(False)

    def features(self, img):
        feats, x = [], None
        for res in self.D.block_resolutions:
            x = getattr(self.D, f'b{res}')(x, img, force_fp32=True)
            feats.append(x)
        return feats

    def forward(self, img, target_feats):
        return feature_distance(self.features(img), target_feats)

class PixelDistance(torch.nn.Module):
    """Mean squared error, plus the same on `scales - 1` successively 2x average-pooled copies."""
    def __init__(self, scales=1):
        super().__init__()
        self.scales = scales

    def features(self, img):
        feats = [img]
        for _ in range(self.scales - 1):
            feats.append(F.avg_pool2d(feats[-1], 2))
        return feats

    def forward(self, img, target_feats):
        return sum((a - b).square().mean(dim=[1, 2, 3]) for a, b in zip(self.features(img), target_feats))

#----------------------------------------------------------------------------
# Weights: read safely (no code from the file runs), or downloaded once into the cache.

def read_state_dict(path):
    """A torch.save'd state dict (zip or legacy format) through the restricted unpickler."""
    data = Path(path).read_bytes()
    try:
        state = load_torch_zip(data) if data[:4] == b'PK\x03\x04' else load_torch_legacy(data)
    except Exception as e:
        raise CheckpointError(path, f'not a readable torch state dict: {e}') from None
    if not isinstance(state, dict):
        raise CheckpointError(path, 'not a state dict')
    return state

def load_vgg16(path=None, lpips_path=None, download_missing=False):
    """VGG16Distance from torchvision's vgg16 weights at `path` (default: the cache), or downloaded there."""
    path = Path(path) if path is not None else CACHE / 'vgg16-397923af.pth'
    if not path.exists():
        if not download_missing:
            raise FileNotFoundError(f'{path}: VGG16 weights not found; give their path, or allow the download of {VGG16_URL}')
        try:
            download(VGG16_URL, path, sha256_prefix=VGG16_SHA256_PREFIX)
        except OSError as e:
            raise FileNotFoundError(f'{path}: VGG16 weights not found and the download failed ({e}); '
                                    'download vgg16-397923af.pth elsewhere and give its path') from None
    state = read_state_dict(path)
    missing = [f'features.{i}.weight' for stage in _VGG_STAGES for i in stage if f'features.{i}.weight' not in state]
    if missing:
        raise CheckpointError(path, f'not torchvision VGG16 weights (no {missing[0]})')
    lpips = read_state_dict(lpips_path) if lpips_path is not None else None
    return VGG16Distance(state, lpips)
