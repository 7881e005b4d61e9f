"""Shared fixtures: the reference cases in tests/data (how they were made: tests/data/*/README.md), photos and fakes."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / 'data'
TINY32 = DATA / 'tiny32' / 'network-snapshot-000000.pkl'
ROSI32 = DATA / 'rosi32' / '000000.pt'

torch.set_num_threads(min(2, os.cpu_count() or 1))

# float32 on a GPU means float32 here: PyTorch lets cuDNN convolutions use TF32 by default (about 1e-3 relative
# error on Ampere and later), which the float32 comparisons' 1e-4 tolerance rightly rejects. Training switches
# TF32 the same way (off unless --tf32); the tests that check the flags themselves set and restore them.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


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


def assert_pkl_state(a, b):
    """An NVlabs .pkl read back: equal, except that the TF layout stores each affine (style) bias minus 1, as
    NVlabs's networks do, so a bias below 0.5 comes back within an ulp or so of 1 (b - 1 + 1 is not always b)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if k.endswith('affine.bias'):
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=1e-6, msg=k)
        else:
            assert torch.equal(sa[k], sb[k]), k


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob('*')) if Path(folder).exists() else []


def make_faces(folder, n, seed, eyes=True):
    """n little 32x32 'faces' (a disc of random colour and position on a random background, with two eyes)."""
    from PIL import Image
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:32, :32]
    for i in range(n):
        cx, cy, r = 16 + rng.randint(-3, 4), 16 + rng.randint(-3, 4), rng.randint(9, 13)
        img = np.full([32, 32, 3], rng.randint(150, 255, 3), np.uint8)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2] = rng.randint(0, 200, 3)
        for ex in ((cx - r // 2, cx + r // 2) if eyes else ()):
            img[(xx - ex) ** 2 + (yy - cy + r // 3) ** 2 < 4] = 0
        Image.fromarray(img).save(Path(folder) / f'{i:02d}.png')
    return folder


@pytest.fixture
def http_folder(tmp_path):
    """A folder served over HTTP on localhost: yields (folder, base_url); stands in for the internet."""
    import functools
    import http.server
    import threading
    served = tmp_path / 'served'
    served.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield served, f'http://127.0.0.1:{server.server_port}'
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_colab(monkeypatch):
    """google.colab with files.upload / files.download recorded, as Colab provides them."""
    import sys
    import types
    calls = {'downloaded': []}
    files = types.SimpleNamespace(upload=lambda: {'me.jpg': b'jpeg bytes', '../evil/x.png': b'png'},
                                  download=lambda path: calls['downloaded'].append(path))
    colab = types.ModuleType('google.colab')
    colab.files = files
    google = types.ModuleType('google')
    google.colab = colab
    monkeypatch.setitem(sys.modules, 'google', google)
    monkeypatch.setitem(sys.modules, 'google.colab', colab)
    return calls


@pytest.fixture
def fake_gdown(monkeypatch):
    """gdown.download as the real one behaves: a Drive file (here from `files`, id -> (name, bytes)) written
    under its Drive name into an output folder ending in '/', through a .part file; `fail_after` bytes
    written, then an error, stands in for a dropped connection."""
    import os
    import sys
    import types
    state = {'files': {}, 'calls': [], 'fail_after': None}
    def download(url=None, output=None, quiet=False, **kwargs):
        state['calls'].append(url)
        file_id = url.split('id=')[1]
        if file_id not in state['files']:
            raise RuntimeError('Cannot retrieve the public link of the file.')
        name, payload = state['files'][file_id]
        assert output.endswith(os.sep)
        part = os.path.join(output, name + 'xyz.part')
        with open(part, 'wb') as f:
            if state['fail_after'] is not None:
                f.write(payload[:state['fail_after']])
                raise ConnectionError('connection reset')
            f.write(payload)
        os.replace(part, os.path.join(output, name))
        return os.path.join(output, name)
    monkeypatch.setitem(sys.modules, 'gdown', types.SimpleNamespace(download=download, __version__='5.2.0'))
    return state
