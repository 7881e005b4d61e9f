"""The command line's guards, one place each, for cli.py and cli_photo.py: the one error every command
reports as a line, the --seeds and --device options, loading a checkpoint that must hold a generator,
checks on output paths, and exports that are written whole or not at all."""

import argparse
import os
import sys
import warnings

from . import files, images
from .align import FACE_SIZES
from .blend import check_same_architecture
from .checkpoints import EXTENSIONS, FORMATS, ExportError, export, load
from .devices import DeviceUnavailable, default_device


class CLIError(Exception):
    """A request a command cannot carry out: printed as `stylegan2-lib: error: <message>`, exit status 1,
    nothing written. (Not a ValueError: raised from an argparse `type=`, it passes argparse untouched.)"""

#----------------------------------------------------------------------------
# Options whose values are checked as argparse reads them (`type=`), so every command checks them alike.

def seed_list(text):
    """--seeds '0-7' / '1,5,10-12' -> [0, ..., 7] / [1, 5, 10, 11, 12] (images.parse_seeds)."""
    try:
        return images.parse_seeds(text)
    except ValueError as e:
        raise CLIError(f'--seeds: {e}') from None

def face_size(text):
    """--size of aligned faces: a whole number of pixels within align.FACE_SIZES."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a whole number of pixels: {text!r}') from None
    low, high = FACE_SIZES
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f'{value}: give a face size from {low} to {high} pixels')
    return value

def add_seeds_option(parser, default, what):
    parser.add_argument('--seeds', type=seed_list, default=default,
                        help=f"{what}, e.g. '{default}' or '1,5,10-12' (default: {default})")

DEVICES = ('auto', 'cpu', 'cuda')

def device_name(text):
    """--device auto|cpu|cuda -> 'cuda' or 'cpu' by devices.default_device (auto: cuda when available);
    'cuda' on a machine without CUDA stops here, with the reason."""
    if text not in DEVICES:
        raise argparse.ArgumentTypeError(f'invalid choice: {text!r} (choose from {", ".join(DEVICES)})')
    try:
        return str(default_device(text))
    except DeviceUnavailable as e:
        raise CLIError(f'--device {text}: CUDA is not available here ({e.reason}); use --device cpu') from None

def add_device_option(parser):
    """--device, for every command that runs networks; the value the command sees is 'cuda' or 'cpu'."""
    parser.add_argument('--device', type=device_name, default='auto', metavar='{auto,cpu,cuda}',
                        help='where the networks run (default: auto = cuda when available, else cpu)')

#----------------------------------------------------------------------------
# Inputs.

def load_with_generator(path, what, device='cpu'):
    """sg.load(path) onto `device`, for an option (`what`, e.g. '--low') that needs a generator in it."""
    ck = load(path, device=device)
    if ck.generator is None:
        raise CLIError(f'{path}: {what}: the checkpoint holds no generator (only {", ".join(ck.networks())})')
    return ck

def load_generator(path, what, device='cpu'):
    """The generator of the checkpoint at `path` (G_ema, or G where there is no G_ema)."""
    return load_with_generator(path, what, device).generator

def load_generator_pair(path_a, what_a, path_b, what_b, device='cpu'):
    """The generators of two checkpoints that must share one architecture (to be blended); CLIError naming
    both files and the first difference otherwise."""
    a, b = load_generator(path_a, what_a, device), load_generator(path_b, what_b, device)
    try:
        check_same_architecture(a, b)
    except ValueError as e:
        raise CLIError(f'{path_a} ({what_a}) and {path_b} ({what_b}): {e}') from None
    return a, b

def check_width(width):
    """--width of a smooth blend: 0 (a hard swap) or more."""
    if width is not None and width < 0:
        raise CLIError(f'--width {width:g}: give 0 (hard swap) or more')

#----------------------------------------------------------------------------
# Outputs: checks made before anything is loaded or written, and all-or-nothing exports.

def output_format(path, fmt):
    """--format, else the one the extension names (as sg.export picks it)."""
    if fmt is not None:
        return fmt
    found = EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if found is None:
        raise CLIError(f'{path}: cannot tell the format from the extension (one of {", ".join(EXTENSIONS)}); '
                       f'give --format {"|".join(FORMATS)}')
    return found

def check_writable(path, what):
    """`path` can be created: not a directory, and its nearest existing parent is a writable directory."""
    problem = files.why_unwritable(path, what)
    if problem is not None:
        raise CLIError(f'{path}: {problem}')

def check_outdir(path, what='--outdir'):
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f'{path}: {what} exists and is not a directory')

def export_quietly(path, net, fmt, meta=None, **options):
    """sg.export, with its warnings (e.g. the placeholder D of an NVlabs .pkl) as one stderr line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        export(path, net, format=fmt, meta=meta, **options)
    for w in caught:
        print(f'stylegan2-lib: warning: {w.message}', file=sys.stderr)

def export_with_preview(path, net, fmt, meta=None, preview=None, render=None):
    """Export `net` to `path` and, when `preview` is given, write the PNG `render()` returns there, all or
    nothing: the export is staged beside `path` and renamed into place only once the preview is written,
    so a failure leaves neither new file (and an existing `path` as it was)."""
    with files.replaced_on_success(path) as staged:
        try:
            export_quietly(staged, net, fmt, meta)
        except ExportError as e:                    # it names the file: the user's, not the staged one
            raise ExportError(str(e).replace(staged, os.fspath(path))) from None
        if preview is not None:
            images.save_image(preview, render())
