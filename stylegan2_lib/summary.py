"""What a checkpoint holds, as a JSON-friendly dict (`describe`) and as text (`format_summary`).

    ck = sg.load('network-snapshot.pkl')
    print(format_summary(describe(ck, 'network-snapshot.pkl')))
"""

import json
import os

import torch

from .checkpoints.tensorflow import placeholder_discriminator

FORMAT_NAMES = {
    'nvlabs':     'NVlabs network pickle (stylegan2-ada-pytorch / stylegan3 repo, StyleGAN2)',
    'tensorflow': 'TensorFlow StyleGAN2 pickle',
    'rosinality': 'rosinality stylegan2-pytorch checkpoint',
    'native':     'stylegan2_lib safetensors',
}

#----------------------------------------------------------------------------
# Facts read from the built modules (not re-derived from configs), so they say what will run.

def _num_params(net):
    return sum(p.numel() for p in net.parameters())

def describe_generator(G):
    cfg = G.cfg
    return {
        'img_resolution':   G.img_resolution,
        'img_channels':     G.img_channels,
        'z_dim':            G.z_dim,
        'w_dim':            G.w_dim,
        'c_dim':            G.c_dim,
        'num_ws':           G.num_ws,
        'channels':         {str(b.resolution): b.out_channels for b in G.synthesis.blocks()},
        'fp16_resolutions': [b.resolution for b in G.synthesis.blocks() if b.use_fp16],   # on CUDA only
        'num_fp16_res':     cfg.num_fp16_res,
        'conv_clamp':       cfg.conv_clamp,
        'mapping_layers':   G.mapping.num_layers,
        'use_noise':        cfg.use_noise,
        'num_params':       _num_params(G),
    }

def describe_discriminator(D):
    blocks = [getattr(D, f'b{r}') for r in D.block_resolutions]
    return {
        'img_resolution':   D.img_resolution,
        'c_dim':            D.c_dim,
        'channels':         {str(r): D.cfg.channels[r] for r in D.block_resolutions + [4]},
        'fp16_resolutions': [b.resolution for b in blocks if b.use_fp16],                # on CUDA only
        'conv_clamp':       D.cfg.conv_clamp,
        'mbstd_group_size': D.cfg.mbstd_group_size,
        'num_params':       _num_params(D),
    }

def describe(ck, path=None):
    """Checkpoint -> {path, format, networks, generator, discriminator, meta}; generator describes the
    network to sample from (G_ema, else G), None where the file has no generator."""
    nets = ck.networks()
    G = ck.generator
    return {
        'path':          str(path) if path is not None else ck.meta.get('source'),
        'format':        ck.meta.get('format'),
        'networks':      list(nets),
        'sampled_from':  'G_ema' if ck.G_ema is not None else ('G' if ck.G is not None else None),
        'generator':     describe_generator(G) if G is not None else None,
        'discriminator': describe_discriminator(ck.D) if ck.D is not None else None,
        'meta':          {k: v for k, v in ck.meta.items() if k not in ('format',)},
    }

#----------------------------------------------------------------------------
# Text form.

def _channels(table):
    return ' '.join(f'{r}:{c}' for r, c in table.items())

def _fp16(info):
    res = info['fp16_resolutions']
    return ', '.join(map(str, res)) + ' (float16 on CUDA, float32 on CPU)' if res else 'none (all float32)'

def _value(v, width=100):
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= width else text[: width - 3] + '...'

def format_summary(info):
    """describe()'s dict -> a few aligned lines of text."""
    rows = [('file', info['path']),
            ('format', f"{info['format']}: {FORMAT_NAMES.get(info['format'], '?')}"),
            ('networks', ', '.join(info['networks']) + (f" (sampling uses {info['sampled_from']})" if info['sampled_from'] else ''))]
    g = info['generator']
    if g is not None:
        rows += [
            ('resolution',     f"{g['img_resolution']}x{g['img_resolution']}, {g['img_channels']} channels"),
            ('z_dim, w_dim',   f"{g['z_dim']}, {g['w_dim']}"),
            ('c_dim',          f"{g['c_dim']}" + (' (unconditional)' if g['c_dim'] == 0 else ' (conditional: give a class)')),
            ('num_ws',         g['num_ws']),
            ('mapping layers', g['mapping_layers']),
            ('G channels',     _channels(g['channels'])),
            ('G fp16 blocks',  _fp16(g)),
            ('conv_clamp',     g['conv_clamp']),
            ('G parameters',   f"{g['num_params']:,}"),
        ]
    d = info['discriminator']
    if d is not None:
        rows += [
            ('D channels',     _channels(d['channels'])),
            ('D fp16 blocks',  _fp16(d)),
            ('D mbstd group',  d['mbstd_group_size']),
            ('D parameters',   f"{d['num_params']:,}"),
        ]
    for k, v in info['meta'].items():
        if isinstance(v, dict) and v:
            rows.append((k, ''))
            rows += [(f'  {kk}', _value(vv)) for kk, vv in v.items()]
        elif not (k == 'source' and info['path'] and os.path.abspath(info['path']) == v):
            rows.append((k, _value(v)))
    width = max(len(k) for k, _ in rows)
    return '\n'.join(f'{k + ":":<{width + 1}} {v}'.rstrip() for k, v in rows)

#----------------------------------------------------------------------------
# How big an export of one generator will be, before it is written (the explorer says it before a download).

def tensor_bytes(net):
    """Bytes of a network's parameters and buffers as float32, the way every export format stores them."""
    return sum(t.numel() * 4 for t in [*net.parameters(), *net.buffers()])

def export_size_estimate(G, fmt):
    """About how many bytes sg.export writes for the generator G alone (as G_ema) in format `fmt`: its
    tensors; an NVlabs .pkl adds the placeholder discriminator its loader needs (G and Gs are one object
    there), built on the meta device to be counted (no memory, no time)."""
    if fmt != 'nvlabs':
        return tensor_bytes(G)
    with torch.device('meta'):
        D = placeholder_discriminator(G.cfg)
    return tensor_bytes(G) + tensor_bytes(D)
