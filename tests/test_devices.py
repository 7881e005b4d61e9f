"""devices.default_device: the one rule for 'which device' (CUDA when PyTorch sees one), with CUDA's
availability faked both ways; on_device copies a network instead of moving the caller's."""

import pytest
import torch

from stylegan2_lib import devices
from stylegan2_lib.devices import DeviceUnavailable, default_device, on_device


@pytest.fixture
def cuda_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


def test_auto_is_cuda_when_a_gpu_is_visible(cuda_visible):
    assert default_device() == default_device('auto') == torch.device('cuda')
    assert default_device('cuda:1') == torch.device('cuda', 1)
    assert default_device('cpu') == torch.device('cpu')                        # an explicit choice is kept


def test_auto_is_the_cpu_without_one_and_cuda_is_refused_with_the_reason(no_cuda, monkeypatch):
    assert default_device() == default_device('auto') == torch.device('cpu')
    monkeypatch.setattr(torch.version, 'cuda', None)
    with pytest.raises(DeviceUnavailable, match=r"device 'cuda': CUDA is not available here \(PyTorch .* is built without CUDA\)"):
        default_device('cuda')
    monkeypatch.setattr(torch.version, 'cuda', '12.4')
    with pytest.raises(DeviceUnavailable, match='no CUDA GPU is visible') as caught:
        default_device(torch.device('cuda'))
    assert caught.value.reason.startswith('no CUDA GPU is visible')


def test_other_devices_pass_through_and_nonsense_is_torch_s_error():
    assert default_device('meta') == torch.device('meta')
    with pytest.raises(RuntimeError):
        default_device('gpu')


def test_on_device_copies_instead_of_moving_the_callers_network():
    net = torch.nn.Linear(2, 2)
    assert on_device(net, 'cpu') is net and on_device(None, 'cpu') is None
    moved = on_device(net, 'meta')
    assert moved is not net and moved.weight.device.type == 'meta' and net.weight.device.type == 'cpu'


def test_describe_device_names_the_cpu_threads():
    assert devices.describe_device('cpu') == f'cpu ({torch.get_num_threads()} threads)'
