"""How much KID moves with the images drawn, at the sizes evaluate() uses: the numbers behind docs/scores.md.

    python tools/kid_spread.py                 # the bundled demo pair, thumbnail features, offline (a minute)

For every swap choice of the demo pair, KID of the blend's images to the demo's 32 style images (its stand-in
style set), measured on --sets disjoint sets of --seeds seeds each: the mean, the standard deviation over the
sets, and the gap to the next swap choice. A cell's difference from its neighbour means something only when it
is well above the spread.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan2_lib import metrics, samples                          # noqa: E402
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON               # noqa: E402
from stylegan2_lib.blend_views import BlendViews, ViewState         # noqa: E402
from stylegan2_lib.evaluate import style_images                     # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=64, help='images per set (evaluate: 64)')
    ap.add_argument('--sets', type=int, default=8)
    ap.add_argument('--style', type=int, default=32, help='style images (the demo: 32)')
    args = ap.parse_args()
    views = BlendViews(DEMO_BASE, {'demo-toon': DEMO_TOON}, device='cpu', max_images=4 * args.seeds)
    extractor = metrics.pixel_features()
    with tempfile.TemporaryDirectory() as tmp:
        style = style_images(samples.demo_dataset(Path(tmp) / 'style.zip', count=args.style), views.base.img_resolution)
    style_feats = extractor(style, progress=False)
    table = []
    for name, res in views.choices:
        kids = []
        for s in range(args.sets):
            seeds = tuple(range(s * args.seeds, (s + 1) * args.seeds))
            blend = views.columns(ViewState(snapshot=0, resolution=res, seeds=seeds, truncation_psi=1.0))['blend']
            kids.append(metrics.kid(extractor(blend, progress=False), style_feats))
        table.append((name, float(np.mean(kids)), float(np.std(kids, ddof=1))))
    print(f'KID ({extractor.name}) of {args.seeds} blend images to {len(style)} style images, over {args.sets} '
          f'disjoint seed sets:')
    print(f'{"swap":>8} {"mean":>8} {"std":>8} {"gap to next":>12} {"gap / std":>10}')
    for k, (name, mean, std) in enumerate(table):
        gap = abs(table[k + 1][1] - mean) if k + 1 < len(table) else float('nan')
        print(f'{name:>8} {mean:8.4f} {std:8.4f} {gap:12.4f} {gap / std:10.1f}')


if __name__ == '__main__':
    main()
