"""What the blend explorer shows, computed with caches so that a slider move renders only what changed.

    views = BlendViews(base='ffhq256.pkl', snapshots='runs/00001-anime')   # or a list of files, or {label: G}
    v = ViewState(snapshot=3, resolution=32, seeds=(0, 1, 2))
    views.columns(v)        # {'low': uint8 strip, 'blend': ..., 'high': ...}, one tile per seed, top to bottom
    views.compare(v)        # every swap resolution for v's snapshot, one row per seed, labelled
    views.epoch_swap_grid(seed=0)   # every snapshot (rows) x every swap resolution (columns)
    views.export(v, 'exports/blend.pkl')

The explorer widget (explorer.py) is a thin view over this; tests drive it directly too. Three caches:
loaded snapshot generators, blends (as tensor dictionaries: a hard swap holds no copies) and rendered
images, each least-recently-used. Every view
renders the same w for a seed: the base model's mapping network (truncated towards its w_avg), so the
columns differ only by the synthesis layers; exported blends take the base model's mapping network too.
"""

import collections
import dataclasses
import os
import re
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from . import images
from .blend import blend, blended_state, check_same_architecture, feature_swap_images, swap_weights
from .checkpoints import export, load
from .devices import default_device
from .generator import Generator
from .netconfig import block_resolutions
from .train.state import is_run_dir, list_snapshots

#----------------------------------------------------------------------------
# The explorer's state: everything a view depends on.

@dataclasses.dataclass(frozen=True)
class ViewState:
    snapshot:       int = -1            # index into BlendViews.labels (negative counts from the end)
    resolution:     int = 16            # swap point: blocks <= resolution from the low model; 0 = all high
    width:          float = 0.0         # 0 = hard swap, > 0 = smooth blend (blend.py)
    truncation_psi: float = 0.7
    seeds:          tuple = (0, 1, 2)
    base_is_low:    bool = True         # base gives the low layers (pose, shape); False: the fine-tune does
    feature_swap:   bool = False        # render a feature-map swap after block `resolution` (not exportable)

def swap_choices(img_resolution):
    """[(label, resolution)] from 'all high' (0) through the block resolutions to 'all low' (the image size)."""
    blocks = block_resolutions(img_resolution)[:-1]
    return [('all high', 0)] + [(str(r), r) for r in blocks] + [('all low', img_resolution)]

class _LRU(collections.OrderedDict):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def get_or_make(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value

#----------------------------------------------------------------------------
# Snapshot sources: a run directory, a list of files, or {label: Generator or file}.

def snapshot_entries(snapshots):
    if isinstance(snapshots, (str, os.PathLike)) and is_run_dir(snapshots):
        found = list_snapshots(snapshots)
        if not found:
            raise ValueError(f'{snapshots}: this training run has no snapshots yet')
        return [(f'epoch {epoch} ({kimg:g} kimg)', path) for kimg, epoch, path in found]
    if isinstance(snapshots, (str, os.PathLike, Generator)):
        snapshots = [snapshots]
    if isinstance(snapshots, dict):
        return list(snapshots.items())
    entries = []
    for i, s in enumerate(snapshots):
        entries.append((Path(s).stem, s) if isinstance(s, (str, os.PathLike)) else (f'network {i}', s))
    if not entries:
        raise ValueError('give at least one fine-tuned snapshot')
    return entries

def as_generator(source, device):
    if isinstance(source, Generator):
        return source.to(device).eval().requires_grad_(False)
    G = load(source, device=device).generator
    if G is None:
        raise ValueError(f'{source}: the checkpoint holds no generator')
    return G.eval().requires_grad_(False)

def _slug(text):
    return re.sub(r'[^A-Za-z0-9.]+', '-', text).strip('-').lower()

#----------------------------------------------------------------------------

class BlendViews:
    """Renders and caches the explorer's images. `base`: the source (real-face) generator or its file;
    `snapshots`: the fine-tuned generators (module docstring)."""

    def __init__(self, base, snapshots, device=None, max_generators=4, max_blends=12, max_images=256):
        self.device = default_device(device)
        self.base = as_generator(base, self.device)
        if self.base.c_dim:
            raise ValueError(f'the explorer renders unconditional generators; this one has c_dim {self.base.c_dim}')
        entries = snapshot_entries(snapshots)
        self.labels = [label for label, _ in entries]
        self.sources = [source for _, source in entries]     # per snapshot: its file, or the Generator given
        self._generators = _LRU(max_generators)
        self._blends = _LRU(max_blends)
        self._images = _LRU(max_images)
        self.renders = 0                  # synthesis passes run so far (tests check what a change costs)
        self.choices = swap_choices(self.base.img_resolution)

    def _index(self, snapshot):
        return range(len(self.labels))[snapshot]

    def generator(self, snapshot):
        i = self._index(snapshot)
        def make():
            G = as_generator(self.sources[i], self.device)
            check_same_architecture(self.base, G)
            return G
        return self._generators.get_or_make(i, make)

    def _pair(self, v):
        tuned = self.generator(v.snapshot)
        return (self.base, tuned) if v.base_is_low else (tuned, self.base)

    def _mapping(self, v):
        return 'low' if v.base_is_low else 'high'

    def blended(self, v: ViewState):
        """The blend of v as a Generator (for export); the mapping network and w_avg are the base model's."""
        if v.feature_swap:
            raise ValueError('a feature-map swap is a way of rendering two networks, not a network: nothing to export')
        low, high = self._pair(v)
        return blend(low, high, v.resolution, width=v.width or None, mapping=self._mapping(v))

    def _blend_key(self, v):
        """What a blend depends on: its cache key, and (as a model key) its tiles'."""
        if v.feature_swap:
            return ('features', self._index(v.snapshot), v.resolution, v.base_is_low)
        return ('blend', self._index(v.snapshot), v.resolution, v.width, v.base_is_low)

    def _blend_synthesis(self, v):
        """v's blend as a function ws -> images, without building a network: the base's synthesis module run
        on the blended tensors (torch.func.functional_call); for a hard swap those are the two models' own
        tensors, so a cached blend costs no memory."""
        key = self._blend_key(v)
        if v.feature_swap:                    # high renders with low's feature map after block `resolution`
            low, high = self._pair(v)
            return lambda ws, **kw: feature_swap_images(low, high, ws, v.resolution, **kw)
        def make():
            low, high = self._pair(v)
            state = blended_state(low, high, swap_weights(low, v.resolution, v.width or None), self._mapping(v))
            return {k[len('synthesis.'):]: t for k, t in state.items() if k.startswith('synthesis.')}
        state = self._blends.get_or_make(key, make)
        return lambda ws, **kw: torch.func.functional_call(self.base.synthesis, state, (ws,), kw)

    @torch.no_grad()
    def _tiles(self, model_key, synthesis, seeds, psi):
        """uint8 [N, H, W, C] of synthesis(w) for the seeds' w (the base mapping's), cached per (model, seed)."""
        missing = [s for s in seeds if (model_key, s, psi) not in self._images]
        if missing:
            z = images.seed_latents(missing, self.base.z_dim).to(self.device)
            ws = self.base.mapping(z, None, truncation_psi=psi)
            out = images.to_uint8(synthesis(ws, noise_mode='const', force_fp32=True))
            self.renders += 1
            for s, img in zip(missing, out):
                self._images[(model_key, s, psi)] = img
        for s in seeds:                       # keep the ones just used fresh, then trim
            self._images.move_to_end((model_key, s, psi))
        tiles = np.stack([self._images[(model_key, s, psi)] for s in seeds])
        while len(self._images) > self._images.size:
            self._images.popitem(last=False)
        return tiles

    def _model_keys(self, v):
        snap = ('snapshot', self._index(v.snapshot))
        low, high = (('base',), snap) if v.base_is_low else (snap, ('base',))
        return low, high

    def columns(self, v: ViewState):
        """{'low', 'blend', 'high'}: each a uint8 [N, H, W, C] stack, one image per seed."""
        low_key, high_key = self._model_keys(v)
        low, high = self._pair(v)
        blend_key = self._blend_key(v)
        return {'low': self._tiles(low_key, low.synthesis, v.seeds, v.truncation_psi),
                'blend': self._tiles(blend_key, self._blend_synthesis(v), v.seeds, v.truncation_psi),
                'high': self._tiles(high_key, high.synthesis, v.seeds, v.truncation_psi)}

    def column_labels(self, v: ViewState):
        base, tuned = 'base', self.labels[self._index(v.snapshot)]
        low, high = (base, tuned) if v.base_is_low else (tuned, base)
        name = dict((r, label) for label, r in self.choices)[v.resolution]
        swap = name if v.resolution in (0, self.base.img_resolution) else f'swap at {name}'
        if v.feature_swap:
            swap = name if v.resolution == 0 else f'features after {v.resolution}'
        return {'low': f'low: {low}', 'blend': swap + (f', width {v.width:g}' if v.width else ''), 'high': f'high: {high}'}

    def compare(self, v: ViewState, min_tile=64):
        """Every swap choice for v's snapshot: rows = seeds, columns = 'all high' .. 'all low', labelled."""
        swaps = [dataclasses.replace(v, resolution=r) for _, r in self.choices]
        cols = [self._tiles(self._blend_key(s), self._blend_synthesis(s), v.seeds, v.truncation_psi) for s in swaps]
        tiles = images.enlarge(np.stack(cols, axis=1).reshape(-1, *cols[0].shape[1:]), min_tile)
        grid = images.make_grid(tiles, cols=len(cols))
        return images.add_column_labels(grid, [label for label, _ in self.choices], tile_width=tiles.shape[2])

    def epoch_swap_grid(self, seed=0, v: Optional[ViewState] = None, min_tile=64):
        """The epoch x swap-point figure: one row per snapshot (oldest first), one column per swap choice."""
        v = v or ViewState()
        rows = [self.compare(dataclasses.replace(v, snapshot=i, seeds=(seed,)), min_tile) for i in range(len(self.labels))]
        label_w = 8 + 6 * max(len(label) for label in self.labels)
        canvas = Image.new('RGB', (label_w + rows[0].shape[1], sum(r.shape[0] for r in rows)), (255, 255, 255))
        from PIL import ImageDraw
        draw, y = ImageDraw.Draw(canvas), 0
        for label, row in zip(self.labels, rows):
            canvas.paste(Image.fromarray(row), (label_w, y))
            draw.text((2, y + row.shape[0] // 2), label, fill=(0, 0, 0))
            y += row.shape[0]
        return np.asarray(canvas)

    def export_name(self, v: ViewState, ext='.pkl'):
        """A file name that says what the blend is: blend-<snapshot>-swap<res>[-w<width>][-tunedlow]<ext>."""
        parts = ['blend', _slug(self.labels[self._index(v.snapshot)]), f'swap{v.resolution}']
        parts += [f'w{v.width:g}'] if v.width else []
        parts += [] if v.base_is_low else ['tunedlow']
        return '-'.join(parts) + ext

    def export(self, v: ViewState, path, format=None):
        """Write v's blend (as G_ema) with a meta saying how it was made; returns the format written."""
        meta = {'blend': {'low': 'base' if v.base_is_low else self.labels[self._index(v.snapshot)],
                          'high': self.labels[self._index(v.snapshot)] if v.base_is_low else 'base',
                          'resolution': v.resolution, 'width': v.width, 'mapping': 'base'}}
        return export(path, self.blended(v), format=format, meta=meta)
