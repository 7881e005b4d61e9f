"""How large a network a checkpoint file may declare, and how much memory a load may take.

A file's configuration is checked against these limits before any network is built, and the networks' shapes
against the file's tensors before any of their memory is allocated; the networks then take at most
`memory_factor` times the file's size (as float32, plus 16 MiB for small files). Parsing itself never holds
more storage than the file's own size (safe_pickle.Budget). The defaults admit every published StyleGAN2
network (1024x1024, 512 channels, 512-d latents, 8 mapping layers) with room to spare; a genuinely larger one
loads with `sg.load(path, limits=Limits(max_channels=8192, ...))`.
"""

import dataclasses
import math

from .. import ops


@dataclasses.dataclass(frozen=True)
class Limits:
    max_resolution:     int = 1024          # image size (a power of two)
    max_channels:       int = 2048          # feature maps of any layer
    max_latent:         int = 2048          # z_dim, w_dim, mapping widths, D's cmap_dim
    max_labels:         int = 100_000       # c_dim
    max_mapping_layers: int = 32
    max_img_channels:   int = 8
    memory_factor:      float = 2.0         # networks' float32 bytes <= factor * file size + SLACK

    SLACK = 16 * 2 ** 20

    def network_bytes(self, file_size):
        return int(self.memory_factor * file_size) + self.SLACK


DEFAULT = Limits()

#----------------------------------------------------------------------------
# Config checks: every dimension and count an int in range, every name known, every number finite.

def _int(value, name, lo, hi):
    if type(value) is not int or not lo <= value <= hi:
        raise ValueError(f'{name} must be an integer in {lo}..{hi}, got {value!r:.40}')


def _optional_int(value, name, lo, hi):
    if value is not None:
        _int(value, name, lo, hi)


def _number(value, name, lo=-math.inf, hi=math.inf, optional=False):
    if value is None and optional:
        return
    if type(value) not in (int, float) or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f'{name} must be a finite number in [{lo}, {hi}], got {value!r:.40}')


def _check_activation(value, name):
    if not isinstance(value, str) or value not in ops.activation_funcs:
        raise ValueError(f'{name} {value!r:.40} is not one of {sorted(ops.activation_funcs)}')


def _filter(value):
    # setup_filter divides the taps by their sum, in float32: the taps must be moderate and not cancel out.
    if not isinstance(value, tuple) or not 1 <= len(value) <= 16:
        raise ValueError(f'resample_filter must have 1..16 taps, got {value!r:.80}')
    for tap in value:
        _number(tap, 'a resample_filter tap', -1e6, 1e6)
    if abs(sum(value)) < 1e-3 * max(abs(t) for t in value):
        raise ValueError(f'resample_filter taps {list(value)} (nearly) sum to zero')


def check_config(cfg, limits=DEFAULT):
    """ValueError naming the first field of a GeneratorConfig / DiscriminatorConfig outside `limits`."""
    res = cfg.img_resolution
    _int(res, 'img_resolution', 4, limits.max_resolution)
    _int(cfg.c_dim, 'c_dim', 0, limits.max_labels)
    _int(cfg.img_channels, 'img_channels', 1, limits.max_img_channels)
    if not isinstance(cfg.channels, dict):
        raise ValueError('channels is not a table')
    for r, ch in cfg.channels.items():
        _int(ch, f'channels[{r}]', 1, limits.max_channels)
    _int(cfg.num_fp16_res, 'num_fp16_res', 0, res.bit_length())
    _number(cfg.conv_clamp, 'conv_clamp', 0, optional=True)
    _filter(cfg.resample_filter)
    _check_activation(cfg.activation, 'activation')
    _check_activation(cfg.mapping_activation, 'mapping_activation')
    _number(cfg.mapping_lr_multiplier, 'mapping_lr_multiplier', 1e-8, 1e8)
    _optional_int(cfg.mapping_embed_features, 'mapping_embed_features', 1, limits.max_latent)
    _optional_int(cfg.mapping_layer_features, 'mapping_layer_features', 1, limits.max_latent)
    if hasattr(cfg, 'z_dim'):                                    # generator
        _int(cfg.z_dim, 'z_dim', 0, limits.max_latent)
        _int(cfg.w_dim, 'w_dim', 1, limits.max_latent)
        _int(cfg.mapping_layers, 'mapping_layers', 1, limits.max_mapping_layers)
        _number(cfg.w_avg_beta, 'w_avg_beta', 0, 1, optional=True)
        if type(cfg.use_noise) is not bool:
            raise ValueError(f'use_noise must be true or false, got {cfg.use_noise!r:.40}')
    else:                                                        # discriminator
        _int(cfg.mapping_layers, 'mapping_layers', 0, limits.max_mapping_layers)
        _optional_int(cfg.cmap_dim, 'cmap_dim', 1, limits.max_latent)
        _optional_int(cfg.mbstd_group_size, 'mbstd_group_size', 1, 4096)
        _int(cfg.mbstd_num_channels, 'mbstd_num_channels', 0, limits.max_channels)
