"""Resolution-dependent model blending (Pinkney & Adler 2020, "Resolution Dependent GAN Interpolation
for Controllable Image Synthesis Between Domains").

The synthesis layers of a StyleGAN2 generator are ordered by resolution. Number them by position

    p(layer) = 2 * log2(res / 4) + level,   level 0 = const / conv0,  level 1 = conv1 / torgb

so b4.const = 0, b4.conv1 = b4.torgb = 1, b8.conv0 = 2, b8.conv1 = b8.torgb = 3, ... Each layer gets a
weight y in [0, 1] and its parameters (weights, biases, affines, noise strengths and noise buffers) become

    theta = (1 - y) * theta_low + y * theta_high.

Hard swap at resolution R: y = 0 for every layer of a block at resolution <= R, y = 1 above.
Smooth blend of width w > 0: y = sigmoid((p - c) / w) with c = 2 * log2(R / 4) + 1.5, halfway between the
last layer of block R (position 2 * log2(R / 4) + 1) and the first layer of block 2R. Positions are integers
and c is a half-integer, so as w -> 0 every y goes to exactly 0 or 1: the hard swap. R = 0 means "every
synthesis layer from high" (c = -0.5). The mapping network and w_avg come whole from one model.

Low layers carry pose and face shape, high layers colour and texture: with `low` = the FFHQ model and
`high` = its anime fine-tune, a swap at 16..32 gives a real face's structure with anime rendering; the other
way round (Toonify) gives cartoon structure with photo texture.
"""

import copy
import math
import re

import numpy as np
import torch

from . import images
from .generator import Generator

#----------------------------------------------------------------------------
# Which synthesis layer a parameter belongs to: 'synthesis.b32.conv0.affine.weight' -> (32, 'conv0').

_LEVEL = {'const': 0, 'conv0': 0, 'conv1': 1, 'torgb': 1, 'resample_filter': 0}

def layer_of(name):
    m = re.match(r'synthesis\.b(\d+)\.(const|conv0|conv1|torgb|resample_filter)\b', name)
    if m is None:
        return None
    return int(m.group(1)), m.group(2)

def layer_position(res, part):
    return 2 * math.log2(res / 4) + _LEVEL[part]

def layer_names(G):
    """Every synthesis layer as 'b{res}.{part}', in position order."""
    names = []
    for res in G.synthesis.block_resolutions:
        parts = ['const', 'conv1', 'torgb'] if res == 4 else ['conv0', 'conv1', 'torgb']
        names += [f'b{res}.{p}' for p in parts]
    return names

#----------------------------------------------------------------------------
# Per-layer weights y for a swap at `resolution` (hard when width is None or 0).

def swap_weights(G, resolution, width=None):
    valid = [0] + list(G.synthesis.block_resolutions)
    if resolution not in valid:
        raise ValueError(f'resolution {resolution!r} is not a block resolution of this {G.img_resolution}x{G.img_resolution} '
                         f'generator; choose one of {valid}')
    if width is not None and width < 0:
        raise ValueError(f'width must be >= 0, got {width}')
    centre = -0.5 if resolution == 0 else 2 * math.log2(resolution / 4) + 1.5
    weights = {}
    for name in layer_names(G):
        res, part = int(name[1:].split('.')[0]), name.split('.')[1]
        p = layer_position(res, part)
        if not width:
            weights[name] = 0.0 if p < centre else 1.0
        else:
            weights[name] = _sigmoid((p - centre) / width)
    return weights

def _sigmoid(x):
    # the two branches never overflow: exp() only sees non-positive arguments
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))

#----------------------------------------------------------------------------
# Architecture check: the first difference, named.

def check_same_architecture(low, high):
    a, b = low.cfg, high.cfg
    for field in ('img_resolution', 'img_channels', 'z_dim', 'w_dim', 'c_dim', 'mapping_layers', 'use_noise',
                  'resample_filter', 'activation', 'mapping_activation'):
        if getattr(a, field) != getattr(b, field):
            raise ValueError(f'cannot blend: {field} differs (low {getattr(a, field)!r}, high {getattr(b, field)!r})')
    if low.num_ws != high.num_ws:
        raise ValueError(f'cannot blend: num_ws differs (low {low.num_ws}, high {high.num_ws})')
    for res in a.block_resolutions:
        if a.channels[res] != b.channels[res]:
            raise ValueError(f'cannot blend: channels at resolution {res} differ (low {a.channels[res]}, high {b.channels[res]})')
    low_shapes = {k: v.shape for k, v in low.state_dict().items()}
    for k, v in high.state_dict().items():
        if low_shapes.get(k) != v.shape:
            raise ValueError(f'cannot blend: tensor {k} differs (low {low_shapes.get(k)}, high {tuple(v.shape)})')

def _resolve_custom(G, weights):
    out = {}
    for name in layer_names(G):
        res = int(name[1:].split('.')[0])
        for key in (name, f'synthesis.{name}', res):
            if key in weights:
                out[name] = float(weights[key])
                break
        else:
            raise ValueError(f'custom blend weights give no value for layer {name} (key {name!r} or resolution {res})')
        if not 0 <= out[name] <= 1:
            raise ValueError(f'blend weight for {name} must be in [0, 1], got {out[name]}')
    known = set(layer_names(G)) | {f'synthesis.{n}' for n in layer_names(G)} | set(G.synthesis.block_resolutions)
    stray = [k for k in weights if k not in known]
    if stray:
        raise ValueError(f'custom blend weights name unknown layer {stray[0]!r}; layers are {layer_names(G)}')
    return out

#----------------------------------------------------------------------------

def _weights(low, resolution, width, weights):
    if (weights is None) == (resolution is None):
        raise ValueError('give either resolution (with an optional width) or a custom weights mapping')
    return _resolve_custom(low, weights) if weights is not None else swap_weights(low, resolution, width)

@torch.no_grad()
def blended_state(low: Generator, high: Generator, y, mapping='low'):
    """{name: tensor} of the blend with per-layer weights y (swap_weights' output): low's or high's own tensor
    where a layer's weight is exactly 0 or 1 (no copy), a new lerped tensor otherwise."""
    if mapping not in ('low', 'high'):
        raise ValueError(f"mapping must be 'low' or 'high', got {mapping!r}")
    low_state, high_state = low.state_dict(keep_vars=True), high.state_dict(keep_vars=True)
    out = {}
    for name, t in low_state.items():                      # the blend lives on low's device (high's tensors move)
        layer = layer_of(name)
        if layer is None:                                  # mapping network and w_avg: whole from one model
            out[name] = (high_state if mapping == 'high' else low_state)[name].detach().to(t.device)
            continue
        res, part = layer
        if part == 'resample_filter':                      # the block's own FIR filter goes with its first layer
            part = 'const' if res == 4 else 'conv0'
        w = y[f'b{res}.{part}']
        a, b = t.detach(), high_state[name].detach().to(t.device)
        out[name] = a if w == 0.0 else b if w == 1.0 else torch.lerp(a, b.to(a.dtype), w)   # (1 - y) * low + y * high
    return out

@torch.no_grad()
def blend(low: Generator, high: Generator, resolution=None, width=None, mapping='low', weights=None):
    """Blend two generators of one architecture; returns a new Generator, the inputs are not changed.

    resolution: swap point, a block resolution (4..img_resolution) or 0 (all synthesis layers from high).
    width:      None or 0 = hard swap; > 0 = smooth blend, y = sigmoid((p - c) / width) (module docstring).
    mapping:    'low' or 'high': the model whose mapping network and w_avg are used.
    weights:    custom schedule instead of resolution/width: {layer name ('b32.conv0') or resolution: y}.
    Non-architecture settings (num_fp16_res, conv_clamp) come from `low`.
    """
    check_same_architecture(low, high)
    state = blended_state(low, high, _weights(low, resolution, width, weights), mapping)
    out = copy.deepcopy(low)
    for name, t in out.state_dict().items():
        t.copy_(state[name])
    return out.eval().requires_grad_(False)

#----------------------------------------------------------------------------
# Preview: one row per seed, columns low | blend at every swap resolution | high, labelled.

@torch.no_grad()
def blend_preview(low, high, seeds, truncation_psi=0.7, width=None, mapping='low', noise_mode='const', min_tile=96):
    """uint8 [H, W, 3] grid. The same w (from the `mapping` model) is rendered by every column."""
    check_same_architecture(low, high)
    resolutions = low.synthesis.block_resolutions[:-1]
    columns = [low] + [blend(low, high, r, width=width, mapping=mapping) for r in resolutions] + [high]
    labels = ['low'] + [f'swap {r}' for r in resolutions] + ['high']
    z = images.seed_latents(seeds, low.z_dim).to(next(low.parameters()).device)
    ws = (low if mapping == 'low' else high).mapping(z, None, truncation_psi=truncation_psi)
    rows = [images.to_uint8(G.synthesis(ws, noise_mode=noise_mode)) for G in columns]   # [cols][N, H, W, C]
    tiles = np.stack(rows, axis=1).reshape(-1, *rows[0].shape[1:])                     # row-major: seed, column
    tiles = images.enlarge(tiles, min_tile)
    grid = images.make_grid(tiles, cols=len(columns))
    return images.add_column_labels(grid, labels, tile_width=tiles.shape[2])
