"""Every benchmark in one command: the fast path against the reference path, as ratios, in one run.

    python benchmarks/run_all.py            # the README's configurations (about 15 minutes on 2 CPU cores)
    python benchmarks/run_all.py --quick    # one case each (a few minutes)
    python benchmarks/run_all.py --device cuda

Runs, one after the other, each in its own process: generator images/s and projection steps/s
(generator_speed.py), training seconds per kimg (train_speed.py), explorer update latency
(explorer_latency.py), checkpoint load time and peak memory (load_speed.py), data preparation
(data_speed.py: near-duplicate grouping, drawn-face alignment, frame sampling); with --device cuda first the
CUDA kernels against torch.compile and plain PyTorch (cuda_ops.py). Each prints its ratios.
Measurements to report, not tests.
"""

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts(quick, device):
    cuda = ['--device', device] if device else []
    gpu = [('CUDA kernels vs torch.compile vs PyTorch', ['cuda_ops.py'] + (['--res', '64', '256'] if quick else []))]
    return (gpu if device == 'cuda' else []) + [
        ('generator and projection', ['generator_speed.py'] + (['--quick'] if quick else [])),
        ('training', ['train_speed.py'] + (['--ticks', '1'] if quick else []) + cuda),
        ('explorer', ['explorer_latency.py', '--repeats', '1' if quick else '3'] + cuda),
        ('checkpoint loading', ['load_speed.py', '--repeats', '1' if quick else '3']),
        ('evaluate (one snapshot)', ['evaluate_speed.py'] + cuda
         + (['--res', '64', '--seeds', '16', '--style', '50'] if quick or device != 'cuda' else [])),
        ('one-shot stylisation', ['oneshot_speed.py'] + cuda + (['--full'] if device == 'cuda' else [])),
        ('train --metrics overhead', ['metrics_overhead.py'] + cuda + (['--kimg', '1', '--snap', '0.5'] if quick else [])),
        ('data preparation', ['data_speed.py'] + (['--quick'] if quick else [])),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--device', default=None, help="'cuda' where the scripts support it")
    args = ap.parse_args()
    import torch
    print(f'# {platform.platform()}, {platform.processor() or platform.machine()}, python {platform.python_version()}, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads'
          + (f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ', no GPU'))
    failed = []
    for title, cmd in scripts(args.quick, args.device):
        print(f'\n## {title}: python benchmarks/{" ".join(cmd)}', flush=True)
        t0 = time.perf_counter()
        if subprocess.run([sys.executable, str(HERE / cmd[0])] + cmd[1:]).returncode != 0:
            failed.append(title)
        print(f'({time.perf_counter() - t0:.0f} s)', flush=True)
    if failed:
        print(f'\nfailed: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
