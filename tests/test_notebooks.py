"""Every notebook runs top to bottom offline with SMOKE = True (papermill injects it after the cell tagged
`parameters`), in a scratch folder, on a kernel of this Python; the files each one promises are checked.
The committed notebooks are what tools/make_notebooks.py writes, and follow the conventions."""

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

papermill = pytest.importorskip('papermill')
pytest.importorskip('ipykernel')

import stylegan2_lib as sg
from stylegan2_lib import align, notebook
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.evaluate import load_scores
from stylegan2_lib.train import list_snapshots
from stylegan2_lib.train.state import read_metrics

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / 'notebooks').glob('*.ipynb'))
KERNEL = 'stylegan2-lib-tests'


def test_colab_keeps_its_torch():
    deps = re.search(r'dependencies = \[(.*?)\]', (ROOT / 'pyproject.toml').read_text(), re.S).group(1)
    assert re.search(r'"torch>=[\d.]+"', deps) and '==' not in deps                 # no pin that would replace it


# What only the test extra installs (the notebooks' set-up installs the align and notebook extras): the kernel
# the notebooks run on cannot import these, so a SMOKE run that needs one fails here as it would for a user
# of `pip install -e ".[align,notebook]"`.
TEST_ONLY = ('skimage', 'pytest', 'papermill', 'voila', 'playwright')


@pytest.fixture(scope='module')
def kernel(tmp_path_factory):
    """A kernelspec for this very Python (a system-wide 'python3' spec may point at another one), in which the
    TEST_ONLY packages do not import."""
    import os
    home = tmp_path_factory.mktemp('jupyter')
    blocked = home / 'test-only-packages'
    for name in TEST_ONLY:
        (blocked / name).mkdir(parents=True)
        (blocked / name / '__init__.py').write_text(
            f"raise ModuleNotFoundError('{name} is installed by the test extra only', name='{name}')\n")
    spec = home / 'kernels' / KERNEL
    spec.mkdir(parents=True)
    path = os.pathsep.join([str(blocked), *filter(None, [os.environ.get('PYTHONPATH')])])
    spec.joinpath('kernel.json').write_text(json.dumps({
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'stylegan2_lib tests', 'language': 'python', 'env': {'PYTHONPATH': path}}))
    old = os.environ.get('JUPYTER_PATH')
    os.environ['JUPYTER_PATH'] = str(home) + (os.pathsep + old if old else '')
    yield KERNEL
    if old is None:
        os.environ.pop('JUPYTER_PATH')
    else:
        os.environ['JUPYTER_PATH'] = old


def run(name, workdir, kernel):
    out = workdir / f'executed-{name}'
    papermill.execute_notebook(str(ROOT / 'notebooks' / name), str(out), parameters={'SMOKE': True},
                               kernel_name=kernel, cwd=str(workdir), progress_bar=False, log_output=False)
    return json.loads(out.read_text())


def video_frames(path):
    """The frames of an MP4 the notebook wrote, read back with imageio-ffmpeg (uint8 [H, W, 3] each)."""
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(path))
    w, h = next(reader)['size']
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


def shown_videos(nb):
    """How many videos the notebook showed inline (video.inline's <video> elements)."""
    return sum('<video' in ''.join(o['data'].get('text/html', '')) for c in nb['cells'] for o in c.get('outputs', [])
               if 'data' in o)


def outputs_text(nb):
    return ''.join(o.get('text', '') if isinstance(o.get('text', ''), str) else ''.join(o['text'])
                   for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []))


def test_the_notebooks_are_the_generated_ones():
    assert [p.name for p in NOTEBOOKS] == ['01_data_prep.ipynb', '02_transfer_training.ipynb',
                                           '03_blend_explorer.ipynb', '04_stylize_photo.ipynb', '05_one_shot.ipynb']
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_notebooks.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    nb = json.loads(path.read_text())
    cells = nb['cells']
    badge = re.search(r'\(https://colab\.research\.google\.com/github/[^)]+/blob/main/notebooks/([^)]+)\)', ''.join(cells[0]['source']))
    assert badge and badge.group(1) == path.name                               # the badge opens this notebook
    code = [c for c in cells if c['cell_type'] == 'code']
    setup = ''.join(code[0]['source'])
    assert "find_spec('stylegan2_lib') is None" in setup and 'runtime_report()' in setup
    install = re.search(r'subprocess\.run\(\[(.*?)\], check=True\)', setup, re.S).group(1)
    assert "'pip', 'install'" in install and 'torch' not in install and 'upgrade' not in install and 'reinstall' not in install
    params = [c for c in code if 'parameters' in c['metadata'].get('tags', [])]
    assert len(params) == 1 and re.search(r'^SMOKE = False\b', ''.join(params[0]['source']), re.M)
    assert all(not c.get('outputs') and c.get('execution_count') is None for c in code)   # committed clean


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_only_the_notebooks_that_need_a_gpu_ask_colab_for_one(path):
    """What a notebook says it needs (its '**Needs:**' line) decides: a GPU runtime for 02, 04 and 05, none for 01, 03."""
    nb = json.loads(path.read_text())
    needs = re.search(r'\*\*Needs:\*\* (.*)', ''.join(c for cell in nb['cells'] for c in cell['source'])).group(1)
    wants_gpu = needs.startswith('a GPU')
    assert wants_gpu == (path.stem[:2] in ('02', '04', '05'))
    assert (nb['metadata'].get('accelerator') == 'GPU') == wants_gpu
    assert ('gpuType' in nb['metadata']['colab']) == wants_gpu


def setup_cell_installs(monkeypatch, dlib_imports):
    """Run notebook 01's set-up cell as on a fresh Colab runtime (stylegan2_lib not installed; pip recorded)
    with or without an importable dlib; returns what it asked pip to install."""
    import importlib.util
    import subprocess
    import types
    cell = ''.join(next(c for c in json.loads(NOTEBOOKS[0].read_text())['cells'] if c['cell_type'] == 'code')['source'])
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'stylegan2_lib' else find_spec(name, *a))
    monkeypatch.setitem(sys.modules, 'dlib', types.ModuleType('dlib') if dlib_imports else None)
    installed = []
    monkeypatch.setattr(subprocess, 'run', lambda argv, check: installed.append(argv[argv.index('install') + 2:]))
    exec(compile(cell, 'setup-cell', 'exec'), {})
    return installed


def test_the_setup_cell_keeps_an_importable_dlib(monkeypatch, capsys):
    tomllib = pytest.importorskip('tomllib')
    extras = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['optional-dependencies']
    [[with_dlib]] = setup_cell_installs(monkeypatch, dlib_imports=False)
    [[keeping_dlib]] = setup_cell_installs(monkeypatch, dlib_imports=True)
    wanted = lambda requirement: re.match(r'stylegan2_lib\[(.*?)\] @ git\+https://', requirement).group(1).split(',')   # noqa: E731
    assert sorted(wanted(with_dlib)) == ['align', 'anime', 'metrics', 'notebook', 'video']
    assert sorted(wanted(keeping_dlib)) == ['align-without-dlib', 'anime', 'metrics', 'notebook', 'video']
    names = lambda extra: {re.match(r'[\w.-]+', r).group(0) for r in extras[extra]}   # noqa: E731
    assert names('align-without-dlib') == names('align') - {'dlib-bin'} and 'dlib-bin' in names('align')
    assert {'ninja', 'gdown'} <= names('notebook') and names('drive') == {'gdown'}   # the kernel build; Drive links
    assert names('video') == {'imageio-ffmpeg'}                                       # MP4, not the GIF fallback
    assert names('anime') == {'animeface'}                                            # drawn-face detection
    assert names('metrics') == {'torch-fidelity'}                 # standard FID/KID features: METRICS_FEATURES='auto'


def test_the_notebook_kernel_has_only_the_align_and_notebook_extras(kernel):
    """The SMOKE runs below run where the test extra's own packages do not import (and the others do)."""
    import os
    from jupyter_client.kernelspec import KernelSpecManager
    env = dict(os.environ, **KernelSpecManager().get_kernel_spec(kernel).env)        # as the kernel is started
    probe = ('import sys\n'
             'for name in sys.argv[1:]:\n'
             '    try: __import__(name); print(name, "imports")\n'
             '    except ImportError: print(name, "missing")')
    wanted = [*TEST_ONLY, 'stylegan2_lib', 'matplotlib', 'ipywidgets', 'dlib']
    r = subprocess.run([sys.executable, '-c', probe, *wanted], env=env, capture_output=True, text=True, timeout=300)
    assert r.stdout.split('\n')[:-1] == [f'{n} missing' for n in TEST_ONLY] + \
        [f'{n} imports' for n in wanted[len(TEST_ONLY):]], r.stdout + r.stderr


@pytest.fixture(scope='module')
def data_prep(tmp_path_factory, kernel):
    """Notebook 01's SMOKE run (once for the tests below): (its working folder, the executed notebook)."""
    tmp_path = tmp_path_factory.mktemp('data-prep')
    return tmp_path, run('01_data_prep.ipynb', tmp_path, kernel)


def test_data_prep_smoke(data_prep):
    tmp_path, nb = data_prep
    # the sample clip: two 1-second shots at 10 fps, a frame every 0.5 s -> 4 frames, a drawn face in each
    frames = sorted(p.name for p in (tmp_path / 'smoke' / 'frames').glob('*.png'))
    assert frames == [f'drawn_00000{t}s.png' for t in ('0.000', '0.500', '1.000', '1.500')]
    faces = sorted(p.name for p in (tmp_path / 'smoke' / 'faces').glob('*.png'))
    assert faces == [f[:-4] + '_00.png' for f in frames]
    assert sorted(align.read_face_transforms(tmp_path / 'smoke' / 'faces')) == faces     # and where each came from
    assert align.read_alignment_record(tmp_path / 'smoke' / 'faces')['mode'] == 'anime'
    # the two frames of each shot are near-duplicates: one of each goes into the zip
    data = sg.ImageDataset(tmp_path / 'smoke' / 'faces-64.zip', 64)
    assert len(data) == 2 and data[0].shape == (3, 64, 64)
    text = outputs_text(nb)
    assert '4 images, 2 distinct' in text and '2 near-duplicates left out' in text


def test_transfer_training_smoke_and_resume(tmp_path, kernel):
    nb = run('02_transfer_training.ipynb', tmp_path, kernel)
    runs = sorted((tmp_path / 'smoke' / 'runs').iterdir())
    assert len(runs) == 1 and (runs[0] / 'metrics.png').stat().st_size > 0
    snaps = list_snapshots(runs[0])
    assert len(snaps) >= 2 and snaps[-1][0] >= 0.5                            # a snapshot every SNAP kimg, to the end
    assert 'a new run in smoke/runs' in outputs_text(nb)
    # Every snapshot scored (offline features in SMOKE), the scores plotted beside the losses, the best one named.
    scored = [r for r in read_metrics(runs[0]) if 'kid' in r]
    assert len(scored) == len(snaps) and all('fid' in r and 'copy_flagged' in r and r['metrics_features'].startswith('pixels')
                                             for r in scored)
    best = notebook.best_snapshot(runs[0])
    assert (f'Best snapshot so far: {best.path.name}' in outputs_text(nb)) if best else ('No best snapshot' in outputs_text(nb))
    assert PIL.Image.open(runs[0] / 'metrics.png').width == 3 * 360                  # three panels: losses, p, scores
    # The live view: the sample grid and the curves were displayed as images during the run.
    shown = [o for c in nb['cells'] for o in c.get('outputs', []) if 'image/png' in o.get('data', {})]
    assert len(shown) >= 2
    # The fine-tuning as a film: one seed grid per snapshot (VIDEO_HOLD = 1 frame each in SMOKE), shown inline.
    frames = video_frames(runs[0] / 'snapshots.mp4')
    assert len(frames) == len(snaps) and shown_videos(nb) == 1
    # Run it again (as after a disconnect): it continues the same run instead of starting a new one.
    nb = run('02_transfer_training.ipynb', tmp_path, kernel)
    assert f'continuing smoke/runs/{runs[0].name}' in outputs_text(nb)
    assert sorted((tmp_path / 'smoke' / 'runs').iterdir()) == runs


def test_blend_explorer_smoke(tmp_path, kernel):
    nb = run('03_blend_explorer.ipynb', tmp_path, kernel)
    widget = [o for c in nb['cells'] for o in c.get('outputs', []) if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    assert widget                                                              # the explorer was displayed
    exported = tmp_path / 'smoke' / 'exports' / 'blend-demo-toon-swap16.pkl'
    G = sg.load(exported).G_ema
    want = sg.blend(sg.load(DEMO_BASE).G_ema, sg.load(DEMO_TOON).G_ema, 16)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(G(z, None, noise_mode='const'), want(z, None, noise_mode='const'), atol=1e-4)
    figure = np.asarray(PIL.Image.open(tmp_path / 'smoke' / 'exports' / 'epoch-x-swap.png'))
    assert figure.shape[0] == 14 + 64                                         # one snapshot: one labelled row
    # 'Compute scores' ran once (offline pixel features, 8 seeds, against STYLE_DATA): cached beside the exports,
    # for this snapshot and every swap choice, the recommendation printed and the heat map written.
    scores = load_scores(tmp_path / 'smoke' / 'exports' / 'scores.json')
    assert scores.labels == ['demo-toon'] and scores.features.startswith('pixels') and scores.style_kid.shape[0] == 1
    assert f'Recommended: {scores.recommendation_text()}' in outputs_text(nb)
    assert PIL.Image.open(tmp_path / 'smoke' / 'exports' / 'scores.png').size[0] > 0
    # The chosen blend as videos next to the exports, shown inline and offered for download: the swap video
    # (SWAP_FRAMES = 8) and the walk through the 4 seeds (WALK_STEPS = 2: 3 legs of 2 frames and the last seed).
    swap = video_frames(tmp_path / 'smoke' / 'exports' / 'swap.mp4')
    walk = video_frames(tmp_path / 'smoke' / 'exports' / 'walk.mp4')
    assert len(swap) == 8 and len(walk) == 3 * 2 + 1
    assert walk[0].shape[1] > walk[0].shape[0]                                # [base | blend] side by side
    assert shown_videos(nb) == 2
    html = ''.join(''.join(o['data'].get('text/html', '')) for c in nb['cells'] for o in c.get('outputs', []) if 'data' in o)
    assert 'swap.mp4' in html and 'walk.mp4' in html                           # the download links


def test_stylize_photo_smoke(tmp_path, kernel):
    nb = run('04_stylize_photo.ipynb', tmp_path, kernel)
    # under the strip: the identity similarity of each render to the photo (a number, or why there is none)
    shown = re.findall(r'^  (projected|swap \d+) +(\d\.\d\d|none \(.+\))$', outputs_text(nb), re.M)
    assert 'identity to the photo' in outputs_text(nb) and [k for k, _ in shown] == ['projected', 'swap 4', 'swap 8', 'swap 16']
    out = tmp_path / 'smoke' / 'stylized'
    assert sorted(p.name for p in out.iterdir()) == ['aligned.png', 'full.png', 'projected.png', 'projected_w.npz', 'strip.png']
    with np.load(out / 'projected_w.npz') as f:
        w = f['w']
    G = sg.load(DEMO_BASE).G_ema
    assert w.shape == (1, G.num_ws, G.w_dim) and np.isfinite(w).all()


def test_one_shot_smoke(tmp_path, kernel):
    nb = run('05_one_shot.ipynb', tmp_path, kernel)
    out = tmp_path / 'smoke' / 'oneshot'
    path = out / 'oneshot-demo-toon-5.safetensors'
    ck = sg.load(path)
    recipe = ck.meta['oneshot']
    assert recipe['steps'] == 30 and recipe['projection']['steps'] == 20 and recipe['discriminator'] == 'random (seed 0)'
    assert [r['prepared'] for r in recipe['references']] == ['centre-cropped']  # a drawn face: no face found, cropped
    text = outputs_text(nb)
    assert 'a random one (seeded) gives the features' in text                 # the demo base has no D: said so
    # The live view: status, loss curve and preview shown (and updated in place) while it trained.
    displayed = [o['data'] for c in nb['cells'] for o in c.get('outputs', []) if 'data' in o]
    assert any(re.search(r'step 30 of 30, loss [\d.]+', ''.join(d.get('text/plain', ''))) for d in displayed)
    shown = [d for d in displayed if 'image/png' in d]
    assert len(shown) >= 4                                                      # loss curve, preview, the figure, the strip
    widget = [o for c in nb['cells'] for o in c.get('outputs', []) if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    assert widget                                                              # the explorer was displayed
    # The explorer's export is the blend of the base with the one-shot network at its default swap point.
    G = sg.load(out / 'blend-oneshot-demo-toon-5-swap16.pkl').G_ema
    want = sg.blend(sg.load(DEMO_BASE).G_ema, ck.G_ema, 16)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(G(z, None, noise_mode='const'), want(z, None, noise_mode='const'), atol=1e-4)
    assert {'oneshot-demo-toon-5.png', 'strip.png'} <= {p.name for p in out.iterdir()}
    assert 'identity to the photo' in text


def test_zip_members_of_a_prepared_set_are_pngs(data_prep):
    tmp_path, _ = data_prep
    with zipfile.ZipFile(tmp_path / 'smoke' / 'faces-64.zip') as z:
        names = sorted(z.namelist())
        info = json.loads(z.read('dataset.json'))
    assert names == [f'{i:08d}.png' for i in range(len(names) - 1)] + ['dataset.json']
    kept = [Path(i['source']).name for i in info['images']]
    assert sorted(kept + [Path(e).name for e in info['excluded']]) == \
        sorted(p.name for p in (tmp_path / 'smoke' / 'faces').glob('*.png'))     # every face: in, or left out
