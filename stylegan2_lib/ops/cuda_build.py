"""Just-in-time build of the CUDA kernels in ops/cuda/ (bias_act, upfirdn2d), on first use only.

    ext = extension()      # the compiled module, or None (after ONE warning per process) when it cannot be had

Nothing is built or imported at import time (torch.utils.cpp_extension is imported on the first call). The
build uses torch.utils.cpp_extension.load (ninja) and is cached: in STYLEGAN2_LIB_CUDA_CACHE if set, else in
torch's default extension directory (TORCH_EXTENSIONS_DIR, or ~/.cache/torch_extensions/py3X_cuXXX). The
module name carries a hash of the sources, so an edited kernel never loads a stale build. No CUDA device, a
CPU-only or ROCm PyTorch, no nvcc, no ninja, STYLEGAN2_LIB_CUDA=0 or a failed build -> a CudaKernelWarning
naming the reason, extension() returns None from then on (the ops use their PyTorch path), and the build is
never retried in this process. tools/check_cuda_build.py builds without a GPU (compile check).
"""

import hashlib
import os
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch

SOURCE_DIR = Path(__file__).resolve().parent / 'cuda'
SOURCES = ('bindings.cpp', 'bias_act.cu', 'upfirdn2d.cu')
EMULATION_SOURCES = ('bindings.cpp', 'cpu_emulation.cpp')    # tests only: build_cpu_emulation()
HEADERS = ('common.h', 'bias_act.h', 'upfirdn2d.h', 'launch.h')


class CudaKernelWarning(UserWarning):
    """The CUDA kernels could not be used; the PyTorch path runs instead."""


class CudaBuildUnavailable(RuntimeError):
    """A precondition of the build is missing (the message is the reason)."""


_lock = threading.Lock()
_state = {'tried': False, 'module': None, 'error': None}

#----------------------------------------------------------------------------
# Why the build cannot run here, or None.

def unavailable_reason(require_device=True):
    if os.environ.get('STYLEGAN2_LIB_CUDA', '1').strip().lower() in ('0', 'off', 'false', 'no'):
        return 'disabled by STYLEGAN2_LIB_CUDA=0'
    if getattr(torch.version, 'hip', None):
        return f'ROCm PyTorch {torch.__version__} is not supported (CUDA only)'
    if torch.version.cuda is None:
        return f'PyTorch {torch.__version__} is built without CUDA'
    if _torch_major_minor() < (2, 0):
        return f'PyTorch {torch.__version__} is too old (2.0 or newer needed)'
    if require_device and not torch.cuda.is_available():
        return 'no CUDA device is available'
    if shutil.which('ninja') is None and _pip_ninja_dir() is None:
        return 'ninja is not installed (pip install ninja)'
    if _cuda_home() is None:
        return 'no CUDA toolkit found (nvcc with CUDA headers; set CUDA_HOME)'
    return None


def _torch_major_minor():
    try:
        return tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2])
    except ValueError:
        return (99, 0)                                  # an unparsable (development) version: let the build decide


def _pip_ninja_dir():
    """The folder of the pip package's ninja binary (not on PATH when a venv's python runs unactivated)."""
    try:
        import ninja
        return getattr(ninja, 'BIN_DIR', None)
    except ImportError:
        return None

#----------------------------------------------------------------------------
# The CUDA toolkit: CUDA_HOME / CUDA_PATH, else the folder above nvcc (through symlinks), else /usr/local/cuda;
# it must hold bin/nvcc and include/cuda_runtime.h. (torch guesses the folder above `which nvcc`, which for a
# wrapper script such as /usr/local/bin/nvcc has no CUDA headers.)

def _is_toolkit(path):
    return path and (Path(path) / 'bin' / 'nvcc').exists() and (Path(path) / 'include' / 'cuda_runtime.h').exists()


def _cuda_home():
    for var in ('CUDA_HOME', 'CUDA_PATH'):
        if os.environ.get(var):
            return os.environ[var] if _is_toolkit(os.environ[var]) else None
    nvcc = shutil.which('nvcc')
    candidates = [str(Path(os.path.realpath(nvcc)).parent.parent)] if nvcc else []
    candidates.append('/usr/local/cuda')
    return next((c for c in candidates if _is_toolkit(c)), None)

#----------------------------------------------------------------------------
# Build (or load the cached build of) the extension. Raises on failure; extension() is the forgiving front.

def _cpp_extension():
    """torch.utils.cpp_extension, imported (first use only) with ninja on PATH and a usable CUDA_HOME."""
    if shutil.which('ninja') is None and _pip_ninja_dir() is not None:   # cpp_extension runs `ninja` by name
        os.environ['PATH'] = _pip_ninja_dir() + os.pathsep + os.environ.get('PATH', '')
    home = _cuda_home()
    if home and 'torch.utils.cpp_extension' not in sys.modules and not os.environ.get('CUDA_HOME'):
        os.environ['CUDA_HOME'] = home                  # read by cpp_extension when it is first imported
    from torch.utils import cpp_extension
    if home and not _is_toolkit(cpp_extension.CUDA_HOME):
        cpp_extension.CUDA_HOME = home                  # its guess (e.g. /usr/local for a wrapper script) has no headers
    return cpp_extension


def source_hash(sources=SOURCES):
    """Of the files one build compiles (a stale build is never loaded: the module name carries it)."""
    h = hashlib.sha256()
    for name in sorted(set(sources + HEADERS)):
        h.update(name.encode() + b'\0' + (SOURCE_DIR / name).read_bytes())
    return h.hexdigest()[:10]


def build(verbose=False, require_device=True, build_directory=None):
    reason = unavailable_reason(require_device)
    if reason:
        raise CudaBuildUnavailable(reason)
    cpp_extension = _cpp_extension()
    if not _is_toolkit(cpp_extension.CUDA_HOME):
        raise CudaBuildUnavailable(f'torch.utils.cpp_extension uses CUDA_HOME={cpp_extension.CUDA_HOME!r}, which has '
                                   f'no nvcc and CUDA headers (set CUDA_HOME)')
    name = f'stylegan2_lib_ops_{source_hash()}'
    if build_directory is None and os.environ.get('STYLEGAN2_LIB_CUDA_CACHE'):
        build_directory = os.path.join(os.environ['STYLEGAN2_LIB_CUDA_CACHE'], name)
    if build_directory is not None:
        os.makedirs(build_directory, exist_ok=True)
    return cpp_extension.load(
        name=name, sources=[str(SOURCE_DIR / s) for s in SOURCES], extra_include_paths=[str(SOURCE_DIR)],
        extra_cflags=['-O3'], extra_cuda_cflags=['-O3'], build_directory=build_directory, verbose=verbose)

#----------------------------------------------------------------------------
# The same bindings and per-element maths compiled for the CPU (plain loops, no CUDA needed): lets the tests
# check the kernels' arithmetic and the autograd wrappers on a machine without a GPU. Not used by the ops.

def build_cpu_emulation(verbose=False, build_directory=None):
    cpp_extension = _cpp_extension()
    name = f'stylegan2_lib_ops_cpu_{source_hash(EMULATION_SOURCES)}'
    return cpp_extension.load(
        name=name, sources=[str(SOURCE_DIR / s) for s in EMULATION_SOURCES],
        extra_include_paths=[str(SOURCE_DIR)], extra_cflags=['-O2', '-DSG2_CPU_EMULATION'], with_cuda=False,
        build_directory=build_directory, verbose=verbose)

#----------------------------------------------------------------------------
# The module, built on the first call; None (one warning, no retries) when that is impossible or fails.

def extension():
    if _state['tried']:
        return _state['module']
    with _lock:
        if not _state['tried']:
            try:
                _state['module'] = build()
            except Exception as e:                      # noqa: BLE001 (never in the way: fall back)
                _state['error'] = e
                warnings.warn(f'stylegan2_lib: CUDA kernels unavailable ({_summary(e)}); bias_act and upfirdn2d '
                              f'use the PyTorch path', CudaKernelWarning, stacklevel=3)
            _state['tried'] = True
    return _state['module']


def failure():
    """The exception of the failed build, or None (not tried yet, or built)."""
    return _state['error']


def reset():
    """Forget the outcome so the next extension() call tries again (tests; after installing a compiler)."""
    with _lock:
        _state.update(tried=False, module=None, error=None)


def _summary(e, limit=600):
    text = str(e).strip() or type(e).__name__
    lines = text.splitlines()
    errors = [ln.strip() for ln in lines[1:] if 'error' in ln.lower()][:3]
    out = '; '.join([lines[0].strip()] + errors)
    return out if len(out) <= limit else out[:limit] + '...'
