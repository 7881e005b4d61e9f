"""File writing shared by every part of the library: atomic writes, so nothing is ever half-written."""

import os
import tempfile

#----------------------------------------------------------------------------
# Write bytes to `path` atomically: a temporary file in the same folder, fsync, then rename.
# A crash or error at any moment leaves either the old file or the new one, never a mix.

def atomic_write_bytes(path, data: bytes):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the old file's mode, or the usual 0644.
        os.chmod(tmp, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

#----------------------------------------------------------------------------
# A size for people: '1.5 MiB', '279.6 MiB', '3.2 GiB' (binary units, as file managers and browsers count).

def format_size(num_bytes):
    size = float(num_bytes)
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if size < 1024 or unit == 'GiB':
            return f'{int(size)} bytes' if unit == 'bytes' else f'{size:.1f} {unit}'
        size /= 1024
