"""Small helpers the notebooks call, so their cells stay a few lines: where we run (Colab or not, which
GPU), getting files in (upload, Drive) and out (download), and live training plots.

Nothing here imports IPython, ipywidgets or google.colab at import time; each helper imports what it needs
when called, and works (plainly) outside a notebook.
"""

import html
import os
import platform
import sys
from pathlib import Path

import torch

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

def default_device():
    return 'cuda' if torch.cuda.is_available() else 'cpu'

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

def download_link(path):
    """HTML for a link that downloads `path` from a Jupyter or Voila page (a path relative to the notebook)."""
    path = Path(path)
    rel = os.path.relpath(path.resolve(), Path.cwd())
    size = path.stat().st_size / 2 ** 20
    return (f'<a href="{html.escape(rel)}" download="{html.escape(path.name)}">download {html.escape(path.name)}</a> '
            f'({size:.1f} MiB, saved at <code>{html.escape(str(path.resolve()))}</code>)')

def offer_download(path):
    """Colab: start the browser download of `path`. Elsewhere: return the HTML of a download link."""
    if in_colab():
        from google.colab import files
        files.download(str(path))
        return f'downloading {html.escape(Path(path).name)} (saved at <code>{html.escape(str(Path(path).resolve()))}</code>)'
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
# Live training view: the latest sample grid and the loss / augmentation curves, redrawn every tick.

def plot_metrics(records, path=None):
    """Loss_G, loss_D and ADA's p against kimg as one figure (matplotlib); saved to `path` when given."""
    import matplotlib
    if path is not None:
        matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    kimg = [r['kimg'] for r in records]
    fig, (ax_loss, ax_p) = plt.subplots(1, 2, figsize=(9, 3))
    for key in ('loss_G', 'loss_D'):
        ax_loss.plot(kimg, [r.get(key) for r in records], label=key)
    ax_loss.set_xlabel('kimg')
    ax_loss.legend()
    ax_p.plot(kimg, [r.get('p', 0) for r in records], color='tab:green')
    ax_p.set_xlabel('kimg')
    ax_p.set_ylabel('augment p')
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig

class TrainingMonitor:
    """A `callback` for sg.train: each tick, updates three output areas in place (status line, metric
    curves, the latest snapshot's sample grid), so a Colab tab shows progress without scrolling."""

    def __init__(self):
        self.handles = None

    def __call__(self, tick):
        import io
        import matplotlib.pyplot as plt
        from IPython.display import display
        from PIL import Image
        from .train.state import read_metrics
        buf = io.BytesIO()
        fig = plot_metrics(read_metrics(tick.run_dir))
        fig.savefig(buf, format='png', dpi=80)
        plt.close(fig)
        grids = sorted(Path(tick.run_dir).glob('network-snapshot-*.png'))
        items = [f'kimg {tick.kimg:.1f}, epoch {tick.epoch}' + (' (done)' if tick.done else ''),
                 Image.open(io.BytesIO(buf.getvalue())),
                 Image.open(grids[-1]) if grids else 'no snapshot yet']
        if self.handles is None:
            self.handles = [display(item, display_id=True) for item in items]
        else:
            for handle, item in zip(self.handles, items):
                handle.update(item)
