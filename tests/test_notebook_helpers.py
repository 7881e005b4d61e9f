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


def test_image_files_lists_an_upload_or_a_folder_of_style_images(tmp_path):
    for name in ('b.PNG', 'a.jpg', 'faces/c.webp', 'notes.txt', '.hidden.png', '__MACOSX/faces/._c.webp', '.git/x.png'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'x')
    assert [p.relative_to(tmp_path).as_posix() for p in nb.image_files(tmp_path)] == ['a.jpg', 'b.PNG', 'faces/c.webp']
    assert nb.image_files(tmp_path / 'a.jpg') == [tmp_path / 'a.jpg']             # one image given as a file
    with pytest.raises(ValueError, match='3 images; give at most 2'):
        nb.image_files(tmp_path, most=2)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match=r'empty: no images \(files ending in .jpg'):
        nb.image_files(tmp_path / 'empty')


class FakeDisplay:
    """IPython.display.display with display_id=True, recorded: what each output area shows, in order."""

    def __init__(self):
        self.areas = []

    def __call__(self, item, display_id=None):
        area = [item]
        self.areas.append(area)
        return type('Handle', (), {'update': lambda _self, new: area.append(new)})()


def test_one_shot_monitor_shows_status_loss_curve_and_preview_in_place(monkeypatch):
    pytest.importorskip('matplotlib')
    import IPython.display
    import numpy as np
    from PIL import Image
    shown = FakeDisplay()
    monkeypatch.setattr(IPython.display, 'display', shown)
    monitor = nb.OneShotMonitor(steps=4)
    previews = {0: np.zeros([8, 16, 3], np.uint8), 3: np.full([8, 16, 3], 255, np.uint8)}
    for step, loss in enumerate([0.4, 0.3, 0.2, 0.1]):
        monitor(step, loss, previews.get(step))                                   # train_oneshot's callback
    assert monitor.losses == [0.4, 0.3, 0.2, 0.1] and monitor.preview is previews[3]
    status, curve, preview = shown.areas                                          # three areas, each updated once
    assert status == ['step 1 of 4, loss 0.4 (first 0.4)', 'step 4 of 4, loss 0.1 (first 0.4)']
    assert all(isinstance(img, Image.Image) for img in curve) and len(curve) == 2
    assert [np.asarray(img).max() for img in preview] == [0, 255]


#----------------------------------------------------------------------------
# A run's scores: metric_history, best_snapshot, the table and the plot, on metrics.jsonl lines written here
# as train/measure.py writes them (ticks without scores between snapshots).

FEATURES = 'pixels (16x16 thumbnails; not comparable with published FID/KID)'

def scored_run(tmp_path, lines, snapshots=True):
    """A run directory whose metrics.jsonl holds `lines` (dicts) and, where snapshots, an (empty) snapshot
    file for each scored line."""
    import json
    from stylegan2_lib.train.state import snapshot_stem
    run = tmp_path / '00000-style'
    run.mkdir(parents=True)
    (run / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in lines))
    for r in lines:
        if snapshots and 'metrics_features' in r:
            (run / f"{snapshot_stem(r['nimg'], r['epoch'])}.safetensors").write_bytes(b'')
    return run

def tick(nimg, epoch, **scores):
    record = {'nimg': nimg, 'kimg': nimg / 1000, 'epoch': epoch, 'loss_G': 1.0, 'loss_D': 0.5, 'p': 0.0}
    return {**record, **scores, 'metrics_features': FEATURES, 'metrics_sec': 0.1} if scores else record

# Epoch 30 has the lowest KID of all but copies; epoch 20 is the best of those that do not.
LINES = [tick(500, 10), tick(1000, 20, kid=0.031, fid=41.0, copy_fraction=0.05, copy_flagged=False),
         tick(1500, 30, kid=0.012, fid=30.5, copy_fraction=0.62, copy_flagged=True), tick(1750, 35),
         tick(2000, 40, kid=0.047, fid=52.25, copy_fraction=0.10, copy_flagged=False)]


def test_metric_history_reads_the_scored_snapshots(tmp_path):
    run = scored_run(tmp_path, LINES)
    history = nb.metric_history(run)
    assert [(s.epoch, s.kimg, s.kid, s.fid, s.copy_fraction, s.copy_flagged) for s in history] == \
        [(20, 1.0, 0.031, 41.0, 0.05, False), (30, 1.5, 0.012, 30.5, 0.62, True), (40, 2.0, 0.047, 52.25, 0.10, False)]
    assert [s.path.name for s in history] == ['network-snapshot-kimg000001.000-epoch0020.safetensors',
                                              'network-snapshot-kimg000001.500-epoch0030.safetensors',
                                              'network-snapshot-kimg000002.000-epoch0040.safetensors']
    assert {s.features for s in history} == {FEATURES}
    assert [s.path for s in nb.metric_history(LINES)] == [None] * 3              # records alone: no files
    assert nb.metric_history(scored_run(tmp_path / 'plain', [tick(500, 10)])) == []


def test_the_best_snapshot_is_the_lowest_kid_not_flagged_for_copying(tmp_path):
    run = scored_run(tmp_path, LINES)
    best = nb.best_snapshot(run)
    assert (best.epoch, best.kid) == (20, 0.031)                                 # not epoch 30: it copies
    assert nb.best_snapshot(nb.metric_history(run)) == best and nb.best_snapshot(LINES).epoch == 20
    text = nb.best_snapshot_text(run)
    assert 'network-snapshot-kimg000001.000-epoch0020.safetensors (epoch 20, 1 kimg), KID 0.031' in text
    assert '1 of 3 snapshots flagged for copying' in text and 'pixels' in text
    # Only FID measured: FID ranks. Nothing measured, or every snapshot copies: no best, and the text says why.
    fid_only = [{k: v for k, v in r.items() if k not in ('kid', 'copy_fraction', 'copy_flagged')} for r in LINES]
    assert nb.best_snapshot(fid_only).epoch == 30 and 'FID 30.5' in nb.best_snapshot_text(fid_only)
    assert "copying not measured: add 'copy' to METRICS" in nb.best_snapshot_text(fid_only)
    assert nb.best_snapshot([tick(500, 10)]) is None and 'No KID or FID yet' in nb.best_snapshot_text([tick(500, 10)])
    copier = [tick(1000, 20, kid=0.01, copy_fraction=0.9, copy_flagged=True)]
    assert nb.best_snapshot(copier) is None and 'every scored snapshot is flagged for copying' in nb.best_snapshot_text(copier)


def test_scores_on_other_features_are_not_compared(tmp_path):
    """A resumed run that fell back to other features (Inception gone): KIDs in different features are
    different numbers; the newest snapshot's features decide which are compared."""
    lines = [tick(1000, 20, kid=0.001, copy_flagged=False), {**tick(2000, 40, kid=0.02, copy_flagged=False),
                                                             'metrics_features': 'discriminator (32px)'}]
    assert nb.best_snapshot(lines).epoch == 40
    assert '1 scored on other features left out' in nb.best_snapshot_text(lines)


def test_snapshot_table_lists_every_snapshot_with_its_scores(tmp_path):
    run = scored_run(tmp_path, LINES)
    sg.save(run / 'network-snapshot-kimg000000.500-epoch0010.safetensors', G_ema=sg.load(DEMO_TOON).G_ema)   # unscored
    rows = nb.snapshot_table(run).splitlines()
    assert rows[0].split() == ['epoch', 'kimg', 'KID', 'FID', 'copying', 'snapshot']
    assert [r.split() for r in rows[1:]] == [
        ['10', '0.50', '-', '-', '-', 'network-snapshot-kimg000000.500-epoch0010.safetensors'],
        ['20', '1.00', '0.0310', '41.00', '0.05', 'network-snapshot-kimg000001.000-epoch0020.safetensors', '<-', 'best'],
        ['30', '1.50', '0.0120', '30.50', '0.62*', 'network-snapshot-kimg000001.500-epoch0030.safetensors'],
        ['40', '2.00', '0.0470', '52.25', '0.10', 'network-snapshot-kimg000002.000-epoch0040.safetensors']]


def test_plot_metrics_draws_the_scores_beside_the_losses(tmp_path):
    pytest.importorskip('matplotlib')
    import matplotlib.pyplot as plt
    fig = nb.plot_metrics(LINES, tmp_path / 'm.png')
    losses, p, scores = fig.axes[:3]
    assert scores.get_xlabel() == 'epoch' and scores.get_title() == 'pixels features'
    kid_line = next(ln for ln in scores.get_lines() if ln.get_label() == 'KID')
    assert list(kid_line.get_xdata()) == [20, 30, 40] and list(kid_line.get_ydata()) == [0.031, 0.012, 0.047]
    marks = {c.get_label(): c.get_offsets().tolist() for c in scores.collections}
    assert marks == {'copying': [[30, 0.012]], 'best': [[20, 0.031]]}
    fid_axis = fig.axes[3]                                                      # FID on its own (right) axis
    assert [ln.get_label() for ln in fid_axis.get_lines()] == ['FID'] and fid_axis.get_ylabel() == 'FID'
    assert (tmp_path / 'm.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    plt.close(fig)
    fig = nb.plot_metrics([tick(500, 10), tick(1000, 20)])                      # no scores: the two panels only
    assert len(fig.axes) == 2
    plt.close(fig)
