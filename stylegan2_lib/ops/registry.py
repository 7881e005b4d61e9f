"""One table of implementations per op, so fast paths slot in behind the same public functions.

impl=None picks the op's default, which may depend on the device of the op's input: `set_cuda_default_impl`
names the implementation used for CUDA tensors (the JIT-built kernels), the plain default serves every other
device. `use_impl(name)` overrides both for a block of code.
"""

import contextlib

_IMPLS = {}           # op name -> {impl name -> function}
_DEFAULTS = {}        # op name -> impl name used when impl=None
_CUDA_DEFAULTS = {}   # op name -> impl name used when impl=None and the input is a CUDA tensor

#----------------------------------------------------------------------------
# Register `fn` as implementation `impl` of `op`; the first one registered is the default.

def register_impl(op, impl, fn):
    table = _IMPLS.setdefault(op, {})
    table[impl] = fn
    _DEFAULTS.setdefault(op, impl)
    return fn

def available_impls(op):
    return sorted(_IMPLS.get(op, {}))

def set_default_impl(op, impl):
    if impl not in _IMPLS.get(op, {}):
        raise ValueError(f'{op}: unknown impl {impl!r}; available: {available_impls(op)}')
    _DEFAULTS[op] = impl

def get_default_impl(op):
    return _DEFAULTS[op]

def set_cuda_default_impl(op, impl):
    """Use `impl` for CUDA tensors when impl=None (None: the plain default there too)."""
    if impl is None:
        _CUDA_DEFAULTS.pop(op, None)
        return
    if impl not in _IMPLS.get(op, {}):
        raise ValueError(f'{op}: unknown impl {impl!r}; available: {available_impls(op)}')
    _CUDA_DEFAULTS[op] = impl

def selected_impl(op, device=None):
    """The name impl=None resolves to for an input on `device` (None: the plain default)."""
    if device is not None and device.type == 'cuda' and op in _CUDA_DEFAULTS:
        return _CUDA_DEFAULTS[op]
    return _DEFAULTS[op]

#----------------------------------------------------------------------------
# Look up the function for `op`; impl=None means the current default for an input on `device`.

def resolve(op, impl=None, device=None):
    name = selected_impl(op, device) if impl is None else impl
    try:
        return _IMPLS[op][name]
    except KeyError:
        raise ValueError(f'{op}: unknown impl {name!r}; available: {available_impls(op)}') from None

#----------------------------------------------------------------------------
# Temporarily make `impl` the default of every op that has it, on every device (e.g. use_impl('ref') runs the whole
# network on the reference path, which is how tests and benchmarks compare paths); restores on exit.

@contextlib.contextmanager
def use_impl(impl):
    saved, saved_cuda = dict(_DEFAULTS), dict(_CUDA_DEFAULTS)
    try:
        for op, table in _IMPLS.items():
            if impl in table:
                _DEFAULTS[op] = impl
                _CUDA_DEFAULTS.pop(op, None)        # an explicit choice holds on every device
        yield
    finally:
        _DEFAULTS.clear()
        _DEFAULTS.update(saved)
        _CUDA_DEFAULTS.clear()
        _CUDA_DEFAULTS.update(saved_cuda)
