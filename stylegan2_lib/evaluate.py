"""Choose the snapshot and the swap point by measurement: for every snapshot x every swap choice, how stylised
the blend is, how much of the base model's face it keeps, and whether its snapshot copies its training images.

    scores = sg.evaluate('ffhq256.pkl', 'runs/00001-anime', 'anime.zip')      # or snapshots=[files], {label: G}
    scores.recommended        # ('epoch 12 (4 kimg)', 32): the pick, or None when no blend meets the thresholds
    scores.save('scores')     # scores.json, scores.txt (the table), scores.png (the heat map, two panels)

Per cell (snapshot s, swap choice r; the same seeds' w, from the base's mapping, everywhere):
- style: KID of the blend's images to the style images (lower = more like the style set); column 'all low' is
  the base itself, 'all high' the snapshot itself;
- likeness: how much of the base's face survives, image i of the base against image i of the blend
  (metrics.likeness: dlib's face-identity similarity where faces are found, else a structural similarity, as
  labelled in the result);
- copying, per snapshot: metrics.copying of the snapshot's own images against the style (training) images; a
  snapshot that reproduces its training images is flagged, whatever its KID.
The recommendation is the most stylised blend (lowest style KID) whose likeness is at least `min_likeness` and
whose snapshot is not flagged; the Pareto front (no other allowed blend is both more stylised and more alike)
is listed and dotted on the heat map. With offline features (the base's discriminator, or thumbnails:
metrics.pick_features) the numbers rank blends of one base against each other but are not comparable with
published FID/KID.
"""

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from . import figures, images, metrics
from .assets import DEMO_BASE, DEMO_TOON
from .blend_views import BlendViews, ViewState
from .data import ImageDataset
from .files import atomic_write_bytes, read_json_object
from .samples import demo_dataset
from .train.state import OPTIONS_FILE, read_json

DEFAULT_SEEDS = range(64)
# The likeness a recommended blend keeps, by how likeness was measured: with faces, 0.5 is dlib's own
# same-person threshold (metrics.likeness maps descriptor distance 0.6 to 0.5); the structural measure has no
# such anchor: 0.4 keeps the base's layout clearly recognisable on the demo pair (docs/scores.md). Stated
# thresholds, not truths: --min-likeness overrides them.
DEFAULT_MIN_LIKENESS = {'faces': 0.5, 'structural': 0.4}

#----------------------------------------------------------------------------

@dataclasses.dataclass
class Scores:
    """Every number evaluate() measured, the choice it recommends, and how to read them (docs/scores.md)."""
    labels:          list                 # snapshot labels (rows)
    choices:         list                 # [(label, swap resolution)] (columns): 'all high', 4, ..., 'all low'
    style_kid:       np.ndarray           # [rows, cols] KID of the blend's images to the style images
    likeness:        np.ndarray           # [rows, cols] likeness score to the base, in [0, 1]
    likeness_method: str                  # 'faces' or 'structural' (metrics.likeness)
    copying:         list                 # per snapshot: {'fraction', 'median_ratio', 'flagged'}
    features:        str                  # the feature extractor's name
    comparable:      bool                 # True only for the standard Inception features
    num_images:      int                  # generated images per cell
    num_style:       int                  # style (training) images
    min_likeness:    float
    recommended:     Optional[tuple] = None   # (snapshot label, swap resolution) or None
    pareto:          list = dataclasses.field(default_factory=list)   # [(label, resolution)]

    def cell(self, label, resolution):
        return self.labels.index(label), [r for _, r in self.choices].index(resolution)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d['style_kid'], d['likeness'] = _listed(self.style_kid), _listed(self.likeness)
        d['choices'] = [list(c) for c in self.choices]
        d['recommended'] = list(self.recommended) if self.recommended else None
        d['pareto'] = [list(p) for p in self.pareto]
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d['style_kid'], d['likeness'] = (np.array(d[k], dtype=np.float64) for k in ('style_kid', 'likeness'))
        d['choices'] = [tuple(c) for c in d['choices']]
        d['recommended'] = tuple(d['recommended']) if d.get('recommended') else None
        d['pareto'] = [tuple(p) for p in d.get('pareto', [])]
        return cls(**d)

    def table(self):
        """The scores as text: one line per cell, the recommendation marked."""
        lines = [f'features: {self.features}',
                 f'{self.num_images} images per blend, {self.num_style} style images; likeness by {self.likeness_method}',
                 f'{"snapshot":<24} {"swap":>8} {"style KID":>10} {"likeness":>9}  copying']
        for i, label in enumerate(self.labels):
            copy = self.copying[i]
            for j, (name, res) in enumerate(self.choices):
                mark = ' <- recommended' if self.recommended == (label, res) else (' (Pareto)' if (label, res) in self.pareto else '')
                lines.append(f'{label:<24} {name:>8} {self.style_kid[i, j]:>10.4f} {self.likeness[i, j]:>9.3f}  '
                             f'{copy["fraction"]:.2f}{" COPIES" if copy["flagged"] else ""}{mark}')
        lines.append(f'recommended: {self.recommendation_text()}')
        return '\n'.join(lines)

    def recommendation_text(self):
        if self.recommended is None:
            return f'none: no blend keeps likeness >= {self.min_likeness:g} from a snapshot that does not copy its images'
        label, res = self.recommended
        i, j = self.cell(label, res)
        name = self.choices[j][0]
        return (f'{label}, swap at {name} (style KID {self.style_kid[i, j]:.4f}, likeness {self.likeness[i, j]:.2f} '
                f'by {self.likeness_method})')

    def heatmap(self, current=None):
        """uint8 [H, W, 3]: style KID and likeness, snapshots x swap choices; the recommendation boxed, the
        Pareto front dotted, copying snapshots marked in their row label; `current` (snapshot label, swap
        resolution), e.g. the explorer's sliders, framed in both panels (ignored when these scores lack it)."""
        rows = [f'{label}{" (copies)" if c["flagged"] else ""}' for label, c in zip(self.labels, self.copying)]
        cols = [name for name, _ in self.choices]
        boxed = [self.cell(*self.recommended)] if self.recommended else []
        dotted = [self.cell(*p) for p in self.pareto]
        panels = [figures.Panel('style: KID to the style images (lower = more stylised)', self.style_kid, '{:.3f}', False),
                  figures.Panel(f'likeness to the base ({self.likeness_method}, higher = more alike)', self.likeness, '{:.2f}', True)]
        footer = [f'features: {self.features}',
                  f'recommended: {self.recommendation_text()}']
        img = figures.heatmap_panels(panels, rows, cols, boxed=boxed, dotted=dotted, footer=footer)
        try:
            cell = self.cell(*current) if current is not None else None
        except ValueError:
            cell = None
        return img if cell is None else figures.mark_cell(img, cell, n_panels=len(panels), n_cols=len(cols))

    def save(self, stem):
        """<stem>.json, <stem>.txt and <stem>.png; returns the three paths."""
        stem = Path(stem)
        paths = [stem.parent / (stem.name + s) for s in ('.json', '.txt', '.png')]
        atomic_write_bytes(paths[0], (json.dumps(self.to_dict(), indent=1) + '\n').encode())
        atomic_write_bytes(paths[1], (self.table() + '\n').encode())
        images.save_image(paths[2], self.heatmap())
        return paths

def load_scores(path):
    """The Scores a save() wrote (its .json); ValueError naming the file for anything else."""
    d = read_json_object(path)
    try:
        return Scores.from_dict(d)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f'{path}: not the scores evaluate writes ({type(e).__name__}: {str(e)[:200]})') from None

#----------------------------------------------------------------------------
# A training run records what it was fine-tuned from and on: evaluate needs nothing else.

SCORES_STEM = 'scores'          # <run dir>/scores.json, .txt, .png: the run's cached scores (the explorer reads them)

def run_inputs(run_dir):
    """(base file, style data) a run directory's options.json records; ValueError naming what is missing."""
    options = read_json(Path(run_dir) / OPTIONS_FILE)
    base, data = options.get('resume'), options.get('data')
    if not base or not Path(base).is_file():
        raise ValueError(f'{run_dir}: the run does not record a base network file that exists ({base!r}); give --base')
    if not data or not Path(data).exists():
        raise ValueError(f'{run_dir}: the run\'s training data {data!r} is not there; give --data')
    return base, data

def _listed(a):
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(a, dtype=np.float64)]

#----------------------------------------------------------------------------
# The choice. Candidates: the blends of snapshots that do not copy. The Pareto front: the candidates no other
# candidate beats on both style (KID lower) and likeness (higher): the trade-off curve. The recommendation: the
# most stylised candidate whose likeness meets the threshold.

def recommend(style_kid, likeness, flagged, min_likeness):
    """(best cell or None, [Pareto cells]) as (row, col) indices."""
    candidates = [(i, j) for i in range(style_kid.shape[0]) for j in range(style_kid.shape[1])
                  if not flagged[i] and np.isfinite(style_kid[i, j]) and np.isfinite(likeness[i, j])]
    pareto = [c for c in candidates
              if not any(style_kid[o] <= style_kid[c] and likeness[o] >= likeness[c]
                         and (style_kid[o] < style_kid[c] or likeness[o] > likeness[c]) for o in candidates)]
    allowed = [c for c in candidates if likeness[c] >= min_likeness]
    best = min(allowed, key=lambda c: (style_kid[c], -likeness[c])) if allowed else None
    return best, sorted(pareto)

#----------------------------------------------------------------------------

def style_images(source, resolution, limit=None):
    """uint8 [N, R, R, 3] of a style folder or zip (or an ImageDataset), at most `limit`."""
    dataset = source if isinstance(source, ImageDataset) else ImageDataset(source, resolution, progress=False)
    return dataset.uint8_images(limit)

def _copying(G, seeds, truncation_psi, extractor, style_feats):
    """metrics.copying of the snapshot's own images (its own mapping and synthesis) against the style images."""
    own = images.to_uint8(images.generate_images(G, seeds, truncation_psi=truncation_psi, progress=False))
    copy = metrics.copying(extractor(own), style_feats)
    return {'fraction': float(copy.fraction), 'median_ratio': float(copy.median_ratio), 'flagged': bool(copy.flagged)}

def evaluate(base, snapshots, style_data, features='auto', seeds=DEFAULT_SEEDS, truncation_psi=1.0,
             min_likeness=None, D=None, max_style=1000, device=None, progress=True):
    """Score every snapshot x swap choice (module docstring); returns a Scores.

    base: the real-face generator (file or Generator; its file's D gives offline features);
    snapshots: a run directory, files, or {label: Generator or file}; style_data: the style (training) images,
    a folder or zip; features: 'auto', 'inception', 'discriminator', 'pixels' or a metrics.Features; seeds: the
    latents every cell renders (64 by default: KID's spread at that size is in docs/scores.md); min_likeness:
    the recommendation's threshold (None: DEFAULT_MIN_LIKENESS for the way likeness was measured)."""
    seeds = list(seeds)
    views = BlendViews(base, snapshots, device=device, max_images=4 * len(seeds))
    if D is None and not isinstance(base, torch.nn.Module):
        from .checkpoints import load
        D = load(base).D
    extractor = metrics.pick_features(features, D, views.device)
    style = style_images(style_data, views.base.img_resolution, max_style)
    style_feats = extractor(style, progress=False)
    rows, cols = len(views.labels), len(views.choices)
    style_kid, likeness = np.full([rows, cols], np.nan), np.full([rows, cols], np.nan)
    copying, methods = [], set()
    bar = tqdm(total=rows * cols, desc='evaluate', unit='blend', disable=not progress)
    base = None
    for i in range(rows):
        for j, (_, res) in enumerate(views.choices):
            v = ViewState(snapshot=i, resolution=res, seeds=tuple(seeds), truncation_psi=truncation_psi)
            cols_ = views.columns(v)
            if base is None:                                    # the base's faces and structure, once
                base = metrics.likeness_base(cols_['low'], D=D, device=views.device)
            feats, like = metrics.features_and_likeness(extractor, base, cols_['blend'])   # one pass of D for both
            style_kid[i, j] = metrics.kid(feats, style_feats)
            likeness[i, j] = like.score
            methods.add(like.method)
            bar.update(1)
        copying.append(_copying(views.generator(i), seeds, truncation_psi, extractor, style_feats))
    bar.close()
    flagged = [c['flagged'] for c in copying]
    method = '/'.join(sorted(methods))
    if min_likeness is None:
        min_likeness = max(DEFAULT_MIN_LIKENESS.get(m, 0.5) for m in methods)
    best, pareto = recommend(style_kid, likeness, flagged, min_likeness)
    cell = lambda c: (views.labels[c[0]], views.choices[c[1]][1])
    return Scores(labels=list(views.labels), choices=list(views.choices), style_kid=style_kid, likeness=likeness,
                  likeness_method=method, copying=copying, features=extractor.name,
                  comparable=bool(extractor.comparable), num_images=len(seeds), num_style=len(style),
                  min_likeness=min_likeness, recommended=cell(best) if best else None, pareto=[cell(c) for c in pareto])

#----------------------------------------------------------------------------

def demo_scores(stem, device=None):
    """The measurement a user would make on their own run, on the bundled demo pair, offline (`stylegan2-lib
    demo` and docs/scores.md's figure): (Scores, [<stem>.json, .txt, .png]). The style set is the demo's 32
    drawn faces (samples.demo_dataset); the demo files hold no discriminator, so the features are small
    thumbnails (metrics.pixel_features)."""
    with tempfile.TemporaryDirectory() as tmp:
        style = demo_dataset(Path(tmp) / 'style.zip')
        scores = evaluate(DEMO_BASE, {'demo-toon': DEMO_TOON}, style, features='pixels', device=device, progress=False)
    return scores, scores.save(stem)
