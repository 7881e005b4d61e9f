"""The bundled demo pair (assets/make_demo.py: a 32x32 generator trained from scratch on smiley-face emoji,
and a copy fine-tuned on animal-face emoji) and `stylegan2-lib demo`, which blends them: the files are
what they claim to be, the toon generator really is a fine-tune of the base, and what the command writes
renders like the blends computed here."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

import stylegan2_lib as sg
from stylegan2_lib.evaluate import load_scores
from conftest import assert_pkl_state, files_under
from stylegan2_lib.assets import DEMO_BASE, DEMO_SWAP, DEMO_TOON
from stylegan2_lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
FONT = Path('/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf')
# blend_preview's layout: tiles enlarged to at least 96 pixels (32x32 -> 96x96), 2-pixel gaps, 14-pixel labels.
TILE, PAD, LABEL = 96, 2, 14
# The demo's swap video: an MP4 where the `video` extra (imageio-ffmpeg) is installed, else an animated GIF.
try:
    import imageio_ffmpeg
    SWAP_VIDEO = 'demo-swap.mp4'
except ImportError:
    imageio_ffmpeg, SWAP_VIDEO = None, 'demo-swap.gif'


def read_video(path):
    if imageio_ffmpeg is None:
        with Image.open(path) as im:
            return [np.asarray(f.convert('RGB')) for f in ImageSequence.Iterator(im)]
    reader = imageio_ffmpeg.read_frames(str(path))
    w, h = next(reader)['size']
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


def latents(seeds, z_dim):
    """z as NVlabs generate.py draws it, written out here rather than taken from the library."""
    return torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds])).float()


@torch.no_grad()
def render(G, seeds=(0, 1, 2, 3), psi=0.7):
    return G(latents(seeds, G.z_dim), None, truncation_psi=psi, noise_mode='const')




@pytest.fixture(scope='module')
def pair():
    return sg.load(DEMO_BASE), sg.load(DEMO_TOON)

#----------------------------------------------------------------------------
# The files.

def test_files_bundled_twice_and_small():
    total = 0
    for path in (DEMO_BASE, DEMO_TOON):
        top = ROOT / 'assets' / path.name
        assert path.is_file() and path.read_bytes() == top.read_bytes(), path.name
        total += path.stat().st_size
    assert total < 5 * 2 ** 20                              # "a few MB in all"
    for old in ('demo-low.safetensors', 'demo-high.safetensors'):   # the untrained pair they replace
        assert not (ROOT / 'assets' / old).exists() and not (DEMO_BASE.parent / old).exists()


def test_meta_says_how_they_were_made(pair):
    base, toon = pair
    assert list(base.networks()) == ['G_ema'] and list(toon.networks()) == ['G_ema']
    for ck, name in ((base, 'demo-base'), (toon, 'demo-toon')):
        m = ck.meta
        assert m['name'] == name and m['made_by'] == 'assets/make_demo.py'
        assert m['kimg'] > 0 and m['train_seconds'] > 0 and m['images'] > 0 and m['resolution'] == 32
    assert 'smiley' in base.meta['domain'] and 'animal' in toon.meta['domain']
    assert base.meta['options']['aug'] == 'ada' and toon.meta['base_kimg'] == base.meta['kimg']
    assert toon.meta['fine_tuned_from'].startswith('demo-base.safetensors')


def test_same_architecture(pair):
    base, toon = pair[0].G_ema, pair[1].G_ema
    sg.blend(base, toon, 16)                              # raises if they cannot be blended
    assert base.cfg == toon.cfg and base.img_resolution == 32
    assert base.synthesis.block_resolutions == [4, 8, 16, 32]

#----------------------------------------------------------------------------
# The toon generator is a fine-tune of the base: it differs, but its parameters stayed near the base's,
# much nearer than an independently initialised network of the same architecture is. The mapping network
# moves least (its learning rate is 100x lower), the low-resolution blocks less than the top block.

def _group(G, prefix):
    return torch.cat([v.flatten() for k, v in G.state_dict().items() if k.startswith(prefix) and 'noise_const' not in k
                      and 'resample_filter' not in k])


@pytest.mark.parametrize('prefix, bound', [('mapping.', 0.01), ('synthesis.b4.', 0.25), ('synthesis.b8.', 0.25)])
def test_toon_started_from_base(pair, prefix, bound):
    base, toon = pair[0].G_ema, pair[1].G_ema
    b, t = _group(base, prefix), _group(toon, prefix)
    assert not torch.equal(b, t)                         # fine-tuned: it moved
    moved = (t - b).norm()
    for seed in range(3):
        torch.manual_seed(seed)
        fresh = _group(sg.Generator(base.cfg), prefix)
        # The base moved far from any initialisation; the toon stayed near the base.
        assert moved < bound * (fresh - b).norm(), (prefix, float(moved), float((fresh - b).norm()))


def test_the_two_draw_different_images(pair):
    base, toon = pair[0].G_ema, pair[1].G_ema
    a, b = render(base), render(toon)
    assert (a - b).abs().mean() > 0.1


def test_base_draws_yellow_faces(pair):
    # The base domain is yellow smileys on light pastel backgrounds: the middle of its images is yellow
    # (red and green well above blue), which no untrained network draws.
    torch.manual_seed(0)
    for G, expect in ((pair[0].G_ema, True), (sg.Generator(pair[0].G_ema.cfg).eval(), False)):
        centre = sg.to_uint8(render(G, seeds=range(16)))[:, 10:22, 10:22].reshape(-1, 3).astype(float).mean(0)
        r, g, b = centre
        assert (min(r, g) > b + 60) == expect, (centre, expect)

#----------------------------------------------------------------------------
# stylegan2-lib demo.

def test_demo_command(capsys, tmp_path, pair):
    out = tmp_path / 'out'
    seeds = [0, 3, 4]
    rc = main(['demo', '--outdir', str(out), '--seeds', '0,3-4', '--trunc', '0.6', '--device', 'cpu'])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert files_under(out) == ['demo-blend.pkl', 'demo-preview.png', 'demo-scores.json', 'demo-scores.png', 'demo-scores.txt',
                                SWAP_VIDEO]
    assert str(out / 'demo-blend.pkl') in stdout and str(out / 'demo-preview.png') in stdout
    # The measurement, offline: one row (demo-toon) x every swap choice; the base column is the base itself.
    scores = load_scores(out / 'demo-scores.json')
    assert scores.labels == ['demo-toon'] and [r for _, r in scores.choices] == [0, 4, 8, 16, 32]
    assert not scores.comparable and 'pixels' in scores.features
    assert scores.likeness[0, -1] == pytest.approx(1.0)                     # 'all low' is the base: itself
    assert scores.style_kid[0, 0] < scores.style_kid[0, -1]                 # the snapshot is nearer the style than the base
    assert scores.recommended is not None and str(out / 'demo-scores.png') in stdout and 'recommended' in stdout

    base, toon = pair[0].G_ema, pair[1].G_ema
    # The checkpoint: the blend at DEMO_SWAP, NVlabs-readable (with a placeholder D, said on stderr).
    expected = sg.blend(base, toon, DEMO_SWAP)
    ck = sg.load(out / 'demo-blend.pkl')
    assert ck.meta['format'] == 'tensorflow'
    assert_pkl_state(ck.G_ema, expected)
    torch.testing.assert_close(render(ck.G_ema), render(expected), rtol=0, atol=1e-5)
    assert 'placeholder' in err

    # The preview: one row per seed, columns base | swap 4 | swap 8 | swap 16 | toon.
    swaps = base.synthesis.block_resolutions[:-1]
    cols = 2 + len(swaps)
    grid = np.asarray(Image.open(out / 'demo-preview.png').convert('RGB'))
    assert grid.shape == (LABEL + len(seeds) * (TILE + PAD) - PAD, cols * (TILE + PAD) - PAD, 3)
    with torch.no_grad():
        ws = base.mapping(latents(seeds, base.z_dim), None, truncation_psi=0.6)
        columns = [base] + [sg.blend(base, toon, r) for r in swaps] + [toon]
        expect = [sg.to_uint8(G.synthesis(ws, noise_mode='const')).repeat(3, axis=1).repeat(3, axis=2) for G in columns]
    for c in range(cols):
        for r in range(len(seeds)):
            top, left = LABEL + r * (TILE + PAD), c * (TILE + PAD)
            np.testing.assert_array_equal(grid[top: top + TILE, left: left + TILE], expect[c][r], err_msg=f'row {r} col {c}')


    # The swap video: 32 frames of the seeds (up to four) in a grid of 128-pixel tiles, from the base to the toon.
    frames = read_video(out / SWAP_VIDEO)
    assert len(frames) == 32 and frames[0].shape == (2 * 130 - 2, 2 * 130 - 2, 3) and str(out / SWAP_VIDEO) in stdout
    with torch.no_grad():
        ends = [sg.make_grid(sg.to_uint8(G.synthesis(ws, noise_mode='const')).repeat(4, axis=1).repeat(4, axis=2))
                for G in (base, sg.blend(base, toon, 0))]
    for frame, end, other in ((frames[0], *ends), (frames[-1], *ends[::-1])):
        assert np.abs(frame.astype(int) - end).mean() < 5 < np.abs(frame.astype(int) - other).mean()


def test_demo_bad_seeds_writes_nothing(capsys, tmp_path):
    rc = main(['demo', '--outdir', str(tmp_path / 'out'), '--seeds', '3-1'])
    _, err = capsys.readouterr()
    assert rc == 1 and err.startswith('stylegan2-lib: error: --seeds') and err.count('\n') == 1
    assert files_under(tmp_path) == []


def test_quick_start_command(tmp_path):
    # The README's first quick-start command (after the install), run as a process from an empty folder.
    r = subprocess.run([sys.executable, '-m', 'stylegan2_lib', 'demo', '--outdir', 'out'], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, 'PYTHONPATH': str(ROOT)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert files_under(tmp_path / 'out') == ['demo-blend.pkl', 'demo-preview.png', 'demo-scores.json', 'demo-scores.png',
                                             'demo-scores.txt', SWAP_VIDEO]
    grid = np.asarray(Image.open(tmp_path / 'out' / 'demo-preview.png').convert('RGB'))
    assert grid.shape == (LABEL + 6 * (TILE + PAD) - PAD, 5 * (TILE + PAD) - PAD, 3)      # seeds 0-5, 5 columns

#----------------------------------------------------------------------------
# assets/make_demo.py --quick: the whole pipeline (render, prepare, train, fine-tune, save) at a tiny length.

@pytest.mark.skipif(not FONT.is_file(), reason='needs fonts-noto-color-emoji (apt-get install fonts-noto-color-emoji)')
def test_make_demo_quick(tmp_path):
    before = {p: p.read_bytes() for p in (DEMO_BASE, DEMO_TOON)}
    work = tmp_path / 'work'
    r = subprocess.run([sys.executable, str(ROOT / 'assets' / 'make_demo.py'), '--quick', '--workdir', str(work)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    base, toon = sg.load(work / 'demo-base.safetensors'), sg.load(work / 'demo-toon.safetensors')
    assert base.G_ema.cfg == toon.G_ema.cfg == sg.load(DEMO_BASE).G_ema.cfg
    assert toon.meta['fine_tuned_from'].startswith('demo-base') and base.meta['made_by'] == 'assets/make_demo.py'
    assert not torch.equal(base.G_ema.synthesis.b32.conv1.weight, toon.G_ema.synthesis.b32.conv1.weight)
    assert {p: p.read_bytes() for p in before} == before            # --quick never touches the bundled pair
    assert (work / 'base-data.png').is_file() and (work / 'toon-data.png').is_file()
