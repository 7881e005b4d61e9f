"""stylegan2_lib.frames against hostile or unusual clips and destinations (frames.py's docstring: the bounds).

Clips are made here with the ffmpeg binary imageio-ffmpeg ships (lavfi sources); memory is measured in a child
interpreter (resource.getrusage), where ffmpeg is a child too."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

iio = pytest.importorskip('imageio_ffmpeg', reason='reading and writing clips needs imageio-ffmpeg (the video extra)')

from stylegan2_lib import frames  # noqa: E402

def _ffmpeg(*args):
    subprocess.run([iio.get_ffmpeg_exe(), '-v', 'error', '-y', *map(str, args)], check=True)

def _clip(path, size='64x48', rate=10, duration=3, source='testsrc', extra=()):
    _ffmpeg('-f', 'lavfi', '-i', f'{source}=size={size}:rate={rate}:duration={duration}',
            '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', *extra, path)
    return str(path)

def _names(folder):
    return sorted(os.listdir(folder))

#----------------------------------------------------------------------------
# 1. Huge frames: refused before decoding.

def test_huge_frames_are_refused_before_decoding(tmp_path):
    """6000x6000 (36 MP, ~108 MB a frame as RGB; a 16384x16384 clip of a few KB would be 805 MB): refused with
    the clip, its size and the limit, and neither Python nor ffmpeg decodes a frame (peak RSS: before the
    -max_pixels guard, ffmpeg peaked ~540 MB above the interpreter for 8000x8000)."""
    clip = _clip(tmp_path / 'huge.mp4', size='6000x6000', rate=1, duration=1, source='color')
    code = textwrap.dedent(f'''
        import json, resource
        from stylegan2_lib import frames
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            frames.sample_frames([{clip!r}], {str(tmp_path / 'out')!r}, progress=False)
            error = None
        except ValueError as e:
            error = str(e)
        print(json.dumps(dict(error=error, before=before, self=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                              ffmpeg=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)))''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    got = json.loads(out.splitlines()[-1])
    assert got['error'] is not None and 'huge.mp4' in got['error'] and '6000x6000' in got['error']
    assert '8192x4320' in got['error']
    assert got['self'] - got['before'] < 60_000                    # KB: no 108 MB frame in Python
    assert got['ffmpeg'] < got['self'] + 60_000                    # nor in ffmpeg (its RSS starts as a fork of ours)
    assert not (tmp_path / 'out').exists()

def test_the_size_limit_is_inclusive(tmp_path, monkeypatch):
    clip = _clip(tmp_path / 'small.mp4', duration=1)
    monkeypatch.setattr(frames, 'MAX_PIXELS', 64 * 48 - 1)
    with pytest.raises(ValueError, match=r'small.mp4: its frames are 64x48'):
        frames.sample_frames([clip], tmp_path / 'out', progress=False)
    assert not (tmp_path / 'out').exists()
    monkeypatch.setattr(frames, 'MAX_PIXELS', 64 * 48)
    assert frames.sample_frames([clip], tmp_path / 'out', progress=False).clips[0].count == 2

#----------------------------------------------------------------------------
# 2. Long clips, tiny --every.

def test_max_stops_a_long_clip_early(tmp_path):
    """10 minutes at 25 fps with every=0.001: max_frames=5 gives 5 frames, read from the first 0.2 s only."""
    clip = _clip(tmp_path / 'long.mp4', size='16x16', rate=25, duration=600, source='color')
    result = frames.sample_frames([clip], tmp_path / 'out', every=0.001, max_frames=5, progress=False)
    assert _names(tmp_path / 'out') == [f'long_{t:010.3f}s.png' for t in (0, 0.04, 0.08, 0.12, 0.16)]
    assert result.clips[0].duration == 600

def test_every_finer_than_the_frame_rate_keeps_every_frame(tmp_path):
    clip = _clip(tmp_path / 'c.mp4', size='16x16', rate=25, duration=2, source='color')
    assert frames.sample_frames([clip], tmp_path / 'out', every=0.001, progress=False).clips[0].count == 50

#----------------------------------------------------------------------------
# 3. Odd frame rates, no video, rotation.

def test_1000_fps_is_refused_with_a_reason(tmp_path):
    clip = _clip(tmp_path / 'fast.mp4', rate=1000, duration=0.1)           # ffmpeg logs '1k fps'
    with pytest.raises(ValueError, match=r'fast.mp4: its frame rate is unknown .*1000 fps or more'):
        frames.sample_frames([clip], tmp_path / 'out', progress=False)

def test_a_very_slow_clip_is_timed_right(tmp_path):
    clip = _clip(tmp_path / 'slow.mp4', rate='1/1000', duration=3000)      # 3 frames, 1000 s apart
    result = frames.sample_frames([clip], tmp_path / 'out', every=0.5, progress=False)
    assert _names(tmp_path / 'out') == ['slow_000000.000s.png', 'slow_001000.000s.png', 'slow_002000.000s.png']
    assert result.clips[0].fps == 0.001

def test_audio_only_is_refused_as_such(tmp_path):
    _ffmpeg('-f', 'lavfi', '-i', 'sine=duration=1', '-c:a', 'aac', tmp_path / 'song.mp4')
    with pytest.raises(ValueError, match=r'song.mp4: not a readable video \(it has no video stream\)'):
        frames.sample_frames([tmp_path / 'song.mp4'], tmp_path / 'out', progress=False)
    assert not (tmp_path / 'out').exists()

def test_phone_rotation_gives_upright_frames(tmp_path, caplog):
    """A 64x48 clip with a 90-degree display matrix (as phones write): 48x64 frames, as ffmpeg (and players)
    show it, and no imageio-ffmpeg warning about the size."""
    plain = _clip(tmp_path / 'plain.mp4', duration=1)
    _ffmpeg('-display_rotation', 90, '-i', plain, '-c', 'copy', tmp_path / 'phone.mp4')
    _ffmpeg('-i', tmp_path / 'phone.mp4', '-frames:v', 1, tmp_path / 'reference.png')
    result = frames.sample_frames([tmp_path / 'phone.mp4'], tmp_path / 'out', progress=False)
    first = np.asarray(Image.open(result.paths[0])).astype(float)
    assert first.shape == (64, 48, 3)
    assert np.abs(first - np.asarray(Image.open(tmp_path / 'reference.png'))).mean() < 3
    assert np.abs(first - np.rot90(np.asarray(Image.open(result.paths[0])), 2)).mean() > 20     # not symmetric
    assert 'different from the source frame size' not in caplog.text

#----------------------------------------------------------------------------
# 4. The destination.

@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    return _clip(tmp_path_factory.mktemp('clip') / 'a.mp4', duration=1)

def test_dest_is_a_file(clip, tmp_path):
    (tmp_path / 'out').write_bytes(b'x')
    with pytest.raises(NotADirectoryError, match='out'):
        frames.sample_frames([clip], tmp_path / 'out', progress=False)
    assert (tmp_path / 'out').read_bytes() == b'x'

@pytest.mark.skipif(not hasattr(os, 'geteuid') or os.geteuid() == 0, reason='root writes to any folder')
def test_dest_unwritable(clip, tmp_path):
    (tmp_path / 'out').mkdir(mode=0o555)
    try:
        with pytest.raises(PermissionError):
            frames.sample_frames([clip], tmp_path / 'out', progress=False)
        assert _names(tmp_path / 'out') == []
    finally:
        (tmp_path / 'out').chmod(0o755)

def test_a_second_run_replaces_each_frame_by_a_rename(clip, tmp_path):
    """Same DEST twice: the frames of the same name are replaced whole (a new file renamed over the old one: an
    open or hard-linked old frame keeps its old bytes), other names stay."""
    dest = tmp_path / 'out'
    frames.sample_frames([clip], dest, every=1, progress=False)
    os.link(dest / 'a_000000.000s.png', tmp_path / 'old.png')
    old = (tmp_path / 'old.png').read_bytes()
    frames.sample_frames([clip], dest, every=0.5, progress=False)
    assert _names(dest) == ['a_000000.000s.png', 'a_000000.500s.png']
    assert (tmp_path / 'old.png').read_bytes() == old
    assert os.stat(dest / 'a_000000.000s.png').st_ino != os.stat(tmp_path / 'old.png').st_ino

def test_a_folder_named_like_a_frame_stops_before_any_move(clip, tmp_path):
    dest = tmp_path / 'out'
    (dest / 'a_000000.500s.png').mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match='a_000000.500s.png'):
        frames.sample_frames([clip], dest, every=0.5, progress=False)
    assert _names(dest) == ['a_000000.500s.png']                   # a_000000.000s.png was not moved in first

def test_ctrl_c_between_moves_keeps_whole_frames_and_no_staging(clip, tmp_path, monkeypatch):
    """The documented window: an interrupt between two renames leaves the frames moved so far, each whole, and
    no hidden staging folder."""
    real, calls, dest = os.replace, [], str(tmp_path / 'out')
    def replace(src, dst):                                          # the moves into dest (not the PNGs' own writes)
        calls.extend([dst] if os.path.dirname(os.fspath(dst)) == dest else [])
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(src, dst)
    monkeypatch.setattr(frames.os, 'replace', replace)
    with pytest.raises(KeyboardInterrupt):
        frames.sample_frames([clip], tmp_path / 'out', every=0.5, progress=False)
    monkeypatch.undo()
    assert _names(tmp_path / 'out') == ['a_000000.000s.png']
    assert Image.open(tmp_path / 'out' / 'a_000000.000s.png').size == (64, 48)

#----------------------------------------------------------------------------
# 5. Clip paths.

def test_unicode_and_spaces_in_names(clip, tmp_path):
    odd = tmp_path / 'dir with space' / 'clip é 東京 1.mp4'
    odd.parent.mkdir()
    odd.write_bytes(open(clip, 'rb').read())
    result = frames.sample_frames([odd], tmp_path / 'out ü', every=0.5, progress=False)
    assert _names(tmp_path / 'out ü') == ['clip é 東京 1_000000.000s.png', 'clip é 東京 1_000000.500s.png']
    assert all(os.path.isfile(p) for p in result.paths)

def test_a_folder_a_symlink_loop_and_a_fifo_are_refused_by_name(tmp_path):
    (tmp_path / 'folder.mp4').mkdir()
    os.symlink(tmp_path / 'loop2.mp4', tmp_path / 'loop1.mp4')
    os.symlink(tmp_path / 'loop1.mp4', tmp_path / 'loop2.mp4')
    bad = {'folder.mp4': (IsADirectoryError, 'a folder'), 'loop1.mp4': (OSError, 'symbolic links')}
    if hasattr(os, 'mkfifo'):
        os.mkfifo(tmp_path / 'pipe.mp4')                               # ffmpeg would wait on it forever
        bad['pipe.mp4'] = (OSError, 'not a regular file')
    for name, (kind, why) in bad.items():
        with pytest.raises(kind, match=why) as e:
            frames.sample_frames([tmp_path / name], tmp_path / 'out', progress=False)
        assert name in str(e.value)
        assert not (tmp_path / 'out').exists()

def test_a_clip_name_too_long_for_its_frame_names_is_refused_first(clip, tmp_path):
    long = tmp_path / ('c' * 240 + '.mp4')                           # 240 + len('_000000.000s.png') > 255 bytes
    os.link(clip, long)
    with pytest.raises(ValueError, match=r'frame names would be 256 bytes, over the 255 .* shorter name') as e:
        frames.sample_frames([long], tmp_path / 'out', progress=False)
    assert str(long) in str(e.value) and not (tmp_path / 'out').exists()

def test_a_failed_run_removes_the_parent_folders_it_made(clip, tmp_path, monkeypatch):
    def fails(*args, **kwargs):                                      # a clip that breaks while it is decoded
        raise ValueError('decoding failed half-way')
    monkeypatch.setattr(frames, '_sample_clip', fails)
    (tmp_path / 'kept').mkdir()
    dest = tmp_path / 'kept' / 'a' / 'b' / 'frames'
    with pytest.raises(ValueError, match='half-way'):
        frames.sample_frames([clip], dest, progress=False)
    assert _names(tmp_path) == ['kept'] and _names(tmp_path / 'kept') == []   # a/, a/b/, frames/ gone; kept/ stays
