"""Make the README tour's figures from the bundled demo, with the library calls the notebooks make:

    python tools/make_tour.py        # a few minutes on a 2-core CPU; writes docs/tour-*.png

1. training: fine-tune demo-base on 64 images drawn by demo-toon (the notebooks' offline stand-in for a
   cartoon set) for 4 kimg with a snapshot every kimg: the run's last sample grid and its curves;
2. the explorer's two views for that run: low | blend | high, and every swap point for one snapshot;
3. the epoch x swap-point figure over the run's snapshots.
The explorer screenshot (docs/tour-explorer.png) is the one tests/test_explorer_browser.py takes in Chromium.
"""

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import stylegan2_lib as sg  # noqa: E402
from stylegan2_lib import images, notebook as nb, samples  # noqa: E402
from stylegan2_lib.assets import DEMO_BASE  # noqa: E402
from stylegan2_lib.blend_views import BlendViews, ViewState  # noqa: E402
from stylegan2_lib.train import list_snapshots  # noqa: E402
from stylegan2_lib.train.state import read_metrics  # noqa: E402

DOCS = ROOT / 'docs'


def main():
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data = samples.demo_dataset(work / 'toon-32.zip', count=64)
        run = sg.train(sg.TrainOptions(data=str(data), outdir=str(work / 'runs'), resume=str(DEMO_BASE), kimg=4, snap=1,
                                       tick=0.5, batch=8, workers=0, sample_seeds=16, mirror=True))
        snaps = list_snapshots(run)
        shutil.copyfile(snaps[-1][2].with_suffix('.png'), DOCS / 'tour-training-samples.png')
        nb.plot_metrics(read_metrics(run), DOCS / 'tour-training-curves.png')

        views = BlendViews(DEMO_BASE, run)
        v = ViewState(snapshot=-1, resolution=8, seeds=(0, 1, 2, 3))
        cols = views.columns(v)
        tiles = images.enlarge(np.concatenate([cols['low'], cols['blend'], cols['high']]), 96)
        grid = images.make_grid(tiles.reshape(3, 4, *tiles.shape[1:]).transpose(1, 0, 2, 3, 4).reshape(-1, *tiles.shape[1:]), cols=3)
        labels = views.column_labels(v)
        images.save_image(DOCS / 'tour-blend.png', images.add_column_labels(grid, [labels[k] for k in ('low', 'blend', 'high')], tiles.shape[2]))
        images.save_image(DOCS / 'tour-compare.png', views.compare(v, min_tile=64))
        images.save_image(DOCS / 'tour-epoch-x-swap.png', views.epoch_swap_grid(seed=2, min_tile=64))
    print('wrote', ', '.join(sorted(p.name for p in DOCS.glob('tour-*.png'))))


if __name__ == '__main__':
    main()
