"""Bad input: hostile pickles are refused before anything in them is called; broken files give a clear
error that names the file; saving never leaves a half-written file."""

import os
import pickle
import struct
import zipfile

import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import files
from conftest import ROSI32, TINY32

#----------------------------------------------------------------------------
# Hand-assembled pickle bytes (protocol 2 opcodes), so no hostile object ever exists in this process.

def _str(s):
    b = s.encode()
    return b'X' + struct.pack('<I', len(b)) + b

def _global(module, name):
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'

def hostile_call(module, name, arg):
    """Opcodes for `module.name(arg)`; arg is a str or a list of str."""
    if isinstance(arg, list):
        arg_ops = b']' + b'(' + b''.join(_str(a) for a in arg) + b'e'
    else:
        arg_ops = _str(arg)
    return _global(module, name) + arg_ops + b'\x85R'          # TUPLE1, REDUCE

def as_pickle(body):
    return b'\x80\x02' + body + b'.'

def legacy_torch_stream(main_pickle_body):
    """A torch legacy stream (magic, protocol, sys_info pickles) whose main object is `main_pickle_body`."""
    head = pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2)
    head += pickle.dumps({'protocol_version': 1001, 'little_endian': True, 'type_sizes': {}}, protocol=2)
    return head + as_pickle(main_pickle_body) + pickle.dumps([], protocol=2)

def _bytes(b):
    return b'B' + struct.pack('<I', len(b)) + b                # BINBYTES (protocol 3+)

HOSTILE = [
    ('posix', 'system', lambda m: f'touch {m}'),
    ('os', 'system', lambda m: f'touch {m}'),
    ('builtins', 'eval', lambda m: f"open({str(m)!r}, 'w').write('pwned')"),
    ('builtins', 'exec', lambda m: f"open({str(m)!r}, 'w').write('pwned')"),
    ('subprocess', 'Popen', lambda m: ['touch', str(m)]),
]


def _check_refused(path, marker, module, name):
    with pytest.raises(sg.UnsafePickleError) as info:
        sg.load(path)
    msg = str(info.value)
    assert str(path) in msg and f'{module}.{name}' in msg
    assert not marker.exists(), 'the hostile call ran'


@pytest.mark.parametrize('module, name, arg', HOSTILE)
def test_hostile_global_at_top_level(tmp_path, module, name, arg):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'net.pkl'
    path.write_bytes(as_pickle(hostile_call(module, name, arg(marker))))
    _check_refused(path, marker, module, name)


@pytest.mark.parametrize('module, name, arg', HOSTILE)
def test_hostile_global_deep_inside_an_nvlabs_snapshot(tmp_path, module, name, arg):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'net.pkl'
    # {'G': {'init_kwargs': <call>}}: a nested value, after legitimate opcodes
    body = b'}' + _str('G') + b'}' + _str('init_kwargs') + hostile_call(module, name, arg(marker)) + b's' + b's'
    path.write_bytes(as_pickle(body))
    _check_refused(path, marker, module, name)


@pytest.mark.parametrize('module, name, arg', HOSTILE)
def test_hostile_global_inside_a_nested_storage_blob(tmp_path, module, name, arg):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'net.pkl'
    blob = legacy_torch_stream(hostile_call(module, name, arg(marker)))
    body = _global('torch.storage', '_load_from_bytes') + _bytes(blob) + b'\x85R'
    path.write_bytes(b'\x80\x03' + body + b'.')
    _check_refused(path, marker, module, name)


@pytest.mark.parametrize('module, name, arg', HOSTILE)
def test_hostile_global_inside_a_rosinality_zip(tmp_path, module, name, arg):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'ckpt.pt'
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('ckpt/data.pkl', as_pickle(b'}' + _str('g_ema') + hostile_call(module, name, arg(marker)) + b's'))
        zf.writestr('ckpt/version', '3\n')
    _check_refused(path, marker, module, name)


def test_hostile_global_inside_a_legacy_torch_file(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'ckpt.pt'
    path.write_bytes(legacy_torch_stream(hostile_call('os', 'system', f'touch {marker}')))
    _check_refused(path, marker, 'os', 'system')


def test_our_stand_ins_are_not_the_real_classes():
    # The allowlist maps names onto inert stand-ins: loading never imports dnnlib/torch_utils/argparse code.
    from stylegan2_lib.checkpoints.safe_pickle import ALLOWED_GLOBALS
    for (module, name), obj in ALLOWED_GLOBALS.items():
        assert not (module, name) in [('builtins', 'eval'), ('builtins', 'exec'), ('os', 'system'), ('builtins', 'getattr')]
        assert getattr(obj, '__module__', '') != 'argparse'
    assert ('torch', 'load') not in ALLOWED_GLOBALS


#----------------------------------------------------------------------------
# Broken files.

def _expect_error(path, *fragments):
    with pytest.raises(sg.CheckpointError) as info:
        sg.load(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_empty_file(tmp_path):
    p = tmp_path / 'empty.pkl'
    p.write_bytes(b'')
    _expect_error(p, 'empty')


def test_directory(tmp_path):
    _expect_error(tmp_path, 'directory')


def test_missing_file(tmp_path):
    _expect_error(tmp_path / 'nope.pkl', 'no such file')


def test_unknown_format(tmp_path):
    p = tmp_path / 'photo.png'
    p.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 100)
    _expect_error(p, 'unknown format')
    t = tmp_path / 'notes.pkl'
    t.write_text('just some text, named like a pickle')
    _expect_error(t, 'unknown format')


@pytest.mark.parametrize('source', [TINY32, ROSI32])
@pytest.mark.parametrize('fraction', [0.1, 0.5, 0.99])
def test_truncated_files(tmp_path, source, fraction):
    data = source.read_bytes()
    p = tmp_path / source.name
    p.write_bytes(data[: int(len(data) * fraction)])
    _expect_error(p, 'corrupt')


def test_corrupt_storage_bytes_in_zip(tmp_path):
    # A rosinality zip whose tensor record is shorter than the tensor needs.
    src = zipfile.ZipFile(ROSI32)
    p = tmp_path / 'bad.pt'
    with zipfile.ZipFile(p, 'w') as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if '/data/' in item.filename and len(data) > 64:
                data = data[:16]
            dst.writestr(item, data)
    _expect_error(p, 'corrupt')


def test_garbage_after_pickle_header(tmp_path):
    p = tmp_path / 'garbage.pkl'
    p.write_bytes(b'\x80\x04' + bytes(range(256)) * 4)
    _expect_error(p)


def test_unrelated_pickle(tmp_path):
    p = tmp_path / 'other.pkl'
    p.write_bytes(pickle.dumps({'weights': [1, 2, 3]}))
    _expect_error(p, 'neither an NVlabs')


def test_unrelated_torch_file(tmp_path):
    p = tmp_path / 'other.pt'
    torch.save({'model': {'linear.weight': torch.zeros(2, 2)}}, p)
    _expect_error(p, 'not a rosinality')


def test_rosinality_with_a_missing_tensor(tmp_path):
    import argparse
    with torch.serialization.safe_globals([argparse.Namespace]):
        ck = torch.load(ROSI32, weights_only=True)    # trusted test data; only to build a broken copy
    del ck['g_ema']['convs.1.conv.modulation.bias']
    p = tmp_path / 'broken.pt'
    torch.save(ck, p)
    _expect_error(p, 'convs.1.conv.modulation.bias')


def test_rosinality_with_a_wrong_shape(tmp_path):
    import argparse
    with torch.serialization.safe_globals([argparse.Namespace]):
        ck = torch.load(ROSI32, weights_only=True)
    ck['g_ema']['convs.1.activate.bias'] = torch.zeros(7)
    p = tmp_path / 'broken.pt'
    torch.save(ck, p)
    _expect_error(p, 'synthesis.b8.conv1.bias', 'shape')


def test_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file
    p = tmp_path / 'other.safetensors'
    save_file({'x': torch.zeros(3)}, str(p))
    _expect_error(p, 'not a stylegan2_lib checkpoint')


def test_truncated_native_file(tmp_path, tiny32):
    p = tmp_path / 'net.safetensors'
    sg.save(p, G_ema=tiny32.G_ema)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 1000])
    _expect_error(p, 'corrupt')


#----------------------------------------------------------------------------
# Atomic writes.

def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, tiny32, monkeypatch):
    p = tmp_path / 'net.safetensors'
    sg.save(p, G_ema=tiny32.G_ema, meta={'run': 'first'})
    before = p.read_bytes()

    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(files.os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        sg.save(p, G_ema=tiny32.G, meta={'run': 'second'})
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ['net.safetensors']
    assert sg.load(p).meta['run'] == 'first'
