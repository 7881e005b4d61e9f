"""TensorFlow StyleGAN2 pickles: a tuple (G, D, Gs) of `dnnlib.tflib.network.Network` states (or one
network), converted with the rules of NVlabs stylegan2-ada-pytorch `legacy.py`:

- kwargs: TF `static_kwargs` names mapped to ours with legacy.py's defaults (fmap_base 16384 -> channel_base
  2 * fmap_base, mapping_lrmul 0.01 for G and 0.1 for D, D's mapping_layers 0, mbstd_group_size None
  (= whole batch) when absent); any other kwarg is an error.
- dense weights are transposed, conv weights go [kh, kw, in, out] -> [out, in, kh, kw], the up-conv
  (Conv0_up) kernels are also flipped in both spatial axes, `mod_bias` gets + 1 (TF adds the 1 at run
  time), const drops its batch axis, noise_i[0, 0] is the i-th layer's noise_const.
"""

import re

import numpy as np
import torch

from .. import ops
from ..discriminator import DiscriminatorConfig
from ..generator import GeneratorConfig
from .common import Checkpoint, build_network, plain
from .errors import CheckpointError
from .safe_pickle import TFNetworkRecord

#----------------------------------------------------------------------------
# Gather every variable of a network and its components as 'component/.../name' -> array.

def collect_params(net, prefix=''):
    params = {}
    for name, value in net.state.get('variables', []):
        params[prefix + name] = np.asarray(value)
    for name, comp in (net.state.get('components') or {}).items():
        params.update(collect_params(comp, prefix + name + '/'))
    return params

class _Kwargs:
    """legacy.py's kwarg(): read a TF static kwarg with a default, remembering which names were read."""
    def __init__(self, path, label, net):
        self.path, self.label = path, label
        self.values = plain(net.state.get('static_kwargs') or {})
        self.known = set()

    def __call__(self, name, default=None, none=None):
        self.known.add(name)
        val = self.values.get(name, default)
        return val if val is not None else none

    def check(self, *ignored):
        self.known.update(ignored)
        unknown = sorted(set(self.values) - self.known)
        if unknown:
            raise CheckpointError(self.path, f'{self.label}: unknown TensorFlow kwarg {unknown[0]!r}')

def _check_version(path, label, net):
    version = net.state.get('version', 0)
    if not isinstance(version, int) or version < 4:
        raise CheckpointError(path, f'{label}: TensorFlow network state version {version!r} is too old (4 or newer needed)')

#----------------------------------------------------------------------------
# Conversion helpers.

def _conv(w):                   # [kh, kw, in, out] -> [out, in, kh, kw]
    return w.transpose(3, 2, 0, 1)

def _conv_up(w):                # TF's transposed conv kernel is flipped relative to ours
    return w[::-1, ::-1].transpose(3, 2, 0, 1)

def _fill(path, label, params, rules):
    out = {}
    for dst, (src, fn) in rules.items():
        if src not in params:
            raise CheckpointError(path, f'{label}: TensorFlow variable {src!r} (for {dst}) is missing')
        # np.array, not np.ascontiguousarray, which turns 0-d arrays (TF's noise_strength) into shape [1].
        out[dst] = torch.from_numpy(np.array(fn(params[src]), order='C')).float()
    return out

#----------------------------------------------------------------------------

def convert_generator(path, label, net):
    _check_version(path, label, net)
    kwarg = _Kwargs(path, label, net)
    res = int(kwarg('resolution', 1024))
    cfg_kwargs = dict(
        z_dim                  = kwarg('latent_size', 512),
        c_dim                  = kwarg('label_size', 0),
        w_dim                  = kwarg('dlatent_size', 512),
        img_resolution         = res,
        img_channels           = kwarg('num_channels', 3),
        mapping_layers         = kwarg('mapping_layers', 8),
        mapping_embed_features = kwarg('label_fmaps', None),
        mapping_layer_features = kwarg('mapping_fmaps', None),
        mapping_activation     = kwarg('mapping_nonlinearity', 'lrelu'),
        mapping_lr_multiplier  = kwarg('mapping_lrmul', 0.01),
        w_avg_beta             = kwarg('w_avg_beta', 0.995, none=1),
        channel_base           = kwarg('fmap_base', 16384) * 2,
        channel_max            = kwarg('fmap_max', 512),
        num_fp16_res           = kwarg('num_fp16_res', 0),
        conv_clamp             = kwarg('conv_clamp', None),
        architecture           = kwarg('architecture', 'skip'),
        resample_filter        = tuple(kwarg('resample_kernel', [1, 3, 3, 1])),
        use_noise              = kwarg('use_noise', True),
        activation             = kwarg('nonlinearity', 'lrelu'),
    )
    kwarg.check('truncation_psi', 'truncation_cutoff', 'style_mixing_prob', 'structure', 'conditioning', 'fused_modconv')
    params = collect_params(net)
    if any(re.fullmatch(r'(synthesis/)?ToRGB_lod\d+/.*', k) for k in params):
        raise CheckpointError(path, f"{label}: progressive-growing ('orig') TensorFlow generators are not supported")
    try:
        cfg = GeneratorConfig(**cfg_kwargs)
    except ValueError as e:
        raise CheckpointError(path, f'{label}: {e}') from None

    rules = {'mapping.w_avg': ('dlatent_avg', lambda v: v)}
    if cfg.c_dim > 0:
        rules['mapping.embed.weight'] = ('mapping/LabelEmbed/weight', np.transpose)
        rules['mapping.embed.bias'] = ('mapping/LabelEmbed/bias', lambda v: v)
    for i in range(cfg.mapping_layers):
        rules[f'mapping.fc{i}.weight'] = (f'mapping/Dense{i}/weight', np.transpose)
        rules[f'mapping.fc{i}.bias'] = (f'mapping/Dense{i}/bias', lambda v: v)
    rules['synthesis.b4.const'] = ('synthesis/4x4/Const/const', lambda v: v[0])
    noise_idx = 0
    for r in cfg.block_resolutions:
        layers = [('conv1', 'Conv', _conv)] if r == 4 else [('conv0', 'Conv0_up', _conv_up), ('conv1', 'Conv1', _conv)]
        for ours, theirs, conv_fn in layers:
            src = f'synthesis/{r}x{r}/{theirs}'
            dst = f'synthesis.b{r}.{ours}'
            rules[f'{dst}.weight'] = (f'{src}/weight', conv_fn)
            rules[f'{dst}.bias'] = (f'{src}/bias', lambda v: v)
            rules[f'{dst}.affine.weight'] = (f'{src}/mod_weight', np.transpose)
            rules[f'{dst}.affine.bias'] = (f'{src}/mod_bias', lambda v: v + 1)
            if cfg.use_noise:
                rules[f'{dst}.noise_const'] = (f'synthesis/noise{noise_idx}', lambda v: v[0, 0])
                rules[f'{dst}.noise_strength'] = (f'{src}/noise_strength', lambda v: v)
            noise_idx += 1
        src = f'synthesis/{r}x{r}/ToRGB'
        rules[f'synthesis.b{r}.torgb.weight'] = (f'{src}/weight', _conv)
        rules[f'synthesis.b{r}.torgb.bias'] = (f'{src}/bias', lambda v: v)
        rules[f'synthesis.b{r}.torgb.affine.weight'] = (f'{src}/mod_weight', np.transpose)
        rules[f'synthesis.b{r}.torgb.affine.bias'] = (f'{src}/mod_bias', lambda v: v + 1)
    state = _fill(path, label, params, rules)
    _add_filters(state, cfg.resample_filter,
                 [f'synthesis.b{r}{layer}' for r in cfg.block_resolutions for layer in ('', '.conv0', '.conv1') if not (r == 4 and layer == '.conv0')])
    return build_network(path, label, cfg, state)

def _add_filters(state, taps, names):
    # legacy.py leaves resample_filter buffers at their constructor value.
    for name in names:
        state[f'{name}.resample_filter'] = ops.setup_filter(list(taps))

#----------------------------------------------------------------------------

def convert_discriminator(path, label, net):
    _check_version(path, label, net)
    kwarg = _Kwargs(path, label, net)
    mapping_fmaps = kwarg('mapping_fmaps', None)
    cfg_kwargs = dict(
        c_dim                  = kwarg('label_size', 0),
        img_resolution         = int(kwarg('resolution', 1024)),
        img_channels           = kwarg('num_channels', 3),
        architecture           = kwarg('architecture', 'resnet'),
        channel_base           = kwarg('fmap_base', 16384) * 2,
        channel_max            = kwarg('fmap_max', 512),
        num_fp16_res           = kwarg('num_fp16_res', 0),
        conv_clamp             = kwarg('conv_clamp', None),
        cmap_dim               = mapping_fmaps,
        activation             = kwarg('nonlinearity', 'lrelu'),
        resample_filter        = tuple(kwarg('resample_kernel', [1, 3, 3, 1])),
        mapping_layers         = kwarg('mapping_layers', 0),
        mapping_embed_features = mapping_fmaps,
        mapping_layer_features = mapping_fmaps,
        mapping_activation     = kwarg('nonlinearity', 'lrelu'),
        mapping_lr_multiplier  = kwarg('mapping_lrmul', 0.1),
        mbstd_group_size       = kwarg('mbstd_group_size', None),
        mbstd_num_channels     = kwarg('mbstd_num_features', 1),
    )
    kwarg.check('structure', 'conditioning', 'freeze_layers')  # freeze_layers: training-only, same network
    params = collect_params(net)
    if any(re.fullmatch(r'FromRGB_lod\d+/.*', k) for k in params):
        raise CheckpointError(path, f"{label}: progressive-growing ('orig') TensorFlow discriminators are not supported")
    try:
        cfg = DiscriminatorConfig(**cfg_kwargs)
    except ValueError as e:
        raise CheckpointError(path, f'{label}: {e}') from None

    top = cfg.img_resolution
    rules = {
        f'b{top}.fromrgb.weight': (f'{top}x{top}/FromRGB/weight', _conv),
        f'b{top}.fromrgb.bias': (f'{top}x{top}/FromRGB/bias', lambda v: v),
    }
    for r in cfg.block_resolutions:
        rules[f'b{r}.conv0.weight'] = (f'{r}x{r}/Conv0/weight', _conv)
        rules[f'b{r}.conv0.bias'] = (f'{r}x{r}/Conv0/bias', lambda v: v)
        rules[f'b{r}.conv1.weight'] = (f'{r}x{r}/Conv1_down/weight', _conv)
        rules[f'b{r}.conv1.bias'] = (f'{r}x{r}/Conv1_down/bias', lambda v: v)
        rules[f'b{r}.skip.weight'] = (f'{r}x{r}/Skip/weight', _conv)
    if cfg.c_dim > 0:
        rules['mapping.embed.weight'] = ('LabelEmbed/weight', np.transpose)
        rules['mapping.embed.bias'] = ('LabelEmbed/bias', lambda v: v)
        for i in range(cfg.mapping_layers):
            rules[f'mapping.fc{i}.weight'] = (f'Mapping{i}/weight', np.transpose)
            rules[f'mapping.fc{i}.bias'] = (f'Mapping{i}/bias', lambda v: v)
    rules['b4.conv.weight'] = ('4x4/Conv/weight', _conv)
    rules['b4.conv.bias'] = ('4x4/Conv/bias', lambda v: v)
    rules['b4.fc.weight'] = ('4x4/Dense0/weight', np.transpose)
    rules['b4.fc.bias'] = ('4x4/Dense0/bias', lambda v: v)
    rules['b4.out.weight'] = ('Output/weight', np.transpose)
    rules['b4.out.bias'] = ('Output/bias', lambda v: v)
    state = _fill(path, label, params, rules)
    _add_filters(state, cfg.resample_filter,
                 [f'b{top}.fromrgb', 'b4.conv'] + [f'b{r}{layer}' for r in cfg.block_resolutions for layer in ('', '.conv0', '.conv1', '.skip')])
    return build_network(path, label, cfg, state)

#----------------------------------------------------------------------------

def looks_like_tensorflow(data):
    if isinstance(data, TFNetworkRecord):
        return True
    return isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetworkRecord) for n in data)

def from_tensorflow(path, data):
    ck = Checkpoint(meta={'format': 'tensorflow'})
    if isinstance(data, TFNetworkRecord):
        ck.G_ema = convert_generator(path, 'Gs', data)
        return ck
    tf_G, tf_D, tf_Gs = data
    ck.G = convert_generator(path, 'G', tf_G)
    ck.D = convert_discriminator(path, 'D', tf_D)
    ck.G_ema = convert_generator(path, 'Gs', tf_Gs)
    return ck
