"""A restricted unpickler for network checkpoints: nothing from the file is executed or imported, and reading a
file costs memory and time in proportion to its size.

Every global a pickle names is looked up in an allowlist that maps it to a stand-in written here: tensor
rebuilders that only take views of storages read from the file, plain record classes for NVlabs persistent
objects, TensorFlow networks, argparse namespaces and EasyDicts, and inert stand-ins for numpy's dtype, array
and scalar constructors that accept plain numeric dtypes and exact byte lengths only (numpy's own
constructors, given a crafted state, read object pointers from the file's bytes). Any other global
(`os.system`, `builtins.eval`, ...) stops the load before it can be called. Storages come from the raw bytes of
torch's zip or legacy formats, read here, so torch's own unpickler never runs on the file either.

Bounds, all in proportion to the input (a hostile file of a few bytes must not take gigabytes or minutes):
- one byte budget per load, the input's size: every storage and array is charged before it is allocated, a
  storage referenced many times is decoded once, and a read may not go past the end of the input;
- the unpickler is pickle's Python implementation (its memo is a dict: a huge memo index costs nothing), with
  dict and set keys restricted to types whose hashes the file cannot make collide (str, bytes, small ints,
  bool, None), which keeps building them linear;
- tensor views must lie inside their storage and may not overlap themselves (no stride-0 "huge" tensors);
- zip members are read with their declared size checked first and duplicate names refused; legacy torch files
  must list exactly the storages they use.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import torch


class LimitError(pickle.UnpicklingError):
    """The input asks for more memory or structure than its size allows."""

#----------------------------------------------------------------------------
# Stand-ins for the classes the formats name.

class Record(dict):
    """A dict that also allows attribute access (stand-in for dnnlib EasyDict). Only its keys answer: dunder
    names are never looked up in the data (numpy would otherwise read `__array_interface__` from a file)."""
    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state):
        if state:
            raise pickle.UnpicklingError('EasyDict record with attribute state')


class PersistentRecord:
    """What an NVlabs `torch_utils.persistence` object was pickled as: meta = dict(type, version,
    module_src, class_name, state). The source text is kept as data, never run."""
    def __init__(self, meta):
        if not isinstance(meta, dict) or meta.get('type') != 'class' or not isinstance(meta.get('state'), dict):
            raise pickle.UnpicklingError('malformed torch_utils.persistence record')
        self.class_name = str(meta.get('class_name'))[:200]
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
    """Stand-in for argparse.Namespace: the pickled __dict__, kept as a dict (never set as attributes)."""
    def __setstate__(self, state):
        self.values = dict(state) if isinstance(state, dict) else {}

    def as_dict(self):
        return dict(getattr(self, 'values', {}))


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
# numpy stand-ins. A pickled array is `_reconstruct(ndarray, (0,), b'b')` + BUILD (1, shape, dtype, fortran,
# bytes); a dtype `dtype('f4', False, True)` + BUILD (3, '<', None, None, None, -1, -1, 0); a scalar
# `scalar(dtype, bytes)`. Here a dtype is a DTypeSpec and an array an ArraySpec until its BUILD, both plain
# Python objects; numpy only ever sees `np.frombuffer(bytes of the exact length, a little-endian numeric dtype)`.

_NUMPY_KINDS = ('b1', 'i1', 'u1', 'i2', 'u2', 'i4', 'u4', 'i8', 'u8', 'f2', 'f4', 'f8')
MAX_NDIM = 8


class DTypeSpec:
    def __init__(self, spec, align=False, copy=True):
        if not isinstance(spec, str) or spec not in _NUMPY_KINDS:
            raise pickle.UnpicklingError(f'numpy dtype {spec!r:.40} is not a plain numeric type')
        self.kind, self.byteorder = spec, '<'

    def __setstate__(self, state):
        # The state numpy pickles for a builtin numeric type, exactly: no subarray, fields, sizes or flags.
        ok = (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ('<', '|', '=')
              and state[2:] == (None, None, None, -1, -1, 0))
        if not ok:
            raise pickle.UnpicklingError(f'numpy dtype state {state!r:.80} is not that of a little-endian numeric type')

    def numpy(self):
        return np.dtype('<' + self.kind)


class NDArrayMarker:
    """`numpy.ndarray` as the first argument of _reconstruct; never called."""


NDARRAY = NDArrayMarker()


class ArraySpec:
    """A numpy array from a pickle: `.array` once its BUILD gave shape, dtype and exactly the bytes they need."""
    def __init__(self, budget):
        self._budget, self.array = budget, None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], DTypeSpec)):
            raise pickle.UnpicklingError('numpy array state is not (version, shape, dtype, fortran, bytes)')
        _, shape, dtype, fortran, data = state
        shape = checked_shape(shape, 'numpy array')
        dt = dtype.numpy()
        nbytes = _product(shape) * dt.itemsize
        if not isinstance(data, (bytes, bytearray)) or len(data) != nbytes or type(fortran) is not bool:
            raise pickle.UnpicklingError(f'numpy array of shape {list(shape)} and dtype {dt} needs exactly {nbytes} bytes')
        self._budget.charge(nbytes, 'numpy array')
        self.array = np.frombuffer(bytes(data), dtype=dt).reshape(shape, order='F' if fortran else 'C')


def as_array(v, what='value'):
    """The numpy array behind an unpickled value (an ArraySpec), else an UnpicklingError."""
    if isinstance(v, ArraySpec) and v.array is not None:
        return v.array
    raise pickle.UnpicklingError(f'{what} is a {type(v).__name__}, not a numeric array')


def _numpy_reconstruct(budget):
    def reconstruct(cls, shape, typecode):
        if cls is not NDARRAY:
            raise pickle.UnpicklingError('numpy _reconstruct of something other than ndarray')
        return ArraySpec(budget)
    return reconstruct


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, DTypeSpec) or not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError('numpy scalar that is not (numeric dtype, bytes)')
    dt = dtype.numpy()
    if len(data) != dt.itemsize:
        raise pickle.UnpicklingError(f'numpy {dt} scalar with {len(data)} bytes')
    return np.frombuffer(bytes(data), dtype=dt)[0]

#----------------------------------------------------------------------------
# Shapes and views.

def _product(values):
    out = 1
    for v in values:
        out *= v
    return out


def checked_shape(shape, what, limit=2 ** 40):
    if not isinstance(shape, (tuple, list)) or len(shape) > MAX_NDIM or not all(type(s) is int and s >= 0 for s in shape):
        raise pickle.UnpicklingError(f'{what}: shape {shape!r:.80} is not a list of at most {MAX_NDIM} sizes')
    if _product(shape) > limit:
        raise LimitError(f'{what}: shape {list(shape)} is too large')
    return tuple(shape)


def _non_overlapping(size, stride):
    """A view that maps no two indices onto one element: sorted by stride, each stride clears the extent of
    the dimensions below it. (Stride-0 and other self-overlapping views would let a few stored numbers pose as
    a huge tensor.)"""
    extent = 1
    for s, n in sorted((s, n) for n, s in zip(size, stride) if n > 1):
        if s < extent:
            return False
        extent = s * (n - 1) + extent
    return True


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, torch.Tensor) or storage.ndim != 1:
        raise pickle.UnpicklingError('tensor record does not point at a storage')
    size = checked_shape(size, 'tensor')
    if not isinstance(stride, (tuple, list)) or len(stride) != len(size) or not all(type(s) is int and s >= 0 for s in stride):
        raise pickle.UnpicklingError(f'tensor record with size {list(size)} and stride {stride!r:.80}')
    if type(storage_offset) is not int or storage_offset < 0:
        raise pickle.UnpicklingError(f'tensor record with storage offset {storage_offset!r:.40}')
    if not _non_overlapping(size, stride):
        raise pickle.UnpicklingError(f'tensor of size {list(size)} with strides {list(stride)} overlaps itself')
    if size and min(size) > 0:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel():
            raise pickle.UnpicklingError(f'tensor of size {list(size)} reaches past the end of its storage ({storage.numel()} elements)')
    elif storage_offset > storage.numel():
        raise pickle.UnpicklingError('empty tensor placed past the end of its storage')
    return storage.as_strided(size, tuple(stride), storage_offset)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError('parameter record without a tensor')
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_parameter) or not isinstance(args, tuple):
        raise pickle.UnpicklingError('unexpected tensor rebuild function')
    return func(*args)

#----------------------------------------------------------------------------
# Containers whose keys the file chooses: only key types with hashes the file cannot make collide (str and
# bytes hashes are salted per process; ints below 2**61 - 1 hash to themselves), so building stays linear.

_SMALL_INT = 2 ** 61 - 1


def check_key(key):
    if isinstance(key, (str, bytes, bool)) or key is None:
        return key
    if type(key) is int and -_SMALL_INT < key < _SMALL_INT:
        return key
    raise pickle.UnpicklingError(f'dict or set key of type {type(key).__name__} (only str, bytes and small ints are accepted)')


def _ordered_dict(items=()):
    out = collections.OrderedDict()
    for pair in items if isinstance(items, (list, tuple)) else ():
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise pickle.UnpicklingError('OrderedDict item that is not a pair')
        out[check_key(pair[0])] = pair[1]
    return out


def _set(items=()):
    return set(check_key(k) for k in (items if isinstance(items, (list, tuple, set, frozenset)) else ()))


def _frozenset(items=()):
    return frozenset(_set(items))


def _slice(*args):
    if len(args) > 3 or not all(a is None or type(a) is int for a in args):
        raise pickle.UnpicklingError('slice of something other than ints')
    return slice(*args)

#----------------------------------------------------------------------------
# The byte budget of one load, and reads that stay inside the input.

class Budget:
    """What one load may still take: storage bytes (the input's size) and unpickler opcodes. Every opcode makes
    at most a few Python objects, so their number bounds the memory the unpickler's own objects take: at most
    MIN_OPCODES + size / BYTES_PER_OPCODE (a network pickle runs a few per tensor, tens of thousands in all; a
    file of 24 million EMPTY_DICT opcodes would otherwise make 1.5 GB of dicts from 24 MB), so the unpickler's
    objects take under 30 MiB plus about the input's size."""
    MIN_OPCODES = 2 ** 17           # a 1 MB network pickle runs about 17000, a 280 MB one about 10000
    BYTES_PER_OPCODE = 256          # at most ~250 bytes of Python objects per opcode (an empty set: 216)

    def __init__(self, limit):
        self.limit, self.used = limit, 0
        self.opcodes_left = self.MIN_OPCODES + limit // self.BYTES_PER_OPCODE

    def charge(self, nbytes, what):
        self.used += nbytes
        if self.used > self.limit:
            raise LimitError(f'{what}: the file would need more than its own size ({self.limit} bytes) in storage')


class BoundedReader:
    """A file-like view of `f` that refuses reads past `size` bytes (before allocating anything for them)."""
    def __init__(self, f, size):
        self.f, self.size = f, size

    def remaining(self):
        return self.size - self.f.tell()

    def read(self, n=-1):
        left = self.remaining()
        if n is None or n < 0:
            n = left
        if n > left:
            raise EOFError(f'the data declares {n} bytes where {left} are left')
        data = self.f.read(n)
        if len(data) != n:
            raise EOFError('truncated data')
        return data

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:] = data
        return len(data)

    def readline(self, limit=4096):
        line = self.f.readline(min(limit, max(self.remaining(), 0)))
        if not line.endswith(b'\n'):
            raise pickle.UnpicklingError('unterminated or overlong text line in the pickle')
        return line

    def peek(self, n=1):
        pos = self.f.tell()
        data = self.f.read(min(n, self.remaining()))
        self.f.seek(pos)
        return data


def as_reader(data):
    """(reader, size) for bytes or a seekable binary file (read from its current position)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        f = io.BytesIO(data)
        return BoundedReader(f, len(data)), len(data)
    size = os.fstat(data.fileno()).st_size if hasattr(data, 'fileno') else data.seek(0, 2)
    if not hasattr(data, 'fileno'):
        data.seek(0)
    return BoundedReader(data, size), size - data.tell()

#----------------------------------------------------------------------------
# The unpickler: pickle's Python implementation (no C-level memo array, every opcode under our control).

def _allowlist(budget, storage_blob):
    table = {
        ('collections', 'OrderedDict'): _ordered_dict,
        ('builtins', 'set'): _set,
        ('builtins', 'frozenset'): _frozenset,
        ('builtins', 'slice'): _slice,
        ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
        ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
        ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
        ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
        ('torch', 'Tensor'): StorageType(None),
        ('torch.nn.parameter', 'Parameter'): StorageType(None),
        ('torch.storage', '_load_from_bytes'): storage_blob,
        ('dnnlib.util', 'EasyDict'): Record,
        ('dnnlib', 'EasyDict'): Record,
        ('dnnlib.tflib.network', 'Network'): TFNetworkRecord,
        ('torch_utils.persistence', '_reconstruct_persistent_obj'): PersistentRecord,
        ('argparse', 'Namespace'): NamespaceRecord,
        ('numpy', 'dtype'): DTypeSpec,
        ('numpy', 'ndarray'): NDARRAY,
    }
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        table[(mod, 'scalar')] = _numpy_scalar
        table[(mod, '_reconstruct')] = _numpy_reconstruct(budget)
    for name, dtype in _STORAGE_DTYPES.items():
        table[('torch', name)] = StorageType(dtype)
    return table


_BUILDABLE = (TFNetworkRecord, NamespaceRecord, DTypeSpec, ArraySpec, Record)


class RestrictedUnpickler(pickle._Unpickler):
    """Resolves globals only through the allowlist; storages through `storage_loader(key, dtype, numel)`.
    `budget`: the load's Budget (shared by the pickles of one file), which also bounds the opcodes run."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, reader, storage_loader=None, budget=None, blobs=True):
        super().__init__(reader)
        self._storage_loader = storage_loader
        self.budget = budget if budget is not None else Budget(getattr(reader, 'size', 2 ** 62))
        self._blobs = {}
        self.allowed = _allowlist(self.budget, self._storage_blob)
        if not blobs:                                   # inside a storage blob: no blob within a blob
            del self.allowed[('torch.storage', '_load_from_bytes')]

    def load(self):
        """pickle._Unpickler.load's loop, with the opcode count bounded by the budget (see the class)."""
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)
        self.read, self.readinto, self.readline = self._unframer.read, self._unframer.readinto, self._unframer.readline
        self.metastack, self.stack, self.proto = [], [], 0
        self.append = self.stack.append
        read, dispatch = self.read, self.dispatch
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError('the pickle ends before its STOP opcode')
                self.budget.opcodes_left -= 1
                if self.budget.opcodes_left < 0:
                    raise LimitError('the pickle runs more opcodes than its size allows')
                dispatch[key[0]](self)
        except pickle._Stop as stop:
            return stop.value
        except KeyError as e:
            raise pickle.UnpicklingError(f'invalid opcode {e.args[0] if e.args else "?"!r}') from None

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeGlobal(module, name) from None

    def persistent_load(self, pid):
        if self._storage_loader is None:
            raise pickle.UnpicklingError('unexpected persistent id outside a torch file')
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage' and isinstance(pid[1], StorageType)
                and pid[1].dtype is not None and isinstance(pid[2], (str, int)) and type(pid[4]) is int and pid[4] >= 0):
            raise pickle.UnpicklingError(f'unsupported persistent id {pid!r:.80}')
        return self._storage_loader(str(pid[2]), pid[1].dtype, pid[4])

    def _storage_blob(self, blob):
        """`torch.storage._load_from_bytes(b)` (NVlabs pickles): decoded once per blob, however often it is used."""
        if not isinstance(blob, (bytes, bytearray)):
            raise pickle.UnpicklingError('storage blob is not bytes')
        key = id(blob)
        if key not in self._blobs:
            storage = load_torch_legacy(bytes(blob), budget=self.budget, blobs=False)
            if not isinstance(storage, torch.Tensor):
                raise pickle.UnpicklingError('storage blob does not hold a storage')
            self._blobs[key] = (blob, storage)             # the blob is kept alive, so its id stays its own
        return self._blobs[key][1]

    # Containers: every key goes through check_key.
    def _setitems(self, d, items):
        if not isinstance(d, dict):
            raise pickle.UnpicklingError('SETITEM(S) on something other than a dict')
        for i in range(0, len(items) - 1, 2):
            d[check_key(items[i])] = items[i + 1]

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self._setitems(self.stack[-1], [key, value])
    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self):
        items = self.pop_mark()
        self._setitems(self.stack[-1], items)
    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_dict(self):
        items = self.pop_mark()
        d = {}
        self._setitems(d, items)
        self.append(d)
    dispatch[pickle.DICT[0]] = load_dict

    def load_additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, set):
            raise pickle.UnpicklingError('ADDITEMS on something other than a set')
        target.update(check_key(k) for k in items)
    dispatch[pickle.ADDITEMS[0]] = load_additems

    def load_frozenset(self):
        self.append(frozenset(check_key(k) for k in self.pop_mark()))
    dispatch[pickle.FROZENSET[0]] = load_frozenset

    # BYTEARRAY8 allocates its length before reading (pickle.py): read first, within the input.
    def load_bytearray8(self):
        (n,) = struct.unpack('<Q', self.read(8))
        self.append(bytearray(self.read(n)))
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    # BUILD only on the stand-ins that take a state.
    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is collections.OrderedDict and isinstance(state, dict):
            return                                      # a state_dict's `_metadata` attribute: not needed
        if not isinstance(inst, _BUILDABLE):
            raise pickle.UnpicklingError(f'BUILD on a {type(inst).__name__}')
        inst.__setstate__(state)
    dispatch[pickle.BUILD[0]] = load_build

    # NEWOBJ and INST/OBJ create instances: only of our stand-in classes, without arguments.
    def _new(self, cls, args):
        if cls not in (TFNetworkRecord, NamespaceRecord, Record) or args:
            raise pickle.UnpicklingError(f'cannot create a {getattr(cls, "__name__", type(cls).__name__)} here')
        return cls.__new__(cls)

    def load_newobj(self):
        args, cls = self.stack.pop(), self.stack.pop()
        self.append(self._new(cls, args))
    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        kwargs, args, cls = self.stack.pop(), self.stack.pop(), self.stack.pop()
        self.append(self._new(cls, args or kwargs))
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass, args):
        self.append(self._new(klass, tuple(args)))


class UnsafeGlobal(pickle.UnpicklingError):
    def __init__(self, module, name):
        self.module, self.name = str(module)[:100], str(name)[:100]
        super().__init__(f"the pickle names the global '{self.module}.{self.name}', which is not on the allowlist; refusing to load it")

#----------------------------------------------------------------------------
# Readers for the three containers: a plain pickle, torch's zip format, torch's legacy format. Each takes bytes
# or a binary file (streamed from its current position), and optionally the load's Budget.

def load_pickle(data, budget=None):
    reader, size = as_reader(data)
    return RestrictedUnpickler(reader, budget=budget or Budget(size)).load()


def _storage_from_bytes(buf, dtype, numel):
    if numel == 0:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(bytearray(buf), dtype=dtype)


def _itemsize(dtype):
    return torch.empty(0, dtype=dtype).element_size()


def load_torch_zip(data, budget=None):
    """torch.save's zip format (torch >= 1.6): <root>/data.pkl + <root>/data/<key> raw storages."""
    reader, size = as_reader(data)
    budget = budget or Budget(size)
    with zipfile.ZipFile(reader.f if isinstance(data, (bytes, bytearray, memoryview)) else data) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise pickle.UnpicklingError('zip archive with duplicate member names')
        by_name = {i.filename: i for i in infos}
        pkl = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
        if not pkl:
            raise pickle.UnpicklingError('zip archive without data.pkl: not a torch file')
        root = pkl[0][: -len('data.pkl')]
        cache = {}

        def member(name, nbytes=None):
            info = by_name.get(name)
            if info is None:
                raise pickle.UnpicklingError(f'zip archive without member {name}')
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise pickle.UnpicklingError(f'zip member {name} uses an unsupported compression')
            want = info.file_size if nbytes is None else nbytes
            if info.file_size < want:
                raise pickle.UnpicklingError(f'zip member {name} holds {info.file_size} bytes, {want} expected')
            budget.charge(want, f'zip member {name}')        # checked before anything is read or inflated
            with zf.open(info) as f:
                data = f.read(want)
            if len(data) != want:
                raise pickle.UnpicklingError(f'zip member {name} is truncated')
            return data

        def storage(key, dtype, numel):
            if key not in cache:
                cache[key] = (dtype, _storage_from_bytes(member(f'{root}data/{key}', numel * _itemsize(dtype)), dtype, numel))
            if cache[key][0] != dtype or cache[key][1].numel() != numel:
                raise pickle.UnpicklingError(f'storage {key} is used with two different types or sizes')
            return cache[key][1]

        text = member(pkl[0])
        return RestrictedUnpickler(BoundedReader(io.BytesIO(text), len(text)), storage, budget).load()


LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


def load_torch_legacy(data, budget=None, blobs=True):
    """torch.save's legacy format: pickles of (magic, protocol, sys_info, object, storage keys), then each
    storage's bytes as an int64 element count followed by the raw data, in key order. The key list must name
    exactly the storages the object uses."""
    reader, size = as_reader(data)
    budget = budget or Budget(size)
    if RestrictedUnpickler(reader, budget=budget, blobs=blobs).load() != LEGACY_MAGIC:
        raise pickle.UnpicklingError('not a torch legacy file (bad magic number)')
    protocol = RestrictedUnpickler(reader, budget=budget, blobs=blobs).load()
    if protocol != 1001:
        raise pickle.UnpicklingError(f'unsupported torch legacy protocol {protocol!r:.40}')
    sys_info = RestrictedUnpickler(reader, budget=budget, blobs=blobs).load()
    if not (isinstance(sys_info, dict) and sys_info.get('little_endian', True)):
        raise pickle.UnpicklingError('big-endian torch files are not supported')
    pending = {}

    def storage(key, dtype, numel):
        if key not in pending:
            budget.charge(numel * _itemsize(dtype), f'storage {key}')
            pending[key] = (dtype, numel, torch.empty(numel, dtype=dtype))
        if pending[key][:2] != (dtype, numel):
            raise pickle.UnpicklingError(f'storage {key} is used with two different types or sizes')
        return pending[key][2]

    obj = RestrictedUnpickler(reader, storage, budget, blobs).load()
    keys = RestrictedUnpickler(reader, budget=budget, blobs=blobs).load()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(pending) or len(keys) != len(pending):
        raise pickle.UnpicklingError('the storage key list does not name exactly the storages the file uses')
    for key in map(str, keys):
        dtype, expected, flat = pending[key]
        (numel,) = struct.unpack('<q', reader.read(8))
        if numel != expected:
            raise pickle.UnpicklingError(f'storage {key}: {numel} elements on disk, {expected} expected')
        if numel:
            flat.copy_(_storage_from_bytes(reader.read(numel * flat.element_size()), dtype, numel))
    return obj


def load_legacy_storage_blob(blob):
    """`torch.storage._load_from_bytes(b)` outside an unpickler (one blob, its own budget)."""
    return RestrictedUnpickler(BoundedReader(io.BytesIO(b''), 0))._storage_blob(blob)


def numpy_reconstruct():
    """numpy's real array reconstructor: the global our TF-layout writer names (reading maps it to a stand-in)."""
    for name in ('_core.multiarray._reconstruct', 'core.multiarray._reconstruct'):
        obj = np
        try:
            for part in name.split('.'):
                obj = getattr(obj, part)
            return obj
        except AttributeError:
            continue
    raise AttributeError('numpy _reconstruct')


ALLOWED_GLOBALS = _allowlist(Budget(0), load_legacy_storage_blob)      # the names, for inspection (tests)
