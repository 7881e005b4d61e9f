"""Training images: read a folder or a zip of photos/drawings as square uint8 RGB at one resolution,
and prepare a zip once (`prepare_dataset`, like NVlabs dataset_tool) so that training reads it fast.

Every image goes through `load_image`:

1. EXIF orientation is applied (a phone photo stored sideways comes out upright).
2. The colours become 8-bit RGB: grayscale is replicated to the three channels; palette, CMYK, YCbCr, LAB
   and HSV images are converted by PIL; 16-bit images ('I;16', and 'I' as older Pillow opens 16-bit PNGs)
   are scaled to 8 bits (value / 257, rounded) instead of being clipped at 255 as PIL's own conversion
   does. Transparency (RGBA, LA, PA, premultiplied modes, and palette/L/RGB images with a transparent
   colour) is composited onto WHITE: face sets made of cut-outs (anime faces, stickers, emoji) are drawn
   for a white page, and dropping the alpha instead would show whatever colour the transparent pixels
   happen to hold (often black, or junk from the editor).
3. A non-square image is centre-cropped to a square (side = the shorter side; when the difference is odd
   the extra pixel is dropped on the right / bottom, as NVlabs dataset_tool does).
4. The square is resized to `resolution`: Lanczos when it shrinks (sharp, alias-free), bicubic when it
   grows (smooth, with less ringing than Lanczos around the hard outlines of cartoons and line art),
   and not at all when it already has that size (so a prepared zip is read back bit for bit).

A folder source is read recursively; a zip source is read in place (nothing extracted). In both, the
images are the files ending in .jpg .jpeg .png .webp .bmp (any case); hidden files and folders (a name
starting with '.', e.g. macOS's `._photo.jpg`), the `__MACOSX/` folder of zips and every other extension
are ignored. Files are taken in sorted order of their relative paths ('/'-separated), so a folder and a
zip of it list the same images in the same order.
"""

import io
import json
import os
import warnings
import zipfile
from typing import NamedTuple

import numpy as np
import torch
import torch.utils.data
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from .files import atomic_open

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp')
DATASET_JSON = 'dataset.json'
DATASET_FORMAT = 'stylegan2_lib.dataset/1'   # the marker prepare_dataset writes into dataset.json
MAX_LISTED = 20                              # skipped files named in a warning or error; the rest are counted


class UnreadableImagesWarning(UserWarning):
    """Some files of a dataset could not be read as images and were left out (one warning lists them all)."""

#----------------------------------------------------------------------------
# One image.

_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')

def to_rgb(img):
    """Any PIL image -> 8-bit 'RGB' (see the module docstring for the rules)."""
    mode = img.mode
    if mode == 'I' or mode.startswith('I;16'):
        a = np.asarray(img).astype(np.float64)
        a = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(a[:, :, None], 3, axis=2), 'RGB')
    if mode in _ALPHA_MODES or 'transparency' in img.info:
        if mode == 'La':                 # premultiplied L+alpha: PIL converts it only to LA
            img = img.convert('LA')
        rgba = img.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert('RGB')
    return img if mode == 'RGB' else img.convert('RGB')

def _square_resize(img, resolution):
    w, h = img.size
    s = min(w, h)
    if (w, h) != (s, s):
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if s != resolution:
        img = img.resize((resolution, resolution), Image.LANCZOS if s > resolution else Image.BICUBIC)
    return img

def _check_resolution(resolution):
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise ValueError(f'resolution must be a positive integer, not {resolution!r}')
    return int(resolution)

def load_image(path_or_file, resolution):
    """One image file (a path, a binary file object, bytes or a PIL image) -> uint8 numpy [R, R, 3].

    EXIF orientation applied, converted to RGB (transparency composited onto white, 16-bit scaled to 8
    bits), centre-cropped to a square and resized to `resolution` x `resolution` (Lanczos down, bicubic
    up, untouched when already that size). Raises what PIL raises for a file it cannot decode.
    """
    resolution = _check_resolution(resolution)
    if isinstance(path_or_file, Image.Image):
        return _load(path_or_file, resolution)
    if isinstance(path_or_file, (bytes, bytearray, memoryview)):
        path_or_file = io.BytesIO(path_or_file)
    with Image.open(path_or_file) as img:
        img.load()                       # decode everything now: a truncated file fails here, not later
        return _load(img, resolution)

def _load(img, resolution):
    img = ImageOps.exif_transpose(img)
    img = _square_resize(to_rgb(img), resolution)
    arr = np.asarray(img, dtype=np.uint8)
    assert arr.shape == (resolution, resolution, 3), arr.shape
    return arr

#----------------------------------------------------------------------------
# Sources: a folder or a zip, listed by the same rules.

def _is_image_name(relpath):
    parts = [p for p in relpath.split('/') if p not in ('', '.')]      # './a.png' as some zip tools write it
    if not parts or any(p.startswith('.') for p in parts) or parts[0] == '__MACOSX':
        return False
    return parts[-1].lower().endswith(IMAGE_EXTENSIONS)

class _EmptyFile(Exception):
    pass

def _reason(e):
    """A short, path-free reason for a file that cannot be read."""
    if isinstance(e, _EmptyFile):
        return 'empty file'
    if isinstance(e, UnidentifiedImageError):
        return 'not an image PIL can read'
    text = str(e).splitlines()[0].strip() if str(e).strip() else ''
    text = f'{type(e).__name__}: {text}' if text else type(e).__name__
    return text if len(text) <= 120 else text[:117] + '...'

def _listing(skipped):
    shown = '; '.join(f'{name} ({why})' for name, why in skipped[:MAX_LISTED])
    more = len(skipped) - MAX_LISTED
    return shown + (f'; ... and {more} more' if more > 0 else '')


class _Source:
    """The image files of a folder or a zip. Reads one file's bytes by its relative name; a zip is opened
    lazily, once per process (a handle inherited through fork shares its file offset with the parent,
    so it is never reused), and the handle is not pickled (DataLoader workers open their own)."""

    def __init__(self, source):
        self.path = os.fspath(source)
        if os.path.isdir(self.path):
            self.kind = 'folder'
            self.names = self._list_folder()
        elif os.path.isfile(self.path):
            if not zipfile.is_zipfile(self.path):
                raise ValueError(f'{self.path}: not a folder or a zip file; give a folder of images or a .zip of them')
            self.kind = 'zip'
            self._zip, self._pid = None, None
            try:
                self.members = [n for n in self.zip().namelist() if not n.endswith('/')]
            except (zipfile.BadZipFile, OSError) as e:
                raise ValueError(f'{self.path}: cannot read the zip file: {e}') from None
            self.names = sorted(n for n in self.members if _is_image_name(n))
        else:
            raise FileNotFoundError(2, 'no such file or folder', self.path)

    def _list_folder(self):
        names = []
        for folder, dirs, files in os.walk(self.path):
            dirs[:] = [d for d in dirs if not d.startswith('.')]
            rel = os.path.relpath(folder, self.path)
            for f in files:
                name = f if rel == '.' else os.path.join(rel, f).replace(os.sep, '/')
                if _is_image_name(name):
                    names.append(name)
        return sorted(names)

    def zip(self):
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def read(self, name):
        if self.kind == 'folder':
            with open(os.path.join(self.path, *name.split('/')), 'rb') as f:
                return f.read()
        return self.zip().read(name)

    def load(self, name, resolution):
        data = self.read(name)
        if not data:
            raise _EmptyFile()
        return load_image(io.BytesIO(data), resolution)

    def prepared_info(self):
        """dataset.json of a zip written by prepare_dataset whose images are all still there, else None."""
        if self.kind != 'zip' or DATASET_JSON not in self.members:
            return None
        try:
            info = json.loads(self.zip().read(DATASET_JSON))
            files = [entry['file'] for entry in info['images']]
            ok = info.get('format') == DATASET_FORMAT and sorted(files) == self.names and isinstance(info['resolution'], int)
        except (ValueError, KeyError, TypeError):
            return None
        return info if ok else None

    def close(self):
        if self.kind == 'zip' and self._zip is not None:
            if self._pid == os.getpid():
                self._zip.close()
            self._zip, self._pid = None, None

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.kind == 'zip':
            state['_zip'], state['_pid'] = None, None
        return state

    def describe(self):
        return f'{self.path}: no images (files ending in {" ".join(IMAGE_EXTENSIONS)}, any case, hidden files ignored) in this {self.kind}'


def _all_bad_error(src, skipped):
    n = len(skipped)
    return ValueError(f'{src.path}: none of the {n} image file{"s" if n != 1 else ""} in this {src.kind} '
                      f'could be read: {_listing(skipped)}')

def _warn_skipped(src, skipped, total, stacklevel):
    n = len(skipped)
    warnings.warn(f'{src.path}: skipped {n} of {total} image files that cannot be read: {_listing(skipped)}',
                  UnreadableImagesWarning, stacklevel=stacklevel + 1)

#----------------------------------------------------------------------------

class ImageDataset(torch.utils.data.Dataset):
    """Square RGB training images from a folder (recursive) or a zip, as uint8 tensors [3, R, R].

    Every file is decoded once when the dataset is built (a full decode: PIL's verify() passes truncated
    JPEGs), so `len()` counts only images that can be read; the others are left out, listed in ONE
    `UnreadableImagesWarning` and kept in `.skipped` as (name, reason). A zip written by
    `prepare_dataset` is trusted (each image was decoded when it was written) and opens without that pass.
    An empty source, or one with no readable image, raises ValueError naming it.

    With `xflip=True` the dataset is twice as long: item i + n is item i mirrored left-right (NVlabs
    `--mirror`). `resolution=None` takes the resolution of a prepared zip. A zip is opened lazily, once
    per process, so the dataset can go to DataLoader workers (fork or spawn).
    """

    def __init__(self, source, resolution, xflip=False, progress=True):
        self._src = _Source(source)
        self.source = self._src.path
        self.xflip = bool(xflip)
        prepared = self._src.prepared_info()
        if resolution is None:
            if prepared is None:
                raise ValueError(f'{self.source}: give a resolution (only a zip written by prepare_dataset carries one)')
            resolution = prepared['resolution']
        self.resolution = _check_resolution(resolution)
        if not self._src.names:
            raise ValueError(self._src.describe())

        self.skipped = []
        if prepared is not None:
            self.files = list(self._src.names)
        else:
            self.files = []
            for name in tqdm(self._src.names, desc='check images', unit='img', disable=not progress, leave=False):
                try:
                    self._src.load(name, self.resolution)
                    self.files.append(name)
                except Exception as e:     # PIL raises OSError, ValueError, SyntaxError, EOFError, zlib.error...
                    self.skipped.append((name, _reason(e)))
            if not self.files:
                raise _all_bad_error(self._src, self.skipped)
            if self.skipped:
                _warn_skipped(self._src, self.skipped, len(self._src.names), stacklevel=2)
        self._src.close()           # the checking pass is over; each process reopens a zip when it reads

    def uint8_images(self, n=None):
        """The first n images (all by default, no mirrored copies) as uint8 [n, R, R, 3], as metrics take them."""
        n = self.num_images if n is None else min(n, self.num_images)
        return np.stack([self[i].numpy().transpose(1, 2, 0) for i in range(n)])

    @property
    def num_images(self):
        """Distinct images (without the mirrored copies)."""
        return len(self.files)

    @property
    def image_shape(self):
        return [3, self.resolution, self.resolution]

    def __len__(self):
        return len(self.files) * (2 if self.xflip else 1)

    def __getitem__(self, index):
        index = int(index)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f'index {index} out of range for a dataset of {n} images')
        flip, i = divmod(index, len(self.files))
        name = self.files[i]
        try:
            img = self._src.load(name, self.resolution)
        except Exception as e:
            raise OSError(f'{self.source}: {name}: {_reason(e)}') from e
        if flip:
            img = img[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

    def close(self):
        self._src.close()

    def __repr__(self):
        return (f'ImageDataset({self.source!r}, resolution={self.resolution}, xflip={self.xflip}): '
                f'{len(self.files)} images' + (f', {len(self.skipped)} skipped' if self.skipped else ''))

#----------------------------------------------------------------------------

class PrepareResult(NamedTuple):
    written: int
    skipped: int


def prepare_dataset(src, dest_zip, resolution, progress=True, exclude=()):
    """Read every image of `src` (a folder or zip) with `load_image` and write them to `dest_zip` as
    PNGs 00000000.png, 00000001.png, ... plus dataset.json (source names, resolution, skipped files;
    `"labels": null`, so NVlabs train.py reads the zip too). Returns (written, skipped) counts.

    The zip is built in a temporary file beside `dest_zip` and renamed over it only when complete: on
    any error (no readable image, a full disk, Ctrl-C) nothing is written. Unreadable files are left
    out and listed in one UnreadableImagesWarning. `resolution` must be a power of two (4 or more), as
    StyleGAN2 needs; `dest_zip` must end in .zip and must not be the source. Source names in `exclude`
    (e.g. the near-duplicates `dedupe.scan` found) are left out and listed in dataset.json as "excluded".
    """
    resolution = _check_resolution(resolution)
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f'resolution {resolution}: StyleGAN2 trains on square power-of-two images; give 4, 8, ..., 256, 512, 1024')
    dest = os.fspath(dest_zip)
    if not dest.lower().endswith('.zip'):
        raise ValueError(f'{dest}: the prepared dataset is a zip file; give a name ending in .zip')
    if os.path.isdir(dest):
        raise ValueError(f'{dest}: is a directory; give a .zip file name')
    source = _Source(src)
    same = os.path.realpath(source.path) == os.path.realpath(dest) or (
        os.path.exists(dest) and os.path.samefile(source.path, dest))
    if same:
        raise ValueError(f'{dest}: is the source itself; write the prepared dataset to another file')
    if not source.names:
        raise ValueError(source.describe())

    excluded = set(exclude) & set(source.names)
    names = [n for n in source.names if n not in excluded]
    written, skipped = [], []
    try:
        with atomic_open(dest, 'wb') as f, zipfile.ZipFile(f, 'w', compression=zipfile.ZIP_STORED) as zf:
            for name in tqdm(names, desc='dataset', unit='img', disable=not progress):
                try:
                    img = source.load(name, resolution)
                except Exception as e:
                    skipped.append((name, _reason(e)))
                    continue
                buf = io.BytesIO()
                Image.fromarray(img, 'RGB').save(buf, format='PNG')
                member = f'{len(written):08d}.png'
                zf.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())
                written.append({'file': member, 'source': name})
            if not written:
                raise _all_bad_error(source, skipped)
            info = {'format': DATASET_FORMAT, 'resolution': resolution, 'source': os.path.basename(os.path.abspath(source.path)),
                    'images': written, 'skipped': [{'source': n, 'reason': r} for n, r in skipped], 'labels': None}
            if excluded:
                info['excluded'] = sorted(excluded)
            zf.writestr(zipfile.ZipInfo(DATASET_JSON, date_time=(1980, 1, 1, 0, 0, 0)), json.dumps(info, indent=1).encode())
    finally:
        source.close()
    if skipped:
        _warn_skipped(source, skipped, len(source.names), stacklevel=2)
    return PrepareResult(len(written), len(skipped))
