"""What the notebooks' cells call, so they stay a few lines: where we run (Colab or not, which GPU), getting
files in (upload, Drive, inputs given as paths, URLs or Drive links; source networks; a run's newest
snapshot; the image files of an upload or folder) and out (download), a run's scores (metric_history,
best_snapshot) and the live views of training and of one-shot fine-tuning.
(The offline inputs of SMOKE runs, sample photos and the demo dataset, are stylegan2_lib.samples: the tests
and tools use them too.)

Nothing here imports IPython, ipywidgets or google.colab at import time; each helper imports what it needs
when called, and works (plainly) outside a notebook.
"""

import dataclasses
import html
import os
import platform
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Optional

import torch

from .files import format_size

#----------------------------------------------------------------------------
# Where we run.

def in_colab():
    return 'google.colab' in sys.modules

def runtime_report():
    """One paragraph on what this runtime has: GPU (name, memory) or CPU only, and versions."""
    lines = [f'Python {platform.python_version()}, PyTorch {torch.__version__}.']
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        lines.append(f'GPU: {p.name}, {p.total_memory / 2 ** 30:.0f} GiB, CUDA {torch.version.cuda}: training and '
                     'projection run on it.')
    else:
        hint = " In Colab: Runtime > Change runtime type > GPU, then run this cell again." if in_colab() else ''
        lines.append(f'No GPU found: everything runs on the CPU ({os.cpu_count()} cores), which is fine for the '
                     f'bundled demo and small settings but slow for 256x256 training and projection.{hint}')
    return ' '.join(lines)

#----------------------------------------------------------------------------
# Files in and out.

def mount_drive(folder='/content/drive'):
    """Mount Google Drive in Colab and return its 'MyDrive' path; elsewhere return None (use local paths)."""
    if not in_colab():
        return None
    from google.colab import drive
    drive.mount(folder)
    return Path(folder) / 'MyDrive'

def upload_files(dest):
    """Colab: ask for files with the browser's picker and save them into `dest`; returns their paths.
    Elsewhere there is no picker: copy the files into `dest` yourself (returns [])."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if not in_colab():
        print(f'Not in Colab: put your files into {dest.resolve()} and run the next cell.')
        return []
    from google.colab import files
    from .files import atomic_write_bytes
    saved = []
    for name, data in files.upload().items():
        atomic_write_bytes(dest / Path(name).name, data)
        saved.append(dest / Path(name).name)
    return saved

# Voila serves a notebook's files under <base>/voila/files/ (those its file_allowlist admits) and tells the
# kernel so through SERVER_SOFTWARE and VOILA_BASE_URL; Jupyter resolves a relative link itself.
VOILA_ALLOWLIST = r"['.*\\.(png|jpg|pkl|pt|pth|safetensors|npz|onnx|mp4|gif)']"

def download_link(path):
    """HTML for a link that downloads `path` from a Jupyter or Voila page (`path` under the notebook's folder;
    with Voila, start it with --VoilaConfiguration.file_allowlist="<VOILA_ALLOWLIST>" so it serves them)."""
    path = Path(path)
    rel = Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()
    if os.environ.get('SERVER_SOFTWARE', '').startswith('voila/'):
        rel = os.environ.get('VOILA_BASE_URL', '/').rstrip('/') + '/voila/files/' + rel
    return (f'<a href="{html.escape(rel)}" download="{html.escape(path.name)}">download {html.escape(path.name)}</a> '
            f'({format_size(path.stat().st_size)}, saved at <code>{html.escape(str(path.resolve()))}</code>)')

def offer_download(path):
    """Colab: say the file's size, then start the browser download of `path` (a 256x256 NVlabs .pkl is a few
    hundred MB: the user should know before it begins). Elsewhere: return the HTML of a download link."""
    path = Path(path)
    if in_colab():
        from google.colab import files
        size = format_size(path.stat().st_size)
        print(f'downloading {path.name} ({size}) ...', flush=True)
        files.download(str(path))
        return f'downloading {html.escape(path.name)} ({size}, saved at <code>{html.escape(str(path.resolve()))}</code>)'
    return download_link(path)

def show(image, width=None):
    """Display a uint8 array or PIL image inline (prints its size outside a notebook)."""
    from PIL import Image
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    if width:
        img = img.resize((width, round(img.height * width / img.width)), Image.NEAREST)
    try:
        from IPython.display import display
        display(img)
    except ImportError:
        print(f'image {img.width}x{img.height}')

#----------------------------------------------------------------------------
# A run's scores (training with metrics=('kid', 'fid', 'copy'), train/measure.py): one line of metrics.jsonl per
# snapshot carries them. The best snapshot so far: the lowest KID (FID when KID was not measured) among the
# snapshots not flagged for copying their training images, scored in the same features as the newest one.

@dataclasses.dataclass
class SnapshotScores:
    kimg:          float
    epoch:         int
    path:          Optional[Path]           # the snapshot file; None where it is not there (or records were given)
    kid:           Optional[float] = None
    fid:           Optional[float] = None
    copy_fraction: Optional[float] = None   # share of generated images closer to one training image than it is
                                            # to any other (metrics.copying)
    copy_flagged:  Optional[bool] = None    # None: copying was not measured
    features:      str = ''                 # what the scores were computed on (train/measure.py)

    @property
    def name(self):
        return self.path.name if self.path is not None else f'the snapshot at epoch {self.epoch} ({self.kimg:g} kimg)'

def metric_history(run):
    """[SnapshotScores] of every scored snapshot, oldest first. `run`: a training run directory, or its
    metrics.jsonl records (train.state.read_metrics; then every path is None)."""
    from .train.state import read_metrics, snapshot_stem
    run_dir = None if isinstance(run, (list, tuple)) else Path(run)
    records = read_metrics(run_dir) if run_dir is not None else run
    out = []
    for r in records:
        if not any(k in r for k in ('kid', 'fid', 'copy_flagged')):
            continue
        path = run_dir / f"{snapshot_stem(r['nimg'], r['epoch'])}.safetensors" if run_dir is not None else None
        out.append(SnapshotScores(r['kimg'], r['epoch'], path if path is not None and path.exists() else None,
                                  r.get('kid'), r.get('fid'), r.get('copy_fraction'), r.get('copy_flagged'),
                                  r.get('metrics_features', '')))
    return out

def _history(run_or_history):
    """metric_history's list as given, or metric_history of a run directory or records."""
    if isinstance(run_or_history, (list, tuple)) and run_or_history and isinstance(run_or_history[0], SnapshotScores):
        return list(run_or_history)
    return metric_history(run_or_history)

def ranking_key(history):
    """'kid' when any snapshot has a KID, else 'fid' when any has an FID, else None."""
    return next((k for k in ('kid', 'fid') if any(getattr(s, k) is not None for s in history)), None)

def best_snapshot(run_or_history):
    """The SnapshotScores with the lowest KID (FID where KID was not measured) among the snapshots not flagged
    for copying, of those scored in the newest scored snapshot's features; None when there is none.
    `run_or_history`: a run directory, its records, or metric_history's list."""
    history = _history(run_or_history)
    key = ranking_key(history)
    if key is None:
        return None
    features = history[-1].features
    fair = [s for s in history if s.features == features and getattr(s, key) is not None and not s.copy_flagged]
    return min(fair, key=lambda s: getattr(s, key), default=None)

def best_snapshot_text(run_or_history):
    """One or two sentences naming the best snapshot so far and why (what the notebook prints)."""
    history = _history(run_or_history)
    key = ranking_key(history)
    if key is None:
        return 'No KID or FID yet: train with metrics (the METRICS parameter); they are computed at every snapshot.'
    best, flagged = best_snapshot(history), sum(bool(s.copy_flagged) for s in history)
    copy_note = (f'{flagged} of {len(history)} snapshots flagged for copying' if history[-1].copy_flagged is not None
                 else "copying not measured: add 'copy' to METRICS")
    if best is None:
        return (f'No best snapshot: every scored snapshot is flagged for copying its training images ({copy_note}). '
                'Take fewer kimg or a larger dataset.')
    others = sum(s.features != history[-1].features for s in history)
    left_out = f'; {others} scored on other features left out' if others else ''
    return (f'Best snapshot so far: {best.name} (epoch {best.epoch}, {best.kimg:g} kimg), {key.upper()} '
            f'{getattr(best, key):.4g}: the lowest of the snapshots not flagged for copying ({copy_note}; '
            f'features: {best.features or "not recorded"}{left_out}).')

def snapshot_table(run_dir):
    """A text table of a run's snapshots, oldest first: epoch, kimg, KID, FID, copying (the share; '*' where
    flagged) where measured, the file name, and the best snapshot so far marked."""
    from .train.state import list_snapshots
    history = metric_history(run_dir)
    scores, best = {s.path: s for s in history if s.path is not None}, best_snapshot(history)
    fmt = lambda v, spec: '-' if v is None else format(v, spec)   # noqa: E731
    lines = [f'{"epoch":>5}  {"kimg":>8}  {"KID":>8}  {"FID":>8}  {"copying":>8}  snapshot']
    for kimg, epoch, path in list_snapshots(run_dir):
        s = scores.get(path, SnapshotScores(kimg, epoch, path))
        copying = fmt(s.copy_fraction, '.2f') + ('*' if s.copy_flagged else ' ')
        mark = '  <- best' if best is not None and best.path == path else ''
        lines.append(f'{epoch:5d}  {kimg:8.2f}  {fmt(s.kid, ".4f"):>8}  {fmt(s.fid, ".2f"):>8}  {copying:>8}  {path.name}{mark}')
    return '\n'.join(lines)

#----------------------------------------------------------------------------
# Live training view: the latest sample grid, the loss / augmentation curves and (with metrics) the scores,
# redrawn every tick.

def plot_metrics(records, path=None):
    """Loss_G, loss_D and ADA's p against kimg as one figure (matplotlib), and where the records hold scores a
    third panel: KID (and FID, right axis) against epoch, snapshots flagged for copying crossed out in red, the
    best snapshot so far circled. Saved to `path` when given."""
    import matplotlib.pyplot as plt
    kimg = [r['kimg'] for r in records]
    history = metric_history(records)
    scored = ranking_key(history) is not None           # a KID or FID to draw
    fig, axes = plt.subplots(1, 3 if scored else 2, figsize=(13.5 if scored else 9, 3))
    ax_loss, ax_p = axes[:2]
    for key in ('loss_G', 'loss_D'):
        ax_loss.plot(kimg, [r.get(key) for r in records], label=key)
    ax_loss.set_xlabel('kimg')
    ax_loss.legend()
    ax_p.plot(kimg, [r.get('p', 0) for r in records], color='tab:green')
    ax_p.set_xlabel('kimg')
    ax_p.set_ylabel('augment p')
    if scored:
        plot_scores(history, axes[2])
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig

def plot_scores(history, ax):
    """KID (left axis) and FID (right axis, dashed) of SnapshotScores against epoch on a matplotlib axis."""
    best, ranked = best_snapshot(history), ranking_key(history)
    both = ranked == 'kid' and any(s.fid is not None for s in history)
    axes = {'kid': ax, 'fid': ax.twinx() if both else ax}
    styles = {'kid': dict(color='tab:purple', marker='o'), 'fid': dict(color='tab:orange', marker='s', ls='--')}
    for key, style in styles.items():
        shown = [s for s in history if getattr(s, key) is not None]
        if not shown:
            continue
        a = axes[key]
        a.plot([s.epoch for s in shown], [getattr(s, key) for s in shown], label=key.upper(), ms=4, **style)
        a.set_ylabel(key.upper())
        copied = [s for s in shown if s.copy_flagged]
        a.scatter([s.epoch for s in copied], [getattr(s, key) for s in copied], marker='x', s=60, color='red',
                  zorder=3, label='copying' if key == ranked else None)
        if best is not None and key == ranked:
            a.scatter([best.epoch], [getattr(best, key)], s=140, facecolors='none', edgecolors='black', zorder=3,
                      label='best')
    ax.set_xlabel('epoch')
    ax.set_title(history[-1].features.split(' (')[0] + ' features', fontsize=9)
    handles = [h for a in {id(a): a for a in axes.values()}.values() for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, fontsize=8, loc='best')

def figure_image(fig, dpi=80):
    """A matplotlib figure as a PIL image (the figure closed)."""
    import io
    import matplotlib.pyplot as plt
    from PIL import Image
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi)
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue()))

class LiveView:
    """Output areas updated in place: the first show(items) displays each item, later calls replace them, so a
    Colab tab shows progress without scrolling."""

    def __init__(self):
        self.handles = None

    def show(self, items):
        from IPython.display import display
        if self.handles is None:
            self.handles = [display(item, display_id=True) for item in items]
        else:
            for handle, item in zip(self.handles, items):
                handle.update(item)

class TrainingMonitor(LiveView):
    """A `callback` for sg.train: each tick, a status line (with the best snapshot so far when the run is
    scored), the metric curves and the latest snapshot's sample grid."""

    def __call__(self, tick):
        from PIL import Image
        from .train.state import read_metrics
        grids = sorted(Path(tick.run_dir).glob('network-snapshot-*.png'))
        scored = metric_history(tick.run_dir)
        self.show([f'kimg {tick.kimg:.1f}, epoch {tick.epoch}' + (' (done)' if tick.done else '')
                   + (f'. {best_snapshot_text(scored)}' if scored else ''),
                   figure_image(plot_metrics(read_metrics(tick.run_dir))),
                   Image.open(grids[-1]) if grids else 'no snapshot yet'])

class OneShotMonitor(LiveView):
    """A `callback` for oneshot.train_oneshot (callback(step, loss, preview)): whenever a preview comes (every
    `preview_every` steps and at the last), a status line, the loss curve and the preview (the references'
    latents, then fixed samples, through the network as it trains). `steps`: the run's length, for the status."""

    def __init__(self, steps=None):
        super().__init__()
        self.steps, self.losses, self.preview = steps, [], None

    def __call__(self, step, loss, preview):
        self.losses.append(loss)
        if preview is None:
            return
        import matplotlib.pyplot as plt
        from PIL import Image
        self.preview = preview
        fig, ax = plt.subplots(figsize=(4.5, 2.5))
        ax.plot(range(1, len(self.losses) + 1), self.losses, color='tab:blue')
        ax.set_xlabel('step')
        ax.set_ylabel('feature L1 loss')
        fig.tight_layout()
        of = f' of {self.steps}' if self.steps else ''
        self.show([f'step {step + 1}{of}, loss {loss:.4g} (first {self.losses[0]:.4g})', figure_image(fig),
                   Image.fromarray(preview)])

#----------------------------------------------------------------------------
# Inputs for the notebooks: source networks (downloaded where needed), inputs by path, URL or Drive link.

def source_network(name_or_path, sha256=None, cache_dir=None):
    """A local checkpoint path: an existing file as is; a KNOWN_NETWORKS name, a URL or a Google Drive share
    link downloaded into the cache (progress bar, checksum) and, for a known name, checked once, on download, to be the architecture
    it should be."""
    from .checkpoints import load
    from .downloads import KNOWN_NETWORKS, check_network_facts, fetch_network
    if Path(str(name_or_path)).exists():
        return Path(name_or_path)
    accept = None
    if name_or_path in KNOWN_NETWORKS:
        accept = lambda path: check_network_facts(name_or_path, load(path).generator)   # noqa: E731
    return fetch_network(name_or_path, cache_dir=cache_dir, sha256=sha256, accept=accept)

def input_path(name_or_url, sha256=None, cache_dir=None, unzip=False):
    """A local path for a notebook input (a training zip, style images, a photo): an existing file or folder
    as is; an http(s) URL or a Google Drive share link downloaded into the cache (streamed, checksum pinned
    on the first download and verified later; see downloads.fetch). With unzip=True a zip comes back as a
    folder of its contents, extracted once (for the face-cutting step, which reads a folder)."""
    from .downloads import CACHE, fetch, is_remote
    cache = Path(cache_dir or CACHE / 'inputs')
    if is_remote(name_or_url):
        path = fetch(str(name_or_url), cache, sha256=sha256)
    else:
        path = Path(name_or_url)
        if not path.exists():
            raise FileNotFoundError(f'{name_or_url}: no such file or folder (give a path, a URL or a Google Drive link)')
    if unzip and path.is_file() and zipfile.is_zipfile(path):
        return _unzipped(path, cache / 'unzipped')
    return path

def _unzipped(zip_path, folder):
    """`zip_path` extracted into folder/<name>-<sha256 prefix>/ (complete or absent: extracted beside it, then
    renamed); an unchanged zip is extracted once. zipfile drops absolute paths and '..' from member names."""
    from .downloads import sha256_of
    dest = Path(folder) / f'{zip_path.stem}-{sha256_of(zip_path)[:12]}'
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f'.{dest.name}.', dir=dest.parent))
        try:
            with zipfile.ZipFile(zip_path) as z:
                z.extractall(staging)
            os.replace(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest

def image_files(path, most=None):
    """The images at `path`, sorted: the file itself, or the image files of a folder (searched recursively;
    hidden files and a zip's __MACOSX folder left out). ValueError when there is none, or more than `most`."""
    from .data import IMAGE_EXTENSIONS
    path = Path(path)
    if path.is_file():
        found = [path]
    else:
        hidden = lambda p: any(part.startswith('.') or part == '__MACOSX' for part in p.relative_to(path).parts)   # noqa: E731
        found = sorted(p for p in path.rglob('*') if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not hidden(p))
    if not found:
        raise ValueError(f'{path}: no images (files ending in {" ".join(IMAGE_EXTENSIONS)})')
    if most is not None and len(found) > most:
        raise ValueError(f'{path}: {len(found)} images; give at most {most}')
    return found

def fine_tuned(path_or_run):
    """A fine-tuned checkpoint: a file as is, or a training run directory's newest snapshot."""
    from .train.state import is_run_dir, list_snapshots
    if is_run_dir(path_or_run):
        found = list_snapshots(path_or_run)
        if not found:
            raise ValueError(f'{path_or_run}: this training run has no snapshots yet')
        return found[-1][2]
    if not Path(path_or_run).exists():
        raise FileNotFoundError(f'{path_or_run}: no such checkpoint file or run directory')
    return Path(path_or_run)
