"""The command line (`stylegan2-lib info / generate`) and the bundled default network, checked against the
facts in tests/data/*/README.md and facts.json, and against images computed here independently."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylegan2_lib as sg
from stylegan2_lib.assets import DEFAULT_NETWORK
from stylegan2_lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / 'tests' / 'data'
TINY32 = DATA / 'tiny32' / 'network-snapshot-000000.pkl'
ROSI32 = DATA / 'rosi32' / '000000.pt'
ASSET = ROOT / 'assets' / 'tiny32.safetensors'

#----------------------------------------------------------------------------
# What each file must report, from the reference facts (not from our loader).

def _tiny32_facts():
    cfg = json.loads((DATA / 'tiny32' / 'facts.json').read_text())['config']
    res = [4, 8, 16, 32]
    return dict(res=cfg['res'], z_dim=cfg['z_dim'], w_dim=cfg['w_dim'], num_ws=8, mapping_layers=cfg['map_layers'],
                channels={r: min(cfg['channel_base'] // r, cfg['channel_max']) for r in res},
                num_fp16_res=cfg['num_fp16_res'], conv_clamp=cfg['conv_clamp'])

def _rosi32_facts():
    facts = json.loads((DATA / 'rosi32' / 'facts.json').read_text())
    cfg = facts['config']
    return dict(res=cfg['size'], z_dim=cfg['style_dim'], w_dim=cfg['style_dim'], num_ws=facts['n_latent'],
                mapping_layers=cfg['n_mlp'], channels={r: int(facts['channel_table']['used_here'][str(r)]) for r in [4, 8, 16, 32]},
                num_fp16_res=0, conv_clamp=None)

CASES = {
    'asset':  (ASSET, 'native', _tiny32_facts),
    'tiny32': (TINY32, 'nvlabs', _tiny32_facts),
    'rosi32': (ROSI32, 'rosinality', _rosi32_facts),
}

def test_reference_facts_as_the_readmes_state_them():
    # tests/data/tiny32/README.md: 32x32, z_dim 64, w_dim 64, num_ws 8, channels min(512 // res, 32).
    assert _tiny32_facts()['channels'] == {4: 32, 8: 32, 16: 32, 32: 16}
    assert _rosi32_facts()['channels'] == {4: 32, 8: 32, 16: 32, 32: 32}

def run_main(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err

#----------------------------------------------------------------------------
# info

@pytest.mark.parametrize('case', list(CASES))
def test_info_json(capsys, case):
    path, fmt, facts = CASES[case]
    f = facts()
    rc, out, err = run_main(capsys, 'info', '--json', path)
    assert rc == 0, err
    info = json.loads(out)
    assert info['format'] == fmt
    assert info['path'] == str(path)
    assert info['networks'] == ['G', 'D', 'G_ema']
    assert info['sampled_from'] == 'G_ema'
    g = info['generator']
    assert (g['img_resolution'], g['img_channels'], g['z_dim'], g['w_dim'], g['c_dim'], g['num_ws']) == \
           (f['res'], 3, f['z_dim'], f['w_dim'], 0, f['num_ws'])
    assert g['mapping_layers'] == f['mapping_layers']
    assert g['channels'] == {str(r): c for r, c in f['channels'].items()}
    assert g['num_fp16_res'] == f['num_fp16_res'] and g['fp16_resolutions'] == []
    assert g['conv_clamp'] == f['conv_clamp']
    assert info['discriminator']['img_resolution'] == f['res']
    assert info['discriminator']['mbstd_group_size'] == 4

def test_info_json_meta(capsys):
    tsk = json.loads((DATA / 'tiny32' / 'facts.json').read_text())['training_set_kwargs']
    for path in (TINY32, ASSET):
        rc, out, _ = run_main(capsys, 'info', '--json', path)
        assert json.loads(out)['meta']['training_set_kwargs'] == tsk
    rc, out, _ = run_main(capsys, 'info', '--json', ROSI32)
    meta = json.loads(out)['meta']
    assert meta['augment_p'] == json.loads((DATA / 'rosi32' / 'facts.json').read_text())['ada_aug_p']
    assert meta['args']['size'] == 32 and meta['args']['n_mlp'] == 2

@pytest.mark.parametrize('case', list(CASES))
def test_info_text(capsys, case):
    path, fmt, facts = CASES[case]
    f = facts()
    rc, out, err = run_main(capsys, 'info', path)
    assert rc == 0, err
    lines = dict(line.split(':', 1) for line in out.splitlines() if ':' in line and not line.startswith(' '))
    lines = {k.strip(): v.strip() for k, v in lines.items()}
    assert lines['file'] == str(path)
    assert lines['format'].startswith(fmt + ':')
    assert lines['networks'].startswith('G, D, G_ema')
    assert lines['resolution'].startswith(f"{f['res']}x{f['res']}")
    assert lines['z_dim, w_dim'] == f"{f['z_dim']}, {f['w_dim']}"
    assert lines['c_dim'].startswith('0')
    assert lines['num_ws'] == str(f['num_ws'])
    assert lines['mapping layers'] == str(f['mapping_layers'])
    assert lines['G channels'] == ' '.join(f'{r}:{c}' for r, c in f['channels'].items())
    assert lines['G fp16 blocks'].startswith('none')
    assert lines['conv_clamp'] == 'None'

def test_info_via_python_m():
    r = subprocess.run([sys.executable, '-m', 'stylegan2_lib', 'info', str(ASSET)], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'resolution:' in r.stdout and '32x32' in r.stdout and 'native' in r.stdout

#----------------------------------------------------------------------------
# generate

def expected_images(path, seeds, psi, c=None):
    """to_uint8(G_ema(z)) with z drawn as NVlabs generate.py draws it, one batch, computed here."""
    G = sg.load(path).G_ema
    z = torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in seeds])).float()
    with torch.no_grad():
        img = G(z, None if c is None else c.expand(len(seeds), -1), truncation_psi=psi, noise_mode='const')
    return sg.to_uint8(img)

def read_png(path):
    return np.asarray(Image.open(path).convert('RGB'))

@pytest.mark.parametrize('case', list(CASES))
def test_generate(capsys, tmp_path, case):
    path, _, facts = CASES[case]
    res = facts()['res']
    seeds = [0, 1, 2, 7]
    rc, out, err = run_main(capsys, 'generate', '--network', path, '--seeds', '0-2,7', '--trunc', '0.7',
                            '--outdir', tmp_path / 'out', '--device', 'cpu')
    assert rc == 0, err
    files = sorted(os.listdir(tmp_path / 'out'))
    assert files == ['grid.png'] + [f'seed{s:04d}.png' for s in seeds]
    expected = expected_images(path, seeds, 0.7)
    got = np.stack([read_png(tmp_path / 'out' / f'seed{s:04d}.png') for s in seeds])
    assert got.shape == (len(seeds), res, res, 3)
    np.testing.assert_array_equal(got, expected)
    grid = read_png(tmp_path / 'out' / 'grid.png')
    assert grid.shape == (2 * res + 2, 2 * res + 2, 3)             # 4 images: 2x2 with a 2-pixel gap
    np.testing.assert_array_equal(grid, sg.make_grid(expected))
    assert 'wrote 4 images' in out

def test_generate_default_network(capsys, tmp_path):
    assert DEFAULT_NETWORK.is_file()
    rc, out, err = run_main(capsys, 'generate', '--seeds', '3', '--outdir', tmp_path)
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ['grid.png', 'seed0003.png']
    np.testing.assert_array_equal(read_png(tmp_path / 'seed0003.png'), expected_images(DEFAULT_NETWORK, [3], 0.7)[0])

def test_generate_seed_independent_of_batch(capsys, tmp_path):
    # The image of a seed does not depend on which other seeds share its batch (up to rounding).
    run_main(capsys, 'generate', '--network', TINY32, '--seeds', '0-9', '--batch-size', '4', '--outdir', tmp_path / 'a')
    run_main(capsys, 'generate', '--network', TINY32, '--seeds', '5', '--outdir', tmp_path / 'b')
    a, b = read_png(tmp_path / 'a' / 'seed0005.png'), read_png(tmp_path / 'b' / 'seed0005.png')
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1

def test_generate_conditional(capsys, tmp_path):
    cfg = sg.GeneratorConfig(z_dim=8, c_dim=3, w_dim=8, img_resolution=8, channels={4: 8, 8: 8}, mapping_layers=2)
    torch.manual_seed(0)
    path = tmp_path / 'cond.safetensors'
    sg.save(path, G_ema=sg.Generator(cfg).eval())
    rc, _, err = run_main(capsys, 'generate', '--network', path, '--seeds', '0-1', '--class', '2', '--outdir', tmp_path / 'out')
    assert rc == 0, err
    c = torch.tensor([[0.0, 0.0, 1.0]])
    expected = expected_images(path, [0, 1], 0.7, c=c)
    np.testing.assert_array_equal(np.stack([read_png(tmp_path / 'out' / f'seed{s:04d}.png') for s in (0, 1)]), expected)
    for extra, words in ([], 'conditional (c_dim 3)'), (['--class', '3'], 'out of range'):
        rc, _, err = run_main(capsys, 'generate', '--network', path, '--outdir', tmp_path / 'none', *extra)
        assert rc != 0 and words in err and 'Traceback' not in err
    rc, _, err = run_main(capsys, 'generate', '--network', TINY32, '--class', '0', '--outdir', tmp_path / 'none')
    assert rc != 0 and 'unconditional' in err
    assert not (tmp_path / 'none').exists()

#----------------------------------------------------------------------------
# Failures: one line on stderr naming the file (or the bad value), non-zero exit, nothing written.

def _bad_files(tmp_path):
    empty = tmp_path / 'empty.pkl'
    empty.write_bytes(b'')
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint at all')
    return {'missing': (tmp_path / 'missing.pkl', 'no such file'), 'empty': (empty, 'empty'),
            'junk': (junk, 'unknown format'), 'folder': (tmp_path, 'directory')}

@pytest.mark.parametrize('which', ['missing', 'empty', 'junk', 'folder'])
def test_bad_network_file(capsys, tmp_path, which):
    path, words = _bad_files(tmp_path)[which]
    outdir = tmp_path / 'out'
    for argv in (['generate', '--network', path, '--outdir', outdir], ['info', path]):
        rc, out, err = run_main(capsys, *argv)
        assert rc != 0
        assert str(path) in err and words in err
        assert 'Traceback' not in err and len(err.strip().splitlines()) == 1
        assert not outdir.exists()

@pytest.mark.parametrize('seeds', ['abc', '5-2', '1,,2', ''])
def test_bad_seeds(capsys, tmp_path, seeds):
    outdir = tmp_path / 'out'
    rc, out, err = run_main(capsys, 'generate', '--seeds', seeds, '--outdir', outdir)
    assert rc != 0
    assert '--seeds' in err and repr(seeds) in err and 'Traceback' not in err
    assert not outdir.exists()

def test_outdir_is_a_file(capsys, tmp_path):
    f = tmp_path / 'file'
    f.write_text('x')
    rc, _, err = run_main(capsys, 'generate', '--seeds', '0', '--outdir', f)
    assert rc != 0 and str(f) in err and f.read_text() == 'x'

def test_errors_via_python_m(tmp_path):
    missing = tmp_path / 'missing.pkl'
    r = subprocess.run([sys.executable, '-m', 'stylegan2_lib', 'generate', '--network', str(missing), '--outdir', str(tmp_path / 'o')],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)}, timeout=300)
    assert r.returncode == 1
    assert r.stderr.strip() == f'stylegan2-lib: error: {missing}: no such file'

#----------------------------------------------------------------------------
# The bundled default network.

def test_bundled_copies_identical():
    assert DEFAULT_NETWORK.read_bytes() == ASSET.read_bytes()

def test_bundled_network_is_the_tiny32_pickle():
    a, b = sg.load(ASSET), sg.load(TINY32)
    for name in ('G', 'D', 'G_ema'):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
        assert getattr(a, name).cfg == getattr(b, name).cfg

def test_make_assets_reproduces_the_bundled_file():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_assets.py'), '--check'], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
