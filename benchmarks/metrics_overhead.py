"""What `train --metrics kid,copy` adds to a training run: the same short run with and without it, in one process.

    python benchmarks/metrics_overhead.py                           # 32x32, snapshot every 1 kimg, 2 kimg, CPU
    python benchmarks/metrics_overhead.py --res 256 --channel-base 16384 --channel-max 512 --dim 512 \\
        --batch 8 --snap 4 --kimg 8 --device cuda                   # paper256-shaped, NVlabs's 4 kimg ticks

Runs the real trainer (generated dataset, ADA, all four phases) from a saved random network (so the offline
feature option, the starting network's discriminator, exists as it does for a fine-tune), once without
metrics (the reference) and once with `--metrics kid,copy --metrics-features discriminator` at every snapshot;
prints the mean wall time of each (in the order plain, measured, measured, plain), the metrics' own seconds per snapshot (`metrics_sec` from the log) and the overhead
in percent (NVlabs report 3-9% for their FID). The overhead scales as 1 / --snap: the metrics cost the same per
snapshot whatever the interval. A measurement for the README, not a test.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import stylegan2_lib as sg                                     # noqa: E402
from stylegan2_lib.devices import default_device               # noqa: E402
from stylegan2_lib.train import TrainOptions, train            # noqa: E402

from train_speed import make_dataset                           # noqa: E402


def run(args, data, outdir, start, metrics):
    opts = TrainOptions(data=data, outdir=outdir, resume=start, resolution=args.res, batch=args.batch, workers=0,
                        tick=args.snap / 2, kimg=args.kimg, snap=args.snap, sample_seeds=4, device=args.device,
                        metrics=('kid', 'copy') if metrics else (), metrics_images=args.images,
                        metrics_features='discriminator')
    t = time.perf_counter()
    run_dir = train(opts)
    wall = time.perf_counter() - t
    log = [json.loads(line) for line in (Path(run_dir) / 'metrics.jsonl').read_text().splitlines()]
    return wall, [r['metrics_sec'] for r in log if 'metrics_sec' in r]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--res', type=int, default=32)
    ap.add_argument('--channel-base', type=int, default=4096)
    ap.add_argument('--channel-max', type=int, default=128)
    ap.add_argument('--dim', type=int, default=128, help='z_dim = w_dim')
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--snap', type=float, default=1.0, help='kimg between snapshots (the metrics run at each)')
    ap.add_argument('--kimg', type=float, default=2.0)
    ap.add_argument('--images', type=int, default=500, help='--metrics-images')
    ap.add_argument('--rounds', type=int, choices=[1, 2], default=2, help='2: plain, measured, measured, plain')
    ap.add_argument('--device', default=None)
    args = ap.parse_args()
    args.device = str(default_device(args.device))
    torch.manual_seed(0)
    cfg = dict(img_resolution=args.res, channel_base=args.channel_base, channel_max=args.channel_max)
    G = sg.Generator(z_dim=args.dim, w_dim=args.dim, mapping_layers=2, **cfg)
    D = sg.Discriminator(**cfg)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / 'data'
        data.mkdir()
        make_dataset(data, args.res, n=max(args.images, 64))
        start = Path(tmp) / 'start.pkl'
        sg.save(start, G=G, D=D, G_ema=G)
        walls, per_snapshot = {False: [], True: []}, []
        for k, metrics in enumerate([False, True, True, False][:2 * args.rounds]):  # ABBA: drift hits both alike
            wall, secs = run(args, str(data), f'{tmp}/run{k}', str(start), metrics=metrics)
            walls[metrics].append(wall)
            per_snapshot += secs
    plain, measured = (sum(walls[m]) / len(walls[m]) for m in (False, True))
    per_snapshot = per_snapshot[: len(per_snapshot) // len(walls[True])]     # the first measured run's
    at_default = 100 * sum(per_snapshot) / plain * args.snap / 4
    print(f'{args.res}x{args.res}, channels {args.channel_base}/{args.channel_max}, batch {args.batch}, {args.device}, '
          f'{args.kimg} kimg with a snapshot every {args.snap} kimg, {args.images} images per measurement, '
          f'{torch.get_num_threads()} threads')
    print(f'  without metrics (reference): {plain:7.1f} s')
    print(f'  with --metrics kid,copy:     {measured:7.1f} s ({measured / plain:.3f}x; metrics '
          + ', '.join(f'{s:.1f}' for s in per_snapshot) + ' s per snapshot, the first includes the training '
          f'images\' features)')
    print(f'  overhead: {100 * sum(per_snapshot) / plain:.1f}% of the reference run\'s time '
          f'(at a snapshot every {args.snap} kimg; it scales as 1 / snap: {at_default:.1f}% at the default --snap 4)')


if __name__ == '__main__':
    main()
