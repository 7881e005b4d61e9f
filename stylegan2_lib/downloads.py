"""Downloads for users with internet: pretrained source networks and projection weights.

Nothing here runs at import or in tests against the internet (tests serve files from localhost). A file
is streamed to a temporary file beside its destination with a progress bar, its sha256 is checked, and only
then is it renamed into place: an interrupted or corrupt download never leaves a file that looks complete.

Known source networks carry their URL and the architecture facts they must show once loaded. Where the
publisher gives no checksum and none is pinned here, the first download records the file's sha256 in a
`<file>.sha256` sidecar and every later use verifies the cached file against it (so a truncated copy on a
synced Drive folder is caught); give `sha256=` to pin a digest yourself.

Google Drive links (how toonify models and datasets are shared) are fetched through gdown, an optional
dependency (the `drive` and `notebook` extras), with the same pinning: drive.google.com/file/d/ID/...,
.../open?id=ID, .../uc?id=ID or `gdrive:ID`. The file keeps the name Drive gives it, in `gdrive-ID/`.
"""

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

from tqdm.auto import tqdm

from .files import atomic_open, atomic_write_bytes

CACHE = Path(os.environ.get('STYLEGAN2_LIB_CACHE', Path.home() / '.cache' / 'stylegan2_lib'))

class DownloadError(OSError):
    """A download failed or its content is not what was expected; the message names the URL or file."""

#----------------------------------------------------------------------------

def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()

def _check_digest(where, actual, sha256=None, sha256_prefix=None):
    expected = sha256 or sha256_prefix
    if expected and not actual.startswith(expected.lower()):
        raise DownloadError(f'{where}: checksum mismatch (sha256 {actual[:16]}..., expected {expected[:16]}...)')

def download(url, dest, sha256=None, sha256_prefix=None, timeout=60, progress=True):
    """Fetch `url` into `dest` (streamed, progress bar); the file appears only once complete and verified
    against `sha256` (full hex digest) or `sha256_prefix`. Returns (Path(dest), sha256 hex digest)."""
    dest = Path(dest)
    digest = hashlib.sha256()
    with atomic_open(dest, 'wb', suffix='.part') as out, urllib.request.urlopen(url, timeout=timeout) as r:
        total = int(r.headers.get('Content-Length') or 0)
        with tqdm(total=total or None, unit='B', unit_scale=True, desc=f'download {dest.name}', disable=not progress) as bar:
            while chunk := r.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if total and out.tell() != total:
            raise DownloadError(f'{url}: download ended early ({out.tell()} of {total} bytes)')
        _check_digest(url, digest.hexdigest(), sha256, sha256_prefix)
    return dest, digest.hexdigest()

#----------------------------------------------------------------------------
# Pretrained source networks for transfer learning.

@dataclasses.dataclass(frozen=True)
class SourceNetwork:
    url:            str
    filename:       str
    resolution:     int             # facts the loaded file must show (a wrong file is caught even unpinned)
    mapping_layers: int
    sha256:         Optional[str]   # None: not published; the first download pins it (module docstring)
    about:          str

_NVLABS = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained'

KNOWN_NETWORKS = {
    # NVlabs's transfer-learning source: FFHQ at 256x256, paper256 config (channel_base 16384, channel_max
    # 512, 8 mapping layers), mirrored, no augmentation. The recommended start for a few hundred 256 faces.
    'ffhq256': SourceNetwork(f'{_NVLABS}/transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl',
                             'ffhq-res256-mirror-paper256-noaug.pkl', 256, 8, None,
                             'NVlabs FFHQ 256x256 transfer-learning source (stylegan2-ada-pytorch), ~360 MB'),
    # NVlabs's StyleGAN2-ADA FFHQ at 1024x1024 (the full-size face generator).
    'ffhq1024': SourceNetwork(f'{_NVLABS}/ffhq.pkl', 'ffhq.pkl', 1024, 8, None,
                              'NVlabs FFHQ 1024x1024 (stylegan2-ada-pytorch), ~380 MB'),
}

def _pinned_digest(path):
    pin = Path(str(path) + '.sha256')
    return pin.read_text().split()[0] if pin.exists() else None

def _pin(path, digest):
    atomic_write_bytes(str(path) + '.sha256', f'{digest}  {Path(path).name}\n'.encode())

def is_remote(name):
    """Whether `name` is something to download: an http(s) or file URL, or a Google Drive link."""
    return str(name).startswith(('http://', 'https://', 'file://', 'gdrive:'))

def fetch(url, folder, sha256=None, progress=True, accept=None, filename=None):
    """Path of the file at `url` (http(s), file:// or a Google Drive link) in `folder`: downloaded on first
    use, verified on every use (against `sha256`, else the digest pinned by the first download).

    filename: the name in `folder` (default: the URL's; a Drive file keeps the name Drive gives it).
    accept:   called with the path of a fresh download before it is pinned (e.g. to check what the file
              holds); if it raises, the file is removed and nothing is pinned."""
    drive_id = drive_file_id(url)
    if drive_id:
        folder = Path(folder) / f'gdrive-{drive_id}'
        path = _drive_file_in(folder)
    else:
        path = Path(folder) / (filename or Path(urllib.parse.urlparse(url).path).name or 'download')
    if path is not None and path.exists():
        _check_digest(path, sha256_of(path), sha256 or _pinned_digest(path))
        return path
    if drive_id:
        path, digest = download_drive(drive_id, folder, sha256=sha256, progress=progress)
    else:
        path, digest = download(url, path, sha256=sha256, progress=progress)
    try:
        if accept is not None:
            accept(path)
    except BaseException:
        path.unlink()
        raise
    if not sha256:
        _pin(path, digest)
        print(f'{path.name}: sha256 {digest} (recorded in {path.name}.sha256; pass sha256= to pin it yourself)')
    return path

def fetch_network(name_or_url, cache_dir=None, sha256=None, progress=True, accept=None):
    """Path of a source network in the cache, downloaded on first use and verified on every use (fetch).

    name_or_url: a KNOWN_NETWORKS key ('ffhq256'), any http(s) URL of a checkpoint file or a Google Drive link.
    sha256:      expected digest; overrides the registry's. Without any, the first download pins one."""
    known = KNOWN_NETWORKS.get(name_or_url)
    if known is None and not is_remote(name_or_url):
        raise ValueError(f'unknown network {name_or_url!r}: give a URL, a Google Drive link or one of {sorted(KNOWN_NETWORKS)}')
    url = known.url if known else name_or_url
    expected = sha256 or (known.sha256 if known else None)
    folder = Path(cache_dir or CACHE / 'networks')
    return fetch(url, folder, sha256=expected, progress=progress, accept=accept,
                 filename=known.filename if known else None)

def check_network_facts(name, G):
    """Raise DownloadError when a loaded known network is not the architecture its registry entry says."""
    known = KNOWN_NETWORKS[name]
    facts = {'resolution': (G.img_resolution, known.resolution), 'mapping_layers': (G.cfg.mapping_layers, known.mapping_layers)}
    for fact, (got, want) in facts.items():
        if got != want:
            raise DownloadError(f'{known.filename}: {fact} is {got}, but {name} has {want}; the file is not {name}')

#----------------------------------------------------------------------------
# Google Drive: share links -> file id; the file fetched with gdown into a staging folder beside its
# destination, hashed, checked, then renamed into place (no partial file is ever left under its name).

DRIVE_HOSTS = ('drive.google.com', 'docs.google.com', 'drive.usercontent.google.com')
_DRIVE_ID = re.compile(r'[A-Za-z0-9_-]{10,}')

def drive_file_id(url):
    """The file id of a Google Drive link, or None for any other URL; DownloadError for a Drive link that
    names no file (a folder link, a link without an id)."""
    url = str(url)
    if url.startswith('gdrive:'):
        return _checked_drive_id(url[len('gdrive:'):], url)
    parts = urllib.parse.urlparse(url)
    if parts.scheme not in ('http', 'https') or parts.hostname not in DRIVE_HOSTS:
        return None
    in_path = re.match(r'/file/d/([^/]+)', parts.path)
    if in_path:
        return _checked_drive_id(in_path.group(1), url)
    in_query = urllib.parse.parse_qs(parts.query).get('id')
    if in_query:
        return _checked_drive_id(in_query[0], url)
    if '/folders/' in parts.path:
        raise DownloadError(f'{url}: a Google Drive folder link; share one file instead (e.g. a zip of the folder)')
    raise DownloadError(f'{url}: a Google Drive link without a file id; use the file\'s share link '
                        f'(https://drive.google.com/file/d/ID/view)')

def _checked_drive_id(file_id, url):
    if not _DRIVE_ID.fullmatch(file_id):
        raise DownloadError(f'{url}: {file_id!r} is not a Google Drive file id')
    return file_id

def _gdown():
    try:
        import gdown
    except ImportError:
        raise ImportError('Google Drive links need gdown: pip install gdown (or pip install "stylegan2_lib[drive]"; '
                          'the notebooks\' set-up installs it)') from None
    return gdown

def _drive_file_in(folder):
    """The file an earlier Drive download left in `folder` (one file, beside its .sha256 pin), or None."""
    found = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith('.') and p.suffix != '.sha256'] \
        if folder.is_dir() else []
    return found[0] if len(found) == 1 else None

def download_drive(file_id, folder, sha256=None, progress=True):
    """Fetch the Google Drive file `file_id` into `folder` under the name Drive gives it (gdown streams it,
    with a progress bar); it appears only once complete and verified against `sha256` (when given).
    Returns (path, sha256 hex digest)."""
    gdown = _gdown()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix='.gdrive-', suffix='.part', dir=folder))
    where = f'gdrive:{file_id}'
    try:
        try:
            got = gdown.download(url=f'https://drive.google.com/uc?id={file_id}', output=str(staging) + os.sep,
                                 quiet=not progress)
        except Exception as e:                          # noqa: BLE001 (gdown's own errors, named for the user)
            raise DownloadError(f'{where}: Google Drive download failed ({type(e).__name__}: {e}); is the file shared '
                                f'as "Anyone with the link"?') from e
        written = [p for p in staging.iterdir() if p.is_file() and p.suffix != '.part']
        if not got or len(written) != 1:
            raise DownloadError(f'{where}: Google Drive gave no file; is it shared as "Anyone with the link"?')
        part = written[0]
        digest = sha256_of(part)
        _check_digest(f'{part.name} ({where})', digest, sha256)
        os.chmod(part, 0o644)
        dest = folder / part.name
        os.replace(part, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest, digest
