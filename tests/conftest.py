"""Shared fixtures: the reference cases copied from shared/reference (see tests/data/*/README.md)."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / 'data'
TINY32 = DATA / 'tiny32' / 'network-snapshot-000000.pkl'
ROSI32 = DATA / 'rosi32' / '000000.pt'

torch.set_num_threads(min(2, os.cpu_count() or 1))


def assert_close_ref(actual, expected, name=''):
    """The issue's tolerance: max|diff| <= 1e-4 * max(1, max|expected|)."""
    actual = actual.detach().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    tol = 1e-4 * max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(actual - expected).max())
    assert err <= tol, f'{name}: max|diff| {err:.3g} > {tol:.3g}'


@pytest.fixture(scope='session')
def tiny32():
    import stylegan2_lib as sg
    return sg.load(TINY32)


@pytest.fixture(scope='session')
def tiny32_expected():
    return dict(np.load(DATA / 'tiny32' / 'expected.npz'))


@pytest.fixture(scope='session')
def rosi32():
    import stylegan2_lib as sg
    return sg.load(ROSI32)


@pytest.fixture(scope='session')
def rosi32_expected():
    return dict(np.load(DATA / 'rosi32' / 'expected.npz'))
