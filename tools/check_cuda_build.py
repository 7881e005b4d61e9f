"""Compile (and import) the CUDA kernels of stylegan2_lib/ops/cuda/, with or without a GPU; on a GPU also run
them once against the reference ops. Exit status 0 = built (and, on a GPU, correct), 1 = failed.

    # no GPU needed: a CUDA build of PyTorch, nvcc and ninja
    TORCH_CUDA_ARCH_LIST="8.0;9.0" python tools/check_cuda_build.py
    python tools/check_cuda_build.py --build-dir /tmp/sg2-cuda-build --verbose   # a fresh build, compiler output

Without TORCH_CUDA_ARCH_LIST: the visible GPUs' architectures, or 8.0;9.0 when there is none. By default the
build goes where the library puts it (STYLEGAN2_LIB_CUDA_CACHE, else torch's extension dir), so a later
`impl='cuda'` call finds it; --build-dir builds elsewhere (from scratch if the folder is new). The CPU
emulation build used by tests/test_ops_cuda.py needs no CUDA at all: --emulation.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def smoke_test(ext):
    import torch
    from stylegan2_lib import ops
    from stylegan2_lib.ops import cuda_ops
    cuda_ops._extension = lambda: ext
    dev = 'cuda'
    x = torch.randn(4, 32, 16, 16, device=dev)
    b = torch.randn(32, device=dev)
    worst = 0.0
    for act in ops.activation_funcs:
        got = ops.bias_act(x, b, act=act, clamp=1.5, impl='cuda')
        worst = max(worst, (got - ops.bias_act(x, b, act=act, clamp=1.5, impl='ref')).abs().max().item())
    f = ops.setup_filter([1, 3, 3, 1], device=dev)
    for kw in (dict(up=2, padding=[2, 1, 2, 1], gain=4), dict(down=2, padding=1)):
        got = ops.upfirdn2d(x, f, impl='cuda', **kw)
        worst = max(worst, (got - ops.upfirdn2d(x, f, impl='ref', **kw)).abs().max().item())
    torch.cuda.synchronize()
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--build-dir', help='build here instead of the library cache')
    ap.add_argument('--verbose', action='store_true', help='show the ninja / compiler commands and output')
    ap.add_argument('--emulation', action='store_true', help='build the CPU emulation (tests) instead')
    args = ap.parse_args()

    import torch
    from stylegan2_lib.ops import cuda_build
    if not args.emulation and 'TORCH_CUDA_ARCH_LIST' not in os.environ and not torch.cuda.is_available():
        os.environ['TORCH_CUDA_ARCH_LIST'] = '8.0;9.0'
    print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), GPU: '
          f'{torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}, '
          f'TORCH_CUDA_ARCH_LIST={os.environ.get("TORCH_CUDA_ARCH_LIST", "(visible GPUs)")}, '
          f'sources {cuda_build.source_hash()}')
    t0 = time.time()
    try:
        if args.emulation:
            ext = cuda_build.build_cpu_emulation(verbose=args.verbose, build_directory=args.build_dir)
        else:
            ext = cuda_build.build(verbose=args.verbose, require_device=False, build_directory=args.build_dir)
    except Exception as e:                              # noqa: BLE001 (report, exit 1)
        print(f'BUILD FAILED after {time.time() - t0:.0f} s: {e}')
        return 1
    print(f'BUILD OK in {time.time() - t0:.0f} s: {ext.__file__}')
    assert callable(ext.bias_act) and callable(ext.upfirdn2d)
    if not args.emulation and torch.cuda.is_available():
        worst = smoke_test(ext)
        print(f'kernels vs ref on {torch.cuda.get_device_name()}: max|diff| {worst:.3g}')
        if worst > 1e-4:
            print('KERNELS WRONG')
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
