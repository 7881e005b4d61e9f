"""The blend explorer: an ipywidgets panel over BlendViews (blend_views.py).

    from stylegan2_lib.explorer import BlendExplorer
    BlendExplorer(base='ffhq256.pkl', snapshots='runs/00001-anime')      # the last expression of a cell shows it

Sliders: swap resolution ('all high' .. 'all low'), fine-tuning snapshot, blend width, truncation; a seed
box; which model gives the low layers; 'blend' mode (low | blended | high, one row per seed), 'compare'
mode (every swap resolution for the chosen snapshot) or 'scores' mode (evaluate.py's heat map, snapshot x swap,
the sliders' cell framed); 'feature-map swap' renders the blend column as Cartoon-StyleGAN's feature swap (high renders
with low's feature map after the swap block; blend.feature_swap_images), a render mode, not a network, so the
export button is disabled while it is on. A snapshot's label carries its KID and copying flag (run_scores.py: the run's cached
scores, else training --metrics); 'Compute scores' runs evaluate() against the style images (`style_data`, or
the data the run's options.json records) with a progress bar and caches them with the run, where the next
explorer finds them; 'Jump to recommended' sets the sliders to the recommended blend. 'Export' says the
file's estimated size, writes the current blend in the chosen format and offers it for download (Colab: the
browser download, its size said first; elsewhere a link with the size). A change re-renders only the images it affects; images already seen come from the cache. Written for ipywidgets 7 (Colab) and 8 (tested with 8).
"""

import contextlib
import html
import io
import time
import warnings
from pathlib import Path

import ipywidgets as widgets
import numpy as np
from PIL import Image

from . import images, notebook, run_scores
from .blend_views import BlendViews, ViewState
from .checkpoints import EXTENSIONS
from .files import format_size
from .summary import export_size_estimate

MAX_SEEDS = 8
# ipywidgets 8 clips a slider's readout at 148 px; the snapshot's carries its KID and copy flag.
READOUT_CSS = '<style>.sg-snapshot .widget-readout { max-width: 300px; }</style>'
FEATURE_SWAP_NOTE = ('A feature-map swap is a way of rendering the two networks (high renders with low\'s feature map '
                     'after the swap block), not a network: there is nothing to export. Untick it to export the weight blend.')
NO_SCORES = 'No scores of the swap points yet: <b>Compute scores</b> measures every snapshot x swap point.'
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
                 tile=128, device=None, views=None, style_data=None, score_options=None):
        self.views = views or BlendViews(base, snapshots, device=device)
        self.outdir, self.tile = Path(outdir), tile
        self.last_export = None
        self.last_update_seconds = None
        self._shown = {}                                   # column -> the tiles its image shows
        self._held = False                                 # True while several widgets change as one
        self._find_scores(base, style_data, score_options)
        choices = self.views.choices
        start = resolution if resolution is not None else min(16, choices[-2][1])
        slider = dict(continuous_update=False, style={'description_width': '90px'}, layout=widgets.Layout(width='420px'))
        self.swap = widgets.SelectionSlider(options=choices, value=start, description='swap at', **slider)
        self.snapshot = widgets.SelectionSlider(options=self._snapshot_options(), value=len(self.views.labels) - 1,
                                                description='snapshot', **{**slider, 'layout': widgets.Layout(width='560px')})
        self.snapshot.disabled = len(self.views.labels) == 1
        self.width = widgets.FloatSlider(value=0.0, min=0.0, max=3.0, step=0.25, description='blend width', **slider)
        self.psi = widgets.FloatSlider(value=truncation_psi, min=0.0, max=1.0, step=0.05, description='truncation', **slider)
        self.seeds = widgets.Text(value=seeds, description='seeds', continuous_update=False, style=slider['style'])
        self.low_from = widgets.ToggleButtons(options=[('base', True), ('fine-tuned', False)], value=True, description='low layers')
        self.feature_swap = widgets.Checkbox(value=False, description='feature-map swap (render only, not exportable)',
                                             indent=False, layout=widgets.Layout(width='420px'))
        self.mode = widgets.ToggleButtons(options=[('low | blend | high', 'blend'), ('compare swaps', 'compare'), ('scores', 'scores')],
                                          value='blend', description='view')
        wide = dict(layout=widgets.Layout(width='190px'))
        self.compute_button = widgets.Button(description='Compute scores', icon='calculator', **wide)
        self.jump_button = widgets.Button(description='Jump to recommended', icon='crosshairs', **wide)
        self.scores_note = widgets.HTML()                 # what the labels show, the recommendation, or why there is none
        self.format = widgets.Dropdown(options=FORMATS, value='nvlabs', description='format', layout=widgets.Layout(width='220px'))
        self.export_button = widgets.Button(description='Export blend', icon='download', button_style='primary')
        self.link = widgets.HTML()
        self.status = widgets.HTML()
        # Output of button callbacks (Colab's files.download runs JavaScript through it; errors show here).
        self.messages = widgets.Output()
        self.titles = {k: widgets.HTML() for k in ('low', 'blend', 'high')}
        self.images = {k: widgets.Image(format='png') for k in ('low', 'blend', 'high')}
        self.compare_image = widgets.Image(format='png')
        self.scores_image, self.scores_caption = widgets.Image(format='png'), widgets.HTML()
        for key, image in self.images.items():         # stable hooks for browser tests and custom CSS
            image.add_class(f'sg-image-{key}')
        self.swap.add_class('sg-swap')
        self.snapshot.add_class('sg-snapshot')
        self.compare_image.add_class('sg-image-compare')
        self.scores_image.add_class('sg-image-scores')
        self.columns_box = widgets.HBox([widgets.VBox([self.titles[k], self.images[k]]) for k in ('low', 'blend', 'high')])
        self.compare_box = widgets.VBox([self.compare_image])
        self.scores_box = widgets.VBox([self.scores_caption, self.scores_image])
        controls = widgets.VBox([widgets.HTML(READOUT_CSS), self.swap, self.snapshot, self.width, self.psi, self.seeds, self.low_from, self.feature_swap,
                                 self.mode, widgets.HBox([self.compute_button, self.jump_button]), self.scores_note,
                                 widgets.HBox([self.format, self.export_button]), self.link, self.messages])
        super().__init__([controls, self.columns_box, self.status])
        for w in (self.swap, self.snapshot, self.width, self.psi, self.seeds, self.low_from, self.feature_swap, self.mode):
            w.observe(self.update, names='value')
        self.feature_swap.observe(self._show_export_state, names='value')
        self.export_button.on_click(self._export_clicked)
        self.compute_button.on_click(self._compute_clicked)
        self.jump_button.on_click(lambda _button: self.jump_to_recommended())
        self._show_scores_state()
        self._show_export_state()
        self.update()

    def state(self):
        """The ViewState the widgets describe; raises ValueError for an unreadable seed box."""
        seeds = tuple(images.parse_seeds(self.seeds.value))
        if not 1 <= len(seeds) <= MAX_SEEDS:
            raise ValueError(f'give 1 to {MAX_SEEDS} seeds, got {len(seeds)}')
        swap = self.feature_swap.value                    # a feature swap has no width: the blend width is off
        return ViewState(snapshot=self.snapshot.value, resolution=self.swap.value, width=0.0 if swap else float(self.width.value),
                         truncation_psi=float(self.psi.value), seeds=seeds, base_is_low=self.low_from.value,
                         feature_swap=swap)

    def update(self, change=None):
        if self._held:
            return
        try:
            v = self.state()
        except ValueError as e:
            self.status.value = f'<span style="color:#b00">seeds: {e}</span>'
            return
        t0 = time.perf_counter()
        box = {'blend': self._show_blend, 'compare': self._show_compare, 'scores': self._show_scores}[self.mode.value](v)
        self.children = (self.children[0], box, self.status)
        self.last_update_seconds = time.perf_counter() - t0
        self.status.value = f'updated in {self.last_update_seconds * 1000:.0f} ms on {self.views.device.type}'

    def _show_blend(self, v):
        labels = self.views.column_labels(v)
        for key, tiles in self.views.columns(v).items():
            if not np.array_equal(self._shown.get(key), tiles):   # encode and send only what changed
                self.images[key].value = _png(_strip(tiles, self.tile))
                self._shown[key] = tiles
            self.titles[key].value = f'<b>{labels[key]}</b>'
        return self.columns_box

    def _show_compare(self, v):
        self.compare_image.value = _png(self.views.compare(v, min_tile=min(self.tile, 96)))
        return self.compare_box

    def _show_scores(self, v):
        """The heat map with the sliders' cell framed; the scores are of hard swaps with the base's low layers."""
        if self.scores is None:
            self.scores_caption.value = NO_SCORES
            self.scores_image.value = b''
            return self.scores_box
        current = (self.views.labels[v.snapshot], v.resolution)
        self.scores_image.value = _png(run_scores.scores_figure(self.scores, current))
        exact = v.width == 0 and v.base_is_low and not v.feature_swap
        self.scores_caption.value = ('Black and white frame: the sliders\' snapshot and swap point; red box: recommended; '
                                     'dots: the Pareto front.' + ('' if exact else ' <i>The scores are of hard swaps with the base\'s '
                                     'low layers: the framed cell is the nearest to the blend shown.</i>'))
        return self.scores_box

    #------------------------------------------------------------------------
    # Scores: the snapshot labels, the recommendation, computing on demand.

    def _find_scores(self, base, style_data, score_options):
        """What scoring needs (run_scores.py): the base evaluate() reads D from (a file) or None for the views',
        the style images (given, or the run's), evaluate's options; and the run's cached scores, if any."""
        self.base_source = base
        self.style_data = style_data if style_data is not None else run_scores.style_data_of(self.views)
        self.score_options = dict(score_options or {})
        self.scores_dir = run_scores.scores_home(self.views, self.outdir)
        self.scores = run_scores.cached_scores(self.scores_dir, self.views)

    def _snapshot_options(self):
        return [(label, i) for i, label in enumerate(run_scores.snapshot_labels(self.views, self.scores))]

    @contextlib.contextmanager
    def _hold(self):
        """Change several widgets and render once, after the last."""
        self._held = True
        try:
            yield
        finally:
            self._held = False
        self.update()

    def _relabel(self):
        with self._hold():
            value = self.snapshot.value
            self.snapshot.options = self._snapshot_options()        # resets the value: put it back
            self.snapshot.value = value

    def _show_scores_state(self):
        """What the snapshot labels show, the recommendation (or how to get one), and the buttons' state."""
        _, what = run_scores.snapshot_notes(self.views, self.scores)
        note = f'Snapshot labels from {html.escape(what, quote=False)}. ' if what else ''
        if self.scores is not None:
            note += f'Recommended: {html.escape(self.scores.recommendation_text(), quote=False)}'
        else:
            note += NO_SCORES
            if self.style_data is None:
                note += ' It needs the style images: give <code>style_data=</code> (what the snapshots were fine-tuned on).'
        self.scores_note.value = f'<small>{note}</small>'
        self.compute_button.description = 'Compute scores' if self.scores is None else 'Recompute scores'
        has_pick = self.scores is not None and self.scores.recommended is not None
        self.jump_button.disabled = not has_pick
        self.jump_button.tooltip = ('set the sliders to the recommended blend' if has_pick else
                                    'compute scores first' if self.scores is None else self.scores.recommendation_text())

    def jump_to_recommended(self):
        """Set the sliders to the recommended blend (hard swap, base low); returns its ViewState, or None."""
        if self.scores is None or self.scores.recommended is None:
            return None
        label, resolution = self.scores.recommended
        with self._hold():
            self.snapshot.value = self.views.labels.index(label)
            self.swap.value = resolution
            self.width.value, self.low_from.value, self.feature_swap.value = 0.0, True, False
        return self.state()

    def _compute_clicked(self, _button):
        with self.messages:                           # evaluate's progress bar (tqdm) shows here
            self.compute_scores()

    def compute_scores(self, progress=True):
        """evaluate() every snapshot x swap point (run_scores.compute_scores), cache them with the run, relabel the
        snapshots and show the recommendation; returns the Scores, or None with the reason in the note."""
        self.scores_note.value = '<small>computing scores: every snapshot x swap point (progress below) ...</small>'
        t0 = time.perf_counter()
        self.compute_button.disabled = True                    # a click while it runs would run it again after
        try:
            scores = run_scores.compute_scores(self.base_source, self.views, self.style_data, self.scores_dir,
                                               progress=progress, **self.score_options)
        except ValueError as e:
            self.scores_note.value = f'<small style="color:#b00">scores: {html.escape(str(e), quote=False)}</small>'
            return None
        finally:
            self.compute_button.disabled = False
        self.scores = scores
        self._relabel()
        self._show_scores_state()
        self.status.value = (f'scores computed in {time.perf_counter() - t0:.0f} s, cached in '
                             f'{html.escape(str(self.scores_dir / run_scores.SCORES_STEM), quote=False)}.json')
        return scores

    def _show_export_state(self, change=None):
        """The export button is off while the blend column shows a feature-map swap (a render, not a network)."""
        swap = self.feature_swap.value
        self.export_button.disabled = self.width.disabled = swap
        self.export_button.tooltip = FEATURE_SWAP_NOTE if swap else 'write the blend shown, in the chosen format'
        self.link.value = f'<small>{FEATURE_SWAP_NOTE}</small>' if swap else ''

    def _export_clicked(self, _button):
        with self.messages:
            self.export()

    def export(self):
        """Write the current blend into `outdir` in the chosen format and offer it for download; None (and
        FEATURE_SWAP_NOTE shown) while the blend column is a feature-map swap."""
        v = self.state()
        if v.feature_swap:
            self.link.value = f'<small>{FEATURE_SWAP_NOTE}</small>'
            return None
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
