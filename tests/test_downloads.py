"""Downloads (source networks, VGG weights) against a local HTTP server: checksums, pinning, atomicity."""

import hashlib
import os

import pytest

from stylegan2_lib import downloads, perceptual
from stylegan2_lib.assets import DEMO_BASE
from stylegan2_lib.downloads import DownloadError, fetch_network

from conftest import files_under


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_download_verifies_the_checksum_and_leaves_nothing_when_it_fails(http_folder, tmp_path):
    served, url = http_folder
    payload = b'weights' * 1000
    (served / 'w.pth').write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    path, digest = downloads.download(f'{url}/w.pth', tmp_path / 'cache' / 'w.pth', sha256_prefix=good[:8], progress=False)
    assert path.read_bytes() == payload and digest == good
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()    # what a plain open() gives, not 0600
    with pytest.raises(DownloadError, match='checksum mismatch'):
        downloads.download(f'{url}/w.pth', tmp_path / 'cache' / 'bad.pth', sha256='0' * 64, progress=False)
    assert sorted(p.name for p in (tmp_path / 'cache').iterdir()) == ['w.pth']     # no partial file either


def test_a_missing_file_is_an_error_naming_it(http_folder, tmp_path):
    _, url = http_folder
    with pytest.raises(OSError, match='404'):
        downloads.download(f'{url}/nothing.pkl', tmp_path / 'x.pkl', progress=False)
    assert not (tmp_path / 'x.pkl').exists()


def test_fetch_network_pins_on_first_download_and_catches_a_changed_cache(http_folder, tmp_path):
    served, url = http_folder
    (served / 'net.pkl').write_bytes(DEMO_BASE.read_bytes())
    cache = tmp_path / 'cache'
    path = fetch_network(f'{url}/net.pkl', cache_dir=cache, progress=False)
    pin = (cache / 'net.pkl.sha256').read_text().split()[0]
    assert pin == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fetch_network(f'{url}/net.pkl', cache_dir=cache) == path                  # cached, verified
    path.write_bytes(path.read_bytes()[:-10])                                         # e.g. a half-synced Drive copy
    with pytest.raises(DownloadError, match='net.pkl: checksum mismatch'):
        fetch_network(f'{url}/net.pkl', cache_dir=cache)


def test_fetch_network_with_a_given_checksum(http_folder, tmp_path):
    served, url = http_folder
    (served / 'a.pkl').write_bytes(b'abc')
    cache = tmp_path / 'cache'
    with pytest.raises(DownloadError, match='checksum mismatch'):
        fetch_network(f'{url}/a.pkl', cache_dir=cache, sha256='f' * 64, progress=False)
    assert list(cache.iterdir()) == []
    good = hashlib.sha256(b'abc').hexdigest()
    assert fetch_network(f'{url}/a.pkl', cache_dir=cache, sha256=good, progress=False).read_bytes() == b'abc'
    assert not (cache / 'a.pkl.sha256').exists()                                   # pinned by the caller, no sidecar


def test_known_networks_check_their_architecture(tiny32):
    assert downloads.KNOWN_NETWORKS['ffhq256'].url.endswith('ffhq-res256-mirror-paper256-noaug.pkl')
    with pytest.raises(DownloadError, match='resolution is 32, but ffhq256 has 256'):
        downloads.check_network_facts('ffhq256', tiny32.G_ema)
    with pytest.raises(ValueError, match="unknown network 'ffhq9'"):
        fetch_network('ffhq9')


def test_vgg_weights_download_through_the_same_helper(http_folder, tmp_path, monkeypatch):
    served, url = http_folder
    (served / 'vgg16-397923af.pth').write_bytes(b'not weights')
    monkeypatch.setattr(perceptual, 'VGG16_URL', f'{url}/vgg16-397923af.pth')
    with pytest.raises(FileNotFoundError, match='checksum mismatch'):     # the real file's name is its sha256 prefix
        perceptual.load_vgg16(tmp_path / 'vgg16-397923af.pth', download_missing=True)
    assert not (tmp_path / 'vgg16-397923af.pth').exists()


#----------------------------------------------------------------------------
# Google Drive links, through a stand-in for gdown (the real one would go to Google).

ID = '1AbCdEfGhIjKlMnOpQrStUvWxYz012345'

@pytest.mark.parametrize('link', [
    f'https://drive.google.com/file/d/{ID}/view?usp=sharing', f'https://drive.google.com/file/d/{ID}',
    f'https://drive.google.com/open?id={ID}', f'https://drive.google.com/uc?id={ID}&export=download',
    f'https://drive.google.com/uc?export=download&id={ID}', f'https://docs.google.com/uc?id={ID}', f'gdrive:{ID}'])
def test_drive_links_give_the_file_id(link):
    assert downloads.drive_file_id(link) == ID


def test_other_links_are_not_drive_links_and_drive_links_without_a_file_are_errors():
    assert downloads.drive_file_id(f'https://example.com/file/d/{ID}/x.pkl') is None
    assert downloads.drive_file_id('ffhq256') is None
    with pytest.raises(DownloadError, match='a Google Drive folder link; share one file'):
        downloads.drive_file_id(f'https://drive.google.com/drive/folders/{ID}')
    with pytest.raises(DownloadError, match='without a file id'):
        downloads.drive_file_id('https://drive.google.com/drive/my-drive')
    with pytest.raises(DownloadError, match="'x/y' is not a Google Drive file id"):
        downloads.drive_file_id('gdrive:x/y')


def test_a_drive_network_is_pinned_on_first_download_and_verified_later(fake_gdown, tmp_path):
    fake_gdown['files'][ID] = ('toon-256.pkl', DEMO_BASE.read_bytes())
    cache = tmp_path / 'cache'
    path = fetch_network(f'https://drive.google.com/file/d/{ID}/view?usp=sharing', cache_dir=cache, progress=False)
    assert path == cache / f'gdrive-{ID}' / 'toon-256.pkl' and path.read_bytes() == DEMO_BASE.read_bytes()
    pin = (path.parent / 'toon-256.pkl.sha256').read_text().split()[0]
    assert pin == hashlib.sha256(DEMO_BASE.read_bytes()).hexdigest()
    assert sorted(p.name for p in path.parent.iterdir()) == ['toon-256.pkl', 'toon-256.pkl.sha256']   # no staging left
    assert fetch_network(f'gdrive:{ID}', cache_dir=cache) == path and len(fake_gdown['calls']) == 1   # cached
    path.write_bytes(path.read_bytes()[:-10])                                   # a half-synced copy
    with pytest.raises(DownloadError, match='toon-256.pkl: checksum mismatch'):
        fetch_network(f'gdrive:{ID}', cache_dir=cache)


def test_a_drive_download_with_the_wrong_checksum_names_the_file_and_leaves_nothing(fake_gdown, tmp_path):
    fake_gdown['files'][ID] = ('faces.zip', b'zip bytes')
    cache = tmp_path / 'cache'
    with pytest.raises(DownloadError, match=rf'faces.zip \(gdrive:{ID}\): checksum mismatch'):
        downloads.fetch(f'gdrive:{ID}', cache, sha256='0' * 64, progress=False)
    assert files_under(cache) == [f'gdrive-{ID}']                               # an empty folder: no file, no pin
    good = hashlib.sha256(b'zip bytes').hexdigest()
    assert downloads.fetch(f'gdrive:{ID}', cache, sha256=good, progress=False).read_bytes() == b'zip bytes'


def test_an_interrupted_or_refused_drive_download_leaves_no_partial_file(fake_gdown, tmp_path):
    fake_gdown['files'][ID] = ('big.pkl', b'x' * 1000)
    fake_gdown['fail_after'] = 400
    cache = tmp_path / 'cache'
    with pytest.raises(DownloadError, match=f'gdrive:{ID}: Google Drive download failed .*connection reset'):
        downloads.fetch(f'gdrive:{ID}', cache, progress=False)
    assert files_under(cache) == [f'gdrive-{ID}']
    with pytest.raises(DownloadError, match='shared as "Anyone with the link"'):
        downloads.fetch('gdrive:1NotSharedWithAnyone', cache, progress=False)


def test_without_gdown_a_drive_link_says_what_to_install(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, 'gdown', None)                          # import gdown raises ImportError
    with pytest.raises(ImportError, match=r'Google Drive links need gdown: pip install gdown .*stylegan2_lib\[drive\]'):
        fetch_network(f'gdrive:{ID}', cache_dir=tmp_path)
