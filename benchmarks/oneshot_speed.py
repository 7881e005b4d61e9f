"""One-shot stylisation speed: seconds per fine-tuning step and per W+ projection step, and the time of a full
default run (one reference: 100 projection steps, 300 fine-tuning steps), against a plain generator step
measured in the same run as the reference path.

    python benchmarks/oneshot_speed.py                        # 256x256 paper256-shaped random networks, CPU
    python benchmarks/oneshot_speed.py --device cuda --full   # on a GPU: also the full default run, timed whole

Reference path: one G synthesis forward at batch 1 (the reference's latents), D's forward and a backward into
the synthesis parameters (D frozen), as a generator training step without augmentation. A one-shot step adds
the mapping of a fresh z, fresh noise maps, the L1 on D's block outputs and Adam's update; a projection step is
project.project's (the distance 'auto' picks: VGG16 where its weights are cached, else D's features).
The full run on the CPU is extrapolated from the per-step medians unless --full is given. Random networks (the
speed does not depend on the weights). A measurement for the README, not a test.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import stylegan2_lib as sg                                     # noqa: E402
from stylegan2_lib.devices import default_device               # noqa: E402
from stylegan2_lib.oneshot import DEFAULT_PROJECT_STEPS, train_oneshot     # noqa: E402

DEFAULT_STEPS = 300


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def step_times(device):
    """A callback recording the time of every call, and the list it fills."""
    marks = []
    def callback(*_):
        sync(device)
        marks.append(time.perf_counter())
    return callback, marks


def median_step(marks):
    """Median seconds between calls, leaving out the first step (warm-up)."""
    gaps = np.diff(marks)
    return statistics.median(gaps[1:] if len(gaps) > 1 else gaps)


def reference_step(G, D, ws, device, repeats):
    """Median seconds of synthesis forward + D forward + backward into the synthesis parameters."""
    G.synthesis.requires_grad_(True)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        t = time.perf_counter()
        D(G.synthesis(ws, noise_mode='random', force_fp32=True), None).sum().backward()
        G.synthesis.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - t)
    G.requires_grad_(False)
    return statistics.median(times[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--res', type=int, default=256)
    ap.add_argument('--channel-base', type=int, default=16384, help='paper256: 16384, channel_max 512')
    ap.add_argument('--steps', type=int, default=6, help='fine-tuning steps timed (default: 6)')
    ap.add_argument('--project-steps', type=int, default=6, help='projection steps timed (default: 6)')
    ap.add_argument('--full', action='store_true', help=f'also time a whole default run ({DEFAULT_PROJECT_STEPS} '
                                                         f'projection + {DEFAULT_STEPS} fine-tuning steps)')
    ap.add_argument('--device', default=None)
    args = ap.parse_args()
    device = default_device(args.device)
    torch.manual_seed(0)
    cfg = dict(img_resolution=args.res, channel_base=args.channel_base, channel_max=512)
    G = sg.Generator(**cfg).eval().requires_grad_(False).to(device)
    D = sg.Discriminator(**cfg).eval().requires_grad_(False).to(device)
    reference = np.random.RandomState(0).randint(0, 256, [args.res, args.res, 3], dtype=np.uint8)
    with torch.no_grad():
        ws = G.mapping(torch.randn([1, G.z_dim], device=device), None)

    ref = reference_step(G, D, ws, device, repeats=max(3, args.steps // 2))
    callback, marks = step_times(device)
    run = train_oneshot(G, D, [reference], steps=args.steps, project_steps=args.project_steps, align='off',
                        callback=callback, preview_every=0, device=device, progress=False)
    step = median_step(marks)
    project = _projection_step(G, D, reference, args.project_steps, device)
    overhead = run.seconds['projection'] - args.project_steps * project['step']     # w statistics, first step
    estimate = overhead + DEFAULT_PROJECT_STEPS * project['step'] + DEFAULT_STEPS * step

    print(f'{args.res}x{args.res} random networks (channel_base {args.channel_base}, channel_max 512, G {_params(G)} '
          f'and D {_params(D)} parameters), one reference, device {device}'
          + (f' ({torch.cuda.get_device_name(device)})' if device.type == 'cuda' else '')
          + f', torch {torch.__version__}, {torch.get_num_threads()} threads')
    rows = [('reference: G+D forward/backward step', ref, ''),
            ('one-shot fine-tuning step', step, f' ({step / ref:.2f}x the reference)'),
            (f'W+ projection step ({project["method"]} distance)', project['step'],
             f' ({project["step"] / ref:.2f}x the reference)'),
            (f'full default run ({DEFAULT_PROJECT_STEPS} + {DEFAULT_STEPS} steps), estimated', estimate,
             f' ({estimate / ref:.0f}x the reference step)')]
    for name, seconds, ratio in rows:
        print(f'{name:<52}{seconds:9.3f} s{ratio}')
    if args.full:
        t = time.perf_counter()
        full = train_oneshot(G, D, [reference], device=device, progress=False)
        sync(device)
        total = time.perf_counter() - t
        print(f'{"full default run, timed":<52}{total:9.3f} s ({total / ref:.0f}x the reference step; projection '
              f'{full.seconds["projection"]:.1f} s, fine-tuning {full.seconds["training"]:.1f} s)')


def _projection_step(G, D, reference, steps, device):
    from stylegan2_lib.project import project
    callback, marks = step_times(device)
    p = project(G, reference, steps=steps, w_plus=True, D=D, callback=callback, progress=False)
    return {'step': median_step(marks), 'method': p.method}


def _params(net):
    return f'{sum(p.numel() for p in net.parameters()) / 1e6:.1f}M'


if __name__ == '__main__':
    main()
