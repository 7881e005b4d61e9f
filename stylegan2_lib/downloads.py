"""Downloads for users with internet: pretrained source networks and projection weights.

Nothing here runs at import or in tests against the internet (tests serve files from localhost). A file
is streamed to a temporary file beside its destination with a progress bar, its sha256 is checked, and only
then is it renamed into place: an interrupted or corrupt download never leaves a file that looks complete.

Known source networks carry their URL and the architecture facts they must show once loaded. Where the
publisher gives no checksum and none is pinned here, the first download records the file's sha256 in a
`<file>.sha256` sidecar and every later use verifies the cached file against it (so a truncated copy on a
synced Drive folder is caught); give `sha256=` to pin a digest yourself.
"""

import dataclasses
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Optional

from tqdm.auto import tqdm

from .files import atomic_write_bytes

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
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + dest.name + '.', suffix='.part', dir=dest.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=timeout) as r:
            total = int(r.headers.get('Content-Length') or 0)
            with tqdm(total=total or None, unit='B', unit_scale=True, desc=f'download {dest.name}', disable=not progress) as bar:
                while chunk := r.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if total and out.tell() != total:
                raise DownloadError(f'{url}: download ended early ({out.tell()} of {total} bytes)')
            out.flush()
            os.fsync(out.fileno())
        _check_digest(url, digest.hexdigest(), sha256, sha256_prefix)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
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

def fetch_network(name_or_url, cache_dir=None, sha256=None, progress=True, accept=None):
    """Path of a source network in the cache, downloaded on first use and verified on every use.

    name_or_url: a KNOWN_NETWORKS key ('ffhq256') or any http(s) URL of a checkpoint file.
    sha256:      expected digest; overrides the registry's. Without any, the first download pins one.
    accept:      called with the path of a fresh download before it is pinned (e.g. to check what the file
                 holds); if it raises, the file is removed and nothing is pinned."""
    known = KNOWN_NETWORKS.get(name_or_url)
    if known is None and not str(name_or_url).startswith(('http://', 'https://', 'file://')):
        raise ValueError(f'unknown network {name_or_url!r}: give a URL or one of {sorted(KNOWN_NETWORKS)}')
    url = known.url if known else name_or_url
    filename = known.filename if known else Path(urllib.request.urlparse(url).path).name or 'network.pkl'
    expected = sha256 or (known.sha256 if known else None)
    path = Path(cache_dir or CACHE / 'networks') / filename
    if path.exists():
        digest = sha256_of(path)
        _check_digest(path, digest, expected or _pinned_digest(path))
        return path
    path, digest = download(url, path, sha256=expected, progress=progress)
    try:
        if accept is not None:
            accept(path)
    except BaseException:
        path.unlink()
        raise
    if not expected:
        _pin(path, digest)
        print(f'{path.name}: sha256 {digest} (recorded in {path.name}.sha256; pass sha256= to pin it yourself)')
    return path

def check_network_facts(name, G):
    """Raise DownloadError when a loaded known network is not the architecture its registry entry says."""
    known = KNOWN_NETWORKS[name]
    facts = {'resolution': (G.img_resolution, known.resolution), 'mapping_layers': (G.cfg.mapping_layers, known.mapping_layers)}
    for fact, (got, want) in facts.items():
        if got != want:
            raise DownloadError(f'{known.filename}: {fact} is {got}, but {name} has {want}; the file is not {name}')
