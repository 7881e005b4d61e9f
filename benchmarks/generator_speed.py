"""Generator speed: the fast ops against the reference ops, images/s and their ratio.

    python benchmarks/generator_speed.py            # 64x64 and 256x256 (paper256 config), batch 1 and 4,
                                                    # and a projection step (forward + backward, batch 1)
    python benchmarks/generator_speed.py --quick    # paper256, batch 4 only, one round

Each case builds a randomly initialised generator with NVlabs's channel formula (channel_base 16384,
channel_max 512, 8 mapping layers: their paper256 config at 256x256) and times G(z) under torch.no_grad()
with every op on the reference path ('ref', via ops.use_impl) or on the library's defaults ('fast'). Each
timing runs in a fresh worker process (warm-up, then the best of several calls): in one process the two
paths would share the memory allocator's state, which on CPU moves small-batch timings by up to 50%.
Workers alternate ref, fast, ref, fast, ... so load from other processes skews both alike; printed are each
path's best and the median of the per-round ratios. The script also measures this machine's float32
matrix-multiply peak (the best of a few large torch.mm) and reports the fast path's achieved GFLOP/s as a
fraction of it, counting the network's multiply-adds analytically (2 FLOPs each: convolutions as computed,
the up layers' transposed convolutions on their input pixels, ToRGB, the affines and the mapping MLP; the
FIR filters and elementwise work are not counted). A measurement to report, not a test.
"""

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time

import torch

from stylegan2_lib import ops
from stylegan2_lib.generator import Generator, GeneratorConfig
from stylegan2_lib.layers import FullyConnectedLayer

CASES = [('generate', 64, 1), ('generate', 64, 4), ('generate', 256, 1), ('generate', 256, 4), ('project', 256, 1)]
QUICK = [('generate', 256, 4)]

#----------------------------------------------------------------------------
# Float32 matmul peak: the best of a few big square products, GFLOP/s.

def matmul_peak(sizes=(2048, 4096), repeats=5):
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best

#----------------------------------------------------------------------------
# Multiply-adds of one image, x2: mapping MLP, every layer's affine, its convolution, ToRGB.

def generator_flops(G):
    macs = sum(m.in_features * m.out_features for m in G.mapping.modules() if isinstance(m, FullyConnectedLayer))
    for block in G.synthesis.blocks():
        for layer in block.conv_layers() + [block.torgb]:
            out_channels, in_channels, kh, kw = layer.weight.shape
            in_res = block.resolution // getattr(layer, 'up', 1)
            macs += layer.affine.in_features * layer.affine.out_features
            macs += out_channels * in_channels * kh * kw * in_res ** 2
    return 2 * macs

#----------------------------------------------------------------------------
# The timed work. 'generate': G(z) without autograd. 'project': one projection step's generator work,
# synthesis forward + backward to ws with the weights frozen.

def build(res, seed=0):
    torch.manual_seed(seed)
    cfg = GeneratorConfig(img_resolution=res, channel_base=16384, channel_max=512, mapping_layers=8)
    return Generator(cfg).eval().requires_grad_(False)


def make_task(kind, res, batch):
    G = build(res)
    z = torch.randn([batch, G.z_dim], generator=torch.Generator().manual_seed(1))
    if kind == 'generate':
        def fn():
            with torch.no_grad():
                return G(z, noise_mode='const')
        return fn
    ws = G.mapping(z, None)

    def fn():
        w = ws.clone().requires_grad_()
        G.synthesis(w, noise_mode='const').square().mean().backward()
    return fn


def path_context(path):
    return ops.use_impl('ref') if path == 'ref' else contextlib.nullcontext()

#----------------------------------------------------------------------------
# Worker: warm up, then the best of at least 3 calls (more while under `budget` seconds), seconds.

def worker(path, kind, res, batch, budget=2.0):
    fn = make_task(kind, res, batch)
    times = []
    with path_context(path):
        fn()
        fn()                                    # oneDNN primitive caches, allocator
        start = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 30):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    print(json.dumps({'best': min(times)}))


def spawn(path, kind, res, batch, threads):
    cmd = [sys.executable, __file__, '--worker', path, kind, str(res), str(batch)]
    if threads:
        cmd += ['--threads', str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])['best']

#----------------------------------------------------------------------------
# One case: alternate ref and fast workers; print best rates, the median ratio and (generate) the
# agreement of the two paths and the fast path's share of the matmul peak.

def max_difference(res, batch):
    fn = make_task('generate', res, batch)
    with ops.use_impl('ref'):
        ref = fn()
    return (fn() - ref).abs().max().item()


def run_case(kind, res, batch, rounds, peak, threads):
    times = {'ref': [], 'fast': []}
    for _ in range(rounds):
        for path in times:
            times[path].append(spawn(path, kind, res, batch, threads))
    best = {path: min(t) for path, t in times.items()}
    ratio = statistics.median(r / f for r, f in zip(times['ref'], times['fast']))
    ref_rate, fast_rate = batch / best['ref'], batch / best['fast']
    head = f'{res:>4}x{res:<4} batch {batch}'
    if kind == 'project':
        print(f'{head} projection step (forward + backward to ws): ref {ref_rate:6.2f} steps/s   '
              f'fast {fast_rate:6.2f} steps/s   x{fast_rate / ref_rate:4.2f} (median x{ratio:4.2f})')
        return
    gflops = fast_rate * generator_flops(build(res)) / 1e9
    print(f'{head}: ref {ref_rate:6.2f} img/s   fast {fast_rate:6.2f} img/s   x{fast_rate / ref_rate:4.2f} '
          f'(median x{ratio:4.2f})   {gflops / fast_rate:5.2f} GFLOP/img -> {gflops:6.1f} GFLOP/s = '
          f'{gflops / peak:4.0%} of peak   (max|fast - ref| {max_difference(res, batch):.1e})')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='paper256 batch 4 only, one round')
    ap.add_argument('--rounds', type=int, default=2, help='worker pairs (ref, fast) per case')
    ap.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch\'s)')
    ap.add_argument('--worker', nargs=4, metavar=('PATH', 'KIND', 'RES', 'BATCH'), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        path, kind, res, batch = args.worker
        return worker(path, kind, int(res), int(batch))
    peak = matmul_peak()
    name = f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}'
    print(f'cpu ({name}); float32 matmul peak {peak:.0f} GFLOP/s; defaults: '
          + ', '.join(f'{op}={ops.get_default_impl(op)}' for op in ('modulated_conv2d_bias_act', 'upfirdn2d',
                                                                     'conv2d_resample', 'bias_act')))
    for kind, res, batch in (QUICK if args.quick else CASES):
        run_case(kind, res, batch, 1 if args.quick else args.rounds, peak, args.threads)


if __name__ == '__main__':
    main()
