"""Blend explorer latency: how long one slider move takes, through the widget, for a pair of generators of
a given size (random weights: the time depends on the architecture only).

    python benchmarks/explorer_latency.py                      # 64x64 (paper256 channels), 4 seeds, CPU
    python benchmarks/explorer_latency.py --res 256 --device cuda

Times (median of --repeats) for: the first view (three columns rendered), a swap-slider move to a swap
point not seen yet (one blend built + one column rendered + PNG), a move back to one seen before (cache
only), a new seed (one tile per column), and a snapshot change to a file not loaded yet (read + render two
columns), each timed with the reference ops and with the default (fast) ops, interleaved, and the ratio
ref / fast. A measurement for the README, not a test.
"""

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import stylegan2_lib as sg
from stylegan2_lib import ops
from stylegan2_lib.explorer import BlendExplorer


def perturbed(G, seed, scale=0.05):
    """A copy of G with every synthesis weight nudged: a stand-in for a fine-tuned snapshot."""
    out = sg.Generator(G.cfg)
    out.load_state_dict(G.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in out.named_parameters():
            if name.startswith('synthesis.'):
                p.add_(torch.randn(p.shape, generator=g) * scale * (p.std() if p.numel() > 1 else 1))
    return out.eval()


IMPLS = ('ref', 'fast')

def measure(base, snapshot_files, args, outdir, rows):
    """One explorer's life: first view, then each kind of slider move, each timed once into rows[kind]."""
    ex = None
    def first():
        nonlocal ex                               # shows the last snapshot first
        ex = BlendExplorer(base, list(snapshot_files), seeds=f'0-{args.seeds - 1}', resolution=16, device=args.device, outdir=outdir)
    rows['first view'].append(timed(first))
    rows['swap move (new)'].append(timed(lambda: setattr(ex.swap, 'value', 8)))
    rows['swap move (seen)'].append(timed(lambda: setattr(ex.swap, 'value', 16)))
    rows['new seed'].append(timed(lambda: setattr(ex.seeds, 'value', f'0-{args.seeds}')))
    rows['snapshot change (new file)'].append(timed(lambda: setattr(ex.snapshot, 'value', 0)))

def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--res', type=int, default=64)
    ap.add_argument('--channel-base', type=int, default=16384, help='paper256 channels (16384, max 512)')
    ap.add_argument('--seeds', type=int, default=4)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--device', default='cpu')
    args = ap.parse_args()
    torch.manual_seed(0)
    base = sg.Generator(sg.GeneratorConfig(img_resolution=args.res, channel_base=args.channel_base, channel_max=512)).eval()
    names = ('first view', 'swap move (new)', 'swap move (seen)', 'new seed', 'snapshot change (new file)')
    rows = {(impl, k): [] for impl in IMPLS for k in names}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(2 * args.repeats * len(IMPLS)):
            files.append(Path(tmp) / f'snap{i}.safetensors')
            sg.save(files[-1], G_ema=perturbed(base, i))
        pairs = iter(zip(files[0::2], files[1::2]))
        for r in range(args.repeats):
            for impl in IMPLS:                     # interleaved, so other load on the machine skews both alike
                with ops.use_impl(impl):
                    measure(base, next(pairs), args, tmp, {k: rows[(impl, k)] for k in names})
    device = torch.cuda.get_device_name() if args.device == 'cuda' else f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'
    print(f'explorer latency, {args.res}x{args.res}, channel_base {args.channel_base}, {args.seeds} seeds, {args.device} ({device}), '
          f'torch {torch.__version__}, median of {args.repeats}')
    print(f'  {"":28s} {"ref ops":>10s} {"fast ops":>10s} {"ref / fast":>10s}')
    for name in names:
        ref, fast = (statistics.median(rows[(impl, name)]) for impl in IMPLS)
        print(f'  {name:28s} {ref * 1000:8.1f} ms {fast * 1000:8.1f} ms {ref / fast:9.2f}x')


if __name__ == '__main__':
    main()
