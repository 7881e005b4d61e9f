"""A restricted unpickler for network checkpoints: nothing from the file is ever executed or imported.

Every global a pickle names is looked up in an allowlist that maps it to a stand-in written here:
tensor rebuilders that only slice raw storage bytes, plain record classes for NVlabs persistent objects,
TensorFlow networks, argparse namespaces and EasyDicts, and a few numpy constructors that only build
arrays and scalars from bytes. Any other global (`os.system`, `builtins.eval`, ...) stops the load
before it can be called. Storages come from the raw bytes of torch's zip or legacy formats, read here,
so torch's own (full) unpickler is never run on the file either.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np
import torch

#----------------------------------------------------------------------------
# Stand-ins for the classes the formats name.

class Record(dict):
    """A dict that also allows attribute access (stand-in for dnnlib EasyDict)."""
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class PersistentRecord:
    """What an NVlabs `torch_utils.persistence` object was pickled as: meta = dict(type, version,
    module_src, class_name, state). The source text is kept as data, never run."""
    def __init__(self, meta):
        if not isinstance(meta, dict) or meta.get('type') != 'class' or 'state' not in meta:
            raise pickle.UnpicklingError('malformed torch_utils.persistence record')
        self.class_name = str(meta.get('class_name'))
        self.version = meta.get('version')
        self.module_src = meta.get('module_src', '')
        self.state = meta['state']


class TFNetworkRecord:
    """State of a `dnnlib.tflib.network.Network` (TF StyleGAN2): a dict set through __setstate__."""
    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError('malformed dnnlib.tflib.network.Network state')
        self.state = state


class NamespaceRecord:
    """Stand-in for argparse.Namespace: attributes set from the pickled __dict__."""
    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {})

    def as_dict(self):
        return dict(self.__dict__)


class StorageType:
    """Marker for `torch.FloatStorage` and friends inside persistent ids; never called."""
    def __init__(self, dtype):
        self.dtype = dtype

    def __repr__(self):
        return f'StorageType({self.dtype})'


_STORAGE_DTYPES = {
    'FloatStorage': torch.float32, 'DoubleStorage': torch.float64, 'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
}

#----------------------------------------------------------------------------
# Tensor rebuilders: a "storage" here is a flat 1-D tensor of its dtype.

def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, torch.Tensor) or storage.ndim != 1:
        raise pickle.UnpicklingError('tensor record does not point at a storage')
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f'tensor record with size {size} and stride {stride}')
    if size and min(size) > 0:
        last = int(storage_offset) + sum((n - 1) * s for n, s in zip(size, stride))
        if storage_offset < 0 or last >= storage.numel():
            raise pickle.UnpicklingError(f'tensor of size {size} reaches past the end of its storage ({storage.numel()} elements)')
    return storage.as_strided(size, stride, int(storage_offset))

def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data

def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_parameter):
        raise pickle.UnpicklingError('unexpected tensor rebuild function')
    return func(*args)

#----------------------------------------------------------------------------
# Raw storage bytes -> flat tensor.

def _storage_from_bytes(buf, dtype, numel):
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if len(buf) < numel * itemsize:
        raise pickle.UnpicklingError(f'storage holds {len(buf)} bytes, {numel * itemsize} expected')
    if numel == 0:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(bytearray(buf[: numel * itemsize]), dtype=dtype)

#----------------------------------------------------------------------------
# The unpickler.

def _numpy_attr(*names):
    for name in names:
        obj = np
        try:
            for part in name.split('.'):
                obj = getattr(obj, part)
            return obj
        except AttributeError:
            continue
    raise AttributeError(names)

def _numpy_scalar():
    return _numpy_attr('_core.multiarray.scalar', 'core.multiarray.scalar')

def numpy_reconstruct():
    return _numpy_attr('_core.multiarray._reconstruct', 'core.multiarray._reconstruct')

def _allowlist():
    table = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('builtins', 'slice'): slice,
        ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
        ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
        ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
        ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
        ('torch', 'Tensor'): StorageType(None),
        ('torch.nn.parameter', 'Parameter'): StorageType(None),
        ('torch.storage', '_load_from_bytes'): load_legacy_storage_blob,
        ('dnnlib.util', 'EasyDict'): Record,
        ('dnnlib', 'EasyDict'): Record,
        ('dnnlib.tflib.network', 'Network'): TFNetworkRecord,
        ('torch_utils.persistence', '_reconstruct_persistent_obj'): PersistentRecord,
        ('argparse', 'Namespace'): NamespaceRecord,
        ('numpy', 'dtype'): np.dtype,
        ('numpy', 'ndarray'): np.ndarray,
    }
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        table[(mod, 'scalar')] = _numpy_scalar()
        table[(mod, '_reconstruct')] = numpy_reconstruct()
    for name, dtype in _STORAGE_DTYPES.items():
        table[('torch', name)] = StorageType(dtype)
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals only through ALLOWED_GLOBALS; storages through `storage_loader(key, dtype, numel)`."""

    def __init__(self, file, storage_loader=None):
        super().__init__(file)
        self._storage_loader = storage_loader

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeGlobal(module, name) from None

    def persistent_load(self, pid):
        if self._storage_loader is None:
            raise pickle.UnpicklingError('unexpected persistent id outside a torch file')
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage' and isinstance(pid[1], StorageType)):
            raise pickle.UnpicklingError(f'unsupported persistent id {pid!r:.80}')
        _, storage_type, key, _location, numel = pid[:5]
        return self._storage_loader(str(key), storage_type.dtype, int(numel))


class UnsafeGlobal(pickle.UnpicklingError):
    def __init__(self, module, name):
        self.module, self.name = module, name
        super().__init__(f"the pickle names the global '{module}.{name}', which is not on the allowlist; refusing to load it")

#----------------------------------------------------------------------------
# Readers for the three containers: a plain pickle, torch's zip format, torch's legacy format.

def load_pickle(data: bytes):
    return RestrictedUnpickler(io.BytesIO(data)).load()

def load_torch_zip(data: bytes):
    """torch.save's zip format (torch >= 1.6): <root>/data.pkl + <root>/data/<key> raw storages."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
        if not pkl:
            raise pickle.UnpicklingError('zip archive without data.pkl: not a torch file')
        root = pkl[0][: -len('data.pkl')]
        cache = {}

        def storage(key, dtype, numel):
            if key not in cache:
                cache[key] = _storage_from_bytes(zf.read(f'{root}data/{key}'), dtype, numel)
            return cache[key]

        return RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), storage).load()

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c

def load_torch_legacy(data: bytes):
    """torch.save's legacy format: pickles of (magic, protocol, sys_info, object, storage keys), then each
    storage's bytes as an int64 element count followed by the raw data, in key order."""
    f = io.BytesIO(data)
    if RestrictedUnpickler(f).load() != LEGACY_MAGIC:
        raise pickle.UnpicklingError('not a torch legacy file (bad magic number)')
    protocol = RestrictedUnpickler(f).load()
    if protocol != 1001:
        raise pickle.UnpicklingError(f'unsupported torch legacy protocol {protocol!r}')
    sys_info = RestrictedUnpickler(f).load()
    if not (isinstance(sys_info, dict) and sys_info.get('little_endian', True)):
        raise pickle.UnpicklingError('big-endian torch files are not supported')
    pending = {}

    def storage(key, dtype, numel):
        if key not in pending:
            pending[key] = (dtype, numel, torch.empty(numel, dtype=dtype))
        return pending[key][2]

    obj = RestrictedUnpickler(f, storage).load()
    keys = RestrictedUnpickler(f).load()
    if not isinstance(keys, list):
        raise pickle.UnpicklingError('malformed storage key list')
    for key in keys:
        key = str(key)
        (numel,) = struct.unpack('<q', f.read(8) or b'\0' * 8)
        dtype, expected, flat = pending.get(key, (None, None, None))
        if flat is None or numel != expected:
            raise pickle.UnpicklingError(f'storage {key}: {numel} elements on disk, {expected} expected')
        flat.copy_(_storage_from_bytes(f.read(numel * flat.element_size()), dtype, numel))
    return obj

def load_legacy_storage_blob(blob):
    """`torch.storage._load_from_bytes(b)`: a legacy torch.save stream of one storage (NVlabs pickles)."""
    if not isinstance(blob, (bytes, bytearray)):
        raise pickle.UnpicklingError('storage blob is not bytes')
    storage = load_torch_legacy(bytes(blob))
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError('storage blob does not hold a storage')
    return storage

#----------------------------------------------------------------------------

ALLOWED_GLOBALS = _allowlist()
