"""`sg.load` detects the format from the bytes, not the file name, and returns one API for every format."""

import shutil

import pytest
import torch

import stylegan2_lib as sg
from conftest import ROSI32, TINY32


@pytest.mark.parametrize('source, fmt', [(TINY32, 'nvlabs'), (ROSI32, 'rosinality')])
@pytest.mark.parametrize('name', ['model.pt', 'model.pkl', 'model.safetensors', 'model'])
def test_misleading_names(tmp_path, source, fmt, name):
    p = tmp_path / name
    shutil.copy(source, p)
    ck = sg.load(p)
    assert ck.meta['format'] == fmt and ck.meta['source'] == str(p)
    assert isinstance(ck.G_ema, sg.Generator)


def test_native_file_under_a_pickle_name(tmp_path, tiny32):
    p = tmp_path / 'looks-like-nvlabs.pkl'
    sg.save(p, G_ema=tiny32.G_ema)
    ck = sg.load(p)
    assert ck.meta['format'] == 'native' and ck.G is None and ck.D is None


def test_networks_come_back_in_eval_mode_without_grad(tiny32, rosi32):
    for ck in (tiny32, rosi32):
        for net in ck.networks().values():
            assert not net.training
            assert not any(p.requires_grad for p in net.parameters())


def test_load_to_device(tmp_path):
    ck = sg.load(TINY32, device='cpu')
    assert all(p.device == torch.device('cpu') for p in ck.G_ema.parameters())
