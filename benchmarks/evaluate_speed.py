"""Seconds to evaluate one snapshot (every swap choice: render, features, style KID, likeness; plus the copying score),
against rendering the same images alone as the reference, in one run.

    python benchmarks/evaluate_speed.py                       # 256x256 paper256, 64 seeds, 200 style images, CPU
    python benchmarks/evaluate_speed.py --res 64 --device cuda

Random networks (the snapshot is the base with perturbed synthesis weights); features: the base's discriminator
(offline; Inception costs about 0.4 s per image on 2 CPU threads more, see stylegan2_lib.metrics). A measurement
for the README, not a test.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import stylegan2_lib as sg                                     # noqa: E402
from stylegan2_lib import images, metrics                      # noqa: E402
from stylegan2_lib.blend_views import BlendViews, ViewState    # noqa: E402
from stylegan2_lib.evaluate import evaluate                    # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--res', type=int, default=256)
    ap.add_argument('--channel-base', type=int, default=16384)
    ap.add_argument('--seeds', type=int, default=64)
    ap.add_argument('--style', type=int, default=200)
    ap.add_argument('--device', default='cpu')
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = dict(img_resolution=args.res, channel_base=args.channel_base, channel_max=512)
    base, D = sg.Generator(**cfg).eval(), sg.Discriminator(**cfg).eval()
    snap = sg.Generator(**cfg).eval()
    snap.load_state_dict({k: v + 0.05 * torch.randn_like(v) if k.startswith('synthesis') and v.is_floating_point() else v
                          for k, v in base.state_dict().items()})
    style = np.random.RandomState(0).randint(0, 256, [args.style, args.res, args.res, 3], dtype=np.uint8)
    folder = Path(__file__).resolve().parent / '.evaluate-speed-style'
    folder.mkdir(exist_ok=True)
    for i, img in enumerate(style):
        images.save_image(folder / f'{i:04d}.png', img)
    seeds = range(args.seeds)
    views = BlendViews(base, {'snapshot': snap}, device=args.device, max_images=8 * args.seeds)

    t = time.perf_counter()                                     # reference: render every cell's images only
    for _, res in views.choices:
        views.columns(ViewState(snapshot=0, resolution=res, seeds=tuple(seeds), truncation_psi=1.0))
    render = time.perf_counter() - t

    t = time.perf_counter()
    scores = evaluate(base, {'snapshot': snap}, folder, features=metrics.discriminator_features(D, device=args.device),
                      seeds=seeds, D=D, device=args.device, progress=False)
    full = time.perf_counter() - t
    print(f'{args.res}x{args.res}, {args.seeds} seeds x {len(scores.choices)} swap choices, {args.style} style images, '
          f'features {scores.features}, device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads')
    print(f'rendering the cells alone (reference): {render:.1f} s')
    print(f'evaluating one snapshot:               {full:.1f} s ({full / render:.2f}x the rendering; '
          f'{full / len(scores.choices):.1f} s per swap choice)')


if __name__ == '__main__':
    main()
