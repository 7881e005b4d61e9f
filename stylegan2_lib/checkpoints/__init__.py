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

from .common import Checkpoint, NonFiniteWeightsWarning, load_scope
from .. import files
from .errors import CheckpointError, ExportError, UnsafePickleError
from .limits import DEFAULT, Limits
from .native import save, is_native, from_native
from .nvlabs import from_nvlabs
from .rosinality import from_rosinality, rosinality_bytes
from .safe_pickle import LimitError, UnsafeGlobal, load_pickle, load_torch_legacy, load_torch_zip
from .tensorflow import from_tensorflow, looks_like_tensorflow, tensorflow_pickle_bytes

__all__ = ['load', 'save', 'export', 'detect_format', 'Checkpoint', 'CheckpointError', 'ExportError', 'UnsafePickleError',
           'Limits', 'NonFiniteWeightsWarning']

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

#----------------------------------------------------------------------------
# Pickles and torch files are streamed from the open file (never read whole), with one byte budget: the file's
# size (safe_pickle).

_READERS = {'torch_zip': (load_torch_zip, 'torch zip file'), 'torch_legacy': (load_torch_legacy, 'torch legacy file'),
            'pickle': (load_pickle, 'pickle')}

def _from_stream(path, f, kind):
    reader, what = _READERS[kind]
    try:
        obj = reader(f)
    except UnsafeGlobal as e:
        raise UnsafePickleError(path, str(e)) from None
    except LimitError as e:
        raise CheckpointError(path, f'{what} asks for more than it holds: {e}') from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(path, f'truncated or corrupt {what}: {_one_line(e)}') from None
    if kind != 'pickle':
        return from_rosinality(path, obj)
    return from_tensorflow(path, obj) if looks_like_tensorflow(obj) else from_nvlabs(path, obj)

def _one_line(e, limit=300):
    text = ' '.join(str(e).split()) or type(e).__name__
    return (text if len(text) <= limit else text[:limit] + '...')

def _load(path, size):
    with open(path, 'rb') as f:
        head = f.read(16)
        kind = detect_format(head)
        if kind in (None, 'native') and is_native(head, size):
            return from_native(path)              # memory-mapped by safetensors: never read whole
        if kind not in _READERS:
            raise CheckpointError(path, 'unknown format: not a network pickle, torch file or stylegan2_lib safetensors file')
        f.seek(0)
        return _from_stream(path, f, kind)

def load(path, device='cpu', limits=None):
    """Read a checkpoint file of any supported format; nothing in the file is executed.

    Whatever the bytes, this returns a Checkpoint or raises CheckpointError (one line naming the file and the
    problem): a hostile or broken file never crashes the interpreter, takes memory out of proportion to its size
    (`limits`: a Limits, for genuinely huge networks) or time out of proportion to its length. NaN or infinite
    weights load with a NonFiniteWeightsWarning naming them."""
    size = _check_file(path)
    limits = limits or DEFAULT
    try:
        with load_scope(limits, size):
            ck = _load(path, size)
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(path, 'the file nests its data too deeply') from None
    except MemoryError:
        raise CheckpointError(path, 'out of memory while reading the file') from None
    except Exception as e:                       # noqa: BLE001 (the boundary: nothing else escapes for a bad file)
        raise CheckpointError(path, f'corrupt or unsupported checkpoint: {type(e).__name__}: {_one_line(e)}') from None
    ck.meta['source'] = os.path.abspath(os.fspath(path))
    for net in ck.networks().values():
        net.to(device)
    return ck

#----------------------------------------------------------------------------
# Export to the formats other tools load.

EXTENSIONS = {'.pkl': 'nvlabs', '.pt': 'rosinality', '.pth': 'rosinality', '.safetensors': 'native', '.onnx': 'onnx'}
FORMATS = ('nvlabs', 'rosinality', 'native', 'onnx')
ONNX_OPTIONS = ('onnx_graph', 'truncation_psi', 'truncation_cutoff')

def export(path, ck_or_G, format=None, meta=None, **onnx_options):
    """Write a Checkpoint (or one Generator, taken as G_ema) as:
    'nvlabs'     .pkl  the TensorFlow-StyleGAN2 layout NVlabs's legacy.load_network_pkl reads unmodified
                       (and so their generate.py / projector.py); no code inside; fp16 and clamp settings kept
    'rosinality' .pt   {g_ema, latent_avg, g, d, args} for their Generator(...).load_state_dict(strict=True)
    'native'     .safetensors  this library's own format (configs and meta included)
    'onnx'       .onnx G_ema only, for onnxruntime (docs/onnx.md): onnx_graph='generator' (z and, unless
                       truncation_psi= fixes it, a scalar input truncation_psi -> img; truncation_cutoff=
                       rows) or 'synthesis' (ws -> img); constant noise, dynamic batch axis
    The format comes from the extension when not given. Checks run first: a network the format cannot
    hold raises ExportError and nothing is written; the write itself is atomic."""
    nets = ck_or_G.networks() if isinstance(ck_or_G, Checkpoint) else {'G_ema': ck_or_G}
    meta = dict(ck_or_G.meta if isinstance(ck_or_G, Checkpoint) else {}, **(meta or {}))
    fmt = format or EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower())
    if fmt not in FORMATS:
        raise ExportError(f'{path}: cannot tell the format from the extension; give format= one of {FORMATS} '
                          f'(or use {", ".join(EXTENSIONS)})' if format is None else f'{path}: unknown format {format!r}; one of {FORMATS}')
    if onnx_options and fmt != 'onnx' or set(onnx_options) - set(ONNX_OPTIONS):
        raise ExportError(f'{path}: unexpected options {sorted(onnx_options)} for format {fmt!r} '
                          f'(the onnx format takes {", ".join(ONNX_OPTIONS)})')
    if fmt == 'native':
        save(path, **nets, meta=meta)
        return fmt
    if fmt == 'onnx':
        _export_onnx(path, nets, **onnx_options)
        return fmt
    try:
        data = (tensorflow_pickle_bytes if fmt == 'nvlabs' else rosinality_bytes)(**nets, **({'meta': meta} if fmt == 'rosinality' else {}))
    except ExportError as e:
        raise ExportError(f'{path}: {e}') from None
    files.atomic_write_bytes(path, data)
    return fmt

def _export_onnx(path, nets, onnx_graph='generator', truncation_psi=None, truncation_cutoff=None):
    from .onnx import onnx_bytes          # torch.onnx and onnxscript load only when an ONNX file is written
    G = nets['G_ema'] if nets.get('G_ema') is not None else nets.get('G')
    if G is None:
        raise ExportError(f'{path}: the checkpoint holds no generator to export to ONNX')
    problem = files.why_unwritable(os.fspath(path))     # asked first: the export takes tens of seconds
    if problem is not None:
        raise ExportError(f'{path}: {problem}')
    try:
        data = onnx_bytes(G, onnx_graph, truncation_psi, truncation_cutoff)
    except ExportError as e:
        raise ExportError(f'{path}: {e}') from None
    files.atomic_write_bytes(path, data)
