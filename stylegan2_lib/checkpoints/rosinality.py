"""rosinality stylegan2-pytorch checkpoints, read and written: train.py's dict {g, d, g_ema, g_optim, d_optim,
args, ada_aug_p} and the converted releases {g_ema, latent_avg}.

Their modules compute the same maths as NVlabs's (README of the rosi32 reference case), so every tensor
maps one to one onto ours; one rule table (our name, their name, kind) serves both directions:

    style.{i+1}            <-> mapping.fc{i}          (EqualLinear, lr_mul 0.01, fused lrelu)
    input.input            <-> synthesis.b4.const     (their batch axis of 1)
    conv1 / to_rgb1        <-> synthesis.b4.conv1 / torgb
    convs.{2k}, convs.{2k+1}, to_rgbs.{k} <-> synthesis.b{8*2^k}.conv0 / conv1 / torgb
    noises.noise_{i}       <-> noise_const of the i-th conv layer ([1, 1, r, r] <-> [r, r])
    *.conv.weight          <-> weight ([1, out, in, k, k] <-> [out, in, k, k]; the up-conv is not flipped
                               in either implementation)
    *.conv.modulation      <-> affine;  *.noise.weight <-> noise_strength;  *.activate.bias <-> bias
    D: convs.0 <-> b{size}.fromrgb, convs.{i} (ResBlock) <-> b{size/2^(i-1)}, final_conv/final_linear <-> b4

Their FIR kernels are buffers: the [1,3,3,1] filter times 4 where it upsamples (Upsample, the Blur of
an up-conv), times 1 in the discriminator's Blur. The reader checks them; the writer produces them.
"""

import io
import math
import warnings
from collections import OrderedDict

import torch

from .. import ops
from ..discriminator import DiscriminatorConfig
from ..generator import Generator, GeneratorConfig
from .common import Checkpoint, build_network, check_limits, plain
from .errors import CheckpointError, ExportError
from .safe_pickle import NamespaceRecord

KINDS = {
    'copy':   (lambda v: v,                 lambda t: t),
    'batch':  (lambda v: v[0],              lambda t: t.unsqueeze(0)),           # their leading axis of 1
    'scalar': (lambda v: v.reshape([]),     lambda t: t.reshape([1])),           # NoiseInjection weight [1]
    'rgb':    (lambda v: v.reshape(-1),     lambda t: t.reshape(1, -1, 1, 1)),   # ToRGB bias [1, 3, 1, 1]
    'noise':  (lambda v: v[0, 0],           lambda t: t[None, None]),            # noises.noise_i [1, 1, r, r]
}

#----------------------------------------------------------------------------
# Rule tables and kernels, from a config.

def _modulated(rules, ours, theirs, noise=None):
    rules += [(f'{ours}.weight', f'{theirs}.conv.weight', 'batch'),
              (f'{ours}.affine.weight', f'{theirs}.conv.modulation.weight', 'copy'),
              (f'{ours}.affine.bias', f'{theirs}.conv.modulation.bias', 'copy')]
    if noise is None:
        rules.append((f'{ours}.bias', f'{theirs}.bias', 'rgb'))
    else:
        rules += [(f'{ours}.noise_strength', f'{theirs}.noise.weight', 'scalar'),
                  (f'{ours}.bias', f'{theirs}.activate.bias', 'copy'),
                  (f'{ours}.noise_const', noise, 'noise')]

def generator_rules(cfg):
    rules = []
    for i in range(cfg.mapping_layers):
        rules += [(f'mapping.fc{i}.weight', f'style.{i + 1}.weight', 'copy'), (f'mapping.fc{i}.bias', f'style.{i + 1}.bias', 'copy')]
    rules.append(('synthesis.b4.const', 'input.input', 'batch'))
    _modulated(rules, 'synthesis.b4.conv1', 'conv1', noise='noises.noise_0')
    _modulated(rules, 'synthesis.b4.torgb', 'to_rgb1')
    for k, r in enumerate(cfg.block_resolutions[1:]):
        _modulated(rules, f'synthesis.b{r}.conv0', f'convs.{2 * k}', noise=f'noises.noise_{2 * k + 1}')
        _modulated(rules, f'synthesis.b{r}.conv1', f'convs.{2 * k + 1}', noise=f'noises.noise_{2 * k + 2}')
        _modulated(rules, f'synthesis.b{r}.torgb', f'to_rgbs.{k}')
    return rules

def discriminator_rules(cfg):
    top = cfg.img_resolution
    rules = [(f'b{top}.fromrgb.weight', 'convs.0.0.weight', 'copy'), (f'b{top}.fromrgb.bias', 'convs.0.1.bias', 'copy')]
    for i, r in enumerate(cfg.block_resolutions, start=1):
        rules += [(f'b{r}.conv0.weight', f'convs.{i}.conv1.0.weight', 'copy'), (f'b{r}.conv0.bias', f'convs.{i}.conv1.1.bias', 'copy'),
                  (f'b{r}.conv1.weight', f'convs.{i}.conv2.1.weight', 'copy'), (f'b{r}.conv1.bias', f'convs.{i}.conv2.2.bias', 'copy'),
                  (f'b{r}.skip.weight', f'convs.{i}.skip.1.weight', 'copy')]
    rules += [('b4.conv.weight', 'final_conv.0.weight', 'copy'), ('b4.conv.bias', 'final_conv.1.bias', 'copy'),
              ('b4.fc.weight', 'final_linear.0.weight', 'copy'), ('b4.fc.bias', 'final_linear.0.bias', 'copy'),
              ('b4.out.weight', 'final_linear.1.weight', 'copy'), ('b4.out.bias', 'final_linear.1.bias', 'copy')]
    return rules

def generator_kernels(cfg):
    up = ops.setup_filter([1, 3, 3, 1]) * 4        # make_kernel([1,3,3,1]) * upsample_factor ** 2
    n_up = len(cfg.block_resolutions) - 1
    return {**{f'convs.{2 * k}.conv.blur.kernel': up for k in range(n_up)},
            **{f'to_rgbs.{k}.upsample.kernel': up for k in range(n_up)}}

def discriminator_kernels(cfg):
    blur = ops.setup_filter([1, 3, 3, 1])
    n = len(cfg.block_resolutions)
    return {**{f'convs.{i}.conv2.0.kernel': blur for i in range(1, n + 1)},
            **{f'convs.{i}.skip.0.kernel': blur for i in range(1, n + 1)}}

#----------------------------------------------------------------------------
# Reading.

def _count(sd, fmt):
    n = 0
    while fmt.format(n) in sd:
        n += 1
    return n

# The leading axes a kind drops must be there, of size 1 (else v[0] would silently take one slice of many).
LEADING = {'batch': (1,), 'noise': (1, 1)}

def _apply(path, label, sd, rules, kernels):
    missing = [theirs for _, theirs, _ in rules if theirs not in sd] + [k for k in kernels if k not in sd]
    if missing:
        raise CheckpointError(path, f'{label}: rosinality checkpoint without tensor {missing[0]}')
    known = {theirs for _, theirs, _ in rules} | set(kernels)
    left = [k for k in sd if k not in known]
    if left:
        raise CheckpointError(path, f'{label}: unexpected tensor {str(left[0])[:80]} in a rosinality checkpoint')
    not_tensors = [k for k in known if not isinstance(sd[k], torch.Tensor)]
    if not_tensors:
        raise CheckpointError(path, f'{label}: {not_tensors[0]} is a {type(sd[not_tensors[0]]).__name__}, not a tensor')
    for name, expected in kernels.items():
        if sd[name].shape != expected.shape or not torch.allclose(sd[name].float(), expected):
            raise CheckpointError(path, f'{label}: {name} is not the [1,3,3,1] blur kernel; other kernels are not supported')
    for _, theirs, kind in rules:
        lead = LEADING.get(kind, ())
        if tuple(sd[theirs].shape[:len(lead)]) != lead or sd[theirs].ndim <= len(lead):
            raise CheckpointError(path, f'{label}: {theirs} has shape {list(sd[theirs].shape)}; its leading axes must be {list(lead)}')
    return {ours: KINDS[kind][0](sd[theirs]) for ours, theirs, kind in rules}

def generator_from_state(path, label, sd, w_avg=None):
    if 'style.1.weight' not in sd or 'input.input' not in sd or 'conv1.conv.weight' not in sd:
        raise CheckpointError(path, f'{label}: not a rosinality generator state (style.1.weight, input.input, conv1)')
    style_dim = int(sd['style.1.weight'].shape[1])
    res = 4 * 2 ** _count(sd, 'to_rgbs.{}.conv.weight')
    channels = {4: int(sd['conv1.conv.weight'].shape[1])}
    channels.update({4 * 2 ** (k + 1): int(sd[f'convs.{2 * k + 1}.conv.weight'].shape[1]) for k in range(int(math.log2(res)) - 2)
                     if f'convs.{2 * k + 1}.conv.weight' in sd})
    try:
        cfg = GeneratorConfig(z_dim=style_dim, w_dim=style_dim, img_resolution=res, channels=channels,
                              mapping_layers=sum(1 for k in sd if k.startswith('style.') and k.endswith('.weight')))
    except ValueError as e:
        raise CheckpointError(path, f'{label}: {e}') from None
    state = _apply(path, label, sd, generator_rules(check_limits(path, label, cfg)), generator_kernels(cfg))
    state['mapping.w_avg'] = torch.zeros([style_dim]) if w_avg is None else w_avg.reshape(-1).float()
    return build_network(path, label, cfg, state, keep_constructed=('resample_filter',))

def discriminator_from_state(path, label, sd, img_resolution):
    n_blocks = sum(1 for k in sd if k.startswith('convs.') and k.endswith('.conv1.0.weight'))
    if img_resolution // 2 ** n_blocks != 4:
        raise CheckpointError(path, f'{label}: {n_blocks} residual blocks do not fit a {img_resolution}x{img_resolution} generator')
    try:
        channels = {img_resolution // 2 ** (i - 1): int(sd[f'convs.{i}.conv1.0.weight'].shape[0]) for i in range(1, n_blocks + 1)}
        channels[4] = int(sd['final_conv.0.weight'].shape[0])
    except KeyError as e:
        raise CheckpointError(path, f'{label}: rosinality checkpoint without tensor {e.args[0]}') from None
    cfg = DiscriminatorConfig(img_resolution=img_resolution, channels=channels, mbstd_group_size=4)   # their stddev_group
    check_limits(path, label, cfg)
    state = _apply(path, label, sd, discriminator_rules(cfg), discriminator_kernels(cfg))
    return build_network(path, label, cfg, state, keep_constructed=('resample_filter',))

#----------------------------------------------------------------------------
# Their train.py keeps no W average; estimate it the way their `mean_latent` does (mean of the
# mapping output over many z), with a fixed seed so loading is deterministic.

# Cost bound: 10000 samples for mappings up to the standard 8 x 512 x 512; a larger mapping gets proportionally
# fewer (at least 1000), so a file cannot make the estimate run for minutes.
STANDARD_MAPPING_WEIGHTS = 8 * 512 * 512

def estimate_w_avg(G: Generator, n=10000, seed=0):
    weights = sum(p.numel() for p in G.mapping.parameters())
    n = max(1000, min(n, n * STANDARD_MAPPING_WEIGHTS // max(weights, 1)))
    z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.mapping(z, None)[:, 0].mean(dim=0)

def looks_like_rosinality(data):
    return isinstance(data, dict) and isinstance(data.get('g_ema'), dict) and 'style.1.weight' in data['g_ema']

def from_rosinality(path, data):
    if not looks_like_rosinality(data):
        raise CheckpointError(path, 'a torch file, but not a rosinality stylegan2-pytorch checkpoint (no g_ema with style.* tensors)')
    latent_avg = data.get('latent_avg')
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(path, f'latent_avg is a {type(latent_avg).__name__}, not a tensor')
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
        ck.meta['w_avg'] = 'estimated from the mapping of random latents (the file has no latent_avg)'
    args = data.get('args')
    if isinstance(args, (NamespaceRecord, dict)):
        ck.meta['args'] = plain(args)
    if 'ada_aug_p' in data:
        ck.meta['augment_p'] = plain(data['ada_aug_p'])
    return ck

#----------------------------------------------------------------------------
# Writing.

def channel_multiplier(channels, img_resolution):
    """Their Generator's table is {4..32: 512, 64: 256 cm, 128: 128 cm, ..., 1024: 16 cm}; the cm that gives
    `channels`, or None. At 32x32 and below every cm gives the same table: their default 2 is used."""
    for cm in ([2] if img_resolution <= 32 else range(1, 9)):
        table = {r: 512 if r <= 32 else 256 * cm * 64 // r for r in channels}
        if table == channels:
            return cm
    return None

def _check_generator(label, cfg):
    problems = [(cfg.c_dim != 0, 'it is conditional'), (cfg.z_dim != cfg.w_dim, 'z_dim differs from w_dim'),
                (cfg.img_channels != 3, 'it does not make RGB images'), (cfg.mapping_lr_multiplier != 0.01, 'its mapping lr multiplier is not 0.01'),
                (cfg.resample_filter != (1, 3, 3, 1), 'its FIR filter is not [1,3,3,1]'), (not cfg.use_noise, 'it has no noise inputs'),
                (cfg.activation != 'lrelu' or cfg.mapping_activation != 'lrelu', 'it does not use leaky ReLU'),
                (cfg.mapping_layer_features not in (None, cfg.w_dim), 'its mapping layers are not w_dim wide')]
    for bad, why in problems:
        if bad:
            raise ExportError(f"{label}: rosinality's Generator cannot hold this network: {why}")
    cm = channel_multiplier(cfg.channels, cfg.img_resolution)
    if cm is None:
        # The file format does not fix the table (forks of their code use others, and this library reads any):
        # write it, and say that their own model.py cannot build it.
        warnings.warn(f'{label}: channel table {dict(sorted(cfg.channels.items()))} is not rosinality\'s (4..32: 512, '
                      '64: 256*cm, 128: 128*cm, ...) for any channel_multiplier: the .pt is written (args["channels"] '
                      'holds the table, which stylegan2_lib reads back), but their model.py builds its own table and '
                      'will not load it; a fork built with this table will')
    if cfg.conv_clamp is not None:
        warnings.warn(f'{label}: rosinality networks have no conv_clamp; the exported network runs without the clamp at {cfg.conv_clamp}')
    return cm

def _check_discriminator(label, cfg, cm):
    if cfg.c_dim != 0 or cfg.mbstd_group_size != 4 or cfg.mbstd_num_channels != 1 or cfg.resample_filter != (1, 3, 3, 1):
        raise ExportError(f"{label}: rosinality's Discriminator cannot hold this network (it must be unconditional, "
                          'minibatch-stddev group 4 with 1 channel, [1,3,3,1] filter)')
    if cm is not None and channel_multiplier(cfg.channels, cfg.img_resolution) != cm:
        raise ExportError(f'{label}: channel table {dict(sorted(cfg.channels.items()))} does not match the generator\'s '
                          f'rosinality channel_multiplier {cm}')

def rosinality_state(net):
    """Their state_dict of a Generator or Discriminator (no validation: rosinality_bytes checks first)."""
    is_g = isinstance(net, Generator)
    rules = generator_rules(net.cfg) if is_g else discriminator_rules(net.cfg)
    kernels = generator_kernels(net.cfg) if is_g else discriminator_kernels(net.cfg)
    sd = net.state_dict()
    out = OrderedDict((theirs, KINDS[kind][1](sd[ours]).detach().cpu().clone()) for ours, theirs, kind in rules)
    out.update((k, v.clone()) for k, v in kernels.items())
    return out

def rosinality_bytes(G=None, D=None, G_ema=None, meta=None):
    """torch.save bytes of {g_ema, latent_avg[, g][, d], args}: what their Generator(size, style_dim, n_mlp,
    channel_multiplier).load_state_dict(strict=True) takes; loads with torch.load(weights_only=True)."""
    if G_ema is None:
        raise ExportError('the rosinality layout needs G_ema')
    cm = _check_generator('G_ema', G_ema.cfg)
    data = {'g_ema': rosinality_state(G_ema), 'latent_avg': G_ema.mapping.w_avg.detach().cpu().clone()}
    if G is not None:
        _check_generator('G', G.cfg)
        data['g'] = rosinality_state(G)
    if D is not None:
        _check_discriminator('D', D.cfg, cm)
        data['d'] = rosinality_state(D)
    cfg = G_ema.cfg
    # train.py's argparse fields that describe the networks, as a plain dict (an argparse.Namespace would
    # not load with torch.load(weights_only=True)).
    data['args'] = {'size': cfg.img_resolution, 'latent': cfg.w_dim, 'n_mlp': cfg.mapping_layers,
                    'channel_multiplier': cm, 'arch': 'stylegan2'}
    if cm is None:
        data['args']['channels'] = dict(sorted(cfg.channels.items()))
    if meta and meta.get('augment_p') is not None:
        data['ada_aug_p'] = float(meta['augment_p'])
    buf = io.BytesIO()
    torch.save(data, buf)
    return buf.getvalue()
