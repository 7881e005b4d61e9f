"""ONNX export (issue 18, point 3): the generator graph (z, truncation_psi -> img) and the synthesis graph
(ws -> img) run in onnxruntime on the CPU within the issue's tolerance of PyTorch (1e-4 * max(1, max|ref|)),
at batch sizes other than the traced one; bad requests name the problem and write nothing; the write is atomic."""

import importlib
import os

import numpy as np
import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import files
from stylegan2_lib.cli import main
from stylegan2_lib.checkpoints import ExportError

from conftest import TINY32, assert_close_ref


def _require(name):
    """The module, or a skip saying why it does not import (a failure where STYLEGAN2_LIB_REQUIRE_ONNX=1: the
    test extra installs onnx, onnxscript and onnxruntime, so there these tests must run)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        why = f'{name} does not import here ({type(e).__name__}: {str(e)[:120]}): pip install "stylegan2_lib[onnx,test]"'
        if os.environ.get('STYLEGAN2_LIB_REQUIRE_ONNX') == '1':
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope='module')
def ort():
    _require('onnx')
    _require('onnxscript')
    return _require('onnxruntime')


def _session(ort, path):
    return ort.InferenceSession(os.fspath(path), providers=['CPUExecutionProvider'])


def _z(G, seed, n):
    return torch.from_numpy(np.random.RandomState(seed).randn(n, G.z_dim).astype(np.float32))


def _small(c_dim=0, seed=0):
    """An 8x8 generator (two blocks): quick to trace, for the CLI and the fixed-psi graph."""
    cfg = sg.GeneratorConfig(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=8, channels={4: 8, 8: 8}, mapping_layers=2)
    torch.manual_seed(seed)
    G = sg.Generator(cfg).eval()
    G.mapping.w_avg.copy_(torch.randn(cfg.w_dim))          # a fresh network's w_avg is zero: truncation would hide
    return G


@pytest.fixture(scope='module')
def tiny32_G():
    return sg.load(TINY32).G_ema


@pytest.fixture(scope='module')
def generator_onnx(ort, tiny32_G, tmp_path_factory):
    path = tmp_path_factory.mktemp('onnx') / 'tiny32.onnx'
    w_avg, training = tiny32_G.mapping.w_avg.clone(), tiny32_G.training
    assert sg.export(path, tiny32_G) == 'onnx'
    assert torch.equal(tiny32_G.mapping.w_avg, w_avg) and tiny32_G.training == training     # G left as it was
    return path


@pytest.fixture(scope='module')
def synthesis_onnx(ort, tiny32_G, tmp_path_factory):
    path = tmp_path_factory.mktemp('onnx') / 'tiny32-synthesis.onnx'
    sg.export(path, tiny32_G, onnx_graph='synthesis')
    return path

#----------------------------------------------------------------------------
# Parity with PyTorch (noise_mode='const'), batch 1 and 3 (traced at 2), several seeds.

def test_generator_graph_matches_torch(ort, tiny32_G, generator_onnx):
    sess = _session(ort, generator_onnx)
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [('z', ['batch', tiny32_G.z_dim]), ('truncation_psi', [])]
    for seed, n in ((0, 1), (1, 3), (2, 3)):
        z = _z(tiny32_G, seed, n)
        outs = {}
        for psi in (1.0, 0.5):
            with torch.no_grad():
                ref = tiny32_G(z, truncation_psi=psi, noise_mode='const')
            outs[psi] = sess.run(['img'], {'z': z.numpy(), 'truncation_psi': np.array(psi, np.float32)})[0]
            assert outs[psi].shape == (n, 3, 32, 32)
            assert_close_ref(outs[psi], ref.numpy(), f'seed {seed} batch {n} psi {psi}')
        assert np.abs(outs[1.0] - outs[0.5]).max() > 0.1                  # psi is honoured, not baked in


def test_synthesis_graph_matches_torch(ort, tiny32_G, synthesis_onnx):
    sess = _session(ort, synthesis_onnx)
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [('ws', ['batch', tiny32_G.num_ws, tiny32_G.w_dim])]
    for seed, n in ((3, 1), (4, 3)):
        with torch.no_grad():
            ws = tiny32_G.mapping(_z(tiny32_G, seed, n), None, truncation_psi=0.7)
            ws = ws + 0.3 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(seed))     # W+, rows differ
            ref = tiny32_G.synthesis(ws, noise_mode='const')
        assert_close_ref(sess.run(None, {'ws': ws.numpy()})[0], ref.numpy(), f'seed {seed} batch {n}')


def test_graphs_use_standard_onnx_operators_only(ort, generator_onnx, synthesis_onnx):
    import onnx
    for path in (generator_onnx, synthesis_onnx):
        model = onnx.load(os.fspath(path))
        onnx.checker.check_model(model)
        assert {node.domain for node in model.graph.node} <= {'', 'ai.onnx'}, path
        assert {o.domain: o.version for o in model.opset_import}.get('', None) == 18
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta['noise'] == 'const' and meta['img_resolution'] == '32'


#----------------------------------------------------------------------------
# The convert command.

def test_convert_writes_an_onnx_file(ort, tmp_path, capsys):
    """The CLI with psi fixed in the graph and a cutoff: z is the only input, rows >= cutoff untruncated."""
    G = _small(seed=1)
    src, out = tmp_path / 'small.safetensors', tmp_path / 'small.onnx'
    sg.save(src, G_ema=G)
    assert main(['convert', str(src), str(out), '--trunc', '0.5', '--trunc-cutoff', '2']) == 0
    stdout, err = capsys.readouterr()
    assert 'onnx generator graph: z -> img' in stdout and err == ''
    sess = _session(ort, out)
    assert [i.name for i in sess.get_inputs()] == ['z']
    for seed, n in ((5, 1), (6, 3)):
        z = _z(G, seed, n)
        with torch.no_grad():
            ref = G(z, truncation_psi=0.5, truncation_cutoff=2, noise_mode='const')
            every_row = G(z, truncation_psi=0.5, noise_mode='const')
        img = sess.run(None, {'z': z.numpy()})[0]
        assert_close_ref(img, ref.numpy(), f'seed {seed} batch {n}')
        assert np.abs(img - every_row.numpy()).max() > 1e-3               # the cutoff is honoured


def test_convert_refuses_onnx_flags_for_other_formats(ort, tmp_path, capsys):
    src = tmp_path / 'small.safetensors'
    sg.save(src, G_ema=_small())
    for argv, words in ((['convert', src, tmp_path / 'x.pkl', '--onnx-graph', 'synthesis'], 'only for an ONNX file'),
                        (['convert', src, tmp_path / 'x.onnx', '--onnx-graph', 'synthesis', '--trunc', '0.5'],
                         "apply to graph='generator' only"),
                        (['convert', src, tmp_path / 'x.onnx', '--trunc-cutoff', '99'], 'truncation_cutoff')):
        assert main([str(a) for a in argv]) == 1
        err = capsys.readouterr().err
        assert words in err and 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['small.safetensors']

#----------------------------------------------------------------------------
# Bad requests: one clear error, no file (checked before tracing).

def test_bad_requests_write_nothing(ort, tmp_path):
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    cases = [(_small(c_dim=3), tmp_path / 'cond.onnx', {}, 'conditional'),
             (_small(), tmp_path / 'g.onnx', {'onnx_graph': 'mapping'}, "unknown ONNX graph 'mapping'"),
             (_small(), tmp_path / 'g.onnx', {'truncation_psi': float('nan')}, 'finite'),
             (_small(), blocker / 'g.onnx', {}, 'is not a directory'),
             (_small(), tmp_path, {'format': 'onnx'}, 'is a directory'),
             (_small(), tmp_path / 'g.pkl', {'onnx_graph': 'synthesis'}, 'unexpected options')]
    for G, path, options, words in cases:
        with pytest.raises(ExportError, match=words) as e:
            sg.export(path, G, **options)
        assert str(path) in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a-file']


#----------------------------------------------------------------------------
# Atomic: a failure while tracing or while writing leaves no file and no temporary file, and an existing
# file as it was.

def test_failures_leave_no_partial_file(ort, tmp_path, monkeypatch):
    path = tmp_path / 'g.onnx'
    path.write_bytes(b'old')

    def broken_export(*args, **kwargs):
        raise RuntimeError('tracing failed')
    monkeypatch.setattr(torch.onnx, 'export', broken_export)
    with pytest.raises(RuntimeError, match='tracing failed'):
        sg.export(path, _small())
    monkeypatch.undo()

    monkeypatch.setattr('stylegan2_lib.checkpoints.onnx.onnx_bytes', lambda *args: b'x' * 100_000)

    def broken_fsync(fd):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(files.os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='No space left'):
        sg.export(path, _small())
    assert path.read_bytes() == b'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['g.onnx']
