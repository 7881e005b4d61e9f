"""The run directory: options, metrics, snapshots and the resume state, all written atomically.

    runs/00003-anime/
      options.json                                  TrainOptions as given
      metrics.jsonl                                 one JSON line per tick
      network-snapshot-kimg000004.000-epoch0012.safetensors   G, D, G_ema (+ meta: nimg, epoch, options)
      network-snapshot-kimg000004.000-epoch0012.png           G_ema on the run's fixed seeds
      training-state.pt                             optimisers, counters, RNG, ADA; names its snapshot

A snapshot's files are written before the state that names them, so a run killed at any moment resumes
from the last complete snapshot. The state is read back with the library's restricted unpickler.
"""

import io
import json
import re
from pathlib import Path

import torch

from .. import files
from ..checkpoints.safe_pickle import load_torch_zip

STATE_FILE = 'training-state.pt'
OPTIONS_FILE = 'options.json'
METRICS_FILE = 'metrics.jsonl'
_SNAPSHOT = re.compile(r'network-snapshot-kimg(\d+\.\d{3})-epoch(\d+)\.safetensors')

#----------------------------------------------------------------------------

def _run_name(data_name):
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', data_name)

def create_run_dir(outdir, name):
    """outdir/NNNNN-name with the next free number (NVlabs's layout)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:5]) for p in outdir.iterdir() if re.match(r'\d{5}-', p.name)]
    run = outdir / f'{max(numbers, default=-1) + 1:05d}-{_run_name(name)}'
    run.mkdir()
    return run

def is_run_dir(path):
    return Path(path).is_dir() and (Path(path) / STATE_FILE).is_file()

def latest_run(outdir, name=None):
    """The newest resumable run directory in `outdir` (of data `name` when given), or None: what a notebook
    resumes after a disconnect. A run killed before its first snapshot is not resumable and is passed over."""
    outdir = Path(outdir)
    runs = [p for p in outdir.iterdir() if re.fullmatch(r'\d{5}-.+', p.name) and is_run_dir(p)] if outdir.is_dir() else []
    if name is not None:
        runs = [p for p in runs if p.name[6:] == _run_name(name)]
    return max(runs, key=lambda p: int(p.name[:5]), default=None)

def write_json(path, obj):
    files.atomic_write_bytes(path, (json.dumps(obj, indent=2) + '\n').encode())

def read_json(path):
    return json.loads(Path(path).read_text())

#----------------------------------------------------------------------------
# Snapshots.

def snapshot_stem(nimg, epoch):
    return f'network-snapshot-kimg{nimg / 1000:010.3f}-epoch{epoch:04d}'

def list_snapshots(run_dir):
    """[(kimg, epoch, path)] of a run's network snapshots, oldest first."""
    found = []
    for p in Path(run_dir).glob('network-snapshot-*.safetensors'):
        m = _SNAPSHOT.fullmatch(p.name)
        if m:
            found.append((float(m.group(1)), int(m.group(2)), p))
    return sorted(found)

#----------------------------------------------------------------------------
# Resume state: torch.save bytes of plain containers and tensors (no classes), so the restricted
# unpickler that reads checkpoints reads it too.

def write_state(run_dir, state):
    buf = io.BytesIO()
    torch.save(state, buf)
    files.atomic_write_bytes(Path(run_dir) / STATE_FILE, buf.getvalue())

def read_state(run_dir):
    path = Path(run_dir) / STATE_FILE
    state = load_torch_zip(path.read_bytes())
    if not isinstance(state, dict) or 'snapshot' not in state:
        raise ValueError(f'{path}: not a training state written by this library')
    return state

#----------------------------------------------------------------------------
# Metrics: one JSON object per line. On resume, lines past the restored position (work that was lost
# with the killed process) are dropped, and a half-written last line is discarded.

def append_metrics(run_dir, record):
    with open(Path(run_dir) / METRICS_FILE, 'a') as f:
        f.write(json.dumps(record) + '\n')

def read_metrics(run_dir):
    path = Path(run_dir) / METRICS_FILE
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                break
    return records

def truncate_metrics(run_dir, nimg):
    kept = [r for r in read_metrics(run_dir) if r.get('nimg', 0) <= nimg]
    files.atomic_write_bytes(Path(run_dir) / METRICS_FILE, ''.join(json.dumps(r) + '\n' for r in kept).encode())

