"""One table of implementations per op, so fast paths slot in behind the same public functions."""

import contextlib

_IMPLS = {}       # op name -> {impl name -> function}
_DEFAULTS = {}    # op name -> impl name used when impl=None

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

#----------------------------------------------------------------------------
# Look up the function for `op`; impl=None means the current default.

def resolve(op, impl=None):
    name = _DEFAULTS[op] if impl is None else impl
    try:
        return _IMPLS[op][name]
    except KeyError:
        raise ValueError(f'{op}: unknown impl {name!r}; available: {available_impls(op)}') from None

#----------------------------------------------------------------------------
# Temporarily make `impl` the default of every op that has it (e.g. use_impl('ref') runs the whole
# network on the reference path, which is how tests and benchmarks compare paths); restores on exit.

@contextlib.contextmanager
def use_impl(impl):
    saved = dict(_DEFAULTS)
    try:
        for op, table in _IMPLS.items():
            if impl in table:
                _DEFAULTS[op] = impl
        yield
    finally:
        _DEFAULTS.clear()
        _DEFAULTS.update(saved)
