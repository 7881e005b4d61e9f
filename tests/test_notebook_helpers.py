"""The notebook helpers outside a notebook and with a stand-in google.colab module: what they show, write
and call; source networks fetched from a local server; which run a notebook resumes."""

import pytest

import stylegan2_lib as sg
from stylegan2_lib import downloads, notebook as nb
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.downloads import DownloadError, SourceNetwork
from stylegan2_lib.train.state import latest_run


def test_runtime_report_names_the_device():
    text = nb.runtime_report()
    assert 'PyTorch' in text
    assert ('GPU:' in text) if sg.generator.torch.cuda.is_available() else ('No GPU found' in text and 'Change runtime type' not in text)


def test_outside_colab_a_link_is_offered(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'exports').mkdir()
    (tmp_path / 'exports' / 'b.pkl').write_bytes(b'x' * 2048)
    html = nb.offer_download(tmp_path / 'exports' / 'b.pkl')
    assert 'href="exports/b.pkl"' in html and 'download="b.pkl"' in html
    assert nb.upload_files(tmp_path / 'in') == [] and (tmp_path / 'in').is_dir()


def test_in_colab_files_are_uploaded_and_downloaded(tmp_path, fake_colab):
    assert nb.in_colab() and 'Change runtime type' in nb.runtime_report() or sg.generator.torch.cuda.is_available()
    saved = nb.upload_files(tmp_path / 'photos')
    assert sorted(p.name for p in saved) == ['me.jpg', 'x.png']                  # names only: no path escapes dest
    assert (tmp_path / 'photos' / 'me.jpg').read_bytes() == b'jpeg bytes' and not (tmp_path / 'evil').exists()
    nb.offer_download(tmp_path / 'photos' / 'me.jpg')
    assert fake_colab['downloaded'] == [str(tmp_path / 'photos' / 'me.jpg')]


def test_in_colab_the_size_is_said_before_the_download_starts(tmp_path, fake_colab, capsys, monkeypatch):
    import sys
    (tmp_path / 'blend.pkl').write_bytes(b'x' * 3 * 2 ** 20)
    printed_before = []
    monkeypatch.setattr(sys.modules['google.colab'].files, 'download', lambda path: printed_before.append(capsys.readouterr().out))
    html = nb.offer_download(tmp_path / 'blend.pkl')
    assert printed_before == ['downloading blend.pkl (3.0 MiB) ...\n'] and '3.0 MiB' in html


def test_sizes_read_as_people_count_them():
    from stylegan2_lib.files import format_size
    assert [format_size(n) for n in (512, 2048, 280 * 2 ** 20 + 2 ** 19, 3 * 2 ** 30)] == \
        ['512 bytes', '2.0 KiB', '280.5 MiB', '3.0 GiB']


def test_source_network_fetches_checks_and_reuses(http_folder, tmp_path, monkeypatch):
    served, url = http_folder
    (served / 'demo.safetensors').write_bytes(DEMO_BASE.read_bytes())
    monkeypatch.setitem(downloads.KNOWN_NETWORKS, 'demo32', SourceNetwork(f'{url}/demo.safetensors', 'demo.safetensors', 32, 2, None, ''))
    monkeypatch.setitem(downloads.KNOWN_NETWORKS, 'wrong', SourceNetwork(f'{url}/demo.safetensors', 'w.safetensors', 256, 8, None, ''))
    path = nb.source_network('demo32', cache_dir=tmp_path / 'cache')
    assert path.read_bytes() == DEMO_BASE.read_bytes() and (tmp_path / 'cache' / 'demo.safetensors.sha256').exists()
    assert nb.source_network(str(path)) == path                                 # a file is taken as it is
    with pytest.raises(DownloadError, match='resolution is 32, but wrong has 256'):
        nb.source_network('wrong', cache_dir=tmp_path / 'cache')
    assert not (tmp_path / 'cache' / 'w.safetensors').exists()                  # neither kept nor pinned
    assert not (tmp_path / 'cache' / 'w.safetensors.sha256').exists()


def test_latest_run_picks_the_newest_resumable_run_of_the_data(tmp_path):
    def run(name, resumable=True):
        (tmp_path / name).mkdir()
        if resumable:
            (tmp_path / name / 'training-state.pt').write_bytes(b'')
    run('00000-anime'), run('00001-cats'), run('00002-anime'), run('00003-anime', resumable=False), run('notes')
    assert latest_run(tmp_path, 'anime').name == '00002-anime'
    assert latest_run(tmp_path).name == '00002-anime'
    assert latest_run(tmp_path, 'cats').name == '00001-cats'
    assert latest_run(tmp_path, 'dogs') is None and latest_run(tmp_path / 'missing') is None


def test_fine_tuned_takes_a_run_s_newest_snapshot(tmp_path):
    run = tmp_path / '00000-x'
    run.mkdir()
    (run / 'training-state.pt').write_bytes(b'')
    with pytest.raises(ValueError, match='no snapshots yet'):
        nb.fine_tuned(run)
    for stem in ('kimg000001.000-epoch0002', 'kimg000010.000-epoch0020'):
        sg.save(run / f'network-snapshot-{stem}.safetensors', G_ema=sg.load(DEMO_TOON).G_ema)
    assert nb.fine_tuned(run).name == 'network-snapshot-kimg000010.000-epoch0020.safetensors'
    assert nb.fine_tuned(DEMO_TOON) == DEMO_TOON
    with pytest.raises(FileNotFoundError, match='nothing.pkl'):
        nb.fine_tuned(tmp_path / 'nothing.pkl')


def test_plot_metrics_writes_a_figure(tmp_path):
    pytest.importorskip('matplotlib')
    records = [{'kimg': k, 'loss_G': 1.0 / (k + 1), 'loss_D': 0.5, 'p': k / 10} for k in range(5)]
    nb.plot_metrics(records, tmp_path / 'm.png')
    assert (tmp_path / 'm.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_inputs_are_paths_urls_or_drive_links(http_folder, fake_gdown, tmp_path):
    served, url = http_folder
    (served / 'style.zip').write_bytes(b'PK not really')
    cache = tmp_path / 'cache'
    assert nb.input_path(DEMO_BASE) == DEMO_BASE                                 # a local file as it is
    with pytest.raises(FileNotFoundError, match='nowhere.zip: no such file or folder'):
        nb.input_path(tmp_path / 'nowhere.zip')
    got = nb.input_path(f'{url}/style.zip', cache_dir=cache)
    assert got.read_bytes() == b'PK not really' and (cache / 'style.zip.sha256').exists()
    fake_gdown['files']['1DriveFileId0123'] = ('me.jpg', b'jpeg bytes')
    got = nb.input_path('https://drive.google.com/file/d/1DriveFileId0123/view?usp=sharing', cache_dir=cache)
    assert got.name == 'me.jpg' and got.read_bytes() == b'jpeg bytes'


def test_a_zip_of_style_images_comes_back_as_a_folder_extracted_once(tmp_path):
    import zipfile
    archive = tmp_path / 'anime.zip'
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr('faces/a.png', b'png a')
        z.writestr('b.jpg', b'jpg b')
        z.writestr('../escape.png', b'out')
    folder = nb.input_path(archive, cache_dir=tmp_path / 'cache', unzip=True)
    assert folder.parent == tmp_path / 'cache' / 'unzipped' and folder.name.startswith('anime-')
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob('*') if p.is_file()) == ['b.jpg', 'escape.png', 'faces/a.png']
    assert not (tmp_path / 'cache' / 'escape.png').exists() and not (tmp_path / 'cache' / 'unzipped' / 'escape.png').exists()
    (folder / 'b.jpg').unlink()                                                  # the user deleted a bad one
    assert nb.input_path(archive, cache_dir=tmp_path / 'cache', unzip=True) == folder and not (folder / 'b.jpg').exists()
    assert nb.input_path(archive, unzip=False) == archive
