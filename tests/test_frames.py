"""stylegan2_lib.frames and `stylegan2-lib frames`: which frames are kept, caps, names, and all or nothing.

The clips are written here: 3 s at 10 fps, 64x48, frame i a flat grey of level 8*i (255 - 8*i in the second
clip), so the frame a PNG came from is read back from its mean even after H.264 compression."""

import os
import sys

import numpy as np
import pytest
from PIL import Image

from stylegan2_lib import frames
from stylegan2_lib.cli import main

FPS, N, SIZE = 10, 30, (64, 48)

def _write_clip(path, level, noise=False, faststart=False):
    iio = pytest.importorskip('imageio_ffmpeg', reason='reading and writing clips needs imageio-ffmpeg (the video extra)')
    rs = np.random.RandomState(0)
    writer = iio.write_frames(str(path), SIZE, fps=FPS, quality=10, macro_block_size=16, ffmpeg_log_level='error',
                              output_params=['-movflags', '+faststart'] if faststart else None)
    writer.send(None)
    for i in range(N):
        frame = rs.randint(0, 256, (SIZE[1], SIZE[0], 3)) if noise else np.full((SIZE[1], SIZE[0], 3), level(i))
        writer.send(frame.astype(np.uint8))
    writer.close()
    return str(path)

@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp('clips')
    a = _write_clip(folder / 'a.mp4', lambda i: 8 * i)
    b = _write_clip(folder / 'b.mp4', lambda i: 255 - 8 * i)
    noisy = _write_clip(folder / 'noisy.mp4', None, noise=True, faststart=True)
    return a, b, noisy

def _index(path, down=False):
    """The clip frame a PNG came from, by its grey level."""
    level = np.asarray(Image.open(path)).mean()
    return round(((255 - level) if down else level) / 8)

#----------------------------------------------------------------------------
# Choosing frames (no video needed).

def test_pick_keeps_the_first_frame_at_or_after_each_multiple():
    times = [i / 10 for i in range(30)]
    assert [i for i, _ in frames.pick(times, 0.5)] == [0, 5, 10, 15, 20, 25]
    assert [i for i, _ in frames.pick(times, 0.3)] == list(range(0, 30, 3))           # 3 * 0.3 = 0.8999...
    assert [i for i, _ in frames.pick(times, 0.25)] == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]
    assert [i for i, _ in frames.pick(times, 0.01)] == list(range(30))                 # finer than the clip: all
    assert [i for i, _ in frames.pick([0, 0.7, 1.4, 2.1], 0.5)] == [0, 1, 2, 3]          # one frame, several multiples

def test_parse_every():
    assert frames.parse_every('0.5s') == frames.parse_every('0.5') == frames.parse_every(0.5) == 0.5
    assert frames.parse_every(' 2S ') == 2
    for bad in ('0', '0s', '-1', 'abc', 'nan', 'inf', ''):
        with pytest.raises(ValueError):
            frames.parse_every(bad)

def test_missing_extra_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'imageio_ffmpeg', None)          # import imageio_ffmpeg -> ImportError
    with pytest.raises(ImportError, match=r'pip install "stylegan2_lib\[video\]"'):
        frames.sample_frames([tmp_path / 'x.mp4'], tmp_path / 'out', progress=False)
    assert not (tmp_path / 'out').exists()

#----------------------------------------------------------------------------
# Sampling clips.

def test_every_half_second_keeps_the_frames_at_multiples(clips, tmp_path):
    a, _, _ = clips
    result = frames.sample_frames([a], tmp_path / 'out', every=0.5, progress=False)
    assert [_index(p) for p in result.paths] == [0, 5, 10, 15, 20, 25]
    assert [os.path.basename(p) for p in result.paths][:3] == ['a_000000.000s.png', 'a_000000.500s.png',
                                                               'a_000001.000s.png']
    clip, = result.clips
    assert (clip.fps, clip.duration, clip.count) == (10, 3, 6)
    assert sorted(os.listdir(tmp_path / 'out')) == sorted(map(os.path.basename, result.paths))   # nothing hidden left
    assert Image.open(result.paths[0]).size == SIZE

def test_max_caps_each_clip_and_two_clips_get_distinct_names(clips, tmp_path):
    a, b, _ = clips
    result = frames.sample_frames([a, b], tmp_path / 'out', every='1s', max_frames=2, progress=False)
    assert [c.count for c in result.clips] == [2, 2]
    names = sorted(os.listdir(tmp_path / 'out'))
    assert names == ['a_000000.000s.png', 'a_000001.000s.png', 'b_000000.000s.png', 'b_000001.000s.png']
    assert [_index(p) for p in result.clips[0].paths] == [0, 10]
    assert [_index(p, down=True) for p in result.clips[1].paths] == [0, 10]

def test_same_stem_twice_is_refused(clips, tmp_path):
    a, _, _ = clips
    with pytest.raises(ValueError, match='a_\\*.png'):
        frames.sample_frames([a, a], tmp_path / 'out', progress=False)
    assert not (tmp_path / 'out').exists()

def _bad_clips(folder, clips):
    a, _, noisy = clips
    data, fast = open(a, 'rb').read(), open(noisy, 'rb').read()
    bad = {'random.mp4': np.random.RandomState(1).bytes(4000), 'text.mp4': b'not a video\n',
           'cut.mp4': data[:len(data) // 2],                     # the index (moov) is at the end: it is lost
           'cut_faststart.mp4': fast[:len(fast) // 2],            # the index survives: half the frames decode
           'empty.mp4': b''}
    for name, content in bad.items():
        (folder / name).write_bytes(content)
    return [str(folder / name) for name in bad] + [str(folder / 'missing.mp4')]

def test_a_bad_clip_is_named_and_nothing_is_written(clips, tmp_path):
    a, b, _ = clips
    for bad in _bad_clips(tmp_path, clips):
        dest = tmp_path / 'out'
        with pytest.raises((ValueError, OSError), match=os.path.basename(bad)):
            frames.sample_frames([a, bad, b], dest, progress=False)
        assert not dest.exists(), bad
    dest.mkdir()
    (dest / 'keep.png').write_bytes(b'x')
    with pytest.raises(ValueError, match='cut_faststart.mp4: truncated'):
        frames.sample_frames([a, tmp_path / 'cut_faststart.mp4'], dest, progress=False)
    assert os.listdir(dest) == ['keep.png']

#----------------------------------------------------------------------------
# The command.

def test_cli_end_to_end(clips, tmp_path, capsys):
    a, b, _ = clips
    dest = tmp_path / 'frames'
    assert main(['frames', a, b, str(dest), '--every', '1.5s', '--max', '5']) == 0
    out = capsys.readouterr().out
    assert f'{a}: 2 frames (3.0 s at 10 fps, one every 1.5 s, at most 5)' in out
    assert f'wrote 4 frames from 2 clips to {dest}' in out
    assert sorted(os.listdir(dest)) == ['a_000000.000s.png', 'a_000001.500s.png', 'b_000000.000s.png',
                                        'b_000001.500s.png']

@pytest.mark.parametrize('every', ['0', '0s', '-0.5', 'fast'])
def test_cli_refuses_a_bad_every(every, tmp_path, capsys):
    assert main(['frames', 'a.mp4', str(tmp_path / 'out'), '--every', every]) == 1
    assert '--every' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()

def test_cli_names_a_bad_clip(clips, tmp_path, capsys):
    a, _, _ = clips
    (tmp_path / 'junk.mp4').write_bytes(b'\0' * 100)
    for bad, why in ((tmp_path / 'junk.mp4', 'not a readable video'), (tmp_path / 'gone.mp4', 'no such video file')):
        assert main(['frames', a, str(bad), str(tmp_path / 'out')]) == 1
        assert capsys.readouterr().err.startswith(f'stylegan2-lib: error: {bad}: {why}')
        assert not (tmp_path / 'out').exists()
    assert main(['frames', a, str(tmp_path / 'out'), '--max', '0']) == 1
    assert '--max 0' in capsys.readouterr().err
