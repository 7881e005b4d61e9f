"""The blend explorer: an ipywidgets panel over BlendViews (blend_views.py).

    from stylegan2_lib.explorer import BlendExplorer
    BlendExplorer(base='ffhq256.pkl', snapshots='runs/00001-anime')      # the last expression of a cell shows it

Sliders: swap resolution ('all high' .. 'all low'), fine-tuning snapshot, blend width, truncation; a seed
box; which model gives the low layers; 'blend' mode (low | blended | high, one row per seed) or 'compare'
mode (every swap resolution for the chosen snapshot). 'Export' says the file's estimated size, writes the
current blend in the chosen format and offers it for download (Colab: the browser download, its size said
first; elsewhere a link with the size). A change re-renders only the images it affects; images already seen come from the cache. Written for ipywidgets 7 (Colab) and 8 (tested with 8).
"""

import io
import time
import warnings
from pathlib import Path

import ipywidgets as widgets
import numpy as np
from PIL import Image

from . import images, notebook
from .blend_views import BlendViews, ViewState
from .checkpoints import EXTENSIONS
from .files import format_size
from .summary import export_size_estimate

MAX_SEEDS = 8
FORMATS = [('NVlabs .pkl', 'nvlabs'), ('rosinality .pt', 'rosinality'), ('safetensors', 'native')]
EXTENSION = {fmt: ext for ext, fmt in reversed(EXTENSIONS.items())}     # the first extension of each format

def _png(img_uint8):
    buf = io.BytesIO()
    Image.fromarray(img_uint8).save(buf, format='PNG', compress_level=1)   # fast: this runs on every update
    return buf.getvalue()

def _strip(tiles, tile):
    """One image per seed, top to bottom, each shown at `tile` pixels (nearest-neighbour up, area down)."""
    if tiles.shape[1] < tile:
        tiles = images.enlarge(tiles, tile)
    elif tiles.shape[1] > tile:
        tiles = np.stack([np.asarray(Image.fromarray(t).resize((tile, tile), Image.BOX)) for t in tiles])
    return images.make_grid(tiles, cols=1)

#----------------------------------------------------------------------------

class BlendExplorer(widgets.VBox):
    """The explorer panel (module docstring). `views` lets several panels share one cache."""

    def __init__(self, base=None, snapshots=None, seeds='0-2', truncation_psi=0.7, resolution=None, outdir='exports',
                 tile=128, device=None, views=None):
        self.views = views or BlendViews(base, snapshots, device=device)
        self.outdir, self.tile = Path(outdir), tile
        self.last_export = None
        self.last_update_seconds = None
        self._shown = {}                                   # column -> the tiles its image shows
        choices = self.views.choices
        start = resolution if resolution is not None else min(16, choices[-2][1])
        slider = dict(continuous_update=False, style={'description_width': '90px'}, layout=widgets.Layout(width='420px'))
        self.swap = widgets.SelectionSlider(options=choices, value=start, description='swap at', **slider)
        self.snapshot = widgets.SelectionSlider(options=[(label, i) for i, label in enumerate(self.views.labels)],
                                                value=len(self.views.labels) - 1, description='snapshot', **slider)
        self.snapshot.disabled = len(self.views.labels) == 1
        self.width = widgets.FloatSlider(value=0.0, min=0.0, max=3.0, step=0.25, description='blend width', **slider)
        self.psi = widgets.FloatSlider(value=truncation_psi, min=0.0, max=1.0, step=0.05, description='truncation', **slider)
        self.seeds = widgets.Text(value=seeds, description='seeds', continuous_update=False, style=slider['style'])
        self.low_from = widgets.ToggleButtons(options=[('base', True), ('fine-tuned', False)], value=True, description='low layers')
        self.mode = widgets.ToggleButtons(options=[('low | blend | high', 'blend'), ('compare swaps', 'compare')], value='blend',
                                          description='view')
        self.format = widgets.Dropdown(options=FORMATS, value='nvlabs', description='format', layout=widgets.Layout(width='220px'))
        self.export_button = widgets.Button(description='Export blend', icon='download', button_style='primary')
        self.link = widgets.HTML()
        self.status = widgets.HTML()
        # Output of button callbacks (Colab's files.download runs JavaScript through it; errors show here).
        self.messages = widgets.Output()
        self.titles = {k: widgets.HTML() for k in ('low', 'blend', 'high')}
        self.images = {k: widgets.Image(format='png') for k in ('low', 'blend', 'high')}
        self.compare_image = widgets.Image(format='png')
        for key, image in self.images.items():         # stable hooks for browser tests and custom CSS
            image.add_class(f'sg-image-{key}')
        self.swap.add_class('sg-swap')
        self.compare_image.add_class('sg-image-compare')
        self.columns_box = widgets.HBox([widgets.VBox([self.titles[k], self.images[k]]) for k in ('low', 'blend', 'high')])
        self.compare_box = widgets.VBox([self.compare_image])
        controls = widgets.VBox([self.swap, self.snapshot, self.width, self.psi, self.seeds, self.low_from, self.mode,
                                 widgets.HBox([self.format, self.export_button]), self.link, self.messages])
        super().__init__([controls, self.columns_box, self.status])
        for w in (self.swap, self.snapshot, self.width, self.psi, self.seeds, self.low_from, self.mode):
            w.observe(self.update, names='value')
        self.export_button.on_click(self._export_clicked)
        self.update()

    def state(self):
        """The ViewState the widgets describe; raises ValueError for an unreadable seed box."""
        seeds = tuple(images.parse_seeds(self.seeds.value))
        if not 1 <= len(seeds) <= MAX_SEEDS:
            raise ValueError(f'give 1 to {MAX_SEEDS} seeds, got {len(seeds)}')
        return ViewState(snapshot=self.snapshot.value, resolution=self.swap.value, width=float(self.width.value),
                         truncation_psi=float(self.psi.value), seeds=seeds, base_is_low=self.low_from.value)

    def update(self, change=None):
        try:
            v = self.state()
        except ValueError as e:
            self.status.value = f'<span style="color:#b00">seeds: {e}</span>'
            return
        t0 = time.perf_counter()
        if self.mode.value == 'blend':
            self.children = (self.children[0], self.columns_box, self.status)
            labels = self.views.column_labels(v)
            for key, tiles in self.views.columns(v).items():
                if not np.array_equal(self._shown.get(key), tiles):   # encode and send only what changed
                    self.images[key].value = _png(_strip(tiles, self.tile))
                    self._shown[key] = tiles
                self.titles[key].value = f'<b>{labels[key]}</b>'
        else:
            self.children = (self.children[0], self.compare_box, self.status)
            self.compare_image.value = _png(self.views.compare(v, min_tile=min(self.tile, 96)))
        self.last_update_seconds = time.perf_counter() - t0
        self.status.value = f'updated in {self.last_update_seconds * 1000:.0f} ms on {self.views.device.type}'

    def _export_clicked(self, _button):
        with self.messages:
            self.export()

    def export(self):
        """Write the current blend into `outdir` in the chosen format and offer it for download."""
        v = self.state()
        fmt = self.format.value
        path = self.outdir / self.views.export_name(v, EXTENSION[fmt])
        estimate = format_size(export_size_estimate(self.views.blended(v), fmt))
        self.link.value = f'writing {path.name} (about {estimate}) ...'        # shown before writing and downloading
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            self.views.export(v, path, format=fmt)
        notes = ''.join(f'<br><small>note: {w.message}</small>' for w in caught)
        self.link.value = notebook.offer_download(path) + notes
        self.last_export = path
        return path
