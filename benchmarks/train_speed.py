"""Training speed: seconds per kimg for a fixed small configuration on this machine's device.

    python benchmarks/train_speed.py                 # from-scratch 32x32 config, batch 16, ADA on
    python benchmarks/train_speed.py --res 64 --batch 8 --device cuda

Runs the real trainer (data loading, augmentation, all four phases, EMA, ADA) on a generated dataset for
--warmup + --ticks ticks and prints the mean sec/kimg of the timed ticks from the run's metrics log. This
is a measurement to report (README's performance table), not a test: nothing asserts on time.
"""

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylegan2_lib.train import TrainOptions, train


def make_dataset(folder, res, n=64, seed=0):
    rng = np.random.RandomState(seed)
    for i in range(n):
        Image.fromarray((rng.rand(res, res, 3) * 255).astype(np.uint8)).save(Path(folder) / f'{i:03d}.png')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--res', type=int, default=32)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--channel-base', type=int, default=4096)
    ap.add_argument('--channel-max', type=int, default=128)
    ap.add_argument('--dim', type=int, default=128, help='z_dim = w_dim')
    ap.add_argument('--tick', type=float, default=0.064, help='kimg per timed tick')
    ap.add_argument('--warmup', type=int, default=1, help='untimed ticks first')
    ap.add_argument('--ticks', type=int, default=3)
    ap.add_argument('--device', default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_dataset(tmp, args.res)
        opts = TrainOptions(data=tmp, outdir=f'{tmp}/runs', resolution=args.res, z_dim=args.dim, w_dim=args.dim, mapping_layers=2,
                            channel_base=args.channel_base, channel_max=args.channel_max, batch=args.batch, workers=0,
                            tick=args.tick, kimg=args.tick * (args.warmup + args.ticks), snap=1e9, sample_seeds=4,
                            device=args.device)
        run = train(opts)
        ticks = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()][args.warmup:]
    sec = float(np.mean([t['sec_per_kimg'] for t in ticks]))
    device = opts.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    name = torch.cuda.get_device_name() if device == 'cuda' else f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'
    print(f'{args.res}x{args.res}, channels {args.channel_base}/{args.channel_max}, batch {args.batch}, {device} ({name}): '
          f'{sec:.1f} s/kimg ({1000 / sec:.1f} img/s), mean of {len(ticks)} ticks of {args.tick} kimg')


if __name__ == '__main__':
    main()
