"""Frames sampled from film clips, as PNGs for a training set (`stylegan2-lib frames`).

    result = sample_frames(['a.mp4', 'b.mkv'], 'frames/', every=0.5, max_frames=200)
    # frames/a_000000.000s.png, frames/a_000000.500s.png, ..., frames/b_000000.000s.png, ...

Each clip is decoded by ffmpeg through imageio-ffmpeg (the `video` extra) and streamed: one frame in memory at
a time. Frames are chosen by time: ffmpeg delivers the clip at the constant rate `fps` its header reports (the
stream's average rate; a variable-rate clip has frames repeated or dropped to that rate, as every player does
when it shows one), so frame i is at t = i / fps, and the first frame at or after each multiple of `every`
seconds is kept (t = 0, 0.5, 1.0, ... for every=0.5 on a 10 fps clip). A clip whose frame rate ffmpeg cannot
tell is refused, naming it. `max_frames` caps each clip (the first ones), so a long film does not crowd out a
short one when clips are mixed. Names are `<clip stem>_<time of the frame, 000012.500s>.png`: they sort by
clip, then time, and two clips with one stem are refused (both would write `<stem>_*.png`).

All or nothing: every clip is opened and its first frame decoded before any decoding starts, the PNGs are
written into a hidden folder inside `dest` and moved into `dest` only when every clip has been read, so a
missing, unreadable, truncated or empty clip (an OSError or ValueError naming it) leaves `dest` as it was (not
created, when it did not exist). A clip that is read to the end must deliver at least 90% of the duration its
header announces (a truncated file whose index survived decodes its first part silently otherwise). A PNG of
the same name already in `dest` is replaced (each one atomically, by a rename: a reader sees the old frame or the
new one, never a part); frames of an earlier run under other names (another --every) stay beside the new ones.

Hostile or unusual clips (tests/test_frames_hostile.py):
- frames above MAX_PIXELS (8192x4320, DCI 8K: ~106 MB per decoded RGB frame) are refused, naming the clip, its
  size and the limit, before any frame is decoded: a few-KB clip can declare 16384x16384 (805 MB a frame);
- a clip without a video stream (audio only) is refused as such; so is one whose frame rate ffmpeg gives no
  number for (none, or 1000 fps and over, which ffmpeg writes '1k fps');
- phone video with rotation metadata is turned upright by ffmpeg (as players show it): a portrait clip gives
  portrait frames;
- the number of frames is at most min(fps, 1 / every) * duration per clip (each kept frame is a PNG on disk, staged
  until the end), and decoding takes time in proportion to the clip's duration (a 1 h 16x16 clip at 25 fps: ~6 s);
  `max_frames` stops decoding once reached. Nothing else is capped: an hour of clip at every=0.001 writes every
  frame (90,000 for 25 fps);
- a clip path that is a folder, a FIFO or a device, or a symlink loop is refused naming it (a FIFO would block).

Interruptions: until the moves at the end, an error or Ctrl-C removes the staging folder (and `dest` when this
call made it). The moves are renames within one folder (milliseconds for thousands of frames); a Ctrl-C between
two of them leaves the frames moved so far in `dest` (each one whole) and discards the rest; rerunning gives the
full set. A process killed outright (SIGKILL, power loss) can leave a hidden `dest/.frames-*` folder of PNGs,
safe to delete.
"""

import contextlib
import errno
import logging
import math
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from .images import save_image

VIDEO_EXTENSIONS = ('.mp4', '.mkv', '.mov', '.webm', '.avi', '.m4v', '.mpg', '.mpeg', '.wmv', '.flv')

MAX_NAME_BYTES = 255       # a file name's limit on the common file systems (ext4, APFS, NTFS in UTF-16 units)

EPS = 1e-6                 # seconds: slack when comparing a frame's time with a multiple of `every`
MIN_DECODED = 0.9          # a clip read to the end must deliver this share of its announced duration
MAX_PIXELS = 8192 * 4320   # frames larger than DCI 8K (35.4 megapixels, ~106 MB as RGB) are refused before decoding

#----------------------------------------------------------------------------
# What a call wrote.

class Clip(NamedTuple):
    video: str             # the clip, as given
    fps: float             # frames per second, as its header reports it (the rate frames were read at)
    duration: float        # seconds announced by its header (None: not announced)
    paths: tuple           # the PNGs written from it, in time order

    @property
    def count(self):
        return len(self.paths)

class SampledFrames(NamedTuple):
    paths: tuple           # every PNG written, clip by clip
    clips: tuple           # one Clip per video, in the order given

class VideoSupportMissing(ImportError):
    """imageio-ffmpeg (the `video` extra) is not installed."""

#----------------------------------------------------------------------------
# Options.

def videos_in(path):
    """The film clips at `path`: [path] for a clip, else the clips in the folder and its subfolders (by the
    extensions in VIDEO_EXTENSIONS), sorted; [] when there are none."""
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix.lower() in VIDEO_EXTENSIONS else []
    return sorted(p for p in path.rglob('*') if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)

def parse_every(text):
    """'0.5s' or '0.5' (seconds) -> 0.5; a ValueError for anything that is not a positive number of seconds."""
    s = str(text).strip()
    try:
        value = float(s[:-1] if s.lower().endswith('s') else s)
    except ValueError:
        raise ValueError(f'{text!r} is not a number of seconds (e.g. 0.5 or 0.5s)') from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f'{text!r}: give a positive number of seconds (e.g. 0.5 or 0.5s)')
    return value

def _check_options(every, max_frames):
    every = parse_every(every)
    if max_frames is not None and (isinstance(max_frames, bool) or int(max_frames) != max_frames or max_frames < 1):
        raise ValueError(f'max_frames {max_frames!r}: give a whole number, 1 or more (or None: no cap)')
    return every

def frame_name(video, t):
    """The PNG name of the frame of `video` at `t` seconds: clip_000012.500s.png."""
    return f'{_stem(video)}_{t:010.3f}s.png'

def _stem(video):
    return os.path.splitext(os.path.basename(os.fspath(video)))[0]

#----------------------------------------------------------------------------
# Choosing frames: the first one at or after each multiple of `every` seconds.

def _next_due(t, every):
    """After keeping the frame at `t`: the next multiple of `every` a frame is due at."""
    return (math.floor((t + EPS) / every) + 1) * every

def pick(times, every):
    """Yields (index, t) of the kept ones of `times` (increasing seconds): the first at or after each multiple
    of `every` (one frame for several multiples when frames are further apart than `every`)."""
    due = 0.0
    for i, t in enumerate(times):
        if t >= due - EPS:
            yield i, t
            due = _next_due(t, every)

#----------------------------------------------------------------------------
# Reading clips through imageio-ffmpeg.

def _imageio_ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise VideoSupportMissing('reading video needs imageio-ffmpeg: pip install "stylegan2_lib[video]" '
                                  '(or pip install imageio-ffmpeg)') from None
    logger = logging.getLogger('imageio_ffmpeg')
    if _quiet_rotation not in logger.filters:
        logger.addFilter(_quiet_rotation)
    return imageio_ffmpeg

def _quiet_rotation(record):
    """Drops imageio-ffmpeg's 'The frame size for reading (1080, 1920) is different from the source frame size
    (1920, 1080)' warning: ffmpeg turning rotated phone video upright, as wanted (the frames have the new size)."""
    return 'is different from the source frame size' not in record.getMessage()

def _ffmpeg_reason(err):
    """The last line of ffmpeg's log in an imageio-ffmpeg error: e.g. 'Invalid data found when processing input'."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    last = lines[-1] if lines else type(err).__name__
    return last.split(': ', 1)[1] if last.startswith('Error opening input files: ') else last

@contextlib.contextmanager
def _reader(video, output_params=None):
    """(meta, frame bytes iterator) of `video`; ffmpeg is stopped when the block ends."""
    path = os.fspath(video)
    _check_regular_file(path)
    # -max_pixels: ffmpeg's decoder refuses frames above MAX_PIXELS before allocating one (without it, ffmpeg
    # decodes a first 16384x16384 frame, ~1.2 GB in ffmpeg, before the header reaches us); 5% more, as decoders
    # count padded sizes (1080 rows are coded as 1088), and _check_size applies MAX_PIXELS itself
    gen = _imageio_ffmpeg().read_frames(path, input_params=['-max_pixels', str(MAX_PIXELS * 21 // 20)],
                                        output_params=output_params)
    try:
        try:
            meta = next(gen)
        except (OSError, RuntimeError) as e:
            size = re.search(r' Video: .*?, (\d+)x(\d+)[ ,]', str(e))
            if size:                        # refused by -max_pixels: the size is in the header ffmpeg logged
                _check_size(path, {'size': tuple(map(int, size.groups()))})
            # an audio-only file: ffmpeg says 'Output file does not contain any stream' / 'Invalid argument'
            reason = 'it has no video stream' if 'does not contain any stream' in str(e) else _ffmpeg_reason(e)
            raise ValueError(f'{path}: not a readable video ({reason})') from None
        _check_size(path, meta)             # the same bound, for a decoder that ignores -max_pixels
        yield meta, gen
    finally:
        gen.close()

def _check_regular_file(path):
    """An OSError naming `path` unless it is a regular file (or a link to one): missing, a symlink loop
    (ELOOP), a folder, or a FIFO / device (ffmpeg would block on a FIFO or read /dev/zero forever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise type(e)(e.errno, 'no such video file' if e.errno == errno.ENOENT else e.strerror, path) from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, 'a folder, not a video file', path)
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, 'not a regular file (a pipe, socket or device), not a video file', path)

def _check_size(path, meta):
    """A ValueError naming `path` when its frames are above MAX_PIXELS: a clip of a few KB can declare
    16384x16384 frames, 805 MB each as RGB, several copies of which (ffmpeg, the pipe, numpy, the PNG) would be
    alive at once."""
    w, h = meta['size']
    if w * h > MAX_PIXELS:
        raise ValueError(f'{path}: its frames are {w}x{h} ({w * h / 1e6:.0f} megapixels); frames above '
                         f'{MAX_PIXELS / 1e6:.1f} megapixels (8192x4320) are refused: scale it down first, '
                         f'e.g. ffmpeg -i IN -vf scale=-2:2160 OUT.mp4')
    if w < 1 or h < 1:
        raise ValueError(f'{path}: its frames are {w}x{h}: no pixels')

def _frames(video, meta, gen):
    """The frames of `gen` as uint8 [H, W, 3] arrays (each a view of its own buffer)."""
    w, h = meta['size']
    try:
        for data in gen:
            yield np.frombuffer(data, np.uint8).reshape(h, w, 3)
    except RuntimeError as e:
        raise ValueError(f'{video}: cannot decode it to the end ({_ffmpeg_reason(e)})') from None

def probe(video):
    """The header of `video` (imageio-ffmpeg's meta: fps, size, duration, ...), its first frame decoded; an
    OSError or ValueError naming it when it is missing, not a video, has no frame or no known frame rate."""
    with _reader(video) as (meta, gen):
        if next(_frames(video, meta, gen), None) is None:
            raise ValueError(f'{video}: no decodable frames')
    fps = meta.get('fps') or 0
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f'{video}: its frame rate is unknown (ffmpeg reports none, or 1000 fps or more, which '
                         f'imageio-ffmpeg cannot read), so frames cannot be chosen by time')
    return meta

def _sample_clip(video, meta, every, max_frames, folder, bar):
    """Write the kept frames of one clip into `folder`; returns its Clip (paths: the names in `folder`)."""
    fps, duration = float(meta['fps']), meta.get('duration')
    names, due, decoded = [], 0.0, 0
    with _reader(video, output_params=['-r', repr(fps)]) as (meta, gen):     # the constant rate t = i / fps assumes
        for i, frame in enumerate(_frames(video, meta, gen)):
            decoded, t = i + 1, i / fps
            bar.update(1)
            if t < due - EPS:
                continue
            name = frame_name(video, t)
            names.append(name if name not in names[-1:] else name.replace('s.png', f's_{i:06d}.png'))   # fps > 1000
            save_image(os.path.join(folder, names[-1]), frame)
            due = _next_due(t, every)
            if max_frames is not None and len(names) >= max_frames:
                break
        else:
            _check_complete(video, decoded, fps, duration)
    if not names:
        raise ValueError(f'{video}: no decodable frames')
    return Clip(os.fspath(video), fps, duration, tuple(names))

def _check_complete(video, decoded, fps, duration):
    if duration and decoded / fps < MIN_DECODED * duration and decoded < duration * fps - 1:
        raise ValueError(f'{video}: truncated or damaged: {decoded} frames ({decoded / fps:.2f} s) decoded of the '
                         f'{duration:.2f} s its header announces')

#----------------------------------------------------------------------------
# All clips, all or nothing.

def _check_videos(videos):
    videos = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    if not videos:
        raise ValueError('no videos given')
    seen = {}
    for v in videos:
        longest = len(frame_name(v, 99999.999).encode())          # frame names grow with the time: 10 digits
        if longest > MAX_NAME_BYTES:
            raise ValueError(f'{v}: its frame names would be {longest} bytes, over the {MAX_NAME_BYTES} a file name may '
                             f'have: give the clip a shorter name')
        other = seen.get(_stem(v))
        seen.setdefault(_stem(v), v)
        if other is not None:
            raise ValueError(f'{other} and {v} would both write {_stem(v)}_*.png: give clips with different names')
    return videos

@contextlib.contextmanager
def _staging(dest):
    """A hidden folder inside `dest` (created when missing); on error it is removed, and `dest` and the parents
    made for it too when this call made them (and they are empty)."""
    dest = os.fspath(dest)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise NotADirectoryError(errno.ENOTDIR, 'the destination exists and is not a folder', dest)
    made = []                                                   # the folders this call creates, deepest first
    missing = os.path.abspath(dest)
    while not os.path.exists(missing):
        made.append(missing)
        missing = os.path.dirname(missing)
    os.makedirs(dest, exist_ok=True)
    folder = tempfile.mkdtemp(prefix='.frames-', dir=dest)
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        for path in made:                                       # dest, then the parents made for it, if empty
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise
    shutil.rmtree(folder, ignore_errors=True)

def _check_targets(dest, clips):
    """An OSError before any frame is moved when a frame's name in `dest` is taken by something a file cannot
    replace (a folder): os.replace would fail there, after the frames before it had been moved."""
    for clip in clips:
        for name in clip.paths:
            target = os.path.join(dest, name)
            if os.path.isdir(target) and not os.path.islink(target):
                raise IsADirectoryError(errno.EISDIR, f'a folder has the name of a frame of {clip.video}', target)

def sample_frames(videos, dest, every=0.5, max_frames=None, progress=True):
    """Write one frame every `every` seconds ('0.5s' or 0.5) of each clip of `videos` (paths; one path is one
    clip), at most `max_frames` per clip, as PNGs into the folder `dest` (module docstring: which frames,
    names, all or nothing). Returns SampledFrames(paths, clips): the paths written and, per clip, its fps,
    announced duration and paths. Needs imageio-ffmpeg (VideoSupportMissing, an ImportError, otherwise)."""
    every = _check_options(every, max_frames)
    videos = _check_videos(videos)
    _imageio_ffmpeg()
    metas = [probe(v) for v in videos]
    expected = [m['fps'] * m['duration'] if m.get('duration') else None for m in metas]
    total = round(sum(expected)) if None not in expected else None
    clips = []
    with _staging(dest) as folder, tqdm(total=total, desc='frames', unit='frame', disable=not progress) as bar:
        for video, meta in zip(videos, metas):
            clips.append(_sample_clip(video, meta, every, max_frames, folder, bar))
        _check_targets(dest, clips)     # a folder in the way would stop the moves half done
        for clip in clips:              # renames in one folder: a Ctrl-C here leaves the ones moved so far
            for name in clip.paths:
                os.replace(os.path.join(folder, name), os.path.join(dest, name))
    clips = [c._replace(paths=tuple(os.path.join(os.fspath(dest), n) for n in c.paths)) for c in clips]
    return SampledFrames(tuple(p for c in clips for p in c.paths), tuple(clips))
