"""Checkpoint loading: time and peak memory of sg.load for a large network in every format, against
torch.load (weights_only=True) of the same tensors as the reference path.

    python benchmarks/load_speed.py            # 256x256 paper256 config (channel_base 16384, max 512): G, D, G_ema
    python benchmarks/load_speed.py --res 1024 --channel-base 32768

Each load runs in a fresh process (so the peak resident memory is that load's own: the process's peak
resident set after the load minus its resident set after the imports; torch.load's tensors are all read,
as building networks reads them), three times; printed are the best time, the peak extra memory, and both as
ratios to torch.load of the rosinality .pt. sg.load never executes the file (restricted unpickler, storages
sliced from raw bytes); torch.load(weights_only=True) is the fastest safe loader PyTorch itself offers. A
measurement for the README, not a test.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r'''
import json, sys, time
import torch
import stylegan2_lib as sg
def status(key):       # kB from /proc/self/status: VmRSS now, VmHWM the peak so far
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key + ':'))
def touch(obj):        # torch.load may map the file lazily: read every tensor, as building networks does
    if isinstance(obj, torch.Tensor):
        obj.sum()
    elif isinstance(obj, dict):
        for v in obj.values():
            touch(v)
path, how = sys.argv[1], sys.argv[2]
base = status('VmRSS')
t0 = time.perf_counter()
if how == 'torch.load':
    touch(torch.load(path, weights_only=True, map_location='cpu'))
else:
    sg.load(path)
seconds = time.perf_counter() - t0
print(json.dumps({'seconds': seconds, 'peak_mib': (status('VmHWM') - base) / 1024}))
'''


def measure(path, how, repeats):
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, '-c', WORKER, str(path), how], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return min(r['seconds'] for r in runs), min(r['peak_mib'] for r in runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--res', type=int, default=256)
    ap.add_argument('--channel-base', type=int, default=16384)
    ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args()
    import warnings

    import torch

    import stylegan2_lib as sg
    torch.manual_seed(0)
    G = sg.Generator(sg.GeneratorConfig(img_resolution=args.res, channel_base=args.channel_base, channel_max=512))
    D = sg.Discriminator(sg.DiscriminatorConfig.matching(G.cfg))
    ck = sg.Checkpoint(G=G, D=D, G_ema=G)
    with tempfile.TemporaryDirectory() as tmp:
        files = {'nvlabs .pkl (TF layout)': Path(tmp) / 'net.pkl', 'rosinality .pt': Path(tmp) / 'net.pt',
                 'native .safetensors': Path(tmp) / 'net.safetensors'}
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for path in files.values():
                sg.export(path, ck)
        ref_s, ref_mib = measure(files['rosinality .pt'], 'torch.load', args.repeats)
        print(f'load {args.res}x{args.res} (channel_base {args.channel_base}): G, D, G_ema; '
              f'{sum(p.numel() for p in G.parameters()) * 2 + sum(p.numel() for p in D.parameters()):,} parameters; '
              f'best of {args.repeats} fresh processes, torch {torch.__version__}')
        print(f'  {"file":26s} {"MiB":>7s} {"seconds":>8s} {"peak MiB":>9s} {"time / ref":>10s} {"mem / ref":>9s}')
        print(f'  {"torch.load .pt (ref)":26s} {files["rosinality .pt"].stat().st_size / 2**20:7.0f} {ref_s:8.2f} {ref_mib:9.0f} {1:10.2f} {1:9.2f}')
        for name, path in files.items():
            s, mib = measure(path, 'sg.load', args.repeats)
            print(f'  {"sg.load " + name:26s} {path.stat().st_size / 2**20:7.0f} {s:8.2f} {mib:9.0f} {s / ref_s:10.2f} {mib / ref_mib:9.2f}')


if __name__ == '__main__':
    main()
