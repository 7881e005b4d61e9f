"""Hostile and broken checkpoint files, built on the fly (nothing binary is shipped), seeded mutations of good
files, and a sandbox that loads them in child processes under a wall-clock limit and a memory cap.

    CASES                       one Case per root cause of issue 14 and per format it applies to
    fuzz_sources(folder)        {name: path} of good files to mutate (the reference files and small built ones)
    mutants(sources, n, seed)   n seeded mutants per source: byte flips, truncations, chunk duplications, and
                                boundary values / swapped opcodes in the pickle (a zip's data.pkl) or JSON header
    run_jobs(jobs, ...)         load each file in a child process -> {job id: Result}; Result.problems lists every
                                breach of the contract below

The contract sg.load must meet for any file: it returns, or raises stylegan2_lib.checkpoints.CheckpointError
whose message is one line naming the file; it never crashes the interpreter, hangs, takes memory out of
proportion to the file, runs anything from it (no file appears beside it), changes numpy's builtin dtypes, or
loads NaN/inf weights without a NonFiniteWeightsWarning. A case expects 'refuse' (CheckpointError), 'nonfinite'
(CheckpointError, or a load with a NonFiniteWeightsWarning naming the tensor), 'load' (a control) or 'any'.

Memory: the child imports torch and stylegan2_lib and loads a small file of each format (so lazy imports and
first-use caches are not charged to the first case), then sets RLIMIT_AS to its address space at that moment plus
`mem_gib` (default 1 GiB; torch alone maps ~0.65 GiB, a CUDA build far more, so an absolute cap would be wrong on
one machine or the other; loading the 1 MB reference files grows it by ~0.15 GiB). A refusal caused by running out
of memory (MemoryError or an allocator error behind the CheckpointError) is a memory blow-up, and so is resident
memory (VmHWM, reset before each file) growing by more than the README's bound: 3x the bytes the file holds, plus
64 MiB of slack. A child that loaded files before may reuse memory it freed, so the growth is a lower bound.
Used by tests/test_hostile_files.py and tools/fuzz_loaders.py.
"""

import dataclasses
import io
import json
import os
import pickle
import pickletools
import queue
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REFERENCES = ('tiny32-nvlabs', 'rosi32-zip')            # the reference files of tests/data (conftest)
SENTINEL = 'HOSTILE-PAYLOAD-SENTINEL'
P = 2 ** 61 - 1                 # CPython hashes ints modulo this: k * P all hash to 0

#----------------------------------------------------------------------------
# A pickle assembler: op(value) gives the opcodes that push `value`; Ops are opcodes already assembled (each
# pushes exactly one object). Memo entries use LONG_BINPUT at indices from MEMO upwards, so a payload spliced
# into a protocol-3 pickle (explicit memo indices) never disturbs the file's own.

MEMO = 10 ** 6

class Ops(bytes):
    pass

def op(v):
    if isinstance(v, Ops):
        return bytes(v)
    if v is None or isinstance(v, bool):
        return {None: pickle.NONE, True: pickle.NEWTRUE, False: pickle.NEWFALSE}[v]
    if isinstance(v, int):
        if 0 <= v < 2 ** 31:
            return pickle.BININT + struct.pack('<i', v)
        b = pickle.encode_long(v)
        return (pickle.LONG1 + bytes([len(b)]) if len(b) < 256 else pickle.LONG4 + struct.pack('<i', len(b))) + b
    if isinstance(v, float):
        return pickle.BINFLOAT + struct.pack('>d', v)
    if isinstance(v, str):
        b = v.encode('utf-8', 'surrogatepass')
        return pickle.BINUNICODE + struct.pack('<I', len(b)) + b
    if isinstance(v, bytes):
        return pickle.BINBYTES + struct.pack('<I', len(v)) + v
    if isinstance(v, tuple):
        return pickle.MARK + b''.join(map(op, v)) + pickle.TUPLE
    if isinstance(v, list):
        return pickle.EMPTY_LIST + (pickle.MARK + b''.join(map(op, v)) + pickle.APPENDS if v else b'')
    if isinstance(v, dict):
        return pickle.EMPTY_DICT + (pickle.MARK + b''.join(op(k) + op(x) for k, x in v.items()) + pickle.SETITEMS if v else b'')
    raise TypeError(type(v))

def glob(module, name):
    return Ops(pickle.GLOBAL + f'{module}\n{name}\n'.encode())

def call(fn, *args):
    return Ops(op(fn) + op(tuple(args)) + pickle.REDUCE)

def build(obj, state):
    return Ops(op(obj) + op(state) + pickle.BUILD)

def put(v, index):
    return Ops(op(v) + pickle.LONG_BINPUT + struct.pack('<I', index))

def get(index):
    return Ops(pickle.LONG_BINGET + struct.pack('<I', index))

def as_pickle(v, protocol=3):
    return pickle.PROTO + bytes([protocol]) + op(v) + pickle.STOP

def splice(data, ops, sentinel=SENTINEL):
    """`data` (a pickle) with the opcode that pushes the string `sentinel` replaced by `ops`."""
    layout = list(pickletools.genops(data))
    found = [(pos, end) for (_, arg, pos), (_, _, end) in zip(layout, layout[1:]) if arg == sentinel]
    assert len(found) == 1, f'sentinel found {len(found)} times'
    pos, end = found[0]
    return data[:pos] + op(ops) + data[end:]

# numpy's pickled forms: dtype(spec, align, copy) [+ BUILD state], _reconstruct(ndarray, (0,), b'b') + BUILD
# (version, shape, dtype, fortran, data), scalar(dtype, data).

NUMPY_2, NUMPY_1 = 'numpy._core.multiarray', 'numpy.core.multiarray'

def np_dtype(spec, state=None, copy=True):
    dt = call(glob('numpy', 'dtype'), spec, False, copy)
    return build(dt, state) if state is not None else dt

def np_array(shape, dtype, data, module=NUMPY_2):
    arr = call(glob(module, '_reconstruct'), glob('numpy', 'ndarray'), (0,), b'b')
    return build(arr, (1, tuple(shape), dtype, False, data))

def np_scalar(dtype, data, module=NUMPY_2):
    return call(glob(module, 'scalar'), dtype, data)

def tensor(key, numel, shape, stride, offset=0, storage='FloatStorage'):
    """torch's pickled tensor: _rebuild_tensor_v2(persistent storage (key, numel), offset, shape, stride, ...)."""
    pid = Ops(op(('storage', glob('torch', storage), key, 'cpu', numel)) + pickle.BINPERSID)
    return call(glob('torch._utils', '_rebuild_tensor_v2'), pid, offset, tuple(shape), tuple(stride), False,
                call(glob('collections', 'OrderedDict')))

def persistent(class_name, state):
    """An NVlabs torch_utils.persistence record."""
    meta = {'type': 'class', 'version': 6, 'module_src': '', 'class_name': class_name, 'state': state}
    return call(glob('torch_utils.persistence', '_reconstruct_persistent_obj'), meta)

def doubling_lists(depth):
    """A list of two references to a list of two references to ... ("billion laughs"): 2**depth leaves in 12*depth bytes."""
    ops = put(['x'], MEMO)
    for i in range(1, depth + 1):
        ops = Ops(ops + pickle.POP + put([get(MEMO + i - 1), get(MEMO + i - 1)], MEMO + i))
    return ops


def colliding_ints(n, sign=1):
    return [sign * k * P for k in range(1, n + 1)]

def dict_of(keys, value=None):
    """A dict of `keys` as opcodes (never built here: colliding keys would take minutes)."""
    return Ops(pickle.EMPTY_DICT + pickle.MARK + b''.join(op(k) + op(value) for k in keys) + pickle.SETITEMS)

def nest(template, inner, depth):
    """template(template(...template(inner))) `depth` deep, assembled in linear time."""
    hole = 'NEST-HOLE-SENTINEL'
    prefix, suffix = op(template(hole)).split(op(hole))
    return Ops(prefix * depth + op(inner) + suffix * depth)

#----------------------------------------------------------------------------
# Containers: torch's zip and legacy formats and zip archives written by hand (so that they can lie).

@dataclasses.dataclass
class Member:
    name: str
    payload: bytes               # as stored (compressed for DEFLATED)
    size: int = None             # declared uncompressed size; default len(payload)
    method: int = zipfile.ZIP_STORED
    crc: int = None

def zip_bytes(members):
    out, central = bytearray(), bytearray()
    for m in members:
        name, size = m.name.encode(), len(m.payload) if m.size is None else m.size
        crc = zlib.crc32(m.payload) if m.crc is None else m.crc
        fields = (m.method, 0, 0, crc, len(m.payload), size, len(name))
        central += (struct.pack('<IHHHH', 0x02014b50, 20, 20, 0, fields[0])
                    + struct.pack('<HHIIIHHHHHII', *fields[1:], 0, 0, 0, 0, 0, len(out)) + name)
        out += struct.pack('<IHHH', 0x04034b50, 20, 0, fields[0]) + struct.pack('<HHIIIHH', *fields[1:], 0) + name + m.payload
    n = len(members)
    return bytes(out + central + struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n, n, len(central), len(out), 0))

def zip_members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [Member(i.filename, zf.read(i)) for i in zf.infolist()]

def torch_zip(data_pkl, storages=(), root='archive'):
    """A torch zip file from a hand-made data.pkl and {key: raw bytes} storages."""
    members = [Member(f'{root}/data.pkl', data_pkl), Member(f'{root}/byteorder', b'little'), Member(f'{root}/version', b'3\n')]
    return zip_bytes(members + [Member(f'{root}/data/{k}', v) for k, v in dict(storages).items()])

def deflate_zeros(gib):
    """A raw deflate stream of `gib` GiB of zeros, about 1 KB per MiB (fully flushed blocks repeat exactly)."""
    c, chunk = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(2 ** 20)
    first, again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH), c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    return first + again * (int(gib * 1024) - 2) + c.compress(chunk) + c.flush()

LEGACY_HEAD = (pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2)
               + pickle.dumps({'protocol_version': 1001, 'little_endian': True,
                               'type_sizes': {'short': 2, 'int': 4, 'long': 4}}, protocol=2))

def legacy_torch(obj_pickle, keys, storages):
    """A torch legacy file: head pickles, the object's pickle, the key list, then (numel, raw bytes) per storage."""
    return LEGACY_HEAD + obj_pickle + pickle.dumps(list(keys), protocol=2) + b''.join(struct.pack('<q', n) + b for n, b in storages)

def legacy_sections(data):
    """(object pickle, keys, [(numel, bytes)]) of a torch legacy file of float32 storages written by torch.save."""
    f = io.BytesIO(data)
    for _ in range(3):
        list(pickletools.genops(f))
    start = f.tell()
    list(pickletools.genops(f))
    obj = data[start:f.tell()]
    keys = pickle.load(f)                           # our own file: a list of str
    storages = []
    for _ in keys:
        (n,) = struct.unpack('<q', f.read(8))
        storages.append((n, f.read(4 * n)))
    return obj, keys, storages

def sparse_file(path, head, size):
    """`head`, then zeros up to `size` bytes, without writing them (a sparse file)."""
    with open(path, 'wb') as f:
        f.write(head)
        f.truncate(size)
    return path

#----------------------------------------------------------------------------
# Good small files of each format (test networks at 8x8, 8 channels), built from tests/fake_formats.py.

G_CFG = dict(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=2)
D_CFG = dict(img_resolution=8, channel_base=64, channel_max=8)
TF_G = {'num_channels': 3, 'resolution': 8, 'label_size': 0, 'latent_size': 8, 'dlatent_size': 8, 'mapping_layers': 2,
        'fmap_base': 32, 'fmap_max': 8}

_NETS = {}

def nets():
    if not _NETS:
        from fake_formats import make_discriminator, make_generator
        _NETS.update(G=make_generator(seed=1, **G_CFG), D=make_discriminator(seed=2, **D_CFG))
    return _NETS['G'], _NETS['D']

def nvlabs_snapshot(change=None, payload=None):
    """The pickle of an NVlabs snapshot {G_ema, D}; `change(snapshot)` edits it first; `payload` (Ops) is spliced in
    as snapshot['hostile']."""
    import fake_formats as ff
    G, D = nets()
    snap = ff.nvlabs_snapshot(G_ema=(G, ff.ada_G_kwargs(G.cfg, 64, 8)), D=(D, ff.ada_D_kwargs(D.cfg, 64, 8)),
                              training_set_kwargs={'path': 'faces.zip', 'resolution': 8})
    if change:
        change(snap)
    if payload is not None:
        snap['hostile'] = SENTINEL
    data = ff.pickle_bytes(snap, protocol=3)
    return splice(data, payload) if payload is not None else data

def g_kwargs(snap):
    return snap['G_ema'].meta['state']['_init_kwargs']

def g_record(snap, dotted):
    rec = snap['G_ema']
    for part in dotted.split('.'):
        rec = rec.meta['state']['_modules'][part]
    return rec.meta['state']

def tf_networks(kwargs=None):
    """A single TF Gs network; `kwargs` changes its static kwargs."""
    from fake_formats import tf_generator
    return tf_generator(nets()[0], dict(TF_G, **(kwargs or {})), 'Gs')

def tf_variables(net, component):
    return net.__getstate__()['components'][component].__getstate__()['variables']

def tf_pickle(kwargs=None, variable=None, value=None, payload=None):
    """A TF Gs pickle; synthesis variable `variable` set to `value` (an array), or to `payload` (Ops) spliced in."""
    from fake_formats import pickle_bytes
    net = tf_networks(kwargs)
    if variable is not None:
        variables = tf_variables(net, 'synthesis')
        i = [k for k, _ in variables].index(variable)
        variables[i] = (variable, SENTINEL if payload is not None else value)
    data = pickle_bytes(net, protocol=3)
    return splice(data, payload) if payload is not None else data

def tf_const(payload):
    """A TF Gs pickle whose synthesis/4x4/Const/const variable is `payload` (Ops)."""
    return tf_pickle(variable='4x4/Const/const', payload=payload)

def tf_with_kwarg_payload(payload):
    return tf_pickle(kwargs={'hostile': SENTINEL}, payload=payload)

def rosinality_state():
    from fake_formats import rosinality_generator_state
    return rosinality_generator_state(nets()[0])

def torch_bytes(obj, legacy=False):
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()

def rosinality(change=None, legacy=False, latent_avg=True):
    """torch.save bytes of a converted rosinality release {g_ema, latent_avg}; `change(sd)` edits the state first."""
    sd = rosinality_state()
    if change:
        change(sd)
    obj = {'g_ema': sd}
    if latent_avg:
        obj['latent_avg'] = nets()[0].mapping.w_avg.clone()
    return torch_bytes(obj, legacy)

def rosinality_with_args(payload):
    """A rosinality zip whose `args` (kept as meta) is `payload`."""
    members = zip_members(rosinality())
    pkl = [m for m in members if m.name.endswith('data.pkl')][0]
    pkl.payload = _append_to_top_dict(pkl.payload, 'args', payload)
    return zip_bytes(members)

def _append_to_top_dict(data, key, ops):
    """A pickle of a dict with one more item, added just before STOP: top dict + key + value + SETITEM."""
    assert data.endswith(pickle.STOP)
    return data[:-1] + op(key) + op(ops) + pickle.SETITEM + pickle.STOP

def _meta_rosinality_state(style_dim, n_mlp, channels, res):
    """rosinality's state names and shapes of a generator, as meta tensors (no memory), blur kernels real."""
    import torch
    import stylegan2_lib as sg
    from fake_formats import rosinality_generator_state
    cfg = sg.GeneratorConfig(z_dim=style_dim, w_dim=style_dim, img_resolution=res, channel_base=channels * res,
                             channel_max=channels, mapping_layers=n_mlp)
    with torch.device('meta'):
        return rosinality_generator_state(sg.Generator(cfg))

def _rosinality_aliasing(style_dim, n_mlp=8, channels=8, res=8):
    """A rosinality release whose tensors are all views of the start of one storage (the largest tensor's size)."""
    import torch
    sd = _meta_rosinality_state(style_dim, n_mlp, channels, res)
    one = torch.randn(max(v.numel() for v in sd.values()))
    sd = {k: (v if v.device.type == 'cpu' else one[:v.numel()].view(v.shape)) for k, v in sd.items()}
    return torch_bytes({'g_ema': sd, 'latent_avg': one[:style_dim]})

def rosinality_stride0(style_dim=2048, n_mlp=8, channels=8, res=8, latent_avg=True):
    """A rosinality release whose every tensor (but the blur kernels) is a stride-0 view of one float."""
    import torch
    one = torch.ones(1)
    sd = _meta_rosinality_state(style_dim, n_mlp, channels, res)
    sd = {k: (v if v.device.type == 'cpu' else one.expand(v.shape)) for k, v in sd.items()}
    return torch_bytes({'g_ema': sd, **({'latent_avg': one.expand(style_dim)} if latent_avg else {})})

def native(change=None, meta_json=None):
    """A stylegan2_lib safetensors file of G_ema and D; `change(configs)` edits the configs in the header."""
    import tempfile
    import stylegan2_lib as sg
    with tempfile.TemporaryDirectory() as tmp:
        sg.save(Path(tmp) / 'net.safetensors', G_ema=nets()[0], D=nets()[1])
        data = (Path(tmp) / 'net.safetensors').read_bytes()
    n = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + n])
    configs = json.loads(header['__metadata__']['configs'])
    if change:
        change(configs)
    header['__metadata__']['configs'] = json.dumps(configs)
    if meta_json is not None:
        header['__metadata__']['meta'] = meta_json
    return native_header(header) + data[8 + n:]

def native_header(header):
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    return len(text).to_bytes(8, 'little') + text

def set_nan(sd, key, value=float('nan')):
    sd[key] = sd[key].clone()
    sd[key].view(-1)[0] = value

def with_batch(sd, key, n=2, dim=0):
    import torch
    sd[key] = torch.cat([sd[key]] * n, dim=dim)

#----------------------------------------------------------------------------
# The corpus: Case(id, cause, format, build, expect, names). build(folder) writes the file and returns its path.

CAUSES = {0: 'code execution', 1: 'numpy constructors', 2: 'foreign objects as arrays (TF)', 3: 'memory from tiny files',
          4: 'hangs', 5: 'silent corruption', 6: 'wrong exception types'}
EXTENSIONS = {'nvlabs': '.pkl', 'tf': '.pkl', 'pickle': '.pkl', 'rosinality-zip': '.pt', 'rosinality-legacy': '.pt',
              'native': '.safetensors', 'unknown': '.bin'}

@dataclasses.dataclass
class Case:
    id: str
    cause: int
    format: str
    make: object                 # () -> bytes, or (path) -> None for files written another way (sparse)
    expect: str = 'refuse'
    names: tuple = ()            # for expect 'nonfinite': the tensor the warning must name (ours or theirs)

    def build(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f'{self.id}{EXTENSIONS[self.format]}'
        if self.make.__code__.co_argcount:
            self.make(path)              # writes the file itself (sparse files)
        else:
            path.write_bytes(self.make())
        return path

CASES = []

def case(id, cause, format, make, **kw):
    CASES.append(Case(id, cause, format, make, **kw))

MARKER = 'pwned'                 # a payload that ran would create this file beside the checkpoint

def _touch(path):
    return f'touch {Path(path).parent / MARKER}'

# 0. Code execution: globals reached other than through GLOBAL (the marker is written if any runs).
case('inst-opcode-os-system', 0, 'nvlabs', lambda p: p.write_bytes(nvlabs_snapshot(payload=Ops(
     pickle.MARK + op(_touch(p)) + pickle.INST + b'os\nsystem\n'))))
case('stack-global-in-tf-variable', 0, 'tf', lambda p: p.write_bytes(tf_const(Ops(
     op('posix') + op('system') + pickle.STACK_GLOBAL + op((_touch(p),)) + pickle.REDUCE))))
case('obj-opcode-in-rosinality-args', 0, 'rosinality-zip', lambda p: p.write_bytes(rosinality_with_args(Ops(
     pickle.MARK + glob('os', 'system') + op(_touch(p)) + pickle.OBJ))))
case('ext1-opcode', 0, 'pickle', lambda: as_pickle(Ops(pickle.EXT1 + b'\x01')))

# 1. numpy's constructors given crafted states.
OBJECT_FIELD = np_dtype('V8', (3, '|', None, ('a',), {'a': (np_dtype('O8'), 0)}, 8, 1, 0))   # flags 0: "no objects"
case('numpy-object-array-from-short-list', 1, 'tf', lambda: tf_const(np_array((16,), np_dtype('O8'), [1, 2])))
case('numpy-object-array-7e8-items', 1, 'nvlabs', lambda: nvlabs_snapshot(payload=np_array((700_000_000,), np_dtype('O8'), [])))
case('numpy-dtype-object-field-over-bytes', 1, 'tf', lambda: tf_const(np_array((4,), OBJECT_FIELD, b'A' * 32)))
case('numpy-dtype-object-field-in-meta', 1, 'nvlabs', lambda: nvlabs_snapshot(payload=np_array((4,), OBJECT_FIELD, b'A' * 32, NUMPY_1)))
case('numpy-scalar-object-from-bytes', 1, 'nvlabs', lambda: nvlabs_snapshot(payload=np_scalar(np_dtype('O8'), b'A' * 8)))
case('numpy-scalar-void-2GiB', 1, 'nvlabs', lambda: nvlabs_snapshot(payload=np_scalar(np_dtype('V2147483647'), b'')))
case('numpy-scalar-on-shared-S-dtype', 1, 'nvlabs', lambda: nvlabs_snapshot(payload=np_scalar(
     np_dtype('S', (3, '|', None, None, None, 4, 1, 0), copy=False), b'abcd', NUMPY_1)))
case('numpy-dtype-state-huge-itemsize', 1, 'tf', lambda: tf_const(np_array(
     (1, 8, 4, 4), np_dtype('f4', (3, '<', None, None, None, 2 ** 31 - 1, 4, 0)), bytes(512))))
case('numpy-array-shorter-than-its-shape', 1, 'tf', lambda: tf_const(np_array(
     (1, 8, 4, 4), np_dtype('f4'), bytes(4))))
case('numpy-array-big-endian', 1, 'tf', lambda: tf_const(np_array(
     (1, 8, 4, 4), np_dtype('f4', (3, '>', None, None, None, -1, -1, 0)), bytes(512))))

# 2. The TF path turning foreign objects into arrays (an EasyDict answering __array_interface__).
def _easydict(items):
    return Ops(call(glob('dnnlib.util', 'EasyDict')) + pickle.MARK + b''.join(op(k) + op(v) for k, v in items.items()) + pickle.SETITEMS)

ARRAY_AT = {'shape': (1, 8, 4, 4), 'typestr': '<f4', 'version': 3}
case('tf-record-array-interface-pointer', 2, 'tf', lambda: tf_const(_easydict(
     {'__array_interface__': dict(ARRAY_AT, data=(4096, False))})))
case('tf-record-array-interface-4-byte-buffer', 2, 'tf', lambda: tf_const(_easydict(
     {'__array_interface__': dict(ARRAY_AT, data=b'abcd')})))
case('tf-namespace-array-interface', 2, 'tf', lambda: tf_const(build(
     call(glob('argparse', 'Namespace')), {'__array_interface__': dict(ARRAY_AT, data=(4096, False))})))
case('tf-variable-nested-list', 2, 'tf', lambda: tf_const([[[[0.5] * 4] * 4] * 8]))
case('tf-variable-persistent-record', 2, 'tf', lambda: tf_const(persistent('Tensor', {'__array__': 1})))

# 3. Memory from tiny files.
def _g(**changes):
    return lambda snap: g_kwargs(snap).update(changes)

def _g_mapping(**changes):
    return lambda snap: g_kwargs(snap)['mapping_kwargs'].update(changes)

def _native_g(**changes):
    return lambda configs: configs['G_ema'].update(changes)

case('nvlabs-z_dim-40000', 3, 'nvlabs', lambda: nvlabs_snapshot(_g(z_dim=40000)))
case('nvlabs-mapping-layers-1e6', 3, 'nvlabs', lambda: nvlabs_snapshot(_g_mapping(num_layers=10 ** 6)))
case('tf-latent-size-40000', 3, 'tf', lambda: tf_pickle({'latent_size': 40000}))
case('tf-mapping-layers-1e6', 3, 'tf', lambda: tf_pickle({'mapping_layers': 10 ** 6}))
case('native-z_dim-40000', 3, 'native', lambda: native(_native_g(z_dim=40000)))
case('native-mapping-layers-1e6', 3, 'native', lambda: native(_native_g(mapping_layers=10 ** 6)))
case('rosinality-stride0-views-400MB', 3, 'rosinality-zip', lambda: rosinality_stride0(style_dim=2048, n_mlp=8, channels=512, res=64))
case('rosinality-tensors-alias-one-4MB-storage', 3, 'rosinality-zip', lambda: _rosinality_aliasing(style_dim=1024))
case('rosinality-stride0-style-64x40000', 3, 'rosinality-zip', lambda: rosinality_stride0(style_dim=40000, n_mlp=1))

def _stride0_param(snap):
    import torch
    state = g_record(snap, 'mapping.fc0')
    state['_parameters']['weight'] = torch.nn.Parameter(torch.ones(1).expand(8, 8), requires_grad=False)

case('nvlabs-stride0-parameter', 3, 'nvlabs', lambda: nvlabs_snapshot(_stride0_param))
MEMO_BOMB = Ops(op(None) + pickle.LONG_BINPUT + struct.pack('<I', 0x14000000))
case('pickle-long-binput-0x14000000', 3, 'pickle', lambda: as_pickle(MEMO_BOMB, 2))
case('zip-data-pkl-long-binput-0x14000000', 3, 'rosinality-zip', lambda: torch_zip(as_pickle({'g_ema': MEMO_BOMB}, 2)))
case('legacy-long-binput-0x14000000', 3, 'rosinality-legacy', lambda: legacy_torch(as_pickle({'g_ema': MEMO_BOMB}, 2), [], []))

def _blob_many_times(n=2000, floats=2 ** 18):
    """One memoised 1 MiB storage blob (torch legacy bytes) decoded by _load_from_bytes n times: 2 GiB if not cached."""
    import torch
    blob = torch_bytes(torch.zeros(floats).untyped_storage(), legacy=True)
    fn = put(glob('torch.storage', '_load_from_bytes'), MEMO)
    first = Ops(op(fn) + op(put(blob, MEMO + 1)) + pickle.TUPLE1 + pickle.REDUCE)
    again = Ops(op(get(MEMO)) + op(get(MEMO + 1)) + pickle.TUPLE1 + pickle.REDUCE)
    return [first] + [again] * n

case('nvlabs-storage-blob-decoded-2000-times', 3, 'nvlabs', lambda: nvlabs_snapshot(payload=Ops(op(_blob_many_times()))))

def _zip_declaring(size, method=zipfile.ZIP_STORED, payload=b'', numel=None):
    """A torch zip whose storage '0' is declared `size` bytes (and holds `payload`), used by one tensor of `numel` floats."""
    numel = size // 4 if numel is None else numel
    pkl = as_pickle({'g_ema': {'style.1.weight': tensor('0', numel, (numel,), (1,))}}, 2)
    members = zip_members(torch_zip(pkl))
    return zip_bytes(members + [Member('archive/data/0', payload, size=size, method=method, crc=0)])

case('zip-member-declares-4GiB', 3, 'rosinality-zip', lambda: _zip_declaring(2 ** 32 - 16, payload=bytes(64)))
case('zip-member-deflates-to-2GiB', 3, 'rosinality-zip', lambda: _zip_declaring(2 ** 31, zipfile.ZIP_DEFLATED, deflate_zeros(2)))
case('zip-data-pkl-deflates-to-2GiB', 3, 'rosinality-zip', lambda: zip_bytes(
     [Member('archive/data.pkl', deflate_zeros(2), size=2 ** 31, method=zipfile.ZIP_DEFLATED, crc=0)]))
case('legacy-storage-declares-1e9-floats', 3, 'rosinality-legacy', lambda: legacy_torch(
     as_pickle({'g_ema': {'style.1.weight': tensor('0', 10 ** 9, (10 ** 9,), (1,))}}, 2), ['0'], [(10 ** 9, bytes(64))]))
case('pickle-binbytes8-declares-1TiB', 3, 'pickle', lambda: b'\x80\x04\x8e' + struct.pack('<Q', 2 ** 40) + bytes(16))
case('pickle-bytearray8-declares-1TiB', 3, 'pickle', lambda: b'\x80\x05\x96' + struct.pack('<Q', 2 ** 40) + bytes(16))
case('pickle-bytearray8-declares-768MiB', 3, 'pickle', lambda: b'\x80\x05\x96' + struct.pack('<Q', 768 << 20) + bytes(16))
case('pickle-frame-declares-1TiB', 3, 'pickle', lambda: b'\x80\x04\x95' + struct.pack('<Q', 2 ** 40) + bytes(16))
case('sparse-8GiB-garbage', 3, 'unknown', lambda p: sparse_file(p, b'GARBAGE!', 8 << 30) and None)
case('sparse-8GiB-pickle-of-zeros', 3, 'pickle', lambda p: sparse_file(p, b'\x80\x04', 8 << 30) and None)
case('sparse-8GiB-legacy-torch-of-zeros', 3, 'rosinality-legacy', lambda p: sparse_file(p, LEGACY_HEAD + b'\x80\x02', 8 << 30) and None)
case('sparse-safetensors-header-4GiB', 3, 'native', lambda p: sparse_file(p, (4 << 30).to_bytes(8, 'little') + b'{"', 8 << 30) and None)

def _many(opcode, n):
    """A list of n objects made by a one-byte opcode (each object is tens to hundreds of bytes)."""
    return Ops(pickle.EMPTY_LIST + pickle.MARK + opcode * n + pickle.APPENDS)

case('pickle-24M-empty-dicts', 3, 'pickle', lambda: as_pickle(_many(pickle.EMPTY_DICT, 24_000_000)))
case('pickle-1M-empty-sets', 3, 'pickle', lambda: as_pickle(_many(pickle.EMPTY_SET, 2 ** 20 + 2 ** 16), 4))

# Meta the loaders keep as plain values: refusing or loading (with the meta cut short) are both fine.
case('nvlabs-meta-2^40-shared-lists', 3, 'nvlabs', lambda: nvlabs_snapshot(payload=doubling_lists(40)), expect='any')
case('tf-kwarg-2^40-shared-lists', 3, 'tf', lambda: tf_with_kwarg_payload(doubling_lists(40)), expect='any')
case('rosinality-args-2^40-shared-lists', 3, 'rosinality-zip', lambda: rosinality_with_args({'lr': doubling_lists(40)}), expect='any')

# 4. Hangs.
case('nvlabs-dict-150k-colliding-int-keys', 4, 'nvlabs', lambda: nvlabs_snapshot(payload=dict_of(colliding_ints(150_000))))
case('zip-ordereddict-150k-colliding-keys', 4, 'rosinality-zip', lambda: torch_zip(as_pickle({'g_ema': call(
     glob('collections', 'OrderedDict'), [(k, None) for k in colliding_ints(150_000)])}, 2)))
case('legacy-dict-150k-colliding-negative-keys', 4, 'rosinality-legacy', lambda: legacy_torch(as_pickle(
     {'g_ema': dict_of(colliding_ints(150_000, sign=-1))}, 2), [], []))
case('nvlabs-frozenset-150k-colliding-ints', 4, 'nvlabs', lambda: nvlabs_snapshot(payload=Ops(
     pickle.MARK + b''.join(op(k) for k in colliding_ints(150_000)) + pickle.FROZENSET)))
case('nvlabs-set-150k-colliding-ints', 4, 'nvlabs', lambda: nvlabs_snapshot(payload=call(glob('builtins', 'set'), colliding_ints(150_000))))
case('rosinality-no-latent-avg-stride0-mapping', 4, 'rosinality-zip', lambda: rosinality_stride0(style_dim=512, n_mlp=8, latent_avg=False))

# 5. Silent corruption.
def _legacy_with(edit):
    obj, keys, storages = legacy_sections(rosinality(legacy=True))
    keys, storages = edit(list(keys), list(storages))
    return legacy_torch(obj, keys, storages)

case('legacy-key-list-omits-a-storage', 5, 'rosinality-legacy', lambda: _legacy_with(lambda k, s: (k[:-1], s[:-1])))
case('legacy-key-list-names-one-twice', 5, 'rosinality-legacy', lambda: _legacy_with(lambda k, s: (k[:-1] + k[:1], s[:-1] + s[:1])))
case('legacy-negative-element-count', 5, 'rosinality-legacy', lambda: _legacy_with(lambda k, s: (k, [(-1, s[0][1])] + s[1:])))
case('legacy-negative-numel-in-persistent-id', 5, 'rosinality-legacy', lambda: legacy_torch(
     as_pickle({'g_ema': {'style.1.weight': tensor('0', -1, (8, 8), (8, 1))}}, 2), ['0'], [(64, bytes(256))]))
case('rosinality-conv-weight-batch-axis-2', 5, 'rosinality-zip', lambda: rosinality(lambda sd: with_batch(sd, 'conv1.conv.weight')))
case('rosinality-input-batch-axis-2', 5, 'rosinality-zip', lambda: rosinality(lambda sd: with_batch(sd, 'input.input')))
case('rosinality-noise-leading-axes-2', 5, 'rosinality-legacy',
     lambda: rosinality(lambda sd: with_batch(sd, 'noises.noise_0', dim=1), legacy=True))
case('rosinality-latent-avg-two-rows', 5, 'rosinality-zip', lambda: torch_bytes(
     {'g_ema': rosinality_state(), 'latent_avg': nets()[0].mapping.w_avg.repeat(2, 1)}))

def _tf_repeat(variable, axis):
    import numpy as np
    v = dict(tf_variables(tf_networks(), 'synthesis'))[variable]
    return tf_pickle(variable=variable, value=np.concatenate([v, v], axis=axis))

case('tf-const-batch-axis-2', 5, 'tf', lambda: _tf_repeat('4x4/Const/const', 0))
case('tf-noise-leading-axes-2', 5, 'tf', lambda: _tf_repeat('noise0', 1))

def _duplicate_member():
    members = zip_members(rosinality())
    first = [m for m in members if '/data/' in m.name][0]
    return zip_bytes(members + [Member(first.name, bytes(len(first.payload)))])

case('zip-duplicate-member-names', 5, 'rosinality-zip', _duplicate_member)
case('rosinality-nan-weight', 5, 'rosinality-zip', lambda: rosinality(lambda sd: set_nan(sd, 'style.1.weight')),
     expect='nonfinite', names=('style.1.weight', 'mapping.fc0.weight'))
case('rosinality-legacy-inf-weight', 5, 'rosinality-legacy',
     lambda: rosinality(lambda sd: set_nan(sd, 'conv1.conv.weight', float('inf')), legacy=True),
     expect='nonfinite', names=('conv1.conv.weight', 'synthesis.b4.conv1.weight'))

def _nvlabs_nan(snap):
    state = g_record(snap, 'mapping.fc1')
    set_nan(state['_parameters'], 'weight')

case('nvlabs-nan-weight', 5, 'nvlabs', lambda: nvlabs_snapshot(_nvlabs_nan), expect='nonfinite', names=('mapping.fc1.weight',))

def _nvlabs_float64_overflow(snap):
    params = g_record(snap, 'mapping.fc0')['_parameters']
    params['weight'] = params['weight'].double()
    params['weight'][0, 0] = 1e300                          # finite in the file, inf as the network's float32

case('nvlabs-float64-weight-overflows-float32', 5, 'nvlabs', lambda: nvlabs_snapshot(_nvlabs_float64_overflow),
     expect='nonfinite', names=('mapping.fc0.weight',))

def _tf_nan():
    v = dict(tf_variables(tf_networks(), 'synthesis'))['8x8/Conv1/weight'].copy()
    v.flat[0] = float('-inf')
    return tf_pickle(variable='8x8/Conv1/weight', value=v)

case('tf-inf-weight', 5, 'tf', _tf_nan, expect='nonfinite', names=('8x8/Conv1/weight', 'synthesis.b8.conv1.weight'))

def _native_nan():
    data = native()
    n = int.from_bytes(data[:8], 'little')
    entry = json.loads(data[8:8 + n])['G_ema.mapping.fc0.weight']
    start = 8 + n + entry['data_offsets'][0]
    return data[:start] + struct.pack('<f', float('nan')) + data[start + 4:]

case('native-nan-weight', 5, 'native', _native_nan, expect='nonfinite', names=('mapping.fc0.weight',))
case('tf-resample-kernel-overflows-float32', 5, 'tf', lambda: tf_pickle({'resample_kernel': [1e20, 3e20, 3e20, 1e20]}))
case('tf-resample-kernel-sums-to-1e-30', 5, 'tf', lambda: tf_pickle({'resample_kernel': [1.0, -1.0, 1e-30]}))

# 6. Types the converters trust.
def _tf_state_change(**changes):
    from fake_formats import pickle_bytes
    net = tf_networks()
    net.__getstate__().update(changes)
    return pickle_bytes(net, protocol=3)

def _native_configs(text):
    data = native()
    n = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + n])
    header['__metadata__']['configs'] = text
    return native_header(header) + data[8 + n:]

G_INIT = {'z_dim': 8, 'w_dim': 8, 'c_dim': 0, 'img_resolution': 8, 'img_channels': 3, 'mapping_kwargs': {}, 'synthesis_kwargs': {}}

def _record_cycle():
    """A Generator record whose _modules dict holds the record itself (set after the record is built)."""
    modules = put({}, MEMO)
    record = put(persistent('Generator', {'_parameters': {}, '_buffers': {}, '_modules': modules, '_init_kwargs': G_INIT}), MEMO + 1)
    return Ops(op(record) + op(get(MEMO)) + op('synthesis') + op(get(MEMO + 1)) + pickle.SETITEM + pickle.POP)

def _records_nested(depth):
    leaf = persistent('SynthesisLayer', {'_parameters': {}, '_buffers': {}, '_modules': {}})
    block = lambda child: persistent('SynthesisBlock', {'_parameters': {}, '_buffers': {}, '_modules': {'m': child}})
    return persistent('Generator', {'_parameters': {}, '_buffers': {}, '_modules': {'synthesis': nest(block, leaf, depth)},
                                    '_init_kwargs': G_INIT})

def _tf_cycle():
    net = put(Ops(op(glob('dnnlib.tflib.network', 'Network')) + op(()) + pickle.NEWOBJ), MEMO)
    state = {'version': 4, 'name': 'Gs', 'static_kwargs': TF_G, 'variables': [],
             'components': {'mapping': get(MEMO), 'synthesis': get(MEMO)}}
    return build(net, state)

case('nvlabs-z_dim-a-string', 6, 'nvlabs', lambda: nvlabs_snapshot(_g(z_dim='lots')))
case('nvlabs-img-resolution-a-list', 6, 'nvlabs', lambda: nvlabs_snapshot(_g(img_resolution=[8])))
case('nvlabs-z_dim-10^30', 6, 'nvlabs', lambda: nvlabs_snapshot(_g(z_dim=10 ** 30)))
case('nvlabs-mapping-kwargs-a-list', 6, 'nvlabs', lambda: nvlabs_snapshot(_g(mapping_kwargs=[1, 2, 3])))
case('nvlabs-unknown-activation', 6, 'nvlabs', lambda: nvlabs_snapshot(lambda s: g_kwargs(s)['synthesis_kwargs'].update(activation='gelu_new')))
case('tf-unknown-nonlinearity', 6, 'tf', lambda: tf_pickle({'nonlinearity': 'mish'}))
case('tf-resolution-2^70', 6, 'tf', lambda: tf_pickle({'resolution': 2 ** 70}))
case('tf-fmap-base-a-string', 6, 'tf', lambda: tf_pickle({'fmap_base': 'x' * 100}))
case('tf-static-kwargs-a-list', 6, 'tf', lambda: _tf_state_change(static_kwargs=[1, 2]))
case('tf-version-a-string', 6, 'tf', lambda: _tf_state_change(version='4'))
case('native-unknown-activation', 6, 'native', lambda: native(_native_g(activation='evil')))
case('native-configs-a-list', 6, 'native', lambda: _native_configs('[1, 2]'))
case('native-channels-not-numbers', 6, 'native', lambda: native(_native_g(channels={'4': 'many', '8': 8})))
case('native-meta-nested-100k-deep', 6, 'native', lambda: native(meta_json='[' * 100_000 + ']' * 100_000))
case('rosinality-tensor-a-string', 6, 'rosinality-zip', lambda: rosinality(lambda sd: sd.update({'style.1.weight': 'abc'})))
case('rosinality-int-keys', 6, 'rosinality-zip', lambda: torch_bytes({'g_ema': {**rosinality_state(), 7: 1}}))
case('rosinality-30-to-rgbs', 6, 'rosinality-zip', lambda: rosinality(
     lambda sd: sd.update({f'to_rgbs.{i}.conv.weight': sd['to_rgbs.0.conv.weight'] for i in range(30)})))
case('nvlabs-meta-nested-1e6-deep', 6, 'nvlabs', lambda: nvlabs_snapshot(payload=nest(lambda x: [x], 'x', 10 ** 6)), expect='any')
case('nvlabs-module-contains-itself', 6, 'nvlabs', lambda: as_pickle({'G_ema': _record_cycle()}))
case('nvlabs-modules-nested-10000-deep', 6, 'nvlabs', lambda: as_pickle({'G_ema': _records_nested(10_000)}))
case('tf-component-contains-itself', 6, 'tf', lambda: as_pickle(_tf_cycle()))

def _nested_blobs(depth):
    """torch.storage._load_from_bytes of a legacy stream whose object is _load_from_bytes of ... of a storage."""
    import torch
    blob = torch_bytes(torch.zeros(4).untyped_storage(), legacy=True)
    for _ in range(depth):
        blob = legacy_torch(as_pickle(call(glob('torch.storage', '_load_from_bytes'), blob)), [], [])
    return call(glob('torch.storage', '_load_from_bytes'), blob)

case('nvlabs-storage-blobs-nested-500-deep', 6, 'nvlabs', lambda: nvlabs_snapshot(payload=_nested_blobs(500)), expect='any')

# The message must stay one short line whatever names the file gives (newlines, megabytes).
def _long_parameter_name(snap):
    import torch
    g_record(snap, 'mapping.fc0')['_parameters']['w\n' * 50_000] = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

def _class_name(snap):
    snap['G_ema'].meta['class_name'] = 'Generator\nInjected line'

case('stack-global-name-with-newlines', 6, 'pickle', lambda: as_pickle(Ops(op('builtins\nx') + op('eval\n' * 1000) + pickle.STACK_GLOBAL)))
case('nvlabs-parameter-name-100KB-of-newlines', 6, 'nvlabs', lambda: nvlabs_snapshot(_long_parameter_name))
case('nvlabs-class-name-with-newline', 6, 'nvlabs', lambda: nvlabs_snapshot(_class_name))
case('tf-kwarg-name-1MB', 6, 'tf', lambda: tf_pickle({'k' * 2 ** 20: 1}))
case('rosinality-tensor-name-with-newline', 6, 'rosinality-zip', lambda: rosinality(
     lambda sd: sd.update({'style.1.weight\nnext': sd['style.1.bias']})))

#----------------------------------------------------------------------------
# Fuzzing: seeded mutants of good files.

# Raw mutations (flip, truncate, duplicate) work on the file's bytes; structural ones on its parsing-relevant part,
# the pickle (a zip's data.pkl, with the archive rebuilt around it and correct CRCs) or a safetensors JSON header:
# 'field' writes a boundary value into an opcode's argument (a length, a memo index, an int; a JSON number),
# 'opcode' swaps an opcode for another (a JSON structural character for another).

FUZZ_KINDS = ('flip', 'truncate', 'duplicate', 'field', 'opcode')
INTERESTING = (0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x14000000,
               2 ** 63 - 1, 2 ** 64 - 1)
ARG_BYTES = {-2: 1, -3: 4, -4: 4, -5: 8}          # pickletools' TAKEN_FROM_ARGUMENT* length fields
OPCODES = [o.code.encode('latin-1') for o in pickletools.opcodes]

SMALL_FILES = {'small-nvlabs': ('.pkl', nvlabs_snapshot), 'small-tf': ('.pkl', tf_pickle),
               'small-rosinality-zip': ('.pt', rosinality), 'small-rosinality-legacy': ('.pt', lambda: rosinality(legacy=True)),
               'small-native': ('.safetensors', native)}
FUZZ_SOURCES = REFERENCES + tuple(SMALL_FILES)

def fuzz_sources(folder):
    """{name: path}: the reference files, and small files of every format (where structure outweighs weights)."""
    from conftest import ROSI32, TINY32
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = dict(zip(REFERENCES, (TINY32, ROSI32)))
    for name, (ext, make) in SMALL_FILES.items():
        out[name] = folder / f'{name}{ext}'
        out[name].write_bytes(make())
    return out

class Structure:
    """A source's parsing-relevant bytes and where their fields and opcodes are: (offset, length) pairs."""
    def __init__(self, data):
        self.data, self.members = data, None
        if data[:4] == b'PK\x03\x04':
            self.members = zip_members(data)
            self.pkl = [m for m in self.members if m.name.endswith('data.pkl')][0]
            data = self.pkl.payload
        if data[:1] == b'\x80':
            self.text, (self.fields, self.opcodes) = data, _pickle_layout(data)
        else:                                                    # safetensors: the JSON header after its length
            n = int.from_bytes(data[:8], 'little')
            self.text = data[8:8 + n]
            self.fields = [(m.start(), m.end() - m.start()) for m in re.finditer(rb'\d+', self.text)]
            self.opcodes = [(m.start(), 1) for m in re.finditer(rb'[][{}:,"]', self.text)]

    def rebuilt(self, text):
        if self.members is not None:
            self.pkl.payload, saved = text, self.pkl.payload
            out, self.pkl.payload = zip_bytes(self.members), saved
            return out
        if self.data[:1] == b'\x80':
            return text
        n = int.from_bytes(self.data[:8], 'little')
        return len(text).to_bytes(8, 'little') + text + self.data[8 + n:]

def _pickle_layout(data):
    """(argument fields, opcode bytes) of the pickles one after another at the start of `data` (a torch legacy file
    is five, then raw storages): [(offset, length)] each."""
    f, fields, opcodes = io.BytesIO(data), [], []
    while f.tell() < len(data):
        start = f.tell()
        try:
            for o, _, pos in pickletools.genops(f):
                opcodes.append((pos, 1))
                size = o.arg.n if o.arg is not None else 0
                if size > 0 or size in ARG_BYTES:
                    fields.append((pos + 1, size if size > 0 else ARG_BYTES[size]))
        except ValueError:
            break
        if f.tell() == start:
            break
    return fields, opcodes

def _flip(rng, data, structure=None):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(data))
        data[i] = rng.choice([0, 0xff, 0x7f, 0x80, data[i] ^ (1 << rng.randrange(8)), rng.randrange(256)])
    return bytes(data)

def _truncate(rng, data, structure=None):
    return data[:rng.randrange(1, len(data))]

def _duplicate(rng, data, structure=None):
    n = rng.randint(1, min(4096, max(1, len(data) // 8)))
    a, b = rng.randrange(len(data) - n + 1), rng.randrange(len(data) + 1)
    return data[:b] + data[a:a + n] + data[b:]

def _field(rng, data, structure):
    text, (pos, n) = structure.text, rng.choice(structure.fields)
    if structure.data[:1] not in (b'\x80', b'P'):                 # a JSON number: any digits
        value = str(rng.choice(INTERESTING + (-1, 10 ** 30))).encode()
    else:
        value = (rng.choice(INTERESTING) % 2 ** (8 * n)).to_bytes(n, 'little')
    return structure.rebuilt(text[:pos] + value + text[pos + n:])

def _opcode(rng, data, structure):
    text, (pos, _) = structure.text, rng.choice(structure.opcodes)
    choices = OPCODES if structure.data[:1] in (b'\x80', b'P') else [bytes([c]) for c in b'[]{}:,"0']
    return structure.rebuilt(text[:pos] + rng.choice(choices) + text[pos + 1:])

MUTATORS = {'flip': _flip, 'truncate': _truncate, 'duplicate': _duplicate, 'field': _field, 'opcode': _opcode}

def mutants(sources, n, seed=0):
    """n mutants of each source: [(id, source name, kind, bytes)], the same for the same (sources, n, seed)."""
    out = []
    for name, path in sorted(sources.items()):
        data = Path(path).read_bytes()
        structure = Structure(data)
        rng = random.Random(f'{seed}-{name}')
        for i in range(n):
            kind = FUZZ_KINDS[i % len(FUZZ_KINDS)]
            out.append((f'{name}-{kind}-{seed}-{i}', name, kind, MUTATORS[kind](rng, data, structure)))
    return out

#----------------------------------------------------------------------------
# The sandbox. The child reads one JSON job per line on stdin and answers one line per job on stdout.

@dataclasses.dataclass
class Job:
    id: str
    path: str
    expect: str = 'refuse'
    names: tuple = ()

@dataclasses.dataclass
class Result:
    job: Job
    outcome: str                 # loaded, refused, escaped, crash, timeout
    detail: dict
    problems: list

    def summary(self):
        d = self.detail
        text = {'refused': d.get('message', ''), 'escaped': f"{d.get('error')} at {d.get('where')}", 'loaded': 'loaded',
                'crash': d.get('error', ''), 'timeout': d.get('error', '')}[self.outcome]
        cause = d.get('cause')
        return text + (f'  [raised while handling {cause["type"]} at {cause["where"]}]' if cause else '')

RESULT_PREFIX = '\x1eRESULT '

def child_main(mem_gib, warmup=()):
    """The child: imports, loads the `warmup` files, caps its address space, then loads the files it is given."""
    import faulthandler
    import gc
    import resource
    import warnings
    import numpy as np
    import torch
    import stylegan2_lib as sg
    faulthandler.enable()
    torch.set_num_threads(1)
    for path in warmup:
        sg.load(path)
    gc.collect()
    vm = _status('VmSize')
    resource.setrlimit(resource.RLIMIT_AS, (vm + int(mem_gib * 2 ** 30), resource.getrlimit(resource.RLIMIT_AS)[1]))
    fingerprint = _numpy_fingerprint(np)
    gc.freeze()                          # what the imports made: gc.collect() after each load scans only its objects
    print(RESULT_PREFIX + json.dumps({'ready': True}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        folder = os.path.dirname(job['path'])
        files_before = set(os.listdir(folder))
        _reset_peak()
        rss0, t0 = _status('VmRSS'), time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            out = _load(sg, job['path'])
        gc.collect()
        out.update(seconds=round(time.monotonic() - t0, 3), peak_growth=_status('VmHWM') - rss0,
                   warnings=[[w.category.__name__, str(w.message)[:500]] for w in caught],
                   new_files=sorted(set(os.listdir(folder)) - files_before),
                   numpy_changed=[f'{a} became {b}' for a, b in zip(fingerprint, _numpy_fingerprint(np)) if a != b])
        print(RESULT_PREFIX + json.dumps(out), flush=True)

def _load(sg, path):
    try:
        ck = sg.load(path)
    except sg.CheckpointError as e:
        msg = str(e)
        out = {'outcome': 'refused', 'message': msg[:500], 'names_file': path in msg, 'one_line': len(msg.splitlines()) == 1,
               'length': len(msg) - len(path)}
        ctx = e.__context__
        if ctx is not None and e.__suppress_context__ and not isinstance(ctx, sg.CheckpointError):
            out['cause'] = {'type': type(ctx).__name__, 'message': str(ctx)[:300], 'where': _where(ctx)}
        return out
    except BaseException as e:  # noqa: BLE001 (anything else is what the test reports)
        return {'outcome': 'escaped', 'error': f'{type(e).__name__}: {str(e)[:300]}', 'where': _where(e)}
    import torch
    bad = sum(int((~torch.isfinite(t)).sum()) for net in ck.networks().values()
              for t in net.state_dict().values() if t.is_floating_point())
    return {'outcome': 'loaded', 'non_finite': bad}

def _where(e):
    """file:line (function) of the innermost frame in stylegan2_lib, then of the innermost one if it is elsewhere."""
    import traceback
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if 'stylegan2_lib' in f.filename]
    shown = ours[-1:] + [f for f in frames[-1:] if f not in ours[-1:]]
    return ' > '.join(f"{f.filename.split('stylegan2_lib/')[-1] if f in ours else os.path.basename(f.filename)}:{f.lineno} ({f.name})"
                      for f in shown) or '?'

def _numpy_fingerprint(np):
    out = []
    for c in ('S', 'V', 'U', 'O', 'f2', 'f4', 'f8', 'i1', 'i8', 'u1', 'b1', 'c16', 'M8', 'm8', '<f4', '>f4'):
        d = np.dtype(c)
        out.append(f'dtype({c!r}): itemsize {d.itemsize}, alignment {d.alignment}, byteorder {d.byteorder}, flags {d.flags}, '
                   f'fields {d.fields}, str {d.str}')
    return out

def _status(key):
    """A /proc/self/status memory figure, in bytes."""
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1]) * 1024
    return 0

def _reset_peak():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')                 # resets VmHWM to the current RSS
    except OSError:
        pass

#----------------------------------------------------------------------------
# The parent: workers, each owning a child process that it restarts after a crash, a timeout or a problem.

MAX_MESSAGE = 1000               # characters besides the path: a line to read, not the file's contents
MEMORY_ERRORS = ('MemoryError', 'not enough memory', "can't allocate", 'Unable to allocate', 'out of memory', 'bad_alloc')

def problems(job, outcome, d):
    """Every breach of the contract in one result (empty: the load met it)."""
    out = []
    if outcome in ('crash', 'timeout'):
        return [d['error']]
    if outcome == 'escaped':
        return [f"escaped as {d['error']} at {d['where']}"]
    cause = d.get('cause') or {}
    if any(m in f"{cause.get('type')} {cause.get('message')}" for m in MEMORY_ERRORS):
        out.append(f"memory: ran out of memory under the cap ({cause['type']} at {cause['where']})")
    if d['peak_growth'] > d['memory_bound']:
        out.append(f"memory: resident memory grew by {d['peak_growth'] / 2 ** 20:.0f} MiB (bound {d['memory_bound'] / 2 ** 20:.0f} MiB)")
    if outcome == 'refused':
        if not d['names_file'] or not d['one_line'] or d['length'] > MAX_MESSAGE:
            out.append(f"the CheckpointError message does not name the file in one short line ({d['length']} characters "
                       f"besides the path): {d['message']!r:.200}")
        if job.expect == 'load':
            out.append(f"refused a good file: {d['message']}")
    warned = [m for c, m in d['warnings'] if c == 'NonFiniteWeightsWarning']
    if outcome == 'loaded':
        if job.expect == 'refuse':
            out.append('loaded without an error' + (f' (warnings: {d["warnings"]})' if d['warnings'] else ''))
        if job.expect == 'nonfinite' and not any(n in m for m in warned for n in job.names):
            out.append(f'loaded NaN/inf weights without a NonFiniteWeightsWarning naming {" or ".join(job.names)}')
        if d['non_finite'] and not warned:
            out.append(f"loaded {d['non_finite']} NaN/inf values without a NonFiniteWeightsWarning")
    if d['new_files']:
        out.append(f"a payload ran: new files {d['new_files']}")
    out += [f'numpy changed: {c}' for c in d['numpy_changed']]
    return out

# README (Limits): networks take at most 2x the file + 16 MiB and parsing at most the file's size, "so a load's peak
# memory is about 3x the file at most". The slack covers the interpreter's own noise.
MEMORY_FACTOR, MEMORY_SLACK = 3, 64 * 2 ** 20

def memory_bound(path):
    """MEMORY_FACTOR x the bytes the file holds (its allocated blocks: a sparse file holds few) + MEMORY_SLACK."""
    st = os.stat(path)
    return MEMORY_FACTOR * min(st.st_size, st.st_blocks * 512) + MEMORY_SLACK

def warmup_files(folder):
    """A small good file of each format, loaded by every child before it is capped and given work."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [str(p) for p in fuzz_sources(folder).values() if folder in p.parents]

class _Child:
    def __init__(self, mem_gib, log, warmup):
        code = (f'import sys; sys.path.insert(0, {str(TESTS)!r}); import hostile_corpus; '
                f'hostile_corpus.child_main({mem_gib!r}, {list(warmup)!r})')
        self.log = log
        self.proc = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log, 'wb'), text=True, start_new_session=True, cwd=TESTS)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        if self.receive(120) is None:
            raise RuntimeError(f'the sandbox child did not start: {self.stderr_tail()}')

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                self.lines.put(json.loads(line[len(RESULT_PREFIX):]))
        self.lines.put(None)

    def receive(self, timeout):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, job):
        self.proc.stdin.write(json.dumps({'path': job.path}) + '\n')
        self.proc.stdin.flush()

    def stderr_tail(self, n=1500):
        try:
            text = Path(self.log).read_text(errors='replace')
        except OSError:
            return ''
        return ' | '.join(line for line in text[-n:].splitlines() if line.strip())

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self):
        """Exit status description when the child did not end cleanly at shutdown, else None."""
        try:
            self.proc.stdin.close()
            rc = self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
            return 'did not exit'
        return None if rc == 0 else _exit_text(rc)

def _exit_text(rc):
    if rc < 0:
        try:
            return f'killed by {signal.Signals(-rc).name}'
        except ValueError:
            return f'killed by signal {-rc}'
    return f'exited with status {rc}'

def _result(job, raw):
    raw['memory_bound'] = memory_bound(job.path)
    return Result(job, raw['outcome'], raw, problems(job, raw['outcome'], raw))

def _worker(jobs, results, timeout, mem_gib, per_child, logdir, warmup, index):
    child, ran = None, []
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        if child is None:
            child, ran = _Child(mem_gib, Path(logdir) / f'child-{index}-{job.id[:60]}.log', warmup), []
        t0 = time.monotonic()
        child.send(job)
        raw = child.receive(timeout)
        if raw is None:                                          # died, or still running at the deadline
            alive = child.proc.poll() is None
            child.kill()
            if alive:
                error = f'timeout: still running after {timeout} s'
            else:
                error = f'crash: the child was {_exit_text(child.proc.returncode)}; stderr: {child.stderr_tail()}'
            detail = {'error': error, 'seconds': round(time.monotonic() - t0, 1)}
            results[job.id] = Result(job, 'timeout' if alive else 'crash', detail, [error])
            child = None
            continue
        results[job.id] = res = _result(job, raw)
        ran.append(job.id)
        if res.problems or len(ran) >= per_child:
            _close(child, ran, results)
            child = None
    if child is not None:
        _close(child, ran, results)

def _close(child, ran, results):
    """A child that crashes at exit (a crafted object freed late) fails every case it ran."""
    status = child.close()
    if status:
        for job_id in ran:
            res = results[job_id]
            res.problems.append(f'crash at interpreter exit ({status}) of the child that loaded this file '
                                f'among {len(ran)}: {child.stderr_tail()}')

def run_jobs(jobs, timeout=20, mem_gib=1.0, workers=2, per_child=32, logdir=None):
    """Load every Job's file in sandboxed children: {job id: Result}. `per_child` files share one child (start-up
    dominates otherwise); a child is replaced after any problem, so a crash or a changed numpy fails only its file."""
    import tempfile
    logdir = logdir or tempfile.mkdtemp(prefix='sandbox-logs-')
    warmup = warmup_files(Path(logdir) / 'warmup')
    pending = queue.Queue()
    for job in jobs:
        pending.put(job)
    results = {}
    threads = [threading.Thread(target=_worker, args=(pending, results, timeout, mem_gib, per_child, logdir, warmup, i))
               for i in range(max(1, min(workers, len(jobs))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results

def default_workers():
    return max(1, min(4, os.cpu_count() or 1))
