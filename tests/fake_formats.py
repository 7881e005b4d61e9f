"""Hand-made checkpoint files in the upstream formats, built from this library's networks (test side only).

    write_pickle(path, nvlabs_snapshot(G_ema=(G, init_kwargs)))   # NVlabs persistence records
    write_pickle(path, (tf_generator(G, kw), tf_discriminator(D, kw), tf_generator(Gs, kw)))   # TF Network states
    torch.save({'g_ema': rosinality_generator_state(G), 'latent_avg': ...}, path)

write_pickle registers stand-ins for torch_utils.persistence, dnnlib.util and dnnlib.tflib.network in
sys.modules only while it pickles (pickle names a global by module and name), so loading never sees them.

Each builder is the inverse of the upstream layout, written from the upstream conventions (NVlabs
persistence records, NVlabs legacy.py's TF rules, rosinality's module names), not from our loaders.
"""

import contextlib
import io
import pickle
import pickletools
import sys
import types
from collections import OrderedDict

import numpy as np
import torch

import stylegan2_lib as sg
from stylegan2_lib import ops

#----------------------------------------------------------------------------
# Stand-ins for the upstream globals the files name. Pickle looks a global up in sys.modules by its
# module and name, so these are registered there while a file is written (and removed afterwards).

def _reconstruct_persistent_obj(meta):
    raise AssertionError('never called: the files are only written here')

_reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'


class EasyDict(dict):
    """dnnlib.util.EasyDict: a dict subclass, pickled as NEWOBJ + SETITEMS."""

EasyDict.__module__ = 'dnnlib.util'


class Network:
    """dnnlib.tflib.network.Network: pickled through __getstate__ (NEWOBJ + BUILD with a dict)."""
    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state

Network.__module__ = 'dnnlib.tflib.network'

_UPSTREAM = {
    'torch_utils': {},
    'torch_utils.persistence': {'_reconstruct_persistent_obj': _reconstruct_persistent_obj},
    'dnnlib': {},
    'dnnlib.util': {'EasyDict': EasyDict},
    'dnnlib.tflib': {},
    'dnnlib.tflib.network': {'Network': Network},
}

@contextlib.contextmanager
def fake_modules(table):
    """Put modules {name: {attr: value}} into sys.modules for the duration; restore what was there."""
    saved = {name: sys.modules.get(name) for name in table}
    try:
        for name, attrs in table.items():
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            sys.modules[name] = mod
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old

def upstream_modules():
    """Registered only while a file is written (pickle_bytes), so loading never sees them."""
    return fake_modules(_UPSTREAM)

#----------------------------------------------------------------------------
# Pickle writer. Numpy scalars and arrays name `<module>.scalar` / `<module>._reconstruct`, where the module
# is numpy.core.multiarray for files written with numpy 1.x and numpy._core.multiarray with numpy 2.x;
# both are written here whatever numpy is installed, through stand-ins registered under those names.

NUMPY_MODULES = {'1.x': 'numpy.core.multiarray', '2.x': 'numpy._core.multiarray'}

def _stand_in(module, name):
    def fn(*args):
        raise AssertionError('never called: the files are only written here')
    fn.__module__, fn.__qualname__, fn.__name__ = module, name, name
    return fn


class _NumpyPickler(pickle.Pickler):
    def __init__(self, file, protocol, module):
        super().__init__(file, protocol=protocol)
        self.scalar, self.reconstruct = _stand_in(module, 'scalar'), _stand_in(module, '_reconstruct')

    def reducer_override(self, obj):
        if isinstance(obj, np.generic):             # numpy's own reduce: scalar(dtype, raw bytes)
            return (self.scalar, (obj.dtype, obj.tobytes()))
        if isinstance(obj, np.ndarray):             # _reconstruct(ndarray, (0,), b'b') + BUILD state
            _, args, *rest = obj.__reduce__()
            return (self.reconstruct, args, *rest)
        return NotImplemented

def pickle_bytes(obj, numpy_names='2.x', protocol=4):
    module = NUMPY_MODULES[numpy_names]
    buf = io.BytesIO()
    pickler = _NumpyPickler(buf, protocol, module)
    with upstream_modules(), fake_modules({module: {'scalar': pickler.scalar, '_reconstruct': pickler.reconstruct}}):
        pickler.dump(obj)
    return buf.getvalue()

def write_pickle(path, obj, numpy_names='2.x'):
    data = pickle_bytes(obj, numpy_names)
    with open(path, 'wb') as f:
        f.write(data)
    return data

def pickle_globals(data):
    """Every 'module.name' global a pickle names (GLOBAL, or STACK_GLOBAL on two strings, maybe memoized)."""
    out, pushed, memo = set(), [], {}
    for op, arg, _ in pickletools.genops(data):
        if op.name == 'GLOBAL':
            out.add(arg.replace(' ', '.'))
        elif op.name == 'STACK_GLOBAL':
            out.add(f'{pushed[-2]}.{pushed[-1]}')
            pushed.append(None)
        elif op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
            pushed.append(arg)
        elif op.name in ('BINGET', 'LONG_BINGET'):
            pushed.append(memo.get(arg))
        elif op.name == 'MEMOIZE':
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op.name in ('BINPUT', 'LONG_BINPUT'):
            memo[arg] = pushed[-1] if pushed else None
        else:
            pushed.append(None)
    return out

#----------------------------------------------------------------------------
# Randomise a freshly built network so every tensor matters (as the reference cases do).

def randomize_(net, seed):
    g = torch.Generator().manual_seed(seed)
    randn = lambda shape: torch.randn(list(shape), generator=g)
    owners = {name: mod for name, mod in net.named_modules()}
    with torch.no_grad():
        for name, p in net.named_parameters():
            owner = owners[name.rsplit('.', 1)[0]]
            leaf = name.rsplit('.', 1)[-1]
            if leaf == 'noise_strength':
                sign = 1 if torch.rand([], generator=g) < 0.5 else -1
                p.copy_(sign * (0.1 + 0.4 * torch.rand([], generator=g)))
            elif leaf == 'bias':
                p.add_(0.25 / getattr(owner, 'bias_gain', 1) * randn(p.shape))
            elif leaf == 'const':
                p.add_(0.3 * randn(p.shape))
            else:
                p.add_(0.25 * p.std() * randn(p.shape))
        for name, b in net.named_buffers():
            if name.endswith('noise_const'):
                b.copy_(randn(b.shape))
            elif name.endswith('w_avg'):
                b.copy_(0.5 * randn(b.shape))
    return net.eval().requires_grad_(False)

def make_generator(seed=0, **cfg):
    torch.manual_seed(seed)
    return randomize_(sg.Generator(sg.GeneratorConfig(**cfg)), seed + 1)

def make_discriminator(seed=0, **cfg):
    torch.manual_seed(seed)
    return randomize_(sg.Discriminator(sg.DiscriminatorConfig(**cfg)), seed + 1)

#----------------------------------------------------------------------------
# NVlabs persistence records: a module's __dict__ as state, class name, init args.

class PersistentObj:
    """Pickles as torch_utils.persistence._reconstruct_persistent_obj(meta), as NVlabs persistent classes do."""
    def __init__(self, class_name, state, module_src='# source omitted (training.networks)\n'):
        self.meta = dict(type='class', version=6, module_src=module_src, class_name=class_name, state=state)

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))

_HOOKS = ('_backward_pre_hooks', '_backward_hooks', '_forward_hooks', '_forward_hooks_with_kwargs',
          '_forward_hooks_always_called', '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs',
          '_state_dict_hooks', '_state_dict_pre_hooks', '_load_state_dict_pre_hooks', '_load_state_dict_post_hooks')
_NUMPY_ATTRS = ('weight_gain', 'act_gain')          # NVlabs computes these with np.sqrt: numpy float64
_POSITIONAL = {                                     # what NVlabs passes positionally (tiny32 README)
    'SynthesisBlock': ('in_channels', 'out_channels'), 'SynthesisLayer': ('in_channels', 'out_channels'),
    'ToRGBLayer': ('in_channels', 'out_channels'), 'Conv2dLayer': ('in_channels', 'out_channels'),
    'FullyConnectedLayer': ('in_features', 'out_features'),
}

def _param(t):
    return torch.nn.Parameter(t.detach().clone(), requires_grad=False)

def module_record(module, init_kwargs=None, extra_attrs=None):
    """Mirror `module` (and its children) as NVlabs records; `extra_attrs` = {dotted child name: {attr: value}}."""
    extra_attrs = extra_attrs or {}
    cls = type(module).__name__
    state = {'training': False}
    state['_parameters'] = {k: (_param(v) if v is not None else None) for k, v in module._parameters.items()}
    state['_buffers'] = {k: v.detach().clone() for k, v in module._buffers.items()}
    state['_non_persistent_buffers_set'] = set()
    for k in _HOOKS:
        state[k] = OrderedDict()
    state['_is_full_backward_hook'] = None
    state['_modules'] = {}
    for name, child in module._modules.items():
        sub = {k[len(name):].lstrip('.'): v for k, v in extra_attrs.items() if k == name or k.startswith(name + '.')}
        state['_modules'][name] = module_record(child, extra_attrs=sub) if child is not None else None
    for k, v in vars(module).items():
        if k.startswith('_') or k in ('training', 'cfg'):
            continue
        state[k] = np.float64(v) if k in _NUMPY_ATTRS else v
    state.update(extra_attrs.get('', {}))
    state['_init_args'] = tuple(getattr(module, a) for a in _POSITIONAL.get(cls, ()))
    state['_init_kwargs'] = init_kwargs if init_kwargs is not None else {}
    return PersistentObj(cls, state)

def augment_pipe_record(p, **kwargs):
    """training.augment.AugmentPipe: buffers p, Hz_geom, Hz_fbank; init kwargs = the enabled augmentations."""
    kwargs = kwargs or dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                            brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    state = {'training': False, '_parameters': {}, '_modules': {}, '_non_persistent_buffers_set': set(),
             '_buffers': {'p': torch.tensor(float(p)), 'Hz_geom': torch.randn([12]), 'Hz_fbank': torch.randn([4, 12])}}
    for k in _HOOKS:
        state[k] = OrderedDict()
    state.update({k: float(v) for k, v in kwargs.items()})
    state['_init_args'] = ()
    state['_init_kwargs'] = EasyDict(kwargs)
    return PersistentObj('AugmentPipe', state, module_src='# source omitted (training.augment)\n')

def nvlabs_snapshot(G=None, D=None, G_ema=None, training_set_kwargs=None, augment_pipe=None):
    """The dict NVlabs training_loop pickles, with (net, init_kwargs[, extra_attrs]) tuples for the networks."""
    out = {'training_set_kwargs': training_set_kwargs}
    for key, spec in (('G', G), ('D', D), ('G_ema', G_ema)):
        if spec is not None:
            out[key] = module_record(*spec)
    out['augment_pipe'] = augment_pipe
    return out

#----------------------------------------------------------------------------
# NVlabs init_kwargs of a network: stylegan2-ada-pytorch (synthesis_kwargs) or the stylegan3 repo
# (synthesis options at the top level, constructor defaults left out).

def ada_G_kwargs(cfg, channel_base, channel_max, **synthesis):
    return {'z_dim': cfg.z_dim, 'w_dim': cfg.w_dim,
            'mapping_kwargs': EasyDict(num_layers=cfg.mapping_layers),
            'synthesis_kwargs': EasyDict(channel_base=channel_base, channel_max=channel_max, **synthesis),
            'c_dim': cfg.c_dim, 'img_resolution': cfg.img_resolution, 'img_channels': cfg.img_channels}

def ada_D_kwargs(cfg, channel_base, channel_max, epilogue=None, mapping=None, **top):
    return {'block_kwargs': EasyDict(), 'mapping_kwargs': EasyDict(mapping or {}),
            'epilogue_kwargs': EasyDict(epilogue or {}), 'channel_base': channel_base, 'channel_max': channel_max,
            **top, 'c_dim': cfg.c_dim, 'img_resolution': cfg.img_resolution, 'img_channels': cfg.img_channels}

#----------------------------------------------------------------------------
# TensorFlow StyleGAN2: the inverse of NVlabs legacy.py's conversion rules.

def _np(t):                     # keeps 0-d shapes (TF's noise_strength is a [] variable)
    return np.array(t.detach().cpu().numpy(), dtype=np.float32, order='C')

def tf_conv(w):                 # [out, in, kh, kw] -> TF [kh, kw, in, out]
    return _np(w.permute(2, 3, 1, 0))

def tf_conv_up(w):              # TF's up-conv kernel is stored flipped relative to the PyTorch one
    return np.array(tf_conv(w)[::-1, ::-1], order='C')

def _tf_dense(fc, prefix):
    return [(f'{prefix}/weight', _np(fc.weight.t())), (f'{prefix}/bias', _np(fc.bias))]

def _tf_modconv(layer, prefix, conv=tf_conv):
    out = [(f'{prefix}/weight', conv(layer.weight)), (f'{prefix}/mod_weight', _np(layer.affine.weight.t())),
           (f'{prefix}/mod_bias', _np(layer.affine.bias - 1)), (f'{prefix}/bias', _np(layer.bias))]
    if getattr(layer, 'use_noise', False):
        out.append((f'{prefix}/noise_strength', _np(layer.noise_strength)))
    return out

def tf_network(name, static_kwargs, variables, components=None, func='training.networks_stylegan2.G_main'):
    return Network({
        'version': 4, 'name': name, 'static_kwargs': dict(static_kwargs), 'components': dict(components or {}),
        'build_module_src': '# source omitted (training/networks_stylegan2.py)\n', 'build_func_name': func,
        'variables': list(variables),
    })

def tf_generator(G, static_kwargs, name='G'):
    mapping = []
    if G.c_dim > 0:
        mapping += _tf_dense(G.mapping.embed, 'LabelEmbed')
    for i in range(G.mapping.num_layers):
        mapping += _tf_dense(getattr(G.mapping, f'fc{i}'), f'Dense{i}')
    synthesis = [('4x4/Const/const', _np(G.synthesis.b4.const[None]))]
    noise = []
    for block in G.synthesis.blocks():
        r = block.resolution
        if r == 4:
            synthesis += _tf_modconv(block.conv1, '4x4/Conv')
        else:
            synthesis += _tf_modconv(block.conv0, f'{r}x{r}/Conv0_up', conv=tf_conv_up)
            synthesis += _tf_modconv(block.conv1, f'{r}x{r}/Conv1')
        synthesis += _tf_modconv(block.torgb, f'{r}x{r}/ToRGB')
        noise += [layer.noise_const[None, None] for layer in block.conv_layers() if layer.use_noise]
    synthesis += [(f'noise{i}', _np(n)) for i, n in enumerate(noise)]
    components = {
        'mapping': tf_network('G_mapping', {}, mapping, func='training.networks_stylegan2.G_mapping'),
        'synthesis': tf_network('G_synthesis', {}, synthesis, func='training.networks_stylegan2.G_synthesis_stylegan2'),
    }
    top = [('lod', np.zeros([], np.float32)), ('dlatent_avg', _np(G.mapping.w_avg))]
    return tf_network(name, static_kwargs, top, components)

def tf_discriminator(D, static_kwargs, name='D'):
    top = D.img_resolution
    v = [(f'{top}x{top}/FromRGB/weight', tf_conv(getattr(D, f'b{top}').fromrgb.weight)),
         (f'{top}x{top}/FromRGB/bias', _np(getattr(D, f'b{top}').fromrgb.bias))]
    for r in D.block_resolutions:
        b = getattr(D, f'b{r}')
        v += [(f'{r}x{r}/Conv0/weight', tf_conv(b.conv0.weight)), (f'{r}x{r}/Conv0/bias', _np(b.conv0.bias)),
              (f'{r}x{r}/Conv1_down/weight', tf_conv(b.conv1.weight)), (f'{r}x{r}/Conv1_down/bias', _np(b.conv1.bias)),
              (f'{r}x{r}/Skip/weight', tf_conv(b.skip.weight))]
    if D.c_dim > 0:
        v += _tf_dense(D.mapping.embed, 'LabelEmbed')
        for i in range(D.mapping.num_layers):
            v += _tf_dense(getattr(D.mapping, f'fc{i}'), f'Mapping{i}')
    v += [('4x4/Conv/weight', tf_conv(D.b4.conv.weight)), ('4x4/Conv/bias', _np(D.b4.conv.bias))]
    v += _tf_dense(D.b4.fc, '4x4/Dense0') + _tf_dense(D.b4.out, 'Output')
    return tf_network(name, static_kwargs, v, func='training.networks_stylegan2.D_stylegan2')

#----------------------------------------------------------------------------
# rosinality stylegan2-pytorch state_dicts (their model.py names), from our networks.

def _blur_kernel(scale):
    return ops.setup_filter([1, 3, 3, 1]) * scale

def _rosi_modconv(sd, prefix, layer):
    sd[f'{prefix}.conv.weight'] = layer.weight.detach().clone()[None]          # [1, out, in, k, k]
    sd[f'{prefix}.conv.modulation.weight'] = layer.affine.weight.detach().clone()
    sd[f'{prefix}.conv.modulation.bias'] = layer.affine.bias.detach().clone()

def rosinality_generator_state(G):
    """Generator.state_dict() of rosinality's model.py for the network G computes (style MLP, convs, to_rgbs, noises)."""
    sd, noises = OrderedDict(), []
    for i in range(G.mapping.num_layers):
        fc = getattr(G.mapping, f'fc{i}')
        sd[f'style.{i + 1}.weight'] = fc.weight.detach().clone()
        sd[f'style.{i + 1}.bias'] = fc.bias.detach().clone()
    sd['input.input'] = G.synthesis.b4.const.detach().clone()[None]
    layers, rgbs = [], []
    for block in G.synthesis.blocks():
        layers += block.conv_layers()
        rgbs.append(block.torgb)
    for idx, layer in enumerate(layers):
        prefix = 'conv1' if idx == 0 else f'convs.{idx - 1}'
        _rosi_modconv(sd, prefix, layer)
        if layer.up == 2:
            sd[f'{prefix}.conv.blur.kernel'] = _blur_kernel(4)
        sd[f'{prefix}.noise.weight'] = layer.noise_strength.detach().clone().reshape([1])
        sd[f'{prefix}.activate.bias'] = layer.bias.detach().clone()
        noises.append(layer.noise_const.detach().clone()[None, None])
    for k, rgb in enumerate(rgbs):
        prefix = 'to_rgb1' if k == 0 else f'to_rgbs.{k - 1}'
        if k > 0:
            sd[f'{prefix}.upsample.kernel'] = _blur_kernel(4)
        _rosi_modconv(sd, prefix, rgb)
        sd[f'{prefix}.bias'] = rgb.bias.detach().clone().reshape(1, -1, 1, 1)
    for i, n in enumerate(noises):
        sd[f'noises.noise_{i}'] = n
    return sd

def rosinality_discriminator_state(D):
    """Discriminator.state_dict() of rosinality's model.py (convs.0 = fromrgb, ResBlocks, final_*)."""
    c = lambda t: t.detach().clone()
    top = D.img_resolution
    sd = OrderedDict()
    sd['convs.0.0.weight'] = c(getattr(D, f'b{top}').fromrgb.weight)
    sd['convs.0.1.bias'] = c(getattr(D, f'b{top}').fromrgb.bias)
    for i, r in enumerate(D.block_resolutions, start=1):
        b = getattr(D, f'b{r}')
        sd[f'convs.{i}.conv1.0.weight'] = c(b.conv0.weight)
        sd[f'convs.{i}.conv1.1.bias'] = c(b.conv0.bias)
        sd[f'convs.{i}.conv2.0.kernel'] = _blur_kernel(1)
        sd[f'convs.{i}.conv2.1.weight'] = c(b.conv1.weight)
        sd[f'convs.{i}.conv2.2.bias'] = c(b.conv1.bias)
        sd[f'convs.{i}.skip.0.kernel'] = _blur_kernel(1)
        sd[f'convs.{i}.skip.1.weight'] = c(b.skip.weight)
    sd['final_conv.0.weight'] = c(D.b4.conv.weight)
    sd['final_conv.1.bias'] = c(D.b4.conv.bias)
    sd['final_linear.0.weight'] = c(D.b4.fc.weight)
    sd['final_linear.0.bias'] = c(D.b4.fc.bias)
    sd['final_linear.1.weight'] = c(D.b4.out.weight)
    sd['final_linear.1.bias'] = c(D.b4.out.bias)
    return sd

#----------------------------------------------------------------------------
# Comparison used by every file: the tolerance for foreign weights, 1e-5 relative.

def assert_close(actual, expected, rel=1e-5, name=''):
    actual, expected = actual.detach().float(), expected.detach().float()
    assert actual.shape == expected.shape, (name, tuple(actual.shape), tuple(expected.shape))
    tol = rel * max(1.0, float(expected.abs().max()))
    err = float((actual - expected).abs().max())
    assert err <= tol, f'{name}: max|diff| {err:.3g} > {tol:.3g}'
