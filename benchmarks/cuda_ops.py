"""GPU benchmark: the CUDA kernels (impl='cuda') against torch.compile and plain PyTorch ('ref', 'fast') for
bias_act and upfirdn2d at StyleGAN2 shapes, forward and forward+backward, in one run.

    python benchmarks/cuda_ops.py                       # batch 8, res 8..256, config-f channels, fp32 + fp16
    python benchmarks/cuda_ops.py --channels 512 --res 64 128 256 --dtypes float32 --json out.json

Each cell is the median time of --iters runs after warm-up (CUDA events); torch.compile time is excluded
(one compiled function per case). Ratios: ref time / kernel time, and the best torch.compile time / kernel time (> 1: kernel faster). Needs a CUDA
GPU and exits with a message without one (--device cpu runs the harness on the CPU, where impl='cuda' is the
PyTorch fallback: a dry run, not a measurement). The kernels are built on first use (minutes the first time).
"""

import argparse
import json
import logging
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stylegan2_lib import ops                                   # noqa: E402
from stylegan2_lib.ops import cuda_build, cuda_ops, registry    # noqa: E402,F401 (cuda_ops registers 'cuda')

FIR = [1, 3, 3, 1]


def cases(res, channels, batch, dtype, device):
    """(name, shape, fn(x, impl)) for the StyleGAN2 uses: conv bias + lrelu (+ fp16 clamp), FIR up/down."""
    f = ops.setup_filter(FIR, device=device)
    b = torch.randn(channels, device=device, dtype=dtype)
    clamp = 256 if dtype == torch.float16 else None
    return [
        ('bias_act lrelu', [batch, channels, res, res],
         lambda x, impl: ops.bias_act(x, b, act='lrelu', clamp=clamp, impl=impl)),
        ('upsample2d x2', [batch, channels, res, res],
         lambda x, impl: ops.upsample2d(x, f, impl=impl)),
        ('downsample2d /2', [batch, channels, res, res],
         lambda x, impl: ops.downsample2d(x, f, impl=impl)),
    ]


def timeit(fn, device, iters, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def candidates(fn):
    """name -> callable(x): the kernels, plain PyTorch and torch.compile of each plain path."""
    out = {'cuda': lambda x: fn(x, 'cuda')}
    for impl in ('ref', 'fast'):
        if impl in registry.available_impls('bias_act'):
            out[impl] = (lambda i: lambda x: fn(x, i))(impl)
            out[f'compile({impl})'] = torch.compile((lambda i: lambda x: fn(x, i))(impl), dynamic=False)
    return out


def run_case(fn, shape, dtype, device, iters, backward):
    torch._dynamo.reset()           # the compiled lambdas share one code object: forget the previous case's graphs
    x0 = torch.randn(shape, device=device, dtype=dtype)
    results = {}
    for name, c in candidates(fn).items():
        x = x0.clone().requires_grad_(backward)
        if backward:
            dy = torch.randn_like(c(x))
            step = lambda c=c, x=x, dy=dy: torch.autograd.grad(c(x), x, dy)
        else:
            step = lambda c=c, x=x: c(x)
        try:
            with torch.set_grad_enabled(backward):
                results[name] = timeit(step, device, iters)
        except Exception as e:                          # noqa: BLE001 (e.g. torch.compile unsupported here)
            results[name] = float('nan')
            print(f'  {name}: {type(e).__name__}: {str(e).splitlines()[0][:120]}')
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--res', type=int, nargs='+', default=[8, 16, 32, 64, 128, 256])
    ap.add_argument('--channels', default='config-f', help="a number, or 'config-f': min(512, 32768 / res)")
    ap.add_argument('--dtypes', nargs='+', default=['float32', 'float16'])
    ap.add_argument('--iters', type=int, default=20)
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--json', help='also write the results here')
    args = ap.parse_args(argv)

    if args.device == 'cuda':
        if not torch.cuda.is_available():
            sys.exit('benchmarks/cuda_ops.py needs a CUDA GPU: torch.cuda.is_available() is False '
                     f'(torch {torch.__version__}, CUDA {torch.version.cuda}). Nothing measured.')
        t0 = time.time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            ext = cuda_build.extension()
        if ext is None:
            sys.exit(f'the CUDA kernels did not build: {"; ".join(str(w.message) for w in caught)}')
        print(f'kernels ready in {time.time() - t0:.0f} s ({ext.__file__}); {torch.cuda.get_device_name()}, '
              f'torch {torch.__version__}')
    else:
        print(f'DRY RUN on {args.device}: the cuda column is the PyTorch fallback, not the kernels')

    torch._logging.set_logs(dynamo=logging.ERROR)     # graph-break chatter from the data-dependent fast paths
    rows = []
    header = f'{"op":<16} {"dtype":<8} {"shape":<20} {"pass":<8}'
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        for res in args.res:
            ch = min(512, 32768 // res) if args.channels == 'config-f' else int(args.channels)
            for name, shape, fn in cases(res, ch, args.batch, dtype, args.device):
                for backward in (False, True):
                    t = run_case(fn, shape, dtype, args.device, args.iters, backward)
                    if not rows:
                        print(header + ''.join(f'{k:>15}' for k in t) + '   ref/cuda  compile/cuda')
                    rows.append(dict(op=name, dtype=dtype_name, shape=shape, backward=backward, seconds=t))
                    best_compile = min((v for k, v in t.items() if k.startswith('compile') and not math.isnan(v)),
                                       default=float('nan'))
                    print(f'{name:<16} {dtype_name:<8} {str(shape):<20} {"fwd+bwd" if backward else "fwd":<8}'
                          + ''.join(f'{v * 1e6:>13.1f}us' for v in t.values())
                          + f'   {t["ref"] / t["cuda"]:>8.2f}x  {best_compile / t["cuda"]:>8.2f}x', flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(device=args.device, torch=torch.__version__, rows=rows), indent=1))


if __name__ == '__main__':
    main()
