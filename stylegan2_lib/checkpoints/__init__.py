"""Load any common StyleGAN2 checkpoint safely; save the library's own format.

    ck = load(path)         # format detected from the content, not the name
    ck.G_ema, ck.G, ck.D    # networks (None where the file has none), eval mode, on `device`
    ck.meta                 # format, source, training information (augment p, dataset kwargs, args)

Formats: NVlabs stylegan2-ada-pytorch / stylegan3-repo StyleGAN2 pickles, TensorFlow StyleGAN2 pickles,
rosinality stylegan2-pytorch checkpoints (torch zip or legacy format), and our safetensors files.
"""

import os
import pickle
import zipfile

from .common import Checkpoint
from .. import files
from .errors import CheckpointError, ExportError, UnsafePickleError
from .native import save, is_native, from_native
from .nvlabs import from_nvlabs
from .rosinality import from_rosinality, rosinality_bytes
from .safe_pickle import UnsafeGlobal, load_pickle, load_torch_legacy, load_torch_zip
from .tensorflow import from_tensorflow, looks_like_tensorflow, tensorflow_pickle_bytes

__all__ = ['load', 'save', 'export', 'detect_format', 'Checkpoint', 'CheckpointError', 'ExportError', 'UnsafePickleError']

_LEGACY_TORCH_PREFIX = bytes.fromhex('80028a0a6cfc9c46f9206aa85019')   # pickle of torch's legacy magic number

#----------------------------------------------------------------------------

def detect_format(data: bytes):
    """Container of the bytes: 'native', 'torch_zip', 'torch_legacy', 'pickle' or None."""
    if data[:4] == b'PK\x03\x04':
        return 'torch_zip'
    if data.startswith(_LEGACY_TORCH_PREFIX):
        return 'torch_legacy'
    if len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return 'pickle'
    if is_native(data):
        return 'native'
    return None

def _check_file(path):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(path, 'is a directory, not a checkpoint file')
    if not os.path.exists(path):
        raise CheckpointError(path, 'no such file')
    size = os.path.getsize(path)
    if not size:
        raise CheckpointError(path, 'the file is empty')
    return size

def _read(path):
    with open(path, 'rb') as f:
        return f.read()

def _unpickle(path, reader, data, what):
    try:
        return reader(data)
    except UnsafeGlobal as e:
        raise UnsafePickleError(path, str(e)) from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError, KeyError,
            IndexError, AttributeError, RuntimeError, MemoryError, OverflowError) as e:
        raise CheckpointError(path, f'truncated or corrupt {what}: {type(e).__name__}: {e}') from None

#----------------------------------------------------------------------------

def _from_bytes(path, data):
    kind = detect_format(data)
    if kind == 'torch_zip':
        return from_rosinality(path, _unpickle(path, load_torch_zip, data, 'torch zip file'))
    if kind == 'torch_legacy':
        return from_rosinality(path, _unpickle(path, load_torch_legacy, data, 'torch legacy file'))
    if kind == 'pickle':
        obj = _unpickle(path, load_pickle, data, 'pickle')
        return from_tensorflow(path, obj) if looks_like_tensorflow(obj) else from_nvlabs(path, obj)
    raise CheckpointError(path, 'unknown format: not a network pickle, torch file or stylegan2_lib safetensors file')

def load(path, device='cpu'):
    """Read a checkpoint file of any supported format; nothing in the file is executed."""
    size = _check_file(path)
    with open(path, 'rb') as f:
        head = f.read(16)
    if detect_format(head) in (None, 'native') and is_native(head, size):
        ck = from_native(path)                # memory-mapped by safetensors: never read whole
    else:
        ck = _from_bytes(path, _read(path))   # pickles and torch files: parsed from the bytes
    ck.meta['source'] = os.path.abspath(os.fspath(path))
    for net in ck.networks().values():
        net.to(device)
    return ck

#----------------------------------------------------------------------------
# Export to the formats other tools load.

EXTENSIONS = {'.pkl': 'nvlabs', '.pt': 'rosinality', '.pth': 'rosinality', '.safetensors': 'native'}
FORMATS = ('nvlabs', 'rosinality', 'native')

def export(path, ck_or_G, format=None, meta=None):
    """Write a Checkpoint (or one Generator, taken as G_ema) as:
    'nvlabs'     .pkl  the TensorFlow-StyleGAN2 layout NVlabs's legacy.load_network_pkl reads unmodified
                       (and so their generate.py / projector.py); no code inside; fp16 and clamp settings kept
    'rosinality' .pt   {g_ema, latent_avg, g, d, args} for their Generator(...).load_state_dict(strict=True)
    'native'     .safetensors  this library's own format (configs and meta included)
    The format comes from the extension when not given. Checks run first: a network the format cannot
    hold raises ExportError and nothing is written; the write itself is atomic."""
    nets = ck_or_G.networks() if isinstance(ck_or_G, Checkpoint) else {'G_ema': ck_or_G}
    meta = dict(ck_or_G.meta if isinstance(ck_or_G, Checkpoint) else {}, **(meta or {}))
    fmt = format or EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower())
    if fmt not in FORMATS:
        raise ExportError(f'{path}: cannot tell the format from the extension; give format= one of {FORMATS} '
                          f'(or use {", ".join(EXTENSIONS)})' if format is None else f'{path}: unknown format {format!r}; one of {FORMATS}')
    if fmt == 'native':
        save(path, **nets, meta=meta)
        return fmt
    try:
        data = (tensorflow_pickle_bytes if fmt == 'nvlabs' else rosinality_bytes)(**nets, **({'meta': meta} if fmt == 'rosinality' else {}))
    except ExportError as e:
        raise ExportError(f'{path}: {e}') from None
    files.atomic_write_bytes(path, data)
    return fmt
