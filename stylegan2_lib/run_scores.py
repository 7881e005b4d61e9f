"""A run's scores where the choice is made: what the explorer shows of evaluate.py, without widgets.

    views = BlendViews(base, 'runs/00001-anime')
    scores = cached_scores(scores_home(views), views)             # <run>/scores.json when it is for these snapshots
    snapshot_labels(views, scores)      # ['epoch 6 (2 kimg) · KID 0.041', 'epoch 12 (4 kimg) · KID 0.012 · copying']
    scores = compute_scores(base, views, style_data_of(views))   # evaluate(), then cached in the run directory
    scores_figure(scores, ('epoch 12 (4 kimg)', 16))              # the heat map with that cell framed

Where a snapshot's number comes from: the run's scores when they cover every snapshot (the style KID of the
snapshot itself, column 'all high', and its copying flag: one measurement for all rows), else the training
log's (`train --metrics kid,copy`: meta['metrics'] of each snapshot file, read from its header alone). The
scores are cached in the run directory the snapshots come from (SCORES_STEM: json, table and heat map, each
written atomically), or in the explorer's `outdir` when they come from no run.
"""

import json
import math
import os
import warnings
from pathlib import Path

from safetensors import safe_open

from .evaluate import SCORES_STEM, evaluate, load_scores
from .train.state import OPTIONS_FILE, is_run_dir, read_json

#----------------------------------------------------------------------------
# Where the scores live and what they are measured against.

def _files(views):
    """The snapshot files of the views (None for a snapshot given as a network)."""
    return [Path(s) if isinstance(s, (str, os.PathLike)) else None for s in views.sources]

def run_dir_of(views):
    """The training run directory every snapshot of the views comes from, or None."""
    parents = {f.parent for f in _files(views) if f is not None}
    if None in _files(views) or len(parents) != 1:
        return None
    run = parents.pop()
    return run if is_run_dir(run) else None

def scores_home(views, fallback=None):
    """The folder of the views' cached scores: their run directory, else `fallback` (None: nowhere)."""
    run = run_dir_of(views)
    return run if run is not None else (Path(fallback) if fallback is not None else None)

def style_data_of(views):
    """The training images the views' run was fine-tuned on (its options.json 'data'), or None when the
    snapshots come from no run or the data is no longer there."""
    run = run_dir_of(views)
    if run is None or not (run / OPTIONS_FILE).is_file():
        return None
    data = read_json(run / OPTIONS_FILE).get('data')
    return data if data and Path(data).exists() else None

def cached_scores(folder, views):
    """The Scores cached in `folder` when they are for exactly these snapshots and swap choices, else None."""
    path = Path(folder) / f'{SCORES_STEM}.json' if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        scores = load_scores(path)
    except ValueError as e:                 # a damaged cache is not an error: the scores are computed again
        warnings.warn(f'ignoring the cached scores: {e}')
        return None
    same = scores.labels == list(views.labels) and [tuple(c) for c in scores.choices] == [tuple(c) for c in views.choices]
    return scores if same else None

#----------------------------------------------------------------------------
# The snapshot slider's labels.

def training_metrics(path):
    """meta['metrics'] of a snapshot file (train --metrics), read from its safetensors header; {} when the
    file records none or is not a safetensors file."""
    try:
        with safe_open(str(path), 'pt') as f:
            meta = json.loads((f.metadata() or {}).get('meta') or '{}')
    except Exception:                       # noqa: BLE001 (a .pkl or .pt snapshot: no training metrics to show)
        return {}
    metrics = meta.get('metrics') if isinstance(meta, dict) else None
    return metrics if isinstance(metrics, dict) else {}

def snapshot_notes(views, scores=None):
    """(per snapshot {'kid', 'fid', 'flagged'} (missing keys: not measured), what they are): from `scores` when
    given (the snapshot's own images, column 'all high'), else from each snapshot's training metrics."""
    if scores is not None:
        own = [r for _, r in scores.choices].index(0)
        notes = [{'kid': float(scores.style_kid[i, own]), 'flagged': bool(c['flagged'])} for i, c in enumerate(scores.copying)]
        return notes, f'the run\'s scores (each snapshot\'s own images against the style images); features: {scores.features}'
    notes, names = [], set()
    for f in _files(views):
        m = training_metrics(f) if f is not None else {}
        notes.append(_training_note(m))
        names.add(str(m.get('metrics_features', '')))
    names.discard('')
    what = f'training --metrics; features: {", ".join(sorted(names))}' if names else 'training --metrics'
    return notes, what if any(notes) else ''

def _training_note(m):
    """The numbers of a snapshot's meta['metrics'] a label shows; anything not a number (or flag) is left out."""
    note = {k: float(m[k]) for k in ('kid', 'fid') if isinstance(m.get(k), (int, float)) and not isinstance(m.get(k), bool)}
    if isinstance(m.get('copy_flagged'), bool):
        note['flagged'] = m['copy_flagged']
    return note

def snapshot_label(label, note):
    """'epoch 12 (4 kimg) · KID 0.0312 · copying': KID (else FID) to 3 significant digits, and the copy flag."""
    parts = [label]
    name = next((k for k in ('kid', 'fid') if math.isfinite(note.get(k, math.nan))), None)
    if name:
        parts.append(f'{name.upper()} {note[name]:.3g}')
    if note.get('flagged'):
        parts.append('copying')
    return ' · '.join(parts)

def snapshot_labels(views, scores=None):
    """The slider's label of every snapshot (module docstring)."""
    notes, _ = snapshot_notes(views, scores)
    return [snapshot_label(label, note) for label, note in zip(views.labels, notes)]

#----------------------------------------------------------------------------
# Computing, caching and drawing.

def compute_scores(base, views, style_data, folder=None, progress=True, **options):
    """evaluate() the views' snapshots (labels kept) against `style_data` and cache the result in `folder`
    (scores.json, .txt, .png). `base`: the base file (its D gives offline features) or None for views.base;
    `options`: evaluate's (features, seeds, min_likeness, ...)."""
    if style_data is None:
        raise ValueError('no style data known: the snapshots come from no run whose options.json names its training '
                         'images that still exist; give style_data= (the folder or zip the snapshots were fine-tuned on)')
    snapshots = dict(zip(views.labels, views.sources))
    scores = evaluate(views.base if base is None else base, snapshots, style_data, device=views.device,
                      progress=progress, **options)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        scores.save(Path(folder) / SCORES_STEM)
    return scores

def scores_figure(scores, current=None):
    """uint8 [H, W, 3]: scores.heatmap() with `current` = (snapshot label, swap resolution) framed in both
    panels; None or a cell the scores do not hold: the heat map alone."""
    return scores.heatmap(current=current)
