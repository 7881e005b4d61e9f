"""StyleGAN2 discriminator, architecture 'resnet' (Karras et al. 2020, Figure 7c), with the NVlabs
stylegan2-ada-pytorch API (`D(img, c)`) and parameter names (`b64.conv0.weight`, `b4.fc.weight`, ...).
"""

import dataclasses
from typing import Optional

import numpy as np
import torch

from . import ops

from .generator import MappingNetwork
from .layers import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer, block_layout, compute_dtype
from .netconfig import ConfigMixin, block_resolutions, channel_table, check_channels, check_resolution, fp16_resolution
from .ops.common import autocast_off

#----------------------------------------------------------------------------

@dataclasses.dataclass
class DiscriminatorConfig(ConfigMixin):
    c_dim:              int = 0         # Conditioning label (C) dimensionality.
    img_resolution:     int = 1024      # Input resolution.
    img_channels:       int = 3         # Number of input colour channels.
    channels:           Optional[dict] = None  # {resolution: channels} for every block and 4; None = formula.
    channel_base:       int = 32768
    channel_max:        int = 512
    num_fp16_res:       int = 0         # Run the N highest-resolution blocks in float16 (CUDA only).
    conv_clamp:         Optional[float] = None
    architecture:       str = 'resnet'  # Only 'resnet' is supported.
    resample_filter:    tuple = (1, 3, 3, 1)
    activation:         str = 'lrelu'
    cmap_dim:           Optional[int] = None    # Conditioning projection size, None = channels[4].
    mbstd_group_size:   Optional[int] = 4       # None = the whole batch is one group.
    mbstd_num_channels: int = 1
    mapping_layers:     int = 8         # Conditioning mapping network (c_dim > 0 only).
    mapping_lr_multiplier: float = 0.01
    mapping_embed_features: Optional[int] = None
    mapping_layer_features: Optional[int] = None
    mapping_activation: str = 'lrelu'

    def __post_init__(self):
        check_resolution(self.img_resolution)
        if self.architecture != 'resnet':
            raise ValueError(f"discriminator architecture {self.architecture!r} is not supported (only 'resnet')")
        if self.channels is None:
            self.channels = channel_table(self.block_resolutions + [4], self.channel_base, self.channel_max)
        self.channels = {int(k): int(v) for k, v in self.channels.items()}
        check_channels(self.channels, self.block_resolutions + [4])
        self.resample_filter = tuple(self.resample_filter)

    @property
    def block_resolutions(self):
        return block_resolutions(self.img_resolution)[:0:-1]        # highest first; 4 is the epilogue

    @classmethod
    def matching(cls, g_cfg, **overrides):
        """A D for a generator config: same resolution, labels, channel table, fp16 blocks and clamp (for a
        file that has no discriminator)."""
        resolutions = block_resolutions(g_cfg.img_resolution)
        kwargs = dict(img_resolution=g_cfg.img_resolution, img_channels=g_cfg.img_channels, c_dim=g_cfg.c_dim,
                      channels={r: g_cfg.channels[r] for r in resolutions}, num_fp16_res=g_cfg.num_fp16_res,
                      conv_clamp=g_cfg.conv_clamp)
        return cls(**{**kwargs, **overrides})

    @property
    def fp16_resolution(self):
        return fp16_resolution(self.img_resolution, self.num_fp16_res)

    @property
    def effective_cmap_dim(self):
        if self.c_dim == 0:
            return 0
        return self.channels[4] if self.cmap_dim is None else self.cmap_dim

#----------------------------------------------------------------------------
# Residual block: fromrgb (first block), conv0, conv1 (down 2), skip (1x1, down 2);
# out = (skip(x) + conv1(conv0(x))) * sqrt(1/2), the gains applied inside the layers.

class DiscriminatorBlock(torch.nn.Module):
    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels, use_fp16=False,
                 conv_clamp=None, resample_filter=(1, 3, 3, 1), activation='lrelu'):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.channels_last = False      # NHWC convolution inputs (set by the trainer on CUDA; not saved)
        self.register_buffer('resample_filter', ops.setup_filter(list(resample_filter)))
        common = dict(activation=activation, conv_clamp=conv_clamp, resample_filter=resample_filter)
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2, **common)
        self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2, resample_filter=resample_filter)

    def forward(self, x, img, force_fp32=False):
        dtype = compute_dtype(self.use_fp16, force_fp32, (img if img is not None else x).device)
        if self.in_channels == 0:
            x = self.fromrgb(block_layout(img.to(dtype), self.channels_last))
        else:
            x = block_layout(x.to(dtype), self.channels_last)
        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=np.sqrt(0.5))
        return y + x

    def extra_repr(self):
        return f'resolution={self.resolution}, in={self.in_channels}, use_fp16={self.use_fp16}'

#----------------------------------------------------------------------------
# 4x4 epilogue: minibatch stddev, conv, fc, out; projection onto the label embedding when conditional.

class DiscriminatorEpilogue(torch.nn.Module):
    def __init__(self, in_channels, cmap_dim, resolution, mbstd_group_size=4, mbstd_num_channels=1,
                 activation='lrelu', conv_clamp=None):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, cmap=None):
        with autocast_off(x.device):            # float32, also under bfloat16 autocast (NVlabs: always float32)
            return self._logits(x.to(torch.float32), cmap)

    def _logits(self, x, cmap):
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))               # NCHW order, as NVlabs
        x = self.out(x)
        if self.cmap_dim > 0:
            # Projection discriminator (Miyato & Koyama 2018): <out, cmap> / sqrt(cmap_dim).
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

#----------------------------------------------------------------------------

class Discriminator(torch.nn.Module):
    def __init__(self, cfg: Optional[DiscriminatorConfig] = None, **kwargs):
        super().__init__()
        cfg = cfg if cfg is not None else DiscriminatorConfig(**kwargs)
        self.cfg = cfg
        self.c_dim = cfg.c_dim
        self.img_resolution = cfg.img_resolution
        self.img_channels = cfg.img_channels
        self.block_resolutions = cfg.block_resolutions
        ch = cfg.channels
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                in_channels     = ch[res] if res < cfg.img_resolution else 0,
                tmp_channels    = ch[res],
                out_channels    = ch[res // 2],
                resolution      = res,
                img_channels    = cfg.img_channels,
                use_fp16        = (res >= cfg.fp16_resolution),
                conv_clamp      = cfg.conv_clamp,
                resample_filter = cfg.resample_filter,
                activation      = cfg.activation,
            )
            setattr(self, f'b{res}', block)
        cmap_dim = cfg.effective_cmap_dim
        if cfg.c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=cfg.c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          num_layers=cfg.mapping_layers, lr_multiplier=cfg.mapping_lr_multiplier,
                                          embed_features=cfg.mapping_embed_features,
                                          layer_features=cfg.mapping_layer_features, activation=cfg.mapping_activation)
        self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim=cmap_dim, resolution=4, mbstd_group_size=cfg.mbstd_group_size,
                                        mbstd_num_channels=cfg.mbstd_num_channels, activation=cfg.activation,
                                        conv_clamp=cfg.conv_clamp)

    def forward(self, img, c=None, force_fp32=False, update_emas=None):
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f'D expects images [N, {expected[0]}, {expected[1]}, {expected[2]}], got {list(img.shape)}')
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f'b{res}')(x, img, force_fp32=force_fp32)
        with autocast_off(img.device):
            cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap)
