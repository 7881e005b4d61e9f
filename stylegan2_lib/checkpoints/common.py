"""Shared pieces of the format modules: the Checkpoint record, strict state loading, plain values."""

import contextlib
import contextvars
import dataclasses
import warnings
from typing import Optional

import numpy as np
import torch

from .. import ops

from ..discriminator import Discriminator, DiscriminatorConfig
from ..generator import Generator, GeneratorConfig
from ..layers import is_placeholder, uninitialised
from ..netconfig import block_resolutions
from .errors import CheckpointError
from .limits import DEFAULT, check_config
from .safe_pickle import ArraySpec, NamespaceRecord

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
# One load's limits and what its networks may still take (set by checkpoints.load; converters called
# directly get the defaults and no memory cap).

class _Scope:
    def __init__(self, limits, network_bytes):
        self.limits, self.left = limits, network_bytes

_scope = contextvars.ContextVar('stylegan2_lib_load_scope', default=None)

@contextlib.contextmanager
def load_scope(limits, file_size):
    token = _scope.set(_Scope(limits, limits.network_bytes(file_size)))
    try:
        yield
    finally:
        _scope.reset(token)

def current_limits():
    scope = _scope.get()
    return scope.limits if scope is not None else DEFAULT

#----------------------------------------------------------------------------
# Build a network from its config and fill it from `state` ({NVlabs name: tensor}), strictly: every
# parameter and buffer must be present with its shape and every tensor in `state` must be used.
# Formats that do not store the FIR filters (TF, rosinality) pass keep_constructed=('resample_filter',):
# those buffers keep the value the constructor gave them from the config, as legacy.py does.
# Order, so that a file cannot make us allocate what it does not hold: the config against the limits, the
# network built from placeholders (no memory), its shapes against the file's tensors, the memory it will take
# against the load's budget, and only then the copies.

def check_limits(path, label, cfg):
    """`cfg` against the load's Limits, before anything (rules, shapes, memory) is derived from it."""
    try:
        check_config(cfg, current_limits())
    except ValueError as e:
        raise CheckpointError(path, f'{label}: {e} (see stylegan2_lib.checkpoints.Limits)') from None
    return cfg

def build_network(path, label, cfg, state, keep_constructed=(), owned=False):
    net_class = Generator if isinstance(cfg, GeneratorConfig) else Discriminator
    assert isinstance(cfg, (GeneratorConfig, DiscriminatorConfig))
    check_limits(path, label, cfg)
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
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(path, f'{label}: {k} is a {type(t).__name__}, not a tensor')
        if tuple(t.shape) != tuple(expected[k].shape):
            raise CheckpointError(path, f'{label}: {k} has shape {list(t.shape)}, the network needs {list(expected[k].shape)}')
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8)):
            raise CheckpointError(path, f'{label}: {k} holds {t.dtype}, not numbers')
    _charge(path, label, sum(t.numel() * t.element_size() for t in expected.values()))
    # Own copies: a pickle may hold one tensor for two networks (G_ema=G), which must not stay tied together.
    # `owned`: the loader made every tensor fresh and unshared (safetensors: one file entry each).
    values = {k: _own(t, expected[k].dtype, owned) for k, t in state.items()}
    constructed = ops.setup_filter(list(cfg.resample_filter))     # the only buffer a constructor derives (legacy.py)
    for k in expected.keys() - values.keys():
        assert k.endswith('resample_filter') and expected[k].shape == constructed.shape, k
        values[k] = constructed.clone()
    net.load_state_dict(values, assign=True)
    leftover = [name for name, t in [*net.named_parameters(), *net.named_buffers()] if is_placeholder(t)]
    assert not leftover, f'{label}: tensors never assigned: {leftover}'
    _warn_non_finite(path, label, values)
    return net.eval().requires_grad_(False)

def _charge(path, label, nbytes):
    scope = _scope.get()
    if scope is None:
        return
    scope.left -= nbytes
    if scope.left < 0:
        raise CheckpointError(path, f'{label}: the networks would take more memory ({nbytes / 2 ** 20:.0f} MiB for this one) '
                                    f'than {scope.limits.memory_factor}x the file\'s size allows (see stylegan2_lib.checkpoints.Limits)')

class NonFiniteWeightsWarning(UserWarning):
    """A loaded network holds NaN or infinite numbers (it loads: G_ema may be fine where D diverged)."""

def _warn_non_finite(path, label, values):
    # A sum is NaN or infinite when any term is (one pass, no temporary the size of the tensor); only then count.
    suspects = [(k, t) for k, t in values.items() if t.is_floating_point() and not torch.isfinite(t.sum())]
    bad = [(k, n) for k, n in ((k, int((~torch.isfinite(t)).sum())) for k, t in suspects) if n]
    if bad:
        names = ', '.join(f'{k} ({n} values)' for k, n in bad[:3]) + (f' and {len(bad) - 3} more tensors' if len(bad) > 3 else '')
        warnings.warn(f'{path}: {label} has NaN or infinite weights: {names}; its outputs will be too',
                      NonFiniteWeightsWarning, stacklevel=2)

def _own(t, dtype, owned):
    if owned and t.dtype == dtype and t.is_contiguous():
        return t
    return t.to(dtype).clone(memory_format=torch.contiguous_format)

#----------------------------------------------------------------------------
# Convert unpickled records (EasyDict, numpy scalars, namespaces) into plain JSON-friendly values.

# Bounded walks: nesting deeper than MAX_DEPTH (a file can nest lists a million deep, or make them contain
# themselves) is cut off, and so is everything after MAX_NODES values (40 levels of lists that each hold the
# next one twice are 2**40 values from a few hundred bytes); nothing from the file is repr()'d.

MAX_DEPTH = 32
MAX_NODES = 100_000

def plain(obj, depth=0, budget=None):
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        return '<truncated>'
    if depth > MAX_DEPTH:
        return '<nested too deep>'
    if isinstance(obj, NamespaceRecord):
        return plain(obj.as_dict(), depth + 1, budget)
    if isinstance(obj, dict):
        return {str(k)[:200]: plain(v, depth + 1, budget) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, depth + 1, budget) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, ArraySpec) and obj.array is not None:
        return obj.array.tolist() if obj.array.size <= 16 else f'<array {list(obj.array.shape)}>'
    if isinstance(obj, torch.Tensor):
        return obj.tolist() if obj.numel() <= 16 else f'<tensor {list(obj.shape)}>'
    if isinstance(obj, int) and abs(obj) > 2 ** 64:
        return '<large int>'
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return f'<{type(obj).__name__}>'

def take(path, kwargs, known, what):
    """Refuse options this library does not implement, rather than building a different network."""
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise CheckpointError(path, f'{what}: unsupported option(s) {unknown}')
    return kwargs

#----------------------------------------------------------------------------
# Channel tables from tensor shapes, so any table (not just the NVlabs formula) loads.

def generator_channels(state, img_resolution, weight_name):
    return {r: int(state[weight_name(r)].shape[0]) for r in block_resolutions(img_resolution)}
