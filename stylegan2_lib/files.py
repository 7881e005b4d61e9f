"""File writing shared by every part of the library: atomic writes, so nothing is ever half-written.

    with files.atomic_open('out.zip', 'wb') as f:     # a temporary file beside out.zip
        f.write(...)                                  # an error here: the temporary file is removed, any
                                                      # existing out.zip is left as it was
    # here: flushed, fsync'ed, renamed over out.zip, with the mode a plain open() would have given it
"""

import contextlib
import os
import secrets
import stat

#----------------------------------------------------------------------------
# A hidden temporary name beside `path`: the same folder, so that the final rename is atomic.

def _name_beside(path, suffix):
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f'.{name}.{secrets.token_hex(8)}{suffix}')

def _keep_mode(tmp, path):
    """An existing `path` keeps its permissions (as when open() truncates it); a new one keeps the umask's."""
    try:
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
    except FileNotFoundError:
        pass

#----------------------------------------------------------------------------
# Write to `path` atomically: a temporary file in the same folder, fsync, then rename. A crash or error at
# any moment leaves either the old file or the new one, never a mix, and no temporary file after an error.

@contextlib.contextmanager
def replaced_on_success(path, suffix='.staged'):
    """Yields an unused temporary name beside `path`, for a writer that takes a path (e.g. sg.export) to
    write; when the block ends without error that file is renamed to `path`, otherwise removed: all or
    nothing, and an existing `path` is untouched by a failure. Nothing is created before the writer runs."""
    path = os.fspath(path)
    tmp = _name_beside(path, suffix)
    try:
        yield tmp
        _keep_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise

@contextlib.contextmanager
def atomic_open(path, mode='wb', suffix='.tmp'):
    """Yields the open temporary file (mode 'wb', or 'w' for UTF-8 text); `path` appears, complete and
    fsync'ed, when the block ends. The folder is created when missing."""
    if mode not in ('wb', 'w'):
        raise ValueError(f"atomic_open writes a new file: mode 'wb' or 'w', not {mode!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Mode 'x' (a new file, 0o666 through the umask, as open(path, 'w') gives; mkstemp would give 0600).
    with replaced_on_success(path, suffix) as tmp, \
            open(tmp, mode.replace('w', 'x'), **({'encoding': 'utf-8'} if mode == 'w' else {})) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())

def atomic_write_bytes(path, data: bytes):
    with atomic_open(path, 'wb') as f:
        f.write(data)

#----------------------------------------------------------------------------
# Whether `path` can be created, asked before a long computation whose result goes there: None, or why not.

def why_unwritable(path, what='the file'):
    if os.path.isdir(path):
        return f'{what} is a directory; give a file name'
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f'cannot create {what}: {parent} is not a directory'
    if not os.access(parent, os.W_OK | os.X_OK):
        return f'cannot create {what}: {parent} is not writable'
    return None

#----------------------------------------------------------------------------
# A size for people: '1.5 MiB', '279.6 MiB', '3.2 GiB' (binary units, as file managers and browsers count).

def format_size(num_bytes):
    size = float(num_bytes)
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if size < 1024 or unit == 'GiB':
            return f'{int(size)} bytes' if unit == 'bytes' else f'{size:.1f} {unit}'
        size /= 1024

#----------------------------------------------------------------------------
# Reading the small JSON files the library writes itself (scores.json, faces.json), which a user may still have
# edited, truncated or been sent: bounded in size, every failure a ValueError naming the file.

MAX_JSON_BYTES = 64 << 20

def read_json_object(path, max_bytes=MAX_JSON_BYTES):
    """The dict in a JSON file; ValueError naming the file when it is larger than max_bytes, not UTF-8 JSON,
    nested too deeply for the parser, or not an object at the top."""
    import json
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ValueError(f'{path}: {format_size(size)} is too large for this JSON file (at most {format_size(max_bytes)})')
    try:
        with open(path, 'rb') as f:
            value = json.loads(f.read(max_bytes + 1).decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f'{path}: not a JSON file ({str(e)[:200]})') from None
    except RecursionError:
        raise ValueError(f'{path}: JSON nested too deeply') from None
    if not isinstance(value, dict):
        raise ValueError(f'{path}: expected a JSON object at the top, got {type(value).__name__}')
    return value
