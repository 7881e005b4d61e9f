"""Training speed: seconds per kimg for a fixed small configuration, reference ops against the fast ops.

    python benchmarks/train_speed.py                      # 32x32 config, batch 16, ADA on; ref, fast, fast + bf16
    python benchmarks/train_speed.py --paths fast         # one path only
    python benchmarks/train_speed.py --res 64 --batch 8 --device cuda --paths ref:fp32,fast:fp16,fast:bf16

Runs the real trainer (data loading, augmentation, all four phases, EMA, ADA) on a generated dataset for
--warmup + --ticks ticks for every path of --paths (IMPL[:PRECISION]: `ops.use_impl(IMPL)` and the trainer's
--precision, default fp16 = float32 on the CPU), alternating them for --rounds rounds in one process (so a
busy machine slows every path alike), and prints each path's mean sec/kimg over the timed ticks of all its
runs (from the runs' metrics logs) and the ratio to the first path. The default adds fast:bf16 where the
device runs bfloat16 natively. This is a measurement to report (README's performance table), not a test:
nothing asserts on time.
"""

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylegan2_lib import ops
from stylegan2_lib.devices import default_device
from stylegan2_lib.train import TrainOptions, train
from stylegan2_lib.train.speed import native_bf16


def make_dataset(folder, res, n=64, seed=0):
    rng = np.random.RandomState(seed)
    for i in range(n):
        Image.fromarray((rng.rand(res, res, 3) * 255).astype(np.uint8)).save(Path(folder) / f'{i:03d}.png')


def run_once(data, outdir, args, path):
    impl, _, precision = path.partition(':')
    opts = TrainOptions(data=data, outdir=outdir, resolution=args.res, z_dim=args.dim, w_dim=args.dim, mapping_layers=2,
                        channel_base=args.channel_base, channel_max=args.channel_max, batch=args.batch, workers=0,
                        tick=args.tick, kimg=args.tick * (args.warmup + args.ticks), snap=1e9, sample_seeds=4,
                        device=args.device, precision=precision or 'fp16')
    with ops.use_impl(impl):
        run = train(opts)
    ticks = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()][args.warmup:]
    return [t['sec_per_kimg'] for t in ticks], opts


def default_paths(device):
    return 'ref,fast' + (',fast:bf16' if native_bf16(torch.device(device)) else '')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--res', type=int, default=32)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--channel-base', type=int, default=4096)
    ap.add_argument('--channel-max', type=int, default=128)
    ap.add_argument('--dim', type=int, default=128, help='z_dim = w_dim')
    ap.add_argument('--tick', type=float, default=0.064, help='kimg per timed tick')
    ap.add_argument('--warmup', type=int, default=1, help='untimed ticks first (per run)')
    ap.add_argument('--ticks', type=int, default=2, help='timed ticks per run')
    ap.add_argument('--rounds', type=int, default=2, help='runs per impl, alternating the impls')
    ap.add_argument('--paths', default=None, help='comma-separated IMPL[:PRECISION] (ops.use_impl, --precision); ratios are '
                                                   'to the first (default: ref,fast and fast:bf16 where bfloat16 is native)')
    ap.add_argument('--device', default=None)
    args = ap.parse_args()
    device = str(default_device(args.device))
    impls = [s.strip() for s in (args.paths or default_paths(device)).split(',') if s.strip()]
    secs = {impl: [] for impl in impls}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / 'data'
        data.mkdir()
        make_dataset(data, args.res)
        data = str(data)
        for r in range(args.rounds):
            for impl in (impls if r % 2 == 0 else impls[::-1]):          # ABBA order: drift hits both alike
                ticks, opts = run_once(data, f'{tmp}/runs', args, impl)
                secs[impl] += ticks
                print(f'round {r + 1}/{args.rounds} {impl:>9}: ' + ', '.join(f'{t:.1f}' for t in ticks) + ' s/kimg', flush=True)
    name = torch.cuda.get_device_name() if device == 'cuda' else f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'
    print(f'{args.res}x{args.res}, channels {args.channel_base}/{args.channel_max}, batch {args.batch}, {device} ({name}), '
          f'{args.rounds} round(s) of {args.ticks} timed ticks of {args.tick} kimg per impl:')
    base = float(np.mean(secs[impls[0]]))
    for impl in impls:
        sec = float(np.mean(secs[impl]))
        print(f'  {impl:>9}: {sec:7.1f} s/kimg ({1000 / sec:6.1f} img/s)  {base / sec:.2f}x {impls[0]}')


if __name__ == '__main__':
    main()
