"""The networks of a run: built from a file (transfer learning; the architecture is the file's) or from
scratch, frozen in parts (FreezeD / FreezeG), their Adam optimisers with the lazy-regularisation correction,
and G_ema."""

import copy
import warnings

import torch

from ..checkpoints import load
from ..discriminator import Discriminator, DiscriminatorConfig
from ..generator import Generator, GeneratorConfig
from .options import ARCHITECTURE_OPTIONS, TrainingError

#----------------------------------------------------------------------------
# Networks: from a file (transfer learning) or from scratch; the architecture is the file's.

def _from_scratch(opts):
    if opts.resolution is None:
        raise TrainingError('training from scratch needs --resolution (or give --resume FILE)')
    arch = {k: getattr(opts, k) for k in ARCHITECTURE_OPTIONS if getattr(opts, k) is not None and k != 'resolution'}
    g_cfg = GeneratorConfig(img_resolution=opts.resolution, **arch)
    d_cfg = DiscriminatorConfig(img_resolution=opts.resolution, channel_base=g_cfg.channel_base, channel_max=g_cfg.channel_max)
    G = Generator(g_cfg)
    return G, Discriminator(d_cfg), copy.deepcopy(G), {}

def _check_requested_architecture(opts, cfg, path):
    given = {'resolution': cfg.img_resolution, 'z_dim': cfg.z_dim, 'w_dim': cfg.w_dim, 'mapping_layers': cfg.mapping_layers}
    for key, value in given.items():
        asked = getattr(opts, key)
        if asked is not None and asked != value:
            raise TrainingError(f'{path}: --{key.replace("_", "-")} {asked} disagrees with the network in the file ({value}); '
                                'the architecture comes from the file')
    if opts.channel_base is not None or opts.channel_max is not None:
        raise TrainingError(f'{path}: --channel-base/--channel-max cannot change a loaded network (its channels: {cfg.channels})')

def build_networks(opts):
    """(G, D, G_ema, source meta) for a new run."""
    if opts.resume is None:
        return _from_scratch(opts)
    ck = load(opts.resume)
    G0 = ck.G if ck.G is not None else ck.G_ema
    if G0 is None:
        raise TrainingError(f'{opts.resume}: the file holds no generator')
    _check_requested_architecture(opts, G0.cfg, opts.resume)
    if G0.c_dim > 0:
        raise TrainingError(f'{opts.resume}: conditional networks (c_dim {G0.c_dim}) cannot be fine-tuned on an unlabelled image folder')
    D = ck.D
    if D is None:
        warnings.warn(f'{opts.resume} has no discriminator: training starts from a freshly initialised one')
        D = Discriminator(DiscriminatorConfig.matching(G0.cfg))
    G_ema = ck.G_ema if ck.G_ema is not None else G0
    return copy.deepcopy(G0), copy.deepcopy(D), copy.deepcopy(G_ema), ck.meta

#----------------------------------------------------------------------------
# Freezing (FreezeD: Mo et al. 2020; FreezeG: the synthesis blocks that carry the source's structure).

def freeze(G, D, opts):
    for res in D.block_resolutions[: opts.freezed]:
        getattr(D, f'b{res}').requires_grad_(False)
    if opts.freeze_g:
        for block in G.synthesis.blocks():
            if block.resolution <= opts.freeze_g:
                block.requires_grad_(False)
    if opts.freeze_mapping:
        G.mapping.requires_grad_(False)

def make_optimizer(net, opts, reg_interval):
    ratio = reg_interval / (reg_interval + 1)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        return None
    # One fused kernel for every parameter (CPU and CUDA) instead of a Python loop of ~10 ops per tensor.
    kind = {'fused': True} if params[0].device.type in ('cpu', 'cuda') else {'foreach': True}
    return torch.optim.Adam(params, lr=opts.lr * ratio, betas=tuple(b ** ratio for b in opts.betas), eps=1e-8, **kind)

#----------------------------------------------------------------------------
# G_ema: exponential moving average with a half-life of ema_kimg (ramped up: at most ema_rampup of the
# images seen so far), beta = 0.5 ** (batch / half-life in images), as NVlabs.

@torch.no_grad()
def update_ema(G_ema, G, nimg, batch, opts):
    ema_nimg = (opts.ema_kimg if opts.ema_kimg is not None else batch * 10 / 32) * 1000
    if opts.ema_rampup is not None:
        ema_nimg = min(ema_nimg, nimg * opts.ema_rampup)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    params, params_ema = [p.detach() for p in G.parameters()], list(G_ema.parameters())
    torch._foreach_copy_(params_ema, torch._foreach_lerp(params, params_ema, beta))   # p_ema = p.lerp(p_ema, beta)
    buffers = [(b_ema, b) for b_ema, b in zip(G_ema.buffers(), G.buffers()) if b_ema is not b]
    if buffers:
        torch._foreach_copy_([b for b, _ in buffers], [b for _, b in buffers])
