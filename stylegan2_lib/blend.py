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

Blend modes (docs/blending.md): mode='pinkney' rebuilds Toonify's blend_models.py, mode='vtoonify' VToonify-T's
preset blends, and feature_swap_images renders Cartoon-StyleGAN's feature-map swap (no network).
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

MODES = ('default', 'pinkney', 'vtoonify')

@torch.no_grad()
def blend(low: Generator, high: Generator, resolution=None, width=None, mapping=None, weights=None, mode='default',
          level=0, preset=None):
    """Blend two generators of one architecture; returns a new Generator, the inputs are not changed.

    resolution: swap point, a block resolution (4..img_resolution) or 0 (all synthesis layers from high).
    width:      None or 0 = hard swap; > 0 = smooth blend, y = sigmoid((p - c) / width) (module docstring).
    mapping:    'low' or 'high': the model whose mapping network and w_avg are used (default 'low'; the
                'pinkney' mode always takes low's, 'vtoonify' high's).
    weights:    custom schedule instead of resolution/width: {layer name ('b32.conv0') or resolution: y}.
    mode:       'default'; 'pinkney' = Toonify's blend_models.py (resolution, level 0/1, width; blend_pinkney);
                'vtoonify' = VToonify-T's blend with low = the fine-tune, high = the FFHQ base and
                preset = a VTOONIFY_PRESETS name or num_ws numbers (blend_vtoonify).
    Non-architecture settings (num_fp16_res, conv_clamp) come from `low`.
    """
    if mode not in MODES:
        raise ValueError(f'unknown blend mode {mode!r}; choose one of {list(MODES)}')
    if mode != 'default':
        return _blend_mode(low, high, resolution, width, mapping, weights, mode, level, preset)
    if level != 0 or preset is not None:
        raise ValueError("level and preset belong to mode='pinkney' and mode='vtoonify'")
    mapping = 'low' if mapping is None else mapping
    check_same_architecture(low, high)
    state = blended_state(low, high, _weights(low, resolution, width, weights), mapping)
    out = copy.deepcopy(low)
    for name, t in out.state_dict().items():
        t.copy_(state[name])
    return out.eval().requires_grad_(False)

def _blend_mode(low, high, resolution, width, mapping, weights, mode, level, preset):
    own = 'low' if mode == 'pinkney' else 'high'
    if mapping not in (None, own):
        raise ValueError(f"mode={mode!r} takes the mapping network from {own}; mapping={mapping!r} is not possible")
    if weights is not None:
        raise ValueError(f'custom weights belong to the default mode, not mode={mode!r}')
    if mode == 'pinkney':
        if resolution is None or preset is not None:
            raise ValueError("mode='pinkney' needs a resolution (and optionally level, width), not a preset")
        return blend_pinkney(low, high, resolution, level, width)
    if resolution is not None or width is not None or level != 0:
        raise ValueError("mode='vtoonify' takes a preset (a name or num_ws numbers), not resolution, width or level")
    return blend_vtoonify(low, high, 'cartoon' if preset is None else preset)

#----------------------------------------------------------------------------
# Preview: one row per seed, columns low | blend at every swap resolution (or VToonify preset) | high, labelled.

def preview_labels(G, mode='default', level=0):
    """The labels of blend_preview's columns between low and high, for generators shaped like G."""
    if mode == 'vtoonify':
        return [f'vtoonify {p}' for p in VTOONIFY_PRESETS]
    name = 'pinkney' if mode == 'pinkney' else 'swap'
    return [f'{name} {r}' + (f'.{level}' if mode == 'pinkney' and level else '') for r in G.synthesis.block_resolutions[:-1]]

def preview_columns(low, high, width=None, mapping='low', mode='default', level=0):
    """[(label, generator)] of blend_preview's columns between low and high: a blend at every swap resolution
    below the image size (mode 'default' or 'pinkney', at `level`), or one per VToonify preset ('vtoonify')."""
    labels = preview_labels(low, mode, level)
    if mode == 'vtoonify':
        return [(label, blend(low, high, mode='vtoonify', preset=p)) for label, p in zip(labels, VTOONIFY_PRESETS)]
    resolutions = low.synthesis.block_resolutions[:-1]
    if mode == 'pinkney':
        return [(label, blend(low, high, r, width=width, mode='pinkney', level=level)) for label, r in zip(labels, resolutions)]
    return [(label, blend(low, high, r, width=width, mapping=mapping)) for label, r in zip(labels, resolutions)]

@torch.no_grad()
def blend_preview(low, high, seeds, truncation_psi=0.7, width=None, mapping='low', noise_mode='const', min_tile=96,
                  mode='default', level=0):
    """uint8 [H, W, 3] grid. The same w (from the `mapping` model: low's for 'pinkney', high's for 'vtoonify')
    is rendered by every column; mode, level: as blend's (preview_columns)."""
    check_same_architecture(low, high)
    mapping = {'pinkney': 'low', 'vtoonify': 'high'}.get(mode, mapping)
    middle = preview_columns(low, high, width, mapping, mode, level)
    columns = [low] + [G for _, G in middle] + [high]
    labels = ['low'] + [label for label, _ in middle] + ['high']
    z = images.seed_latents(seeds, low.z_dim).to(next(low.parameters()).device)
    ws = (low if mapping == 'low' else high).mapping(z, None, truncation_psi=truncation_psi)
    rows = [images.to_uint8(G.synthesis(ws, noise_mode=noise_mode)) for G in columns]   # [cols][N, H, W, C]
    tiles = np.stack(rows, axis=1).reshape(-1, *rows[0].shape[1:])                     # row-major: seed, column
    tiles = images.enlarge(tiles, min_tile)
    grid = images.make_grid(tiles, cols=len(columns))
    return images.add_column_labels(grid, labels, tile_width=tiles.shape[2])

#----------------------------------------------------------------------------
# Blend modes that reproduce other projects' blends (docs/blending.md, "Blend modes"). Each gives every layer
# a pair of coefficients (a, b) and computes theta = high * b + low * a in the operand order of the original
# code, so the result equals theirs tensor for tensor (torch.lerp rounds differently).

def _layer_parts(name):
    res, part = name[1:].split('.')
    return int(res), part

#----------------------------------------------------------------------------
# Toonify (Pinkney, justinpinkney/stylegan2 blend_models.py). Its variables G_synthesis/{r}x{r}/{Const,
# Conv0_up} sit at position x = 2 * log2(r / 4) and {Conv1, ToRGB} at 2 * log2(r / 4) + 1, and are measured
# from the position of (resolution, level): x = position - mid. Hard cut: y = 1 if x > 1 else 0; smooth:
# y = sigmoid(x / width). Its 4x4 'Conv' matches neither list and stays the first model's (y = 0), as do every
# untrained variable (the noise buffers, dlatent_avg) and the mapping network: model_1.clone().

def pinkney_weights(G, resolution, level=0, width=None):
    """{layer name: y} of blend_models.py for a swap at (resolution, level); y = fraction of the second model."""
    if resolution not in G.synthesis.block_resolutions:
        raise ValueError(f'resolution {resolution!r} is not a block resolution of this generator; '
                         f'choose one of {list(G.synthesis.block_resolutions)}')
    if level not in (0, 1):
        raise ValueError(f'level must be 0 (Conv0_up / Const) or 1 (Conv1 / ToRGB), got {level!r}')
    mid = 2 * math.log2(resolution / 4) + level
    weights = {}
    for name in layer_names(G):
        res, part = _layer_parts(name)
        x = layer_position(res, part) - mid
        if name == 'b4.conv1':                             # TF '4x4/Conv': never matched, never blended
            weights[name] = 0.0
        elif width:
            e = -x / width                                 # their formula, as written (exp overflows to y = 0)
            weights[name] = 1 / (1 + math.exp(e)) if e < 700 else 0.0
        else:
            weights[name] = 1.0 if x > 1 else 0.0
    return weights

#----------------------------------------------------------------------------
# VToonify-T (Yang et al. 2022, williamyang1991/VToonify util.blend_models(G_low=fine-tune, G_high=FFHQ base,
# weight)): 18 numbers, weight[i] = the fine-tune's share of the layers that read w_i (rosinality's conv1 -> 0,
# to_rgb1 -> 1, convs.i -> i + 1, to_rgbs.i -> 2 * i + 3, which is the NVlabs ws index of every layer), as
# theta = base * (1 - weight) + finetune * weight. Everything else (the constant input, the noise buffers and
# the mapping network) is the base's. Presets: the --weight values of train_vtoonify_t.py for each style.

VTOONIFY_PRESETS = {
    'cartoon':    [1] * 9 + [0] * 9,                       # their default
    'caricature': [1] * 9 + [0] * 9,
    'pixar':      [1] * 9 + [0.5] * 9,
    'comic':      [0.5] * 7 + [1] * 11,
    'arcane':     [0.5] * 7 + [1] * 11,
}

def ws_index(name):
    """The ws index a synthesis layer reads ('b8.conv0' -> 1): VToonify's layer index."""
    res, part = _layer_parts(name)
    p = int(layer_position(res, part))
    return p if part == 'torgb' else p - 1

def vtoonify_shares(G, preset):
    """{layer name: the fine-tune's share} for a preset name or a list of num_ws numbers (an 18-number preset is
    cut to num_ws for a smaller network: index i is the layers reading w_i at any size)."""
    if isinstance(preset, str):
        if preset not in VTOONIFY_PRESETS:
            raise ValueError(f'unknown VToonify preset {preset!r}; choose one of {sorted(VTOONIFY_PRESETS)}')
        shares = VTOONIFY_PRESETS[preset][:G.num_ws]
    else:
        shares = [float(s) for s in preset]
    if len(shares) != G.num_ws:
        raise ValueError(f'VToonify weights need {G.num_ws} numbers (one per w) for this generator, got {len(shares)}')
    if not all(0 <= s <= 1 for s in shares):
        raise ValueError(f'VToonify weights must lie in [0, 1], got {shares}')
    return {name: float(shares[ws_index(name)]) for name in layer_names(G) if name != 'b4.const'}

def vtoonify_weights(G, preset):
    """{layer name: y}, y = the base's share (blend(finetune, base, mode='vtoonify'): low = fine-tune, high = base)."""
    return {'b4.const': 1.0, **{n: 1 - s for n, s in vtoonify_shares(G, preset).items()}}

#----------------------------------------------------------------------------

@torch.no_grad()
def _mixed_state(low, high, coeffs, mapping, noise_from):
    """{name: high * b + low * a} with (a, b) = coeffs[layer]; mapping/w_avg from `mapping`, noise buffers and
    FIR filters from `noise_from` / low."""
    low_state, high_state = low.state_dict(keep_vars=True), high.state_dict(keep_vars=True)
    pick = lambda which, name, t: (high_state if which == 'high' else low_state)[name].detach().to(t.device)
    out = {}
    for name, t in low_state.items():
        layer = layer_of(name)
        if layer is None:
            out[name] = pick(mapping, name, t)
        elif layer[1] == 'resample_filter':
            out[name] = pick('low', name, t)
        elif name.endswith('.noise_const'):
            out[name] = pick(noise_from, name, t)
        else:
            a, b = coeffs[f'b{layer[0]}.{layer[1]}']
            lo, hi = t.detach(), high_state[name].detach().to(t.device)
            out[name] = lo if (a, b) == (1, 0) else hi if (a, b) == (0, 1) else hi * b + lo * a
    return out

def _from_state(low, state):
    out = copy.deepcopy(low)
    for name, t in out.state_dict().items():
        t.copy_(state[name])
    return out.eval().requires_grad_(False)

@torch.no_grad()
def blend_pinkney(model_1, model_2, resolution, level=0, width=None):
    """Toonify's blend_models.py: low layers from model_1, high from model_2, mapping, w_avg, noise buffers and
    the 4x4 conv from model_1, theta = model_2 * y + model_1 * (1 - y) with y = pinkney_weights(...)."""
    check_same_architecture(model_1, model_2)
    y = pinkney_weights(model_1, resolution, level, width)
    return _from_state(model_1, _mixed_state(model_1, model_2, {n: (1 - v, v) for n, v in y.items()}, 'low', 'low'))

@torch.no_grad()
def blend_vtoonify(finetune, base, preset='cartoon'):
    """VToonify-T's blend_models: theta = base * (1 - s) + finetune * s per layer (s = vtoonify_shares), the
    constant input, noise buffers, mapping network and w_avg from the base (FFHQ)."""
    check_same_architecture(finetune, base)
    s = vtoonify_shares(finetune, preset)
    coeffs = {'b4.const': (0.0, 1.0), **{n: (v, 1 - v) for n, v in s.items()}}
    return _from_state(finetune, _mixed_state(finetune, base, coeffs, 'high', 'high'))

#----------------------------------------------------------------------------
# Feature-map swap (Cartoon-StyleGAN, Jang et al. 2021; happy-jihye/Cartoon-StyleGAN model.py, swap=True): both
# generators run on one w; `high` renders the image, but right after the convolutions of block k its feature
# map is replaced by `low`'s at the same point, and high continues from there (block k's ToRGB and every later
# block, adding to the RGB image high has accumulated so far). Their swap_layer_num n is k = 4 * 2^n. This is a
# way of rendering two networks, not a network: no tensor blend gives it, so it cannot be exported.

def _block_ws(G, ws):
    """{res: the ws slice block res reads}."""
    out, w_idx = {}, 0
    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f'b{res}')
        out[res] = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
        w_idx += block.num_conv
    return out

@torch.no_grad()
def feature_swap_images(low, high, ws, k, noise_mode='const', force_fp32=False):
    """Image [N, C, H, W] in [-1, 1] rendered by high with low's feature map after block k's convolutions;
    k = 0: no swap, high's synthesis."""
    check_same_architecture(low, high)
    valid = [0] + list(low.synthesis.block_resolutions)
    if k not in valid:
        raise ValueError(f'feature swap block {k!r} is not a block resolution; choose one of {valid}')
    if ws.ndim != 3 or ws.shape[1:] != (low.num_ws, low.w_dim):
        raise ValueError(f'ws must be [N, {low.num_ws}, {low.w_dim}], got {list(ws.shape)}')
    block_ws = _block_ws(low, ws.to(torch.float32))
    kw = dict(force_fp32=force_fp32, noise_mode=noise_mode)
    x = None
    for res in (r for r in low.synthesis.block_resolutions if r <= k):          # low's features up to block k
        x, _ = getattr(low.synthesis, f'b{res}')(x, None, block_ws[res], **kw)
    features = x
    x = img = None
    for res in high.synthesis.block_resolutions:
        block = getattr(high.synthesis, f'b{res}')
        if res != k:
            x, img = block(x, img, block_ws[res], **kw)
            continue
        swap = lambda module, args: (features.to(args[0].dtype),) + args[1:]    # ToRGB sees low's features
        handle = block.torgb.register_forward_pre_hook(swap)
        try:
            _, img = block(x, img, block_ws[res], **kw)
        finally:
            handle.remove()
        x = features
    return img

@torch.no_grad()
def feature_swap_preview(low, high, seeds, truncation_psi=0.7, mapping='low', noise_mode='const', min_tile=96):
    """Like blend_preview: columns low | high rendering low's features after block 4, 8, ..., top | high."""
    check_same_architecture(low, high)
    z = images.seed_latents(seeds, low.z_dim).to(next(low.parameters()).device)
    ws = (low if mapping == 'low' else high).mapping(z, None, truncation_psi=truncation_psi)
    ks = list(low.synthesis.block_resolutions)
    renders = [low.synthesis(ws, noise_mode=noise_mode)]
    renders += [feature_swap_images(low, high, ws, k, noise_mode=noise_mode) for k in ks]
    renders += [high.synthesis(ws, noise_mode=noise_mode)]
    rows = [images.to_uint8(r) for r in renders]
    tiles = images.enlarge(np.stack(rows, axis=1).reshape(-1, *rows[0].shape[1:]), min_tile)
    grid = images.make_grid(tiles, cols=len(rows))
    labels = ['low'] + [f'features {r}' for r in ks] + ['high']
    return images.add_column_labels(grid, labels, tile_width=tiles.shape[2])
