"""Choosing the snapshot and the swap point by measurement (evaluate.py, train/measure.py): the choice rule against
its definition, evaluate end to end on the demo pair with offline features, a copying snapshot excluded, the
scores' files, the CLI, and training --metrics (which must not change what training does)."""

import itertools
import json

import numpy as np
import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import images
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.cli import main
from stylegan2_lib.evaluate import Scores, evaluate, load_scores, recommend
from stylegan2_lib.samples import demo_dataset
from stylegan2_lib.train import TrainOptions, list_snapshots, train
from stylegan2_lib.train.state import read_metrics

from conftest import TINY32, make_faces

#----------------------------------------------------------------------------
# The rule: the most stylised allowed cell; the Pareto front by brute force over the definition.

def pareto_by_definition(kid, like, rows):
    cells = [c for c in itertools.product(range(kid.shape[0]), range(kid.shape[1])) if c[0] in rows]
    def dominated(c):
        return any(kid[o] <= kid[c] and like[o] >= like[c] and (kid[o], like[o]) != (kid[c], like[c]) for o in cells)
    return sorted(c for c in cells if not dominated(c))


@pytest.mark.parametrize('seed', range(5))
def test_recommend_is_the_most_stylised_blend_within_the_thresholds(seed):
    rng = np.random.RandomState(seed)
    kid, like = rng.rand(3, 5), rng.rand(3, 5)
    flagged = [False, seed % 2 == 1, False]
    best, pareto = recommend(kid, like, flagged, 0.4)
    rows = [i for i in range(3) if not flagged[i]]
    allowed = [(i, j) for i in rows for j in range(5) if like[i, j] >= 0.4]
    assert best == min(allowed, key=lambda c: kid[c])
    assert pareto == pareto_by_definition(kid, like, rows)
    assert recommend(kid, like, [True] * 3, 0.4) == (None, [])
    assert recommend(kid, like, flagged, 1.1)[0] is None                    # nothing alike enough


#----------------------------------------------------------------------------
# End to end on the demo pair, offline.

@pytest.fixture(scope='module')
def style_zip(tmp_path_factory):
    return demo_dataset(tmp_path_factory.mktemp('style') / 'style.zip')


@pytest.fixture(scope='module')
def copies_zip(tmp_path_factory):
    """The training set a memorising snapshot would reproduce: demo-toon's own images for evaluate's seeds."""
    folder = tmp_path_factory.mktemp('copies')
    G = sg.load(DEMO_TOON).G_ema
    for i, img in enumerate(images.to_uint8(images.generate_images(G, range(16), truncation_psi=1.0, progress=False))):
        images.save_image(folder / f'{i:02d}.png', img)
    return folder


def test_evaluate_the_demo_pair_offline(style_zip, tmp_path):
    # On the CPU, where the same network evaluated twice gives the same bits (on CUDA the last bits may differ)
    scores = evaluate(DEMO_BASE, {'toon': DEMO_TOON, 'toon again': DEMO_TOON}, style_zip, features='pixels',
                      seeds=range(24), device='cpu', progress=False)
    assert scores.labels == ['toon', 'toon again'] and [r for _, r in scores.choices] == [0, 4, 8, 16, 32]
    assert scores.style_kid.shape == scores.likeness.shape == (2, 5)
    np.testing.assert_array_equal(scores.style_kid[0], scores.style_kid[1])          # same network, same numbers
    assert scores.likeness[0, -1] == pytest.approx(1.0)                              # 'all low' = the base itself
    assert scores.likeness[0, 0] < scores.likeness[0, 3]                             # more of the base kept at 16
    assert scores.style_kid[0, 0] < scores.style_kid[0, -1]                          # the snapshot is the style's
    assert scores.likeness_method == 'structural' and not scores.comparable
    assert [c['flagged'] for c in scores.copying] == [False, False]
    label, res = scores.recommended
    i, j = scores.cell(label, res)
    assert scores.likeness[i, j] >= scores.min_likeness
    # Files: json round trip, the table, the heat map.
    paths = scores.save(tmp_path / 'scores')
    back = load_scores(paths[0])
    assert back.recommended == scores.recommended and back.pareto == scores.pareto
    np.testing.assert_array_equal(back.style_kid, scores.style_kid)
    assert 'recommended: toon' in paths[1].read_text()
    heat = np.asarray(sg.images.to_pil(scores.heatmap()))
    assert heat.ndim == 3 and heat.shape[2] == 3 and paths[2].stat().st_size > 0


def test_a_snapshot_that_returns_its_training_images_is_never_recommended(copies_zip):
    scores = evaluate(DEMO_BASE, {'copier': DEMO_TOON}, copies_zip, features='pixels', seeds=range(16), progress=False)
    assert scores.copying[0]['flagged'] and scores.copying[0]['fraction'] > 0.9
    assert scores.recommended is None and scores.pareto == []
    assert 'COPIES' in scores.table() and 'none' in scores.recommendation_text()

#----------------------------------------------------------------------------
# The command line.

def test_cli_evaluate_files_and_errors(capsys, style_zip, tmp_path):
    rc = main(['evaluate', '--base', str(DEMO_BASE), '--run', str(DEMO_TOON), '--data', str(style_zip),
               '--features', 'pixels', '--seeds', '0-11', '--outdir', str(tmp_path / 'out'), '--device', 'cpu'])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['scores.json', 'scores.png', 'scores.txt']
    assert 'recommended:' in out and json.loads((tmp_path / 'out' / 'scores.json').read_text())['num_images'] == 12
    rc = main(['evaluate', '--run', str(DEMO_TOON), '--data', str(style_zip)])
    assert rc == 1 and 'give --base and --data' in capsys.readouterr().err

#----------------------------------------------------------------------------
# Training --metrics: scores at every snapshot, in the log and the snapshot; the training itself unchanged.

def test_training_metrics_are_logged_and_change_nothing(tmp_path):
    (tmp_path / 'faces').mkdir()
    faces = make_faces(tmp_path / 'faces', 12, seed=3)
    base = dict(data=str(faces), resume=str(TINY32), kimg=0.016, snap=0.008, tick=0.008, batch=4, workers=0,
                sample_seeds=4, p=0.2, device='cpu')
    plain = train(TrainOptions(outdir=str(tmp_path / 'plain'), **base))
    measured = train(TrainOptions(outdir=str(tmp_path / 'measured'), metrics=('kid', 'fid', 'copy'), metrics_images=12,
                                  metrics_features='discriminator', **base))
    for (_, _, a), (_, _, b) in zip(list_snapshots(plain), list_snapshots(measured)):
        sa, sb = sg.load(a).G_ema.state_dict(), sg.load(b).G_ema.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), 'measuring changed the training'
    records = read_metrics(measured)
    assert [r['nimg'] for r in records] == [8, 16] and all('kid' not in r for r in read_metrics(plain))
    for r in records:
        assert np.isfinite(r['kid']) and np.isfinite(r['fid']) and 0 <= r['copy_fraction'] <= 1
        assert 'discriminator' in r['metrics_features'] and r['metrics_sec'] > 0
    meta = sg.load(list_snapshots(measured)[-1][2]).meta['metrics']
    assert meta['kid'] == records[-1]['kid'] and meta['copy_flagged'] == records[-1]['copy_flagged']
    with pytest.raises(ValueError, match='metrics must be among'):
        TrainOptions(data='d', outdir='o', metrics=('is',))
