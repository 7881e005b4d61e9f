"""The library's own format: one safetensors file (no code, no pickle) holding every network's tensors
as '<net>.<NVlabs name>' and, in the header metadata, JSON configs and free-form meta:

    __metadata__ = {'format': 'stylegan2_lib', 'version': '1',
                    'configs': '{"G_ema": {...GeneratorConfig...}, "D": {...}}', 'meta': '{...}'}
"""

import json

from safetensors.torch import load_file as st_load_file, save as st_save

from .. import files
from ..discriminator import DiscriminatorConfig
from ..generator import GeneratorConfig
from .common import Checkpoint, build_network, plain
from .errors import CheckpointError

FORMAT_NAME = 'stylegan2_lib'
FORMAT_VERSION = '1'
NETS = ('G', 'D', 'G_ema')

#----------------------------------------------------------------------------

def save(path, G=None, D=None, G_ema=None, meta=None):
    nets = {k: v for k, v in (('G', G), ('D', D), ('G_ema', G_ema)) if v is not None}
    if not nets:
        raise ValueError('save: give at least one of G, D, G_ema')
    tensors, configs, seen = {}, {}, set()
    for label, net in nets.items():
        if not hasattr(net, 'cfg'):
            raise TypeError(f'save: {label} is a {type(net).__name__}, not a stylegan2_lib network')
        configs[label] = net.cfg.to_dict()
        for name, t in net.state_dict().items():
            t = t.detach().to('cpu').contiguous()
            storage = t.untyped_storage().data_ptr()
            # safetensors refuses tensors that share memory (e.g. G_ema=G, the same module twice): store copies.
            tensors[f'{label}.{name}'] = t.clone() if storage in seen else t
            seen.add(storage)
    metadata = {
        'format': FORMAT_NAME,
        'version': FORMAT_VERSION,
        'configs': json.dumps(configs),
        'meta': json.dumps(_stored_meta(meta)),
    }
    files.atomic_write_bytes(path, _canonical_header(st_save(tensors, metadata=metadata)))

def _canonical_header(data):
    """safetensors keeps the metadata in a hash map, so its key order changes from run to run; rewrite the
    header (JSON, space-padded to a multiple of 8 bytes) with sorted metadata keys: same input, same bytes."""
    n = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8: 8 + n])
    header['__metadata__'] = dict(sorted(header['__metadata__'].items()))
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    return len(text).to_bytes(8, 'little') + text + data[8 + n:]

def _stored_meta(meta):
    # 'source' is where a checkpoint was loaded from; in a new file it becomes provenance.
    meta = plain(dict(meta or {}))
    if 'source' in meta:
        meta.setdefault('derived_from', meta.pop('source'))
    if 'format' in meta:
        meta.setdefault('derived_from_format', meta.pop('format'))
    return meta

#----------------------------------------------------------------------------

def is_native(data: bytes, size=None):
    """Whether `data` (a file's first bytes; `size` the whole file's, default len(data)) opens a safetensors file."""
    size = len(data) if size is None else size
    if size < 10 or len(data) < 9:
        return False
    n = int.from_bytes(data[:8], 'little')
    return 2 <= n <= size - 8 and data[8:9] == b'{'

MAX_HEADER_BYTES = 100_000_000          # safetensors's own limit on the JSON header

def from_native(path):
    """The file's tensors are memory-mapped by safetensors and copied once into tensors the networks own
    (no whole-file bytes object first): peak memory about one copy of the weights."""
    try:
        with open(path, 'rb') as f:
            n = int.from_bytes(f.read(8), 'little')
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(path, f'safetensors header of {n} bytes (at most {MAX_HEADER_BYTES} are allowed)')
            header = json.loads(f.read(n))
        metadata = header.get('__metadata__') or {}
    except ValueError as e:
        raise CheckpointError(path, f'corrupt safetensors header: {e}') from None
    if metadata.get('format') != FORMAT_NAME:
        raise CheckpointError(path, 'a safetensors file, but not a stylegan2_lib checkpoint (no format=stylegan2_lib in its metadata)')
    if metadata.get('version') != FORMAT_VERSION:
        raise CheckpointError(path, f'stylegan2_lib checkpoint version {metadata.get("version")!r}; this library reads version {FORMAT_VERSION}')
    try:
        tensors = st_load_file(path)
        configs = json.loads(metadata['configs'])
        meta = json.loads(metadata.get('meta') or '{}')
    except Exception as e:  # safetensors raises its own error types for truncated data
        raise CheckpointError(path, f'corrupt stylegan2_lib checkpoint: {e}') from None
    ck = Checkpoint(meta={**meta, 'format': 'native'})
    for label, cfg_dict in configs.items():
        if label not in NETS:
            raise CheckpointError(path, f'unknown network {label!r} in the checkpoint')
        cfg_class = DiscriminatorConfig if label == 'D' else GeneratorConfig
        try:
            cfg = cfg_class.from_dict(cfg_dict)
        except (TypeError, ValueError) as e:
            raise CheckpointError(path, f'{label}: bad config: {e}') from None
        prefix = label + '.'
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        setattr(ck, label, build_network(path, label, cfg, state, owned=True))   # one file entry per tensor
    stray = [k for k in tensors if k.split('.', 1)[0] not in configs]
    if stray:
        raise CheckpointError(path, f'tensor {stray[0]} belongs to no network in the checkpoint')
    return ck

