"""TensorFlow StyleGAN2 pickles, read and written with the rules of NVlabs stylegan2-ada-pytorch `legacy.py`.

A TF pickle is a tuple (G, D, Gs) of `dnnlib.tflib.network.Network` states (or one network): dicts with
`version` (4+), `static_kwargs`, `components` (sub-networks) and `variables` ((name, array) pairs).

- kwargs: TF `static_kwargs` names map to ours with legacy.py's defaults (fmap_base 16384 -> channel_base
  2 * fmap_base, mapping_lrmul 0.01 for G and 0.1 for D, D's mapping_layers 0, mbstd_group_size None (= whole
  batch) when absent); any other kwarg is an error.
- tensors (one rule table, used in both directions): dense weights are transposed, conv weights go
  [kh, kw, in, out] <-> [out, in, kh, kw], the up-conv (Conv0_up) kernels are also flipped in both spatial
  axes (TF's transposed convolution), `mod_bias` is stored minus 1 (TF adds the 1 at run time), const has a
  batch axis, and noise_i [1, 1, r, r] is the i-th conv layer's noise_const.

Writing this layout is how we give NVlabs tools (their legacy.load_network_pkl, and so generate.py,
projector.py and the notebooks built on them) a file they read unmodified and that holds no code.
"""

import copyreg
import io
import pickle
import re
import warnings

import numpy as np
import torch

from ..discriminator import Discriminator, DiscriminatorConfig
from ..generator import GeneratorConfig
from .common import Checkpoint, build_network, check_limits, plain
from .errors import CheckpointError, ExportError
from .safe_pickle import TFNetworkRecord, as_array, numpy_reconstruct

#----------------------------------------------------------------------------
# Tensor rules: (our name, TF variable, kind); each kind converts TF -> ours and back.

KINDS = {
    'copy':     (lambda v: v,                                  lambda t: t),
    'dense':    (lambda v: v.T,                                lambda t: t.T),
    'conv':     (lambda v: v.transpose(3, 2, 0, 1),            lambda t: t.transpose(2, 3, 1, 0)),
    'conv_up':  (lambda v: v[::-1, ::-1].transpose(3, 2, 0, 1), lambda t: t.transpose(2, 3, 1, 0)[::-1, ::-1]),
    'mod_bias': (lambda v: v + 1,                              lambda t: t - 1),
    'const':    (lambda v: v[0],                               lambda t: t[np.newaxis]),
    'noise':    (lambda v: v[0, 0],                            lambda t: t[np.newaxis, np.newaxis]),
}

# What a kind's reading needs: leading axes of size 1 that it drops, and the number of axes.
SHAPES = {'dense': ((), 2), 'conv': ((), 4), 'conv_up': ((), 4), 'const': ((1,), 4), 'noise': ((1, 1), 4)}

def _modulated(rules, ours, theirs, conv_kind, noise=None):
    rules += [(f'{ours}.weight', f'{theirs}/weight', conv_kind), (f'{ours}.bias', f'{theirs}/bias', 'copy'),
              (f'{ours}.affine.weight', f'{theirs}/mod_weight', 'dense'),
              (f'{ours}.affine.bias', f'{theirs}/mod_bias', 'mod_bias')]
    if noise is not None:
        rules += [(f'{ours}.noise_const', noise, 'noise'), (f'{ours}.noise_strength', f'{theirs}/noise_strength', 'copy')]

def generator_rules(cfg):
    rules = [('mapping.w_avg', 'dlatent_avg', 'copy')]
    if cfg.c_dim > 0:
        rules += [('mapping.embed.weight', 'mapping/LabelEmbed/weight', 'dense'), ('mapping.embed.bias', 'mapping/LabelEmbed/bias', 'copy')]
    for i in range(cfg.mapping_layers):
        rules += [(f'mapping.fc{i}.weight', f'mapping/Dense{i}/weight', 'dense'), (f'mapping.fc{i}.bias', f'mapping/Dense{i}/bias', 'copy')]
    rules.append(('synthesis.b4.const', 'synthesis/4x4/Const/const', 'const'))
    noise_idx = 0
    for r in cfg.block_resolutions:
        layers = [('conv1', 'Conv', 'conv')] if r == 4 else [('conv0', 'Conv0_up', 'conv_up'), ('conv1', 'Conv1', 'conv')]
        for ours, theirs, kind in layers:
            _modulated(rules, f'synthesis.b{r}.{ours}', f'synthesis/{r}x{r}/{theirs}', kind,
                       noise=f'synthesis/noise{noise_idx}' if cfg.use_noise else None)
            noise_idx += 1
        _modulated(rules, f'synthesis.b{r}.torgb', f'synthesis/{r}x{r}/ToRGB', 'conv')
    return rules

def discriminator_rules(cfg):
    top = cfg.img_resolution
    rules = [(f'b{top}.fromrgb.weight', f'{top}x{top}/FromRGB/weight', 'conv'), (f'b{top}.fromrgb.bias', f'{top}x{top}/FromRGB/bias', 'copy')]
    for r in cfg.block_resolutions:
        rules += [(f'b{r}.conv0.weight', f'{r}x{r}/Conv0/weight', 'conv'), (f'b{r}.conv0.bias', f'{r}x{r}/Conv0/bias', 'copy'),
                  (f'b{r}.conv1.weight', f'{r}x{r}/Conv1_down/weight', 'conv'), (f'b{r}.conv1.bias', f'{r}x{r}/Conv1_down/bias', 'copy'),
                  (f'b{r}.skip.weight', f'{r}x{r}/Skip/weight', 'conv')]
    if cfg.c_dim > 0:
        rules += [('mapping.embed.weight', 'LabelEmbed/weight', 'dense'), ('mapping.embed.bias', 'LabelEmbed/bias', 'copy')]
        for i in range(cfg.mapping_layers):
            rules += [(f'mapping.fc{i}.weight', f'Mapping{i}/weight', 'dense'), (f'mapping.fc{i}.bias', f'Mapping{i}/bias', 'copy')]
    rules += [('b4.conv.weight', '4x4/Conv/weight', 'conv'), ('b4.conv.bias', '4x4/Conv/bias', 'copy'),
              ('b4.fc.weight', '4x4/Dense0/weight', 'dense'), ('b4.fc.bias', '4x4/Dense0/bias', 'copy'),
              ('b4.out.weight', 'Output/weight', 'dense'), ('b4.out.bias', 'Output/bias', 'copy')]
    return rules

#----------------------------------------------------------------------------
# Reading.

MAX_COMPONENT_DEPTH = 4     # G -> mapping / synthesis

def collect_params(net, prefix='', depth=0):
    """Every variable of a network and its components as 'component/.../name' -> array (legacy.py). Only
    arrays that the restricted unpickler built from bytes are taken (never np.asarray of a foreign object)."""
    if depth > MAX_COMPONENT_DEPTH:
        raise pickle.UnpicklingError(f'TensorFlow network components nest deeper than {MAX_COMPONENT_DEPTH}')
    params = {}
    variables = net.state.get('variables', [])
    if not isinstance(variables, (list, tuple)):
        raise pickle.UnpicklingError('TensorFlow variables are not a list')
    for item in variables:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise pickle.UnpicklingError('TensorFlow variable that is not a (name, array) pair')
        params[prefix + item[0]] = as_array(item[1], f'TensorFlow variable {prefix + item[0]!r:.80}')
    components = net.state.get('components') or {}
    if not isinstance(components, dict):
        raise pickle.UnpicklingError('TensorFlow components are not a table')
    for name, comp in components.items():
        if not isinstance(comp, TFNetworkRecord):
            raise pickle.UnpicklingError(f'TensorFlow component {str(name)[:80]!r} is not a network')
        params.update(collect_params(comp, f'{prefix}{name}/', depth + 1))
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

def _build(path, label, cfg_class, cfg_kwargs, rules_fn, params):
    try:
        cfg = cfg_class(**cfg_kwargs)
    except (ValueError, TypeError) as e:
        raise CheckpointError(path, f'{label}: {e}') from None
    check_limits(path, label, cfg)
    state = {}
    for ours, theirs, kind in rules_fn(cfg):
        if theirs not in params:
            raise CheckpointError(path, f'{label}: TensorFlow variable {theirs!r} (for {ours}) is missing')
        v, (lead, ndim) = params[theirs], SHAPES.get(kind, ((), None))
        if (ndim is not None and v.ndim != ndim) or tuple(v.shape[:len(lead)]) != lead:
            raise CheckpointError(path, f'{label}: TensorFlow variable {theirs!r} has shape {list(v.shape)}, not the layout of a {kind} tensor')
        # np.array, not np.ascontiguousarray, which turns 0-d arrays (TF's noise_strength) into shape [1].
        state[ours] = torch.from_numpy(np.array(KINDS[kind][0](params[theirs]), order='C')).float()
    return build_network(path, label, cfg, state, keep_constructed=('resample_filter',))

def convert_generator(path, label, net):
    _check_version(path, label, net)
    kwarg = _Kwargs(path, label, net)
    cfg_kwargs = dict(
        z_dim                  = kwarg('latent_size', 512),
        c_dim                  = kwarg('label_size', 0),
        w_dim                  = kwarg('dlatent_size', 512),
        img_resolution         = int(kwarg('resolution', 1024)),
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
    return _build(path, label, GeneratorConfig, cfg_kwargs, generator_rules, params)

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
    return _build(path, label, DiscriminatorConfig, cfg_kwargs, discriminator_rules, params)

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

#----------------------------------------------------------------------------
# Writing: the inverse of the above.

def channel_formula(channels):
    """(channel_base, channel_max) with min(base // r, max) == channels[r] for every r and an even base
    (TF stores fmap_base = base / 2), or None when no such pair exists."""
    cmax = max(channels.values())
    lo = max(ch * r if ch < cmax else cmax * r for r, ch in channels.items())
    hi = min([(ch + 1) * r - 1 for r, ch in channels.items() if ch < cmax] or [lo + 1])
    base = lo + (lo % 2)
    if base > hi or any(min(base // r, cmax) != ch for r, ch in channels.items()):
        return None
    return base, cmax

def _fmaps(label, cfg, resolutions):
    formula = channel_formula({r: cfg.channels[r] for r in resolutions})
    if formula is None:
        raise ExportError(f'{label}: channel table {dict(sorted(cfg.channels.items()))} is not min(fmap_base * 2 // r, fmap_max) '
                          f'for any fmap_base, fmap_max, so the NVlabs/TF layout cannot hold it; export to .safetensors instead')
    return {'fmap_base': formula[0] // 2, 'fmap_max': formula[1]}

def generator_static_kwargs(label, cfg):
    if cfg.w_avg_beta is None:
        raise ExportError(f'{label}: a generator without w_avg cannot be written in the NVlabs/TF layout')
    kw = {'latent_size': cfg.z_dim, 'dlatent_size': cfg.w_dim, 'label_size': cfg.c_dim, 'resolution': cfg.img_resolution,
          'num_channels': cfg.img_channels, 'mapping_layers': cfg.mapping_layers, 'mapping_lrmul': cfg.mapping_lr_multiplier,
          'mapping_nonlinearity': cfg.mapping_activation, 'w_avg_beta': cfg.w_avg_beta, 'num_fp16_res': cfg.num_fp16_res,
          'conv_clamp': cfg.conv_clamp, 'architecture': cfg.architecture, 'resample_kernel': list(cfg.resample_filter),
          'use_noise': cfg.use_noise, 'nonlinearity': cfg.activation, **_fmaps(label, cfg, cfg.block_resolutions)}
    if cfg.mapping_embed_features is not None:
        kw['label_fmaps'] = cfg.mapping_embed_features
    if cfg.mapping_layer_features is not None:
        kw['mapping_fmaps'] = cfg.mapping_layer_features
    return kw

def discriminator_static_kwargs(label, cfg):
    kw = {'label_size': cfg.c_dim, 'resolution': cfg.img_resolution, 'num_channels': cfg.img_channels,
          'architecture': cfg.architecture, 'num_fp16_res': cfg.num_fp16_res, 'conv_clamp': cfg.conv_clamp,
          'nonlinearity': cfg.activation, 'resample_kernel': list(cfg.resample_filter),
          'mbstd_num_features': cfg.mbstd_num_channels, **_fmaps(label, cfg, cfg.block_resolutions + [4])}
    if cfg.mbstd_group_size is not None:
        kw['mbstd_group_size'] = cfg.mbstd_group_size
    if cfg.c_dim > 0:
        # legacy.py builds D's label mapping with embed = layer features = cmap_dim = mapping_fmaps.
        cmap = cfg.effective_cmap_dim
        embed = cfg.mapping_embed_features if cfg.mapping_embed_features is not None else cmap
        layer = cfg.mapping_layer_features if cfg.mapping_layer_features is not None else cmap
        if not embed == layer == cmap or cfg.mapping_activation != cfg.activation:
            raise ExportError(f'{label}: the label mapping (embed {embed}, layers {layer}, cmap {cmap}, '
                              f'{cfg.mapping_activation}) does not fit the NVlabs/TF layout')
        kw.update(mapping_fmaps=cmap, mapping_layers=cfg.mapping_layers, mapping_lrmul=cfg.mapping_lr_multiplier)
    return kw

class TFNetworkOut:
    """A network state to be pickled as `dnnlib.tflib.network.Network` (NEWOBJ + BUILD with the dict)."""
    def __init__(self, name, static_kwargs, variables, components=None):
        self.state = {'version': 4, 'name': name, 'static_kwargs': plain(static_kwargs), 'components': components or {},
                      'build_module_src': '', 'build_func_name': name, 'variables': variables}

def _variables(net, rules):
    sd = net.state_dict()
    return [(theirs, np.array(KINDS[kind][1](sd[ours].detach().cpu().float().numpy()), order="C"))
            for ours, theirs, kind in rules]

def tf_generator(label, G, name):
    kwargs = generator_static_kwargs(label, G.cfg)
    variables = _variables(G, generator_rules(G.cfg))
    split = {'': [], 'mapping': [], 'synthesis': []}
    for theirs, value in variables:
        comp, _, rest = theirs.partition('/') if '/' in theirs else ('', '', theirs)
        split[comp].append((rest, value))
    components = {c: TFNetworkOut(c, {}, split[c]) for c in ('mapping', 'synthesis')}
    return TFNetworkOut(name, kwargs, split[''], components)

def tf_discriminator(label, D):
    return TFNetworkOut('D', discriminator_static_kwargs(label, D.cfg), _variables(D, discriminator_rules(D.cfg)))

# Globals the file names: the TF network class and numpy's array constructors (under the numpy 1.x names,
# which numpy 2 still reads), nothing of ours.
_GLOBAL_NAMES = {TFNetworkOut: ('dnnlib.tflib.network', 'Network'),
                 numpy_reconstruct(): ('numpy.core.multiarray', '_reconstruct')}

class _Pickler(pickle._Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, TFNetworkOut):
            return copyreg.__newobj__, (TFNetworkOut,), obj.state
        return NotImplemented

    def save_global(self, obj, name=None):
        target = _GLOBAL_NAMES.get(obj)
        if target is None:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f'{target[0]}\n{target[1]}\n'.encode())
        self.memoize(obj)

def placeholder_discriminator(cfg):
    """An untrained D matching a generator (seeded, so files are reproducible): NVlabs's loader insists
    on the (G, D, Gs) triple even where only the generator is used (generate.py, projector.py)."""
    d_cfg = DiscriminatorConfig.matching(cfg, mapping_layers=0 if cfg.c_dim else 8)   # legacy.py's D label mapping
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return Discriminator(d_cfg)

def tensorflow_pickle_bytes(G=None, D=None, G_ema=None):
    """The (G, D, Gs) triple NVlabs's legacy.load_network_pkl reads. A missing G is written as a copy of
    G_ema, a missing D as an untrained placeholder (with a warning)."""
    if G_ema is None:
        raise ExportError('the NVlabs/TF layout needs G_ema')
    Gs = tf_generator('G_ema', G_ema, 'Gs')                 # checks first: nothing is said or written on failure
    G = tf_generator('G', G, 'G') if G is not None else Gs
    if D is None:
        warnings.warn('no discriminator given: the .pkl carries an untrained placeholder D (NVlabs\'s loader requires one)')
        D = placeholder_discriminator(G_ema.cfg)
    obj = (G, tf_discriminator('D', D), Gs)
    buf = io.BytesIO()
    _Pickler(buf, protocol=4).dump(obj)
    return buf.getvalue()
