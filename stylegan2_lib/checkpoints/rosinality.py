"""rosinality stylegan2-pytorch checkpoints: train.py's dict {g, d, g_ema, g_optim, d_optim, args} and
the converted releases {g_ema, latent_avg}. Their modules compute the same maths as NVlabs's (their
README in shared/reference/rosi32 lists the facts), so the tensors map one to one onto our names:

    style.{i+1}            -> mapping.fc{i}          (EqualLinear, lr_mul 0.01, fused lrelu)
    input.input[0]         -> synthesis.b4.const
    conv1 / to_rgb1        -> synthesis.b4.conv1 / torgb
    convs.{2k}, convs.{2k+1}, to_rgbs.{k} -> synthesis.b{8*2^k}.conv0 / conv1 / torgb
    noises.noise_{i}[0, 0] -> noise_const of the i-th conv layer
    *.conv.weight[0]       -> weight ([1, out, in, k, k] -> [out, in, k, k]; the up-conv is not flipped
                              in either implementation)
    *.conv.modulation      -> affine;  *.noise.weight -> noise_strength;  *.activate.bias -> bias
"""

import math

import torch

from .. import ops
from ..discriminator import DiscriminatorConfig
from ..generator import Generator, GeneratorConfig
from .common import Checkpoint, build_network, plain
from .errors import CheckpointError
from .safe_pickle import NamespaceRecord

#----------------------------------------------------------------------------
# Their blur / upsample kernels must be the [1,3,3,1] filter we build (times their scale factor).

def _check_kernels(path, label, sd):
    base = ops.setup_filter([1, 3, 3, 1])
    for k, t in sd.items():
        if k.endswith('kernel'):
            if t.shape != base.shape or not any(torch.allclose(t.float(), base * s) for s in (1, 4)):
                raise CheckpointError(path, f'{label}: {k} is not the [1,3,3,1] blur kernel; other kernels are not supported')

def _count(sd, fmt):
    n = 0
    while fmt.format(n) in sd:
        n += 1
    return n

#----------------------------------------------------------------------------
# Generator.

def _layer(out, dst, sd, src, used, noise=None):
    out[f'{dst}.weight'] = sd[f'{src}.conv.weight'][0]
    out[f'{dst}.affine.weight'] = sd[f'{src}.conv.modulation.weight']
    out[f'{dst}.affine.bias'] = sd[f'{src}.conv.modulation.bias']
    used += [f'{src}.conv.weight', f'{src}.conv.modulation.weight', f'{src}.conv.modulation.bias']
    if noise is not None:
        out[f'{dst}.noise_strength'] = sd[f'{src}.noise.weight'].reshape([])
        out[f'{dst}.bias'] = sd[f'{src}.activate.bias']
        out[f'{dst}.noise_const'] = sd[noise][0, 0]
        used += [f'{src}.noise.weight', f'{src}.activate.bias', noise]
    else:  # ToRGB: bias [1, 3, 1, 1]
        out[f'{dst}.bias'] = sd[f'{src}.bias'].reshape(-1)
        used.append(f'{src}.bias')

def generator_state(path, label, sd):
    try:
        n_mlp = sum(1 for k in sd if k.startswith('style.') and k.endswith('.weight'))
        n_up = _count(sd, 'to_rgbs.{}.conv.weight')
        res = 4 * 2 ** n_up
        out, used = {}, []
        for i in range(n_mlp):
            out[f'mapping.fc{i}.weight'] = sd[f'style.{i + 1}.weight']
            out[f'mapping.fc{i}.bias'] = sd[f'style.{i + 1}.bias']
            used += [f'style.{i + 1}.weight', f'style.{i + 1}.bias']
        out['synthesis.b4.const'] = sd['input.input'][0]
        used.append('input.input')
        _layer(out, 'synthesis.b4.conv1', sd, 'conv1', used, noise='noises.noise_0')
        _layer(out, 'synthesis.b4.torgb', sd, 'to_rgb1', used)
        for k in range(n_up):
            r = 8 * 2 ** k
            _layer(out, f'synthesis.b{r}.conv0', sd, f'convs.{2 * k}', used, noise=f'noises.noise_{2 * k + 1}')
            _layer(out, f'synthesis.b{r}.conv1', sd, f'convs.{2 * k + 1}', used, noise=f'noises.noise_{2 * k + 2}')
            _layer(out, f'synthesis.b{r}.torgb', sd, f'to_rgbs.{k}', used)
    except KeyError as e:
        raise CheckpointError(path, f'{label}: rosinality generator without tensor {e.args[0]}') from None
    left = [k for k in sd if k not in used and not k.endswith('kernel')]
    if left:
        raise CheckpointError(path, f'{label}: unexpected tensor {left[0]} in a rosinality generator')
    _check_kernels(path, label, sd)
    return out, res, n_mlp

def generator_from_state(path, label, sd, w_avg=None):
    state, res, n_mlp = generator_state(path, label, sd)
    style_dim = int(state['mapping.fc0.weight'].shape[1])
    cfg = GeneratorConfig(
        z_dim           = style_dim,
        w_dim           = style_dim,
        img_resolution  = res,
        channels        = {r: int(state[f'synthesis.b{r}.conv1.weight'].shape[0]) for r in [2 ** i for i in range(2, int(math.log2(res)) + 1)]},
        mapping_layers  = n_mlp,
    )
    state['mapping.w_avg'] = torch.zeros([style_dim]) if w_avg is None else w_avg.reshape(-1).float()
    for r in cfg.block_resolutions:
        for name in ('', '.conv0', '.conv1'):
            if r == 4 and name == '.conv0':
                continue
            state[f'synthesis.b{r}{name}.resample_filter'] = ops.setup_filter([1, 3, 3, 1])
    return build_network(path, label, cfg, state)

#----------------------------------------------------------------------------
# Their train.py keeps no W average; estimate it the way their `mean_latent` does (mean of the
# mapping output over many z), with a fixed seed so loading is deterministic.

def estimate_w_avg(G: Generator, n=10000, seed=0):
    z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.mapping(z, None)[:, 0].mean(dim=0)

#----------------------------------------------------------------------------
# Discriminator: convs.0 = fromrgb, convs.{i} = ResBlock at resolution size / 2^(i-1), final_* = b4.

def discriminator_from_state(path, label, sd, img_resolution):
    try:
        out, used = {}, []

        def put(dst, src):
            out[dst] = sd[src]
            used.append(src)

        put(f'b{img_resolution}.fromrgb.weight', 'convs.0.0.weight')
        put(f'b{img_resolution}.fromrgb.bias', 'convs.0.1.bias')
        n_blocks = sum(1 for k in sd if k.startswith('convs.') and k.endswith('.conv1.0.weight'))
        for i in range(1, n_blocks + 1):
            r = img_resolution // 2 ** (i - 1)
            put(f'b{r}.conv0.weight', f'convs.{i}.conv1.0.weight')
            put(f'b{r}.conv0.bias', f'convs.{i}.conv1.1.bias')
            put(f'b{r}.conv1.weight', f'convs.{i}.conv2.1.weight')
            put(f'b{r}.conv1.bias', f'convs.{i}.conv2.2.bias')
            put(f'b{r}.skip.weight', f'convs.{i}.skip.1.weight')
        put('b4.conv.weight', 'final_conv.0.weight')
        put('b4.conv.bias', 'final_conv.1.bias')
        put('b4.fc.weight', 'final_linear.0.weight')
        put('b4.fc.bias', 'final_linear.0.bias')
        put('b4.out.weight', 'final_linear.1.weight')
        put('b4.out.bias', 'final_linear.1.bias')
    except KeyError as e:
        raise CheckpointError(path, f'{label}: rosinality discriminator without tensor {e.args[0]}') from None
    left = [k for k in sd if k not in used and not k.endswith('kernel')]
    if left:
        raise CheckpointError(path, f'{label}: unexpected tensor {left[0]} in a rosinality discriminator')
    if img_resolution // 2 ** n_blocks != 4:
        raise CheckpointError(path, f'{label}: {n_blocks} residual blocks do not fit a {img_resolution}x{img_resolution} generator')
    _check_kernels(path, label, sd)
    channels = {r: int(out[f'b{r}.conv0.weight'].shape[0]) for r in [img_resolution // 2 ** i for i in range(n_blocks)]}
    channels[4] = int(out['b4.conv.weight'].shape[0])
    cfg = DiscriminatorConfig(img_resolution=img_resolution, channels=channels, mbstd_group_size=4)
    filters = [f'b{img_resolution}.fromrgb', 'b4.conv']
    filters += [f'b{r}{layer}' for r in cfg.block_resolutions for layer in ('', '.conv0', '.conv1', '.skip')]
    for name in filters:
        out[f'{name}.resample_filter'] = ops.setup_filter([1, 3, 3, 1])
    return build_network(path, label, cfg, out)

#----------------------------------------------------------------------------

def looks_like_rosinality(data):
    return isinstance(data, dict) and isinstance(data.get('g_ema'), dict) and 'style.1.weight' in data['g_ema']

def from_rosinality(path, data):
    if not looks_like_rosinality(data):
        raise CheckpointError(path, 'a torch file, but not a rosinality stylegan2-pytorch checkpoint (no g_ema with style.* tensors)')
    latent_avg = data.get('latent_avg')
    ck = Checkpoint(meta={'format': 'rosinality'})
    ck.G_ema = generator_from_state(path, 'g_ema', data['g_ema'], latent_avg)
    if isinstance(data.get('g'), dict):
        ck.G = generator_from_state(path, 'g', data['g'], latent_avg)
    if isinstance(data.get('d'), dict):
        ck.D = discriminator_from_state(path, 'd', data['d'], ck.G_ema.img_resolution)
    if latent_avg is None:
        # No stored W average: estimate one (needed for truncation) and say so.
        for G in (ck.G_ema, ck.G):
            if G is not None:
                G.mapping.w_avg.copy_(estimate_w_avg(G))
        ck.meta['w_avg'] = 'estimated from 10000 samples (the file has no latent_avg)'
    args = data.get('args')
    if isinstance(args, (NamespaceRecord, dict)):
        ck.meta['args'] = plain(args)
    for k in ('ada_aug_p',):
        if k in data:
            ck.meta['augment_p'] = plain(data[k])
    return ck
