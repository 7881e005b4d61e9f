"""Shared pieces of the format modules: the Checkpoint record, strict state loading, plain values."""

import dataclasses
from typing import Optional

import numpy as np
import torch

from .. import ops

from ..discriminator import Discriminator, DiscriminatorConfig
from ..generator import Generator, GeneratorConfig
from ..layers import uninitialised
from .errors import CheckpointError
from .safe_pickle import NamespaceRecord, Record

#----------------------------------------------------------------------------

@dataclasses.dataclass
class Checkpoint:
    """What `load` returns: the networks a file holds (None where absent) and what else it says."""
    G:      Optional[Generator] = None          # Generator being trained.
    D:      Optional[Discriminator] = None      # Discriminator.
    G_ema:  Optional[Generator] = None          # Exponential moving average of G: the one to sample.
    meta:   dict = dataclasses.field(default_factory=dict)   # format, source path, training info...

    def networks(self):
        return {k: v for k, v in (('G', self.G), ('D', self.D), ('G_ema', self.G_ema)) if v is not None}

    @property
    def generator(self):
        """The generator to sample from: G_ema when present, else G."""
        return self.G_ema if self.G_ema is not None else self.G

#----------------------------------------------------------------------------
# Build a network from its config and fill it from `state` ({NVlabs name: tensor}), strictly: every
# parameter and buffer must be present with its shape and every tensor in `state` must be used.
# Formats that do not store the FIR filters (TF, rosinality) pass keep_constructed=('resample_filter',):
# those buffers keep the value the constructor gave them from the config, as legacy.py does.

def build_network(path, label, cfg, state, keep_constructed=(), owned=False):
    net_class = Generator if isinstance(cfg, GeneratorConfig) else Discriminator
    assert isinstance(cfg, (GeneratorConfig, DiscriminatorConfig))
    # Built uninitialised (no random numbers: most of a large network's build time); every tensor is then
    # assigned from the file, or for `keep_constructed` from the config.
    with uninitialised():
        net = net_class(cfg)
    expected = dict(net.state_dict())
    missing = [k for k in expected if k not in state and k.rsplit('.', 1)[-1] not in keep_constructed]
    unused = [k for k in state if k not in expected]
    if missing:
        raise CheckpointError(path, f'{label}: no tensor for {missing[0]}' + (f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''))
    if unused:
        raise CheckpointError(path, f'{label}: tensor {unused[0]} has no place in the network' + (f' (and {len(unused) - 1} more)' if len(unused) > 1 else ''))
    for k, t in state.items():
        if tuple(t.shape) != tuple(expected[k].shape):
            raise CheckpointError(path, f'{label}: {k} has shape {list(t.shape)}, the network needs {list(expected[k].shape)}')
    # Own copies: a pickle may hold one tensor for two networks (G_ema=G), which must not stay tied together.
    # `owned`: the loader made every tensor fresh and unshared (safetensors: one file entry each).
    values = {k: _own(t, expected[k].dtype, owned) for k, t in state.items()}
    constructed = ops.setup_filter(list(cfg.resample_filter))     # the only buffer a constructor derives (legacy.py)
    for k in expected.keys() - values.keys():
        assert k.endswith('resample_filter') and expected[k].shape == constructed.shape, k
        values[k] = constructed.clone()
    net.load_state_dict(values, assign=True)
    return net.eval().requires_grad_(False)

def _own(t, dtype, owned):
    if owned and t.dtype == dtype and t.is_contiguous():
        return t
    return t.to(dtype).clone(memory_format=torch.contiguous_format)

#----------------------------------------------------------------------------
# Convert unpickled records (EasyDict, numpy scalars, namespaces) into plain JSON-friendly values.

def plain(obj):
    if isinstance(obj, NamespaceRecord):
        return plain(obj.as_dict())
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist() if obj.numel() <= 16 else f'<tensor {list(obj.shape)}>'
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)[:200]

def as_record(obj):
    return Record(obj) if isinstance(obj, dict) else Record()

def take(path, kwargs, known, what):
    """Refuse options this library does not implement, rather than building a different network."""
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise CheckpointError(path, f'{what}: unsupported option(s) {unknown}')
    return kwargs

#----------------------------------------------------------------------------
# Channel tables from tensor shapes, so any table (not just the NVlabs formula) loads.

def generator_channels(state, img_resolution, weight_name):
    res_list = [2 ** i for i in range(2, int(np.log2(img_resolution)) + 1)]
    return {r: int(state[weight_name(r)].shape[0]) for r in res_list}
