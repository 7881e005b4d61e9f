"""`stylegan2-lib doctor`: every fact is reported, each against what Python / PyTorch / pip say themselves;
a machine without a GPU, a GPU machine without ninja (faked), a kernel build that fails or works (faked) and
a missing dlib each read plainly."""

import platform
import shutil
import sys
import types
import warnings

import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import doctor
from stylegan2_lib.cli import main
from stylegan2_lib.ops import cuda_build
from stylegan2_lib.train import speed

NAMES = ['stylegan2_lib', 'python', 'platform', 'torch', 'torch CUDA', 'cuDNN', 'bf16', 'ninja', 'nvcc', 'CUDA_HOME',
         'CUDA kernels', 'dlib', 'face_recognition_models', 'drawn-face detector', 'ipywidgets', 'gdown', 'onnxruntime', 'imageio-ffmpeg', 'Colab']


def facts_by_name(**kwargs):
    return {f.name: f for f in doctor.collect(**kwargs)}


@pytest.fixture
def t4_without_ninja(monkeypatch):
    """A CUDA build of PyTorch with one T4 visible, no ninja and no nvcc anywhere."""
    monkeypatch.delenv('STYLEGAN2_LIB_CUDA', raising=False)
    monkeypatch.setattr(torch.version, 'cuda', '12.4')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    t4 = types.SimpleNamespace(name='Tesla T4', major=7, minor=5, total_memory=15 * 2 ** 30)
    monkeypatch.setattr(torch.cuda, 'get_device_properties', lambda i: t4)
    monkeypatch.setattr(speed, 'cuda_native_bf16', lambda: False)
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    monkeypatch.setattr(cuda_build, '_pip_ninja_dir', lambda: None)


def test_every_fact_is_reported_as_the_sources_say():
    facts = doctor.collect()
    names = [f.name for f in facts]
    gpu = [n for n in names if n == 'GPU' or n.startswith('GPU ')]
    assert [n for n in names if n not in gpu] == NAMES and gpu
    assert all(isinstance(f.value, str) and f.value and f.ok in (True, False, None) for f in facts)
    by_name = {f.name: f for f in facts}
    assert by_name['torch'].value == torch.__version__
    assert by_name['python'].value.startswith(platform.python_version()) and sys.executable in by_name['python'].value
    assert by_name['stylegan2_lib'].value.startswith(sg.__version__)
    text = doctor.render(facts).splitlines()
    assert len(text) == len(facts)
    assert all(line[3:].startswith(f.name) and line.endswith(f.value) and line[:2] == doctor.MARKS[f.ok]
               for line, f in zip(text, facts))


def test_no_gpu_is_said_plainly(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.version, 'cuda', '12.4')                 # a CUDA build on a CPU runtime (Colab)
    monkeypatch.delenv('STYLEGAN2_LIB_CUDA', raising=False)
    facts = facts_by_name()
    assert facts['GPU'].value.startswith('none: no CUDA GPU is visible (on Colab: Runtime > Change runtime type > GPU)')
    assert 'CPU' in facts['bf16'].value
    kernels = facts['CUDA kernels']
    assert kernels.value.startswith('cannot build: no CUDA device is available') and kernels.ok is None


def test_a_gpu_without_ninja_names_ninja_as_the_reason(t4_without_ninja):
    facts = facts_by_name()
    assert facts['GPU 0'] == doctor.Fact('GPU 0', 'Tesla T4, compute capability 7.5, 15.0 GiB', True)
    assert facts['bf16'].value.startswith('not native on this GPU') and 'fp16' in facts['bf16'].value
    assert facts['ninja'].ok is False and facts['ninja'].value.startswith('not found (pip install ninja')
    assert facts['nvcc'] == doctor.Fact('nvcc', 'not found on PATH', False)
    assert facts['CUDA kernels'] == doctor.Fact(
        'CUDA kernels', 'cannot build: ninja is not installed (pip install ninja); the PyTorch path runs instead', False)
    assert '!! CUDA kernels' in doctor.render(list(facts.values()))


def test_build_reports_the_time_or_the_error(monkeypatch):
    monkeypatch.setattr(cuda_build, 'unavailable_reason', lambda require_device=True: None)
    assert 'doctor --build' in facts_by_name()['CUDA kernels'].value               # not built unless asked
    def failing():
        warnings.warn('stylegan2_lib: CUDA kernels unavailable (nvcc fatal: unsupported gpu architecture)',
                      cuda_build.CudaKernelWarning)
    monkeypatch.setattr(cuda_build, 'extension', failing)
    failed = facts_by_name(build=True)['CUDA kernels']
    assert failed.ok is False and failed.value.startswith('build failed after ')
    assert failed.value.endswith('(nvcc fatal: unsupported gpu architecture)')
    monkeypatch.setattr(cuda_build, 'extension', lambda: object())
    built = facts_by_name(build=True)['CUDA kernels']
    assert built.ok is True and built.value.startswith('built and loaded in ')


def test_a_missing_dlib_and_a_failing_reader_are_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, 'dlib', None)                         # import dlib raises ImportError
    dlib = facts_by_name()['dlib']
    assert dlib.ok is False and 'stylegan2_lib[align]' in dlib.value
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)          # a GPU whose properties cannot be read
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    def unreadable(index):
        raise RuntimeError('CUDA error: unknown error')
    monkeypatch.setattr(torch.cuda, 'get_device_properties', unreadable)
    gpu = facts_by_name()['GPU']
    assert gpu.ok is False and gpu.value == 'could not tell: RuntimeError: CUDA error: unknown error'


def test_the_command_prints_the_report(capsys):
    assert main(['doctor']) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out and 'CUDA kernels' in out
