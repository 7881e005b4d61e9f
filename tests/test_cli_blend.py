"""`stylegan2-lib blend` and `stylegan2-lib convert` (the bundled demo pair itself is tested in test_demo.py):
written files are checked by loading them back and comparing renders with blends and images computed here independently;
bad inputs must give exit status 1, one clear stderr line and no files at all."""

import errno
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylegan2_lib as sg
from conftest import assert_pkl_state, files_under
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY32 = ROOT / 'tests' / 'data' / 'tiny32' / 'network-snapshot-000000.pkl'

# How blend_preview lays out its grid: tiles enlarged (nearest neighbour, integer factor) to at least 96
# pixels, 2-pixel gaps, a 14-pixel label strip on top.
MIN_TILE, PAD, LABEL = 96, 2, 14


def run_main(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def read_png(path):
    return np.asarray(Image.open(path).convert('RGB'))


def latents(seeds, z_dim):
    """z as NVlabs generate.py draws it, written out here rather than taken from the library."""
    return torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds])).float()


@torch.no_grad()
def render(G, seeds=(0, 1, 2), psi=0.7):
    return G(latents(seeds, G.z_dim), None, truncation_psi=psi, noise_mode='const')


def assert_refused(rc, err, words, outdir):
    """Exit status 1, one line on stderr naming each of `words`, and nothing under `outdir`."""
    assert rc == 1
    assert err.startswith('stylegan2-lib: error: ') and len(err.strip().splitlines()) == 1, err
    assert 'Traceback' not in err and all(w in err for w in words), (words, err)
    assert not outdir.exists(), files_under(outdir)


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k




@pytest.fixture(scope='module')
def tiny32_ck():
    return sg.load(TINY32)


@pytest.fixture
def tiny32_high(tmp_path, tiny32_ck):
    """The reference pickle's G (not G_ema) alone, as the --high of a blend whose --low is the pickle."""
    path = tmp_path / 'tiny32-G.safetensors'
    sg.save(path, G_ema=tiny32_ck.G)
    return path

#----------------------------------------------------------------------------
# blend: the written file renders like sg.blend computed here.

@pytest.mark.parametrize('ext', ['.pkl', '.safetensors'])
def test_blend_bundled_pair(capsys, tmp_path, ext):
    out = tmp_path / 'out' / f'blend{ext}'
    rc, stdout, err = run_main(capsys, 'blend', '--resolution', 16, '--out', out, '--device', 'cpu')
    assert rc == 0, err
    assert files_under(tmp_path / 'out') == [out.name]
    low, high = sg.load(DEMO_BASE).G_ema, sg.load(DEMO_TOON).G_ema
    expected = sg.blend(low, high, 16)
    ck = sg.load(out)
    if ext == '.pkl':
        assert_pkl_state(ck.G_ema, expected)
        torch.testing.assert_close(render(ck.G_ema), render(expected), rtol=0, atol=1e-5)
    else:
        assert_same_state(ck.G_ema, expected)
        assert torch.equal(render(ck.G_ema), render(expected))
    assert not torch.equal(render(expected), render(low)) and not torch.equal(render(expected), render(high))
    if ext == '.safetensors':
        assert list(ck.networks()) == ['G_ema']
        assert ck.meta['blend'] == {'low': 'demo-base.safetensors', 'high': 'demo-toon.safetensors',
                                    'resolution': 16, 'width': None, 'mapping': 'low'}
    else:
        # NVlabs's loader wants (G, D, Gs): G is a copy of the blend, D an untrained placeholder, said on stderr.
        assert ck.meta['format'] == 'tensorflow'
        assert_pkl_state(ck.G, expected)
        assert ck.D is not None
        assert 'warning' in err and 'placeholder' in err
    assert 'wrote' in stdout and str(out) in stdout


def test_blend_tiny32_smooth_mapping_high(capsys, tmp_path, tiny32_ck, tiny32_high):
    out = tmp_path / 'blend.safetensors'
    rc, _, err = run_main(capsys, 'blend', '--low', TINY32, '--high', tiny32_high, '--resolution', 8, '--width', 0.7,
                          '--mapping', 'high', '--out', out)
    assert rc == 0, err
    expected = sg.blend(tiny32_ck.G_ema, tiny32_ck.G, 8, width=0.7, mapping='high')
    G = sg.load(out).G_ema
    assert_same_state(G, expected)
    assert torch.equal(render(G), render(expected))
    # and it is the smooth blend: b32.conv0 (position 6, centre 3.5) is a mixture, not a copy
    y = 1 / (1 + math.exp(-(6 - 3.5) / 0.7))
    torch.testing.assert_close(G.synthesis.b32.conv0.weight,
                               (1 - y) * tiny32_ck.G_ema.synthesis.b32.conv0.weight + y * tiny32_ck.G.synthesis.b32.conv0.weight)
    assert sg.load(out).meta['blend'] == {'low': TINY32.name, 'high': tiny32_high.name, 'resolution': 8, 'width': 0.7, 'mapping': 'high'}


def test_blend_format_option(capsys, tmp_path):
    out = tmp_path / 'blend.bin'
    rc, _, err = run_main(capsys, 'blend', '--resolution', 8, '--out', out, '--format', 'native')
    assert rc == 0, err
    assert sg.load(out).meta['format'] == 'native'
    assert_same_state(sg.load(out).G_ema, sg.blend(sg.load(DEMO_BASE).G_ema, sg.load(DEMO_TOON).G_ema, 8))

#----------------------------------------------------------------------------
# blend --preview: rows = seeds, columns = low | swap at every resolution below the top | high.

def _tile(grid, row, col, size):
    top, left = LABEL + row * (size + PAD), col * (size + PAD)
    return grid[top: top + size, left: left + size]


@pytest.mark.parametrize('case', ['bundled', 'tiny32'])
def test_preview(capsys, tmp_path, tiny32_ck, tiny32_high, case):
    seeds = [0, 3, 4]
    low_path, high_path = (DEMO_BASE, DEMO_TOON) if case == 'bundled' else (TINY32, tiny32_high)
    preview = tmp_path / 'out' / 'preview.png'
    rc, _, err = run_main(capsys, 'blend', '--low', low_path, '--high', high_path, '--resolution', 16,
                          '--out', tmp_path / 'out' / 'blend.safetensors', '--preview', preview, '--seeds', '0,3-4', '--trunc', 0.6)
    assert rc == 0, err
    assert files_under(tmp_path / 'out') == ['blend.safetensors', 'preview.png']
    low, high = sg.load(low_path).generator, sg.load(high_path).generator
    swaps = low.synthesis.block_resolutions[:-1]
    assert swaps == [4, 8, 16]
    cols, size = 2 + len(swaps), -(-MIN_TILE // low.img_resolution) * low.img_resolution     # 5 columns of 96x96
    grid = read_png(preview)
    assert grid.shape == (LABEL + len(seeds) * (size + PAD) - PAD, cols * (size + PAD) - PAD, 3)

    def enlarged(imgs):
        k = size // low.img_resolution
        return sg.to_uint8(imgs).repeat(k, axis=1).repeat(k, axis=2)

    # First column: the low generator's images for these seeds, computed independently.
    first = enlarged(render(low, seeds, psi=0.6))
    for r in range(len(seeds)):
        np.testing.assert_array_equal(_tile(grid, r, 0, size), first[r])
    # The other columns render the same w (low's mapping) with the blended / high synthesis.
    with torch.no_grad():
        ws = low.mapping(latents(seeds, low.z_dim), None, truncation_psi=0.6)
        others = [sg.blend(low, high, res).synthesis(ws, noise_mode='const') for res in swaps] + [high.synthesis(ws, noise_mode='const')]
    for c, imgs in enumerate(others, start=1):
        imgs = enlarged(imgs)
        for r in range(len(seeds)):
            np.testing.assert_array_equal(_tile(grid, r, c, size), imgs[r])
    # Labels: dark text in the strip above every column.
    for c in range(cols):
        strip = grid[:LABEL, c * (size + PAD): c * (size + PAD) + size]
        assert (strip < 128).any(), c


def test_blend_command_as_process(tmp_path):
    # `blend` with the bundled pair as defaults, run as a process from an empty folder.
    r = subprocess.run([sys.executable, '-m', 'stylegan2_lib', 'blend', '--resolution', '16', '--out', 'out/blend.pkl',
                        '--preview', 'out/preview.png'], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, 'PYTHONPATH': str(ROOT)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert files_under(tmp_path / 'out') == ['blend.pkl', 'preview.png']
    assert_pkl_state(sg.load(tmp_path / 'out' / 'blend.pkl').G_ema, sg.blend(sg.load(DEMO_BASE).G_ema, sg.load(DEMO_TOON).G_ema, 16))
    assert read_png(tmp_path / 'out' / 'preview.png').shape == (LABEL + 6 * 98 - 2, 5 * 98 - 2, 3)

#----------------------------------------------------------------------------
# blend failures: exit 1, one line naming the problem, nothing written (neither --out nor --preview).

def _other_resolution(tmp_path):
    cfg = sg.GeneratorConfig(z_dim=64, w_dim=64, img_resolution=16, channels={4: 32, 8: 32, 16: 32}, mapping_layers=2)
    torch.manual_seed(0)
    path = tmp_path / 'net16.safetensors'
    sg.save(path, G_ema=sg.Generator(cfg).eval())
    return path


def _z_ne_w(tmp_path):
    path = tmp_path / 'z-ne-w.safetensors'
    torch.manual_seed(0)
    sg.save(path, G_ema=sg.Generator(z_dim=8, w_dim=16, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=1))
    return path


@pytest.mark.parametrize('case', ['resolution', 'architecture', 'format', 'missing', 'extension', 'width', 'seeds', 'no-generator'])
def test_blend_bad_inputs(capsys, tmp_path, tiny32_ck, tiny32_high, case):
    outdir = tmp_path / 'out'
    out, preview = outdir / 'blend.pkl', outdir / 'preview.png'
    low = TINY32
    extra = ['--resolution', 16]
    high = ['--high', tiny32_high]            # tiny32's architecture (the bundled demo pair has another)
    if case == 'resolution':
        extra, words = ['--resolution', 12], ['--resolution 12', 'not a block resolution', '[0, 4, 8, 16, 32]']
    elif case == 'architecture':
        other = _other_resolution(tmp_path)
        high = ['--high', other]
        words = [str(TINY32), str(other), 'img_resolution differs (low 32, high 16)']
    elif case == 'format':
        out = outdir / 'blend.pt'                            # rosinality's Generator has z_dim == w_dim
        low = _z_ne_w(tmp_path)
        high, extra = ['--high', low], ['--resolution', 4]
        words = [str(out), 'z_dim differs from w_dim']
    elif case == 'missing':
        low = tmp_path / 'missing.pkl'
        words = [str(low), 'no such file']
    elif case == 'extension':
        out = outdir / 'blend.xyz'
        words = [str(out), 'cannot tell the format', '--format']
    elif case == 'width':
        extra += ['--width', -1]
        words = ['--width -1']
    elif case == 'seeds':
        extra += ['--seeds', '5-2']
        words = ['--seeds', "'5-2'"]
    else:
        low = tmp_path / 'D-only.safetensors'
        sg.save(low, D=tiny32_ck.D)
        words = [str(low), 'no generator']
    rc, stdout, err = run_main(capsys, 'blend', '--low', low, *high, *extra, '--out', out, '--preview', preview)
    assert_refused(rc, err, words, outdir)


def test_blend_failed_preview_leaves_nothing(capsys, tmp_path, monkeypatch):
    # The export is written first; when the preview then cannot be written, the export is taken back.
    def no_space(path, img):
        raise OSError(errno.ENOSPC, 'No space left on device', str(path))
    monkeypatch.setattr('stylegan2_lib.cli.images.save_image', no_space)
    outdir = tmp_path / 'out'
    rc, _, err = run_main(capsys, 'blend', '--resolution', 8, '--out', outdir / 'b.safetensors', '--preview', outdir / 'p.png')
    assert rc == 1 and 'No space left on device' in err and str(outdir / 'p.png') in err
    assert files_under(outdir) == []


def test_blend_preview_path_checks(capsys, tmp_path):
    (tmp_path / 'file').write_text('x')
    for out, preview, words in ((tmp_path / 'b.safetensors', tmp_path / 'p.jpg', '.png'),
                                (tmp_path / 'b.safetensors', tmp_path / 'file' / 'p.png', 'not a directory'),
                                (tmp_path / 'b.png', tmp_path / 'b.png', 'same file'),
                                (tmp_path / 'b.safetensors', tmp_path, 'is a directory')):
        rc, _, err = run_main(capsys, 'blend', '--resolution', 8, '--out', out, '--format', 'native', '--preview', preview)
        assert rc == 1 and words in err, err
        assert sorted(os.listdir(tmp_path)) == ['file']

#----------------------------------------------------------------------------
# blend --mode pinkney | vtoonify: the file holds sg.blend(..., mode=) computed here; misplaced options refused.

@pytest.mark.parametrize('case', ['pinkney', 'pinkney-level1-smooth', 'vtoonify', 'vtoonify-pixar'])
def test_blend_modes_write_what_sg_blend_gives(capsys, tmp_path, tiny32_ck, tiny32_high, case):
    out = tmp_path / 'out' / 'blend.safetensors'
    if case.startswith('pinkney'):
        level, width = (1, 0.5) if 'level1' in case else (0, None)
        argv = ['--low', TINY32, '--high', tiny32_high, '--mode', 'pinkney', '--resolution', 8, '--level', level]
        argv += ['--width', width] if width else []
        expected = sg.blend(tiny32_ck.G_ema, tiny32_ck.G, 8, width=width, mode='pinkney', level=level)
        extra = {'resolution': 8, 'level': level, 'width': width, 'mapping': 'low'}
    else:
        preset = 'pixar' if 'pixar' in case else None
        argv = ['--low', TINY32, '--high', tiny32_high, '--mode', 'vtoonify'] + (['--preset', preset] if preset else [])
        expected = sg.blend(tiny32_ck.G_ema, tiny32_ck.G, mode='vtoonify', preset=preset or 'cartoon')
        extra = {'preset': preset or 'cartoon', 'mapping': 'high'}
    rc, stdout, err = run_main(capsys, 'blend', *argv, '--out', out)
    assert rc == 0, err
    assert files_under(tmp_path / 'out') == [out.name]
    ck = sg.load(out)
    assert_same_state(ck.G_ema, expected)
    assert torch.equal(render(ck.G_ema), render(expected))
    assert ck.meta['blend'] == {'low': TINY32.name, 'high': tiny32_high.name, 'mode': case.split('-')[0], **extra}
    default = sg.blend(tiny32_ck.G_ema, tiny32_ck.G, 8)                  # the mode made a difference
    assert not all(torch.equal(t, default.state_dict()[k]) for k, t in expected.state_dict().items())
    assert 'wrote' in stdout and str(out) in stdout


def test_blend_vtoonify_defaults_to_the_demo_pair_fine_tune_first(capsys, tmp_path):
    out = tmp_path / 'v.safetensors'
    rc, _, err = run_main(capsys, 'blend', '--mode', 'vtoonify', '--preset', 'comic', '--out', out)
    assert rc == 0, err
    expected = sg.blend(sg.load(DEMO_TOON).G_ema, sg.load(DEMO_BASE).G_ema, mode='vtoonify', preset='comic')
    assert_same_state(sg.load(out).G_ema, expected)


@pytest.mark.parametrize('argv, words', [
    (['--level', 1, '--resolution', 8], ['--level 1', '--mode pinkney', '--mode default']),
    (['--mode', 'vtoonify', '--level', 1], ['--level 1', '--mode pinkney']),
    (['--preset', 'pixar', '--resolution', 8], ['--preset pixar', '--mode vtoonify']),
    (['--mode', 'pinkney', '--resolution', 8, '--preset', 'comic'], ['--preset comic', '--mode vtoonify']),
    (['--mode', 'vtoonify', '--resolution', 8], ['--resolution 8', '--preset']),
    (['--mode', 'vtoonify', '--width', 0.5], ['--width 0.5', '--preset']),
    (['--mode', 'pinkney'], ['--resolution', 'swap point']),
    (['--mode', 'pinkney', '--resolution', 8, '--mapping', 'high'], ['--mapping high', 'low']),
    (['--mode', 'vtoonify', '--mapping', 'low'], ['--mapping low', 'high']),
    (['--mode', 'pinkney', '--resolution', 0], ['--resolution 0', 'not a block resolution']),
    (['--mode', 'pinkney', '--resolution', 12], ['--resolution 12', 'not a block resolution']),
    (['--mode', 'pinkney', '--resolution', 8, '--preview', 'PREVIEW', '--feature-swap'], ['--feature-swap', '--mode pinkney']),
    (['--resolution', 8, '--mode', 'toonify'], ['--mode', "'toonify'"]),
    (['--mode', 'vtoonify', '--preset', 'anime'], ['--preset', "'anime'"]),
    (['--mode', 'pinkney', '--resolution', 8, '--level', 2], ['--level', 'invalid choice: 2']),
])
def test_blend_mode_bad_combinations_write_nothing(capsys, tmp_path, tiny32_high, argv, words):
    outdir = tmp_path / 'out'
    argv = [outdir / 'p.png' if a == 'PREVIEW' else a for a in argv]
    try:
        rc, _, err = run_main(capsys, 'blend', '--low', TINY32, '--high', tiny32_high, *argv, '--out', outdir / 'b.safetensors')
    except SystemExit as e:                              # argparse's choices: exit status 2, its own one-line error
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert e.code == 2 and 'invalid choice' in err and all(w in err for w in words), err
        assert not outdir.exists()
        return
    assert_refused(rc, err, words, outdir)

#----------------------------------------------------------------------------
# convert

def test_convert_round_trip_is_bitwise(capsys, tmp_path, tiny32_ck):
    native, back = tmp_path / 'tiny32.safetensors', tmp_path / 'back.pkl'
    rc, _, err = run_main(capsys, 'convert', TINY32, native)
    assert rc == 0, err
    rc, _, err = run_main(capsys, 'convert', native, back)
    assert rc == 0, err
    assert 'warning' not in err                              # G, D and G_ema all present: no placeholder
    a, b = sg.load(native), sg.load(back)
    assert a.meta['format'] == 'native' and b.meta['format'] == 'tensorflow'
    for ck in (a, b):
        assert list(ck.networks()) == ['G', 'D', 'G_ema']
        for name in ('G', 'G_ema'):
            assert torch.equal(render(getattr(ck, name)), render(getattr(tiny32_ck, name))), name
        img = render(tiny32_ck.G_ema, seeds=range(4))
        with torch.no_grad():
            assert torch.equal(ck.D(img, None), tiny32_ck.D(img, None))
    assert a.meta['training_set_kwargs'] == tiny32_ck.meta['training_set_kwargs']


def test_convert_format_option(capsys, tmp_path, tiny32_ck):
    out = tmp_path / 'x.weights'
    rc, _, err = run_main(capsys, 'convert', TINY32, out, '--format', 'nvlabs')
    assert rc == 0, err
    assert torch.equal(render(sg.load(out).G_ema), render(tiny32_ck.G_ema))


@pytest.mark.parametrize('case', ['rosinality-table', 'extension', 'missing'])
def test_convert_bad_inputs(capsys, tmp_path, case):
    outdir = tmp_path / 'out'
    src, out = TINY32, outdir / 'x.pt'
    if case == 'rosinality-table':
        src = _z_ne_w(tmp_path)                               # a network rosinality's layout cannot hold
        words = [str(out), 'z_dim differs from w_dim']
    elif case == 'extension':
        out = outdir / 'x.ckpt'
        words = [str(out), 'cannot tell the format']
    else:
        src = tmp_path / 'missing.pkl'
        words = [str(src), 'no such file']
    rc, _, err = run_main(capsys, 'convert', src, out)
    assert rc == 1
    assert err.startswith('stylegan2-lib: error: ') and len(err.strip().splitlines()) == 1 and 'Traceback' not in err
    for w in words:
        assert w in err, (w, err)
    assert not outdir.exists()

#----------------------------------------------------------------------------
# docs/blending.md's worked example is what swap_weights computes.

def test_blending_doc_table_matches_swap_weights():
    import re
    from stylegan2_lib.blend import layer_names, layer_position, swap_weights
    cfg = sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=256, channels={r: 4 for r in [4, 8, 16, 32, 64, 128, 256]},
                             mapping_layers=1)
    G = sg.Generator(cfg)
    hard, soft = swap_weights(G, 32), swap_weights(G, 32, width=1)
    rows = re.findall(r'^\| (b\d+\.\w+) \| (\d+) \| ([01]) \| ([\d.]+) \|$', (ROOT / 'docs' / 'blending.md').read_text(), re.M)
    assert [r[0] for r in rows] == layer_names(G)
    for name, p, h, s in rows:
        res, part = name[1:].split('.')
        assert (layer_position(int(res), part), hard[name], s) == (int(p), int(h), f'{soft[name]:.4f}'), name
