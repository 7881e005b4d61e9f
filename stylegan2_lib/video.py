"""Videos: the swap point sliding from the base to its fine-tune, a training run as a film, a latent walk.

    from stylegan2_lib import video
    video.swap_video('swap.mp4', base, tuned, seeds=range(4))            # all base -> all fine-tuned, smooth
    video.snapshot_video('run.mp4', 'runs/00001-anime', seeds=range(9))  # one seed grid per snapshot, labelled
    video.interp_video('walk.mp4', sg.blend(base, tuned, 16), seeds=[0, 5, 9], base=base)   # [base | blend]
    video.inline('swap.mp4')                                             # shown in a notebook cell

Each `*_frames` function checks its inputs at once and returns a `Frames`: the frames (uint8 [H, W, 3], one
seed grid each, tiles as make_grid lays them out) rendered one at a time as they are iterated, so a long
video never sits in memory. `write_video` writes them: MP4 (H.264, yuv420p) through imageio-ffmpeg, whose
wheel carries an ffmpeg binary, or an animated GIF through Pillow, by the extension; an .mp4 is written as
a .gif, with a warning, where imageio-ffmpeg is not installed. The file is written under a temporary name
beside the target and renamed once complete: an error leaves nothing behind and an existing file as it was.
"""

import dataclasses
import errno
import itertools
import math
import os
import warnings
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import files, images
from .blend import blended_state, check_same_architecture, layer_names, layer_position
from .blend_views import as_generator, snapshot_entries
from .devices import default_device
from .train.state import list_snapshots

EXTENSIONS = ('.mp4', '.gif')

#----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Frames:
    """A video's frames: `count` of them, rendered by `make()` one at a time (an iterator of uint8 [H, W, 3])."""
    count: int
    make: Callable

    def __iter__(self):
        return iter(self.make())

    def __len__(self):
        return self.count

def _device(G):
    return next(G.parameters()).device

def _check_seeds(seeds):
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError('give at least one seed')
    return seeds

def _grid(tiles, min_tile, cols=None):
    return images.make_grid(images.enlarge(tiles, min_tile), cols=cols)

#----------------------------------------------------------------------------
# Swap: the smooth blend of blend.py, y = sigmoid((p - c) / width), with its centre c sliding from above the
# top layer (c0 = top position + 0.5: a swap at img_resolution, all base) to below the first (c1 = -0.5: a
# swap at 0, all fine-tuned). Rescaled per layer,
#
#     y_t(p) = (sigmoid((p - c_t) / w) - sigmoid((p - c0) / w)) / (sigmoid((p - c1) / w) - sigmoid((p - c0) / w)),
#
# so that every layer goes from exactly 0 (frame 0: the base itself) to exactly 1 (the last frame: the
# fine-tune's synthesis) while the sigmoid's shape is kept; width 0 is the hard swap sliding layer by layer.

def swap_schedule(G, t, width=1.0):
    """{layer name: y} of the swap video at t in [0, 1] (0: every layer from the base, 1: every one from the fine-tune)."""
    if not 0 <= t <= 1:
        raise ValueError(f't must be in [0, 1], got {t}')
    if width < 0:
        raise ValueError(f'width must be >= 0, got {width}')
    c0 = 2 * math.log2(G.img_resolution / 4) + 1.5
    c1 = -0.5
    ct = (1 - t) * c0 + t * c1
    y = {}
    for name in layer_names(G):
        res, part = name[1:].split('.')
        p = layer_position(int(res), part)
        if not width:
            y[name] = 0.0 if p < ct else 1.0
            continue
        s = lambda c: 1 / (1 + math.exp(-(p - c) / width))
        y[name] = min(1.0, max(0.0, (s(ct) - s(c0)) / (s(c1) - s(c0))))
    return y

def swap_frames(base, tuned, seeds, frames=48, width=1.0, truncation_psi=0.7, min_tile=128, cols=None):
    """The seed grid rendered with the swap point sliding from all `base` (first frame) to all `tuned` (last frame:
    tuned's synthesis layers); every frame renders the same w, from base's mapping network (as sg.blend's
    mapping='low')."""
    check_same_architecture(base, tuned)
    seeds, width = _check_seeds(seeds), width or 0
    if frames < 2:
        raise ValueError(f'a swap video needs 2 frames or more, got {frames}')
    swap_schedule(base, 0, width)                                 # checks the width
    if base.c_dim:
        raise ValueError(f'videos render unconditional generators; this one has c_dim {base.c_dim}')

    @torch.no_grad()
    def make():
        z = images.seed_latents(seeds, base.z_dim).to(_device(base))
        ws = base.mapping(z, None, truncation_psi=truncation_psi)
        for i in range(frames):
            state = blended_state(base, tuned, swap_schedule(base, i / (frames - 1), width), mapping='low')
            state = {k[len('synthesis.'):]: v for k, v in state.items() if k.startswith('synthesis.')}
            out = torch.func.functional_call(base.synthesis, state, (ws,), {'noise_mode': 'const'})
            yield _grid(images.to_uint8(out), min_tile, cols)
    return Frames(frames, make)

#----------------------------------------------------------------------------
# Snapshots: every network snapshot of a training run (oldest first), one seed grid each, labelled.

def snapshot_sources(snapshots):
    """[(label, file or Generator)]: a folder's network snapshots (a training run's), or a list / {label: ...}."""
    if isinstance(snapshots, (str, os.PathLike)) and os.path.isdir(snapshots):
        found = list_snapshots(snapshots)
        if not found:
            raise ValueError(f'{snapshots}: no network snapshots (network-snapshot-*.safetensors) in this folder')
        return [(f'epoch {epoch} ({kimg:g} kimg)', path) for kimg, epoch, path in found]
    return snapshot_entries(snapshots)

def snapshot_frames(snapshots, seeds, hold=6, truncation_psi=0.7, label=True, min_tile=128, cols=None, device=None):
    """One seed grid per snapshot (each its own z -> image, as its sample grid), shown for `hold` frames, with a
    14-pixel strip above naming the snapshot when `label`. Snapshots are loaded one at a time."""
    entries = snapshot_sources(snapshots)
    seeds = _check_seeds(seeds)
    if hold < 1:
        raise ValueError(f'hold must be 1 frame or more, got {hold}')
    device = default_device(device)

    def make():
        size = None
        for text, source in entries:
            G = as_generator(source, device)
            if size is None:
                size = G.img_resolution
            elif G.img_resolution != size:
                raise ValueError(f'{text}: a {G.img_resolution}x{G.img_resolution} network among {size}x{size} ones')
            imgs = images.to_uint8(images.generate_images(G, seeds, truncation_psi=truncation_psi, progress=False))
            grid = _grid(imgs, min_tile, cols)
            frame = images.add_column_labels(grid, [text], tile_width=grid.shape[1]) if label else grid
            del G
            for _ in range(hold):
                yield frame
    return Frames(len(entries) * hold, make)

#----------------------------------------------------------------------------
# Interp: w = G.mapping(z_seed) at each seed, a straight line in W between consecutive seeds (`steps` frames
# each; with `loop` back to the first), rendered by G (a blend) and, side by side on its left, by `base`.

def interp_frames(G, seeds, steps=24, truncation_psi=0.7, base=None, loop=False, min_tile=128):
    seeds = _check_seeds(seeds)
    if len(seeds) < 2:
        raise ValueError('a latent walk needs 2 seeds or more')
    if steps < 1:
        raise ValueError(f'steps must be 1 or more, got {steps}')
    if G.c_dim:
        raise ValueError(f'videos render unconditional generators; this one has c_dim {G.c_dim}')
    if base is not None:
        check_same_architecture(base, G)
    legs = len(seeds) if loop else len(seeds) - 1
    count = legs * steps + (0 if loop else 1)                   # a loop ends one step before its first frame

    @torch.no_grad()
    def make():
        z = images.seed_latents(seeds + seeds[:1], G.z_dim).to(_device(G))
        keys = G.mapping(z, None, truncation_psi=truncation_psi)           # [K + 1, num_ws, w_dim]
        for i in range(count):
            k, r = divmod(i, steps)
            w = keys[k: k + 1] if r == 0 else torch.lerp(keys[k: k + 1], keys[k + 1: k + 2], r / steps)
            tiles = [G.synthesis(w, noise_mode='const')]
            if base is not None:
                tiles.insert(0, base.synthesis(w.to(_device(base)), noise_mode='const').to(tiles[0].device))
            yield _grid(images.to_uint8(torch.cat(tiles)), min_tile, cols=len(tiles))
    return Frames(count, make)

#----------------------------------------------------------------------------
# Writing: MP4 through imageio-ffmpeg, else an animated GIF through Pillow; a temporary name, then a rename.

def _imageio_ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg

def _rgb(frame):
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (1, 3):
        raise ValueError(f'a frame must be uint8 [H, W, 3] (or [H, W, 1]), got {frame.dtype} {list(frame.shape)}')
    return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame

def _same_size(frames):
    """The frames as RGB, each checked to have the first one's size."""
    shape = None
    for frame in frames:
        frame = _rgb(frame)
        shape = shape or frame.shape
        if frame.shape != shape:
            raise ValueError(f'every frame must have one size: {list(frame.shape)} after {list(shape)}')
        yield frame

def _counted(frames, bar):
    for frame in frames:
        yield frame
        bar.update(1)

def _write_mp4(path, frames, fps):
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError('no frames to write')
    h, w = first.shape[:2]
    pad = lambda f: np.ascontiguousarray(np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode='edge'))   # H.264 4:2:0: even sizes
    writer = _imageio_ffmpeg().write_frames(path, (w + w % 2, h + h % 2), fps=fps, quality=8, macro_block_size=2,
                                            ffmpeg_log_level='error')
    writer.send(None)
    try:
        for frame in itertools.chain([first], it):
            writer.send(pad(frame))
    finally:
        writer.close()
    with open(path, 'rb+') as f:                   # on disk before the rename, as files.atomic_open does
        os.fsync(f.fileno())

def _write_gif(f, frames, fps):
    it = (images.to_pil(frame) for frame in frames)
    first = next(it, None)
    if first is None:
        raise ValueError('no frames to write')
    # Pillow merges a frame equal to the one before into it (one frame shown twice as long).
    first.save(f, format='GIF', save_all=True, append_images=it, duration=round(1000 / fps), loop=0)

def _check_target(path):
    """`path` can be written: not a folder, in a folder that exists or can be made (an OSError naming `path`)."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, 'is a folder; give a file name', path)
    folder = os.path.dirname(os.path.abspath(path))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(errno.ENOTDIR, f'cannot create it: {existing} is not a directory', path)
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f'cannot create it: {folder} is not writable', path)

def video_path(path):
    """The file write_video writes for `path`: itself, or for an .mp4 without imageio-ffmpeg the .gif beside it."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise ValueError(f'{path}: a video is written as .mp4 or .gif (animated), not {ext or "no extension"!r}')
    if ext == '.mp4' and _imageio_ffmpeg() is None:
        return os.path.splitext(path)[0] + '.gif'
    return path

def write_video(path, frames, fps=24, progress=True):
    """Write `frames` (uint8 [H, W, 3] arrays of one size: a Frames or any iterable) to `path`, .mp4 or .gif by
    its extension (module docstring); returns the path written (an .mp4 becomes a .gif, with a warning, where
    imageio-ffmpeg is missing: pip install 'stylegan2_lib[video]')."""
    if not fps > 0:
        raise ValueError(f'fps must be > 0, got {fps}')
    target = video_path(path)
    if target != os.fspath(path):
        warnings.warn(f"imageio-ffmpeg is not installed (pip install 'stylegan2_lib[video]' or imageio-ffmpeg), so "
                      f'{path} is written as an animated GIF: {target}')
    _check_target(target)
    ext = os.path.splitext(target)[1].lower()
    total = len(frames) if hasattr(frames, '__len__') else None
    with tqdm(total=total, desc=os.path.basename(target), unit='frame', disable=not progress) as bar:
        frames = _counted(_same_size(frames), bar)
        if ext == '.gif':
            with files.atomic_open(target, 'wb') as f:
                _write_gif(f, frames, fps)
        else:
            with files.replaced_on_success(target, suffix=ext) as tmp:      # ffmpeg names the format by extension
                _write_mp4(tmp, frames, fps)
    return target

#----------------------------------------------------------------------------
# The three videos in one call each, and showing one in a notebook.

def swap_video(path, base, tuned, seeds, frames=48, width=1.0, fps=24, truncation_psi=0.7, min_tile=128, progress=True):
    return write_video(path, swap_frames(base, tuned, seeds, frames, width, truncation_psi, min_tile), fps, progress)

def snapshot_video(path, snapshots, seeds, hold=6, fps=12, truncation_psi=0.7, label=True, min_tile=128, device=None,
                   progress=True):
    frames = snapshot_frames(snapshots, seeds, hold, truncation_psi, label, min_tile, device=device)
    return write_video(path, frames, fps, progress)

def interp_video(path, G, seeds, steps=24, fps=24, truncation_psi=0.7, base=None, loop=False, min_tile=128, progress=True):
    return write_video(path, interp_frames(G, seeds, steps, truncation_psi, base, loop, min_tile), fps, progress)

def inline(path, width=None):
    """The video as a notebook output (Jupyter, Colab): the file embedded, an MP4 as a looping <video>."""
    import base64
    from IPython.display import HTML
    path = os.fspath(path)
    data = base64.b64encode(open(path, 'rb').read()).decode()
    size = f' width="{int(width)}"' if width else ''
    if path.lower().endswith('.gif'):
        return HTML(f'<img src="data:image/gif;base64,{data}"{size}>')
    return HTML(f'<video controls loop autoplay muted playsinline{size} src="data:video/mp4;base64,{data}"></video>')
