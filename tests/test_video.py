"""Videos (stylegan2_lib/video.py, cli_video.py) on the bundled demo pair: frame counts and sizes, first and last
frames equal to still renders made here independently (sg.blend + generate_images), files that read back
(imageio-ffmpeg's reader for MP4 within codec tolerance, Pillow for GIF), the GIF fallback, and bad input
refused with nothing written."""

import math
import sys
import warnings

import numpy as np
import pytest
from PIL import Image, ImageSequence

import stylegan2_lib as sg
from conftest import files_under
from stylegan2_lib import video
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.blend import layer_names
from stylegan2_lib.cli import main

SEEDS = [0, 1, 2, 3]
PSI = 0.7
GRID = (66, 66, 3)           # 2 x 2 tiles of 32 x 32, 2-pixel gaps (min_tile=32: not enlarged)
# MP4s are made of tiles enlarged 2x (min_tile=64): every 2 x 2 block that 4:2:0 chroma subsampling averages is
# then one pixel of the render, so what the codec loses is its quantisation alone.


@pytest.fixture(scope='module')
def pair():
    return sg.load(DEMO_BASE).G_ema, sg.load(DEMO_TOON).G_ema


def still(G, seeds=SEEDS, cols=None):
    """The seed grid G renders on its own (z as NVlabs draws it, its own mapping), as the frames lay it out."""
    return sg.make_grid(sg.to_uint8(sg.generate_images(G, seeds, truncation_psi=PSI, progress=False)), cols=cols)


def images_enlarged(G, seeds=SEEDS, k=2):
    return sg.to_uint8(sg.generate_images(G, seeds, truncation_psi=PSI, progress=False)).repeat(k, 1).repeat(k, 2)


def read_mp4(path):
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta['size']
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader], meta


def read_gif(path):
    with Image.open(path) as im:
        return [np.asarray(f.convert('RGB')) for f in ImageSequence.Iterator(im)], im.info.get('duration')


def mean_diff(a, b):
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def expected_schedule(G, t, width):
    """The swap video's per-layer weights, written out from video.py's comment: a sigmoid of width w whose
    centre slides from c0 = top position + 0.5 to c1 = -0.5, rescaled so each layer runs from 0 to 1."""
    top = 2 * math.log2(G.img_resolution / 4) + 1
    c0, c1 = top + 0.5, -0.5
    ct = c0 + t * (c1 - c0)
    out = {}
    for name in layer_names(G):
        res, part = name[1:].split('.')
        p = 2 * math.log2(int(res) / 4) + (0 if part in ('const', 'conv0') else 1)
        s = lambda c: 1 / (1 + math.exp(-(p - c) / width))
        out[name] = (s(ct) - s(c0)) / (s(c1) - s(c0))
    return out

#----------------------------------------------------------------------------
# swap

def test_swap_schedule(pair):
    base = pair[0]
    assert set(video.swap_schedule(base, 0).values()) == {0.0}            # all base, exactly
    assert set(video.swap_schedule(base, 1).values()) == {1.0}            # all fine-tuned, exactly
    for t in (0.25, 0.5, 0.8):
        got, want = video.swap_schedule(base, t, 1.5), expected_schedule(base, t, 1.5)
        assert got == pytest.approx(want, abs=1e-12)
        ys = list(got.values())
        assert ys == sorted(ys) and 0 < ys[0] < ys[-1] < 1                 # high layers switch first
    # width 0: the hard swap sliding; at t = 0.5 the centre is 3.5 (positions 0..7): b16 and b32 from the fine-tune
    hard = video.swap_schedule(base, 0.5, 0)
    assert hard == {n: float(n.startswith(('b16', 'b32'))) for n in layer_names(base)}
    with pytest.raises(ValueError, match='width'):
        video.swap_schedule(base, 0.5, -1)


def test_swap_frames_match_still_renders(pair):
    base, toon = pair
    frames = video.swap_frames(base, toon, SEEDS, frames=5, width=1.0, truncation_psi=PSI, min_tile=32)
    got = list(frames)
    assert len(frames) == len(got) == 5 and all(f.shape == GRID and f.dtype == np.uint8 for f in got)
    np.testing.assert_array_equal(got[0], still(base))                             # all base
    np.testing.assert_array_equal(got[-1], still(sg.blend(base, toon, 0)))         # toon's synthesis, base's w
    middle = sg.blend(base, toon, weights=expected_schedule(base, 0.5, 1.0))       # a custom schedule, by sg.blend
    np.testing.assert_array_equal(got[2], still(middle))
    assert mean_diff(got[0], got[-1]) > 10


def test_swap_mp4_reads_back(pair, tmp_path):
    pytest.importorskip('imageio_ffmpeg', reason='the video extra (imageio-ffmpeg) writes MP4s; without it GIFs')
    base, toon = pair
    frames = list(video.swap_frames(base, toon, SEEDS, frames=6, min_tile=64))
    path = video.write_video(tmp_path / 'swap.mp4', frames, fps=8, progress=False)
    assert path == str(tmp_path / 'swap.mp4') and files_under(tmp_path) == ['swap.mp4']
    back, meta = read_mp4(path)
    assert len(back) == 6 and meta['size'] == (130, 130) and meta['fps'] == 8 and meta['codec'] == 'h264'
    for a, b in zip(back, frames):                                  # H.264 at crf 10: a level or two on average
        assert mean_diff(a, b) < 3
    assert mean_diff(back[0], frames[0]) < mean_diff(back[0], frames[-1]) / 4      # the order survives


def test_swap_gif_reads_back(pair, tmp_path):
    base, toon = pair
    frames = list(video.swap_frames(base, toon, SEEDS, frames=4, min_tile=32))
    path = video.write_video(tmp_path / 'swap.gif', frames, fps=10, progress=False)
    back, duration = read_gif(path)
    assert len(back) == 4 and duration == 100
    for a, b in zip(back, frames):                                  # 256 colours per frame
        assert a.shape == GRID and mean_diff(a, b) < 8
    pytest.importorskip('IPython', reason='video.inline makes a notebook output: IPython (the notebook extra) is missing')
    shown = video.inline(path).data                                 # a notebook output holding the file itself
    assert shown.startswith('<img src="data:image/gif;base64,') and len(shown) > (tmp_path / 'swap.gif').stat().st_size


def test_gif_exact_where_the_palette_allows(tmp_path):
    rng = np.random.RandomState(0)
    palette = rng.randint(0, 256, (40, 3)).astype(np.uint8)
    frames = [palette[rng.randint(0, 40, (24, 30))] for _ in range(5)]         # 40 colours: a palette holds them
    back, _ = read_gif(video.write_video(tmp_path / 'a.gif', frames, fps=20, progress=False))
    assert len(back) == 5
    for a, b in zip(back, frames):
        np.testing.assert_array_equal(a, b)


def test_mp4_falls_back_to_gif_without_imageio_ffmpeg(pair, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'imageio_ffmpeg', None)                    # `import imageio_ffmpeg` fails
    base, toon = pair
    with pytest.warns(UserWarning, match='imageio-ffmpeg is not installed'):
        path = video.swap_video(tmp_path / 'swap.mp4', base, toon, SEEDS, frames=3, min_tile=32, progress=False)
    assert path == str(tmp_path / 'swap.gif') and files_under(tmp_path) == ['swap.gif']
    back, _ = read_gif(path)
    assert len(back) == 3 and mean_diff(back[0], still(base)) < 8

#----------------------------------------------------------------------------
# snapshots

def make_run(folder, base, toon):
    folder.mkdir()
    sg.save(folder / 'network-snapshot-kimg000004.000-epoch0012.safetensors', G_ema=toon)
    sg.save(folder / 'network-snapshot-kimg000002.000-epoch0006.safetensors', G_ema=base)
    return folder


def test_snapshot_video(pair, tmp_path):
    base, toon = pair
    run = make_run(tmp_path / 'run', base, toon)
    frames = video.snapshot_frames(run, SEEDS, hold=2, truncation_psi=PSI, min_tile=32, device='cpu')   # as still()
    got = list(frames)
    assert len(frames) == len(got) == 4 and all(f.shape == (14 + 66, 66, 3) for f in got)   # a label strip on top
    np.testing.assert_array_equal(got[0][14:], still(base))                  # oldest first: epoch 6
    np.testing.assert_array_equal(got[1], got[0])                            # held
    np.testing.assert_array_equal(got[-1][14:], still(toon))                 # epoch 12, its own mapping
    assert (got[0][:14] != 255).any() and (got[0][:14] != got[-1][:14]).any()          # labelled, differently
    pytest.importorskip('imageio_ffmpeg', reason='the video extra (imageio-ffmpeg) writes MP4s; without it GIFs')
    path = video.snapshot_video(tmp_path / 'film.mp4', run, SEEDS[:2], hold=2, min_tile=64, progress=False)
    back, meta = read_mp4(path)
    assert len(back) == 4 and meta['size'] == (130, 14 + 64)
    assert mean_diff(back[-1][14:], sg.make_grid(images_enlarged(toon, SEEDS[:2]))) < 3


def test_snapshot_video_refuses_a_folder_without_snapshots(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no network snapshots'):
        video.snapshot_video(tmp_path / 'film.mp4', tmp_path / 'empty', SEEDS, progress=False)
    assert files_under(tmp_path) == ['empty']

#----------------------------------------------------------------------------
# interp

def test_interp_frames(pair):
    base, toon = pair
    G = sg.blend(base, toon, 8)
    frames = video.interp_frames(G, [0, 5, 9], steps=3, truncation_psi=PSI, base=base, min_tile=32)
    got = list(frames)
    assert len(frames) == len(got) == 7 and all(f.shape == (32, 66, 3) for f in got)       # [base | blend]
    for i, seed in ((0, 0), (3, 5), (6, 9)):                        # every `steps` frames: a seed's own render
        np.testing.assert_array_equal(got[i], sg.make_grid(np.concatenate([sg.to_uint8(sg.generate_images(
            g, [seed], truncation_psi=PSI, progress=False)) for g in (base, G)]), cols=2), err_msg=f'frame {i}')
    assert mean_diff(got[1], got[0]) < mean_diff(got[3], got[0])             # a walk, not a jump
    alone = list(video.interp_frames(G, [0, 5], steps=2, loop=True, min_tile=32))
    assert len(alone) == 4 and alone[0].shape == (32, 32, 3)                 # a loop stops before its start


def test_bad_input_writes_nothing(pair, tmp_path):
    base, toon = pair
    (tmp_path / 'file').write_text('not a folder')
    with pytest.raises(NotADirectoryError) as e, warnings.catch_warnings():
        warnings.simplefilter('ignore')             # without imageio-ffmpeg: the GIF fallback's warning, x.gif named
        video.swap_video(tmp_path / 'file' / 'x.mp4', base, toon, SEEDS, frames=2, progress=False)
    assert e.value.filename == video.video_path(tmp_path / 'file' / 'x.mp4')
    with pytest.raises(ValueError, match='.mp4 or .gif'):
        video.swap_video(tmp_path / 'x.avi', base, toon, SEEDS, frames=2, progress=False)
    with pytest.raises(ValueError, match='2 frames'):
        video.swap_frames(base, toon, SEEDS, frames=1)

    # A failure part-way: no file, no temporary left, an existing file untouched.
    def broken():
        yield from video.swap_frames(base, toon, SEEDS, frames=2, min_tile=32)
        raise RuntimeError('boom')
    for name in ('old.mp4', 'old.gif'):
        (tmp_path / name).write_bytes(b'old')
        with pytest.raises(RuntimeError, match='boom'), warnings.catch_warnings():
            warnings.simplefilter('ignore')         # without imageio-ffmpeg old.mp4 is the GIF fallback's old.gif
            video.write_video(tmp_path / name, broken(), progress=False)
        assert (tmp_path / name).read_bytes() == b'old'
    with pytest.raises(ValueError, match='one size'):
        video.write_video(tmp_path / 'new.gif', [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)], progress=False)
    assert files_under(tmp_path) == ['file', 'old.gif', 'old.mp4']

#----------------------------------------------------------------------------
# stylegan2-lib video

def test_cli_video(capsys, tmp_path, pair):
    run = make_run(tmp_path / 'run', *pair)
    rc = main(['video', 'snapshots', '--run', str(run), '--out', str(tmp_path / 'film.gif'), '--hold', '1',
               '--seeds', '0', '--min-tile', '32', '--device', 'cpu'])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert len(read_gif(tmp_path / 'film.gif')[0]) == 2 and '2 snapshots x 1 seeds' in stdout

    rc = main(['video', 'interp', '--side-by-side', '--steps', '2', '--seeds', '0,1', '--out', str(tmp_path / 'walk.gif'),
               '--min-tile', '32', '--device', 'cpu'])
    assert rc == 0, capsys.readouterr().err
    assert [f.shape for f in read_gif(tmp_path / 'walk.gif')[0]] == [(32, 66, 3)] * 3

    pytest.importorskip('imageio_ffmpeg', reason='the video extra (imageio-ffmpeg) writes MP4s; without it GIFs')
    out = tmp_path / 'swap.mp4'
    rc = main(['video', 'swap', '--out', str(out), '--frames', '3', '--seeds', '0-3', '--min-tile', '64', '--device', 'cpu'])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert f'wrote {out}: 3 frames' in stdout
    back, _ = read_mp4(out)
    assert len(back) == 3 and mean_diff(back[0], sg.make_grid(images_enlarged(pair[0]))) < 3


@pytest.mark.parametrize('args, message', [
    (['swap', '--out', 'x.avi'], '--out'),
    (['swap', '--out', 'x.mp4', '--frames', '1'], '--frames 1'),
    (['swap', '--out', 'x.mp4', '--width', '-1'], '--width -1'),
    (['snapshots', '--run', 'EMPTY', '--out', 'x.mp4'], 'no network snapshots'),
    (['snapshots', '--run', 'missing', '--out', 'x.mp4'], 'missing: --run'),
    (['interp', '--seeds', '3', '--out', 'x.mp4'], '2 seeds or more'),
    (['interp', '--resolution', '12', '--out', 'x.mp4'], '--resolution 12'),
    (['swap', '--out', 'FILE/x.mp4'], 'not a directory'),
])
def test_cli_video_errors(capsys, tmp_path, args, message):
    (tmp_path / 'EMPTY').mkdir()
    (tmp_path / 'FILE').write_text('')
    args = [str(tmp_path / a) if a in ('EMPTY', 'missing', 'x.mp4', 'x.avi', 'FILE/x.mp4') else a for a in args]
    rc = main(['video'] + args + ['--device', 'cpu'])
    _, err = capsys.readouterr()
    assert rc == 1 and err.startswith('stylegan2-lib: error: ') and err.count('\n') == 1, err
    assert message in err
    assert files_under(tmp_path) == ['EMPTY', 'FILE']
