"""NVlabs network pickles (stylegan2-ada-pytorch, and StyleGAN2 networks from the stylegan3 repo).

Their training loop pickles a dict {G, D, G_ema, training_set_kwargs, augment_pipe, ...} whose modules
are `torch_utils.persistence` records: class name + constructor kwargs + the module's __dict__ (state),
plus the class's source code. We rebuild our own modules from class name, kwargs and tensors, and keep
the source as inert text.
"""

import re

import torch

from ..discriminator import DiscriminatorConfig
from ..generator import GeneratorConfig
from ..netconfig import block_resolutions
from .common import Checkpoint, build_network, generator_channels, plain, take
from .errors import CheckpointError
from .safe_pickle import PersistentRecord

_G_TOP = ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'mapping_kwargs', 'synthesis_kwargs')
_SYNTH = ('channel_base', 'channel_max', 'num_fp16_res', 'conv_clamp', 'architecture', 'resample_filter',
          'use_noise', 'activation', 'fp16_channels_last', 'fused_modconv_default')
_MAPPING = ('num_layers', 'embed_features', 'layer_features', 'activation', 'lr_multiplier', 'w_avg_beta')
_D_TOP = ('c_dim', 'img_resolution', 'img_channels', 'architecture', 'channel_base', 'channel_max',
          'num_fp16_res', 'conv_clamp', 'cmap_dim', 'block_kwargs', 'mapping_kwargs', 'epilogue_kwargs')
_D_BLOCK = ('activation', 'resample_filter', 'fp16_channels_last', 'freeze_layers')
_D_EPILOGUE = ('mbstd_group_size', 'mbstd_num_channels', 'activation')
_STYLEGAN3_HINTS = ('num_critical', 'first_cutoff', 'first_stopband', 'last_stopband_rel', 'margin_size',
                    'output_scale', 'magnitude_ema_beta', 'conv_kernel', 'use_radial_filters')

#----------------------------------------------------------------------------
# Flatten a persistent record tree into {dotted name: tensor} (parameters and persistent buffers).

MAX_MODULE_DEPTH = 16       # G.synthesis.b1024.conv0.affine is 4 deep

def _table(state, key):
    value = state.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f'{key} is not a table')
    return value

def flatten_state(rec, prefix='', seen=None):
    seen = set() if seen is None else seen
    if id(rec) in seen or prefix.count('.') > MAX_MODULE_DEPTH:
        raise ValueError(f'module {prefix or "<root>"} contains itself, or nests too deeply')
    seen.add(id(rec))
    out = {}
    state = rec.state
    skip = set(n for n in (state.get('_non_persistent_buffers_set') or ()) if isinstance(n, str))
    for name, t in _table(state, '_parameters').items():
        if t is not None:
            out[prefix + str(name)] = t
    for name, t in _table(state, '_buffers').items():
        if t is not None and name not in skip:
            out[prefix + str(name)] = t
    for name, child in _table(state, '_modules').items():
        if isinstance(child, PersistentRecord):
            out.update(flatten_state(child, f'{prefix}{name}.', seen))
        elif child is not None:
            raise ValueError(f'module {prefix}{name} is not a persistent record')
    return out

def init_kwargs(rec):
    return plain(rec.state.get('_init_kwargs') or {})

#----------------------------------------------------------------------------
# Options missing from init_kwargs took their constructor defaults, which differ between the repos:
# stylegan2-ada-pytorch (conv_clamp None, num_fp16_res 0, w_avg_beta 0.995) and the stylegan3 repo's
# networks_stylegan2 (conv_clamp 256, num_fp16_res 4, w_avg_beta 0.998), whose train.py omits them.
# The modules' own attributes in the state say what the constructor used.

def _child(rec, path):
    for part in path.split('.'):
        rec = (rec.state.get('_modules') or {}).get(part)
        if not isinstance(rec, PersistentRecord):
            return None
    return rec

def _option(kwargs, key, rec, path, default):
    """kwargs[key] when given, else attribute `key` of sub-module `path` in the state, else `default`."""
    if key in kwargs:
        return kwargs[key]
    child = _child(rec, path)
    return plain(child.state.get(key, default)) if child is not None else default

def _num_fp16_res(kwargs, rec, prefix, block_resolutions):
    """kwargs['num_fp16_res'] when given, else the number of blocks built with use_fp16 (b4 never is)."""
    if 'num_fp16_res' in kwargs:
        return int(kwargs['num_fp16_res'])
    blocks = [_child(rec, f'{prefix}b{r}') for r in block_resolutions]
    return sum(1 for b in blocks if b is not None and bool(plain(b.state.get('use_fp16', False))))

#----------------------------------------------------------------------------

def _is_stylegan3(rec, kwargs):
    synth = kwargs.get('synthesis_kwargs') or {}
    if any(k in synth or k in kwargs for k in _STYLEGAN3_HINTS):
        return True
    synthesis = (rec.state.get('_modules') or {}).get('synthesis')
    children = (synthesis.state.get('_modules') or {}) if isinstance(synthesis, PersistentRecord) else {}
    return any(name == 'input' or re.match(r'L\d+_', name) for name in children)

#----------------------------------------------------------------------------

def generator_from_record(path, label, rec):
    kwargs = init_kwargs(rec)
    if _is_stylegan3(rec, kwargs):
        raise CheckpointError(path, f'{label} is a StyleGAN3 (alias-free) generator, which is not supported; '
                                    'use a StyleGAN2 network (stylegan2-ada-pytorch or the stylegan3 repo\'s stylegan2 config)')
    synth = dict(kwargs.pop('synthesis_kwargs', None) or {})
    mapping = dict(kwargs.pop('mapping_kwargs', None) or {})
    for k in list(kwargs):           # the stylegan3 repo passes synthesis options at the top level
        if k not in _G_TOP:
            synth[k] = kwargs.pop(k)
    take(path, synth, _SYNTH, f'{label} synthesis')
    take(path, mapping, _MAPPING, f'{label} mapping')
    try:
        state = flatten_state(rec)
        res = int(kwargs['img_resolution'])
        cfg = GeneratorConfig(
            z_dim                  = int(kwargs['z_dim']),
            c_dim                  = int(kwargs.get('c_dim', 0)),
            w_dim                  = int(kwargs['w_dim']),
            img_resolution         = res,
            img_channels           = int(kwargs.get('img_channels', 3)),
            channels               = generator_channels(state, res, lambda r: f'synthesis.b{r}.conv1.weight'),
            num_fp16_res           = _num_fp16_res(synth, rec, 'synthesis.', block_resolutions(res)[1:]),
            conv_clamp             = _option(synth, 'conv_clamp', rec, 'synthesis.b4.conv1', None),
            architecture           = synth.get('architecture', 'skip'),
            resample_filter        = tuple(synth.get('resample_filter', (1, 3, 3, 1))),
            use_noise              = bool(synth.get('use_noise', True)),
            activation             = synth.get('activation', 'lrelu'),
            mapping_layers         = int(mapping.get('num_layers', 8)),
            mapping_embed_features = mapping.get('embed_features'),
            mapping_layer_features = mapping.get('layer_features'),
            mapping_activation     = mapping.get('activation', 'lrelu'),
            mapping_lr_multiplier  = float(mapping.get('lr_multiplier', 0.01)),
            w_avg_beta             = _option(mapping, 'w_avg_beta', rec, 'mapping', 0.995),
        )
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:
        raise CheckpointError(path, f'{label}: cannot build the generator: {type(e).__name__}: {str(e)[:200]}') from None
    return build_network(path, label, cfg, state)

def discriminator_from_record(path, label, rec):
    kwargs = init_kwargs(rec)
    take(path, kwargs, _D_TOP, label)
    block = take(path, dict(kwargs.get('block_kwargs') or {}), _D_BLOCK, f'{label} block')
    mapping = take(path, dict(kwargs.get('mapping_kwargs') or {}), _MAPPING, f'{label} mapping')
    epilogue = take(path, dict(kwargs.get('epilogue_kwargs') or {}), _D_EPILOGUE, f'{label} epilogue')
    try:
        state = flatten_state(rec)
        res = int(kwargs['img_resolution'])
        resolutions = block_resolutions(res)[1:]
        channels = {r: int(state[f'b{r}.conv0.weight'].shape[0]) for r in resolutions}
        channels[4] = int(state['b4.conv.weight'].shape[0])
        cfg = DiscriminatorConfig(
            c_dim                  = int(kwargs.get('c_dim', 0)),
            img_resolution         = res,
            img_channels           = int(kwargs.get('img_channels', 3)),
            channels               = channels,
            num_fp16_res           = _num_fp16_res(kwargs, rec, '', resolutions),
            conv_clamp             = _option(kwargs, 'conv_clamp', rec, 'b4.conv', None),
            architecture           = kwargs.get('architecture', 'resnet'),
            resample_filter        = tuple(block.get('resample_filter', (1, 3, 3, 1))),
            activation             = block.get('activation', 'lrelu'),
            cmap_dim               = kwargs.get('cmap_dim'),
            mbstd_group_size       = epilogue.get('mbstd_group_size', 4),
            mbstd_num_channels     = int(epilogue.get('mbstd_num_channels', 1)),
            mapping_layers         = int(mapping.get('num_layers', 8)),
            mapping_lr_multiplier  = float(mapping.get('lr_multiplier', 0.01)),
            mapping_embed_features = mapping.get('embed_features'),
            mapping_layer_features = mapping.get('layer_features'),
            mapping_activation     = mapping.get('activation', 'lrelu'),
        )
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:
        raise CheckpointError(path, f'{label}: cannot build the discriminator: {type(e).__name__}: {str(e)[:200]}') from None
    return build_network(path, label, cfg, state)

#----------------------------------------------------------------------------
# The whole snapshot.

def _augment_meta(rec):
    if rec is None:
        return {}
    if not isinstance(rec, PersistentRecord):
        return {'augment_pipe': repr(type(rec).__name__)}
    p = (rec.state.get('_buffers') or {}).get('p')
    meta = {'augment_kwargs': init_kwargs(rec)}
    if isinstance(p, torch.Tensor) and p.numel() == 1:
        meta['augment_p'] = float(p.reshape([]))
    return meta

def from_nvlabs(path, data):
    if not isinstance(data, dict) or not any(isinstance(data.get(k), PersistentRecord) for k in ('G', 'D', 'G_ema')):
        raise CheckpointError(path, 'a pickle, but neither an NVlabs network snapshot nor a TensorFlow StyleGAN2 pickle')
    ck = Checkpoint(meta={'format': 'nvlabs'})
    builders = {'Generator': generator_from_record, 'Discriminator': discriminator_from_record}
    for key in ('G', 'D', 'G_ema'):
        rec = data.get(key)
        if rec is None:
            continue
        if not isinstance(rec, PersistentRecord) or rec.class_name not in builders:
            name = rec.class_name if isinstance(rec, PersistentRecord) else type(rec).__name__
            raise CheckpointError(path, f'{key} is a {name}, not a StyleGAN2 Generator/Discriminator')
        setattr(ck, key, builders[rec.class_name](path, key, rec))
    ck.meta['training_set_kwargs'] = plain(data.get('training_set_kwargs'))
    ck.meta.update(_augment_meta(data.get('augment_pipe')))
    for k, v in data.items():
        if k not in ('G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe') and not isinstance(v, PersistentRecord):
            ck.meta[k] = plain(v)
    return ck
