"""The explorer's scores (run_scores.py, explorer.py): the snapshot labels carry the KID and copy flag written into
the snapshots or the run's cached scores; the 'scores' view frames the sliders' cell where the heat map's layout
puts it; the jump button sets exactly the recommended point; scores computed on demand are cached in the run and
reused; without style data the explorer says what to give."""

import io
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip('ipywidgets')

import stylegan2_lib as sg
from stylegan2_lib import run_scores
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.blend_views import ViewState, swap_choices
from stylegan2_lib.evaluate import Scores, load_scores
from stylegan2_lib.explorer import BlendExplorer
from stylegan2_lib.samples import demo_dataset

LABELS = ['epoch 6 (2 kimg)', 'epoch 12 (4 kimg)']
PIXELS = dict(features='pixels', seeds=range(4))


@pytest.fixture(scope='module')
def pair():
    base, toon = sg.load(DEMO_BASE).G_ema, sg.load(DEMO_TOON).G_ema
    halfway = sg.blend(base, toon, weights={r: 0.5 for r in base.synthesis.block_resolutions})   # a stand-in early snapshot
    return base, toon, halfway


def make_run(path, pair, metrics=({}, {}), data=None):
    """A run directory as training leaves it: two snapshots (meta['metrics'] as given), options.json."""
    _, toon, halfway = pair
    path.mkdir()
    (path / 'training-state.pt').write_bytes(b'')
    sg.save(path / 'network-snapshot-kimg000002.000-epoch0006.safetensors', G_ema=halfway, meta={'metrics': metrics[0]})
    sg.save(path / 'network-snapshot-kimg000004.000-epoch0012.safetensors', G_ema=toon, meta={'metrics': metrics[1]})
    (path / 'options.json').write_text(json.dumps({'resume': str(DEMO_BASE), 'data': str(data) if data else None}))
    return path


def made_scores(recommended=(LABELS[1], 8)):
    """Scores written by hand: the 'all high' column (each snapshot itself) 0.5 and 0.25, the first copying."""
    choices = swap_choices(32)
    kid = np.array([[0.5, 0.4, 0.3, 0.2, 0.1], [0.25, 0.2, 0.15, 0.12, 0.11]])
    like = np.array([[0.1, 0.2, 0.5, 0.7, 1.0], [0.1, 0.3, 0.6, 0.8, 1.0]])
    copying = [{'fraction': 0.9, 'median_ratio': 0.2, 'flagged': True}, {'fraction': 0.1, 'median_ratio': 1.1, 'flagged': False}]
    return Scores(labels=list(LABELS), choices=choices, style_kid=kid, likeness=like, likeness_method='structural',
                  copying=copying, features='pixels', comparable=False, num_images=8, num_style=16, min_likeness=0.4,
                  recommended=recommended, pareto=[(LABELS[1], 8), (LABELS[1], 16)])


def decode(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))


@pytest.fixture
def no_evaluate(monkeypatch):
    """evaluate() must not run: the test fails if it does."""
    def refuse(*args, **kwargs):
        raise AssertionError('evaluate ran')
    monkeypatch.setattr(run_scores, 'evaluate', refuse)

#----------------------------------------------------------------------------

def test_labels_carry_the_training_kid_and_copy_flag(pair, tmp_path, no_evaluate):
    run = make_run(tmp_path / '00000-run', pair, metrics=({'kid': 0.0412, 'copy_flagged': False, 'metrics_features': 'pixels'},
                                                         {'kid': 0.0123, 'copy_flagged': True, 'metrics_features': 'pixels'}))
    ex = BlendExplorer(pair[0], run, seeds='0', outdir=tmp_path / 'out')
    assert [label for label, _ in ex.snapshot.options] == ['epoch 6 (2 kimg) · KID 0.0412', 'epoch 12 (4 kimg) · KID 0.0123 · copying']
    assert 'training --metrics; features: pixels' in ex.scores_note.value
    assert ex.jump_button.disabled and ex.scores is None
    plain = make_run(tmp_path / '00001-plain', pair, metrics=({'kid': 'n/a', 'copy_flagged': 'yes'}, {}))   # no numbers
    assert [label for label, _ in BlendExplorer(pair[0], plain, seeds='0').snapshot.options] == LABELS


def test_cached_scores_label_the_snapshots_when_they_match(pair, tmp_path, no_evaluate):
    run = make_run(tmp_path / '00000-run', pair, metrics=({'kid': 0.0412}, {'kid': 0.0123}))
    made_scores().save(run / 'scores')
    ex = BlendExplorer(pair[0], run, seeds='0', outdir=tmp_path / 'out')
    assert [label for label, _ in ex.snapshot.options] == ['epoch 6 (2 kimg) · KID 0.5 · copying', 'epoch 12 (4 kimg) · KID 0.25']
    assert "the run's scores" in ex.scores_note.value and 'Recommended: epoch 12 (4 kimg), swap at 8' in ex.scores_note.value
    other = made_scores(recommended=None)
    other.labels, other.pareto = ['epoch 6 (2 kimg)', 'epoch 9 (3 kimg)'], []    # scores of other snapshots: not used
    other.save(run / 'scores')
    ex = BlendExplorer(pair[0], run, seeds='0', outdir=tmp_path / 'out')
    assert ex.scores is None and [label for label, _ in ex.snapshot.options][1] == 'epoch 12 (4 kimg) · KID 0.0123'


def frame_at(img, panel_w, label_w, row, col, cell=(58, 26), top=30):
    """Whether cell (row, col) of both panels carries the frame: black 3 px inside its edge, white 4 px inside."""
    cw, ch = cell
    found = []
    for p in range(2):
        x0, y0 = p * panel_w + label_w + col * cw, top + row * ch
        x1, y1 = x0 + cw - 1, y0 + ch - 1
        black = np.concatenate([img[y0 + 3, x0 + 3: x1 - 2], img[y1 - 3, x0 + 3: x1 - 2], img[y0 + 3: y1 - 2, x0 + 3]])
        white = np.concatenate([img[y0 + 4, x0 + 4: x1 - 3], img[y1 - 4, x0 + 4: x1 - 3], img[y0 + 4: y1 - 3, x1 - 4]])
        found.append(bool((black == 0).all() and (white == 255).all()))
    assert found[0] == found[1]
    return found[0]


def test_scores_view_frames_the_sliders_cell(pair, tmp_path, no_evaluate):
    run = make_run(tmp_path / '00000-run', pair)
    scores = made_scores()
    scores.save(run / 'scores')
    ex = BlendExplorer(pair[0], run, seeds='0', resolution=16, outdir=tmp_path / 'out')
    ex.mode.value = 'scores'
    assert ex.scores_box in ex.children and ex.columns_box not in ex.children
    # The heat map's layout (figures.heatmap_panels): rows labelled '<label> (copies)' for a copying snapshot, 6 px a
    # character + 8; 30 px of titles above the cells of 58 x 26; 12 px after each panel.
    rows = ['epoch 6 (2 kimg) (copies)', 'epoch 12 (4 kimg)']
    label_w = 8 + 6 * max(len(r) for r in rows)
    panel_w = label_w + 58 * len(scores.choices) + 12
    cells = [(i, j) for i in range(2) for j in range(5)]

    def framed():
        img = decode(ex.scores_image.value)
        assert img.shape[1] == 2 * panel_w
        return [c for c in cells if frame_at(img, panel_w, label_w, *c)]

    assert framed() == [(1, 3)]                         # the last snapshot, swap at 16 (column 3 of 0, 4, 8, 16, all low)
    ex.swap.value = 4
    assert framed() == [(1, 1)]
    ex.snapshot.value = 0
    assert framed() == [(0, 1)]
    assert 'nearest' not in ex.scores_caption.value
    ex.width.value = 1.0                                # a smooth blend was not scored: the caption says so
    assert framed() == [(0, 1)] and 'nearest' in ex.scores_caption.value


def test_jump_sets_exactly_the_recommended_point(pair, tmp_path, no_evaluate):
    run = make_run(tmp_path / '00000-run', pair)
    made_scores().save(run / 'scores')
    ex = BlendExplorer(pair[0], run, seeds='0', resolution=32, outdir=tmp_path / 'out')
    ex.mode.value = 'scores'                            # (renders no blends while the sliders move)
    ex.snapshot.value, ex.width.value, ex.low_from.value = 0, 2.0, False
    assert not ex.jump_button.disabled
    ex.jump_button.click()
    assert (ex.views.labels[ex.snapshot.value], ex.swap.value) == (LABELS[1], 8)
    assert ex.state() == ViewState(snapshot=1, resolution=8, width=0.0, truncation_psi=0.7, seeds=(0,), base_is_low=True)
    made_scores(recommended=None).save(run / 'scores')                           # nothing meets the thresholds
    ex = BlendExplorer(pair[0], run, seeds='0', resolution=32, outdir=tmp_path / 'out')
    assert ex.jump_button.disabled and ex.jump_button.tooltip.startswith('none: no blend keeps likeness >= 0.4')
    assert ex.jump_to_recommended() is None and ex.swap.value == 32


def test_scores_computed_on_demand_are_cached_in_the_run_and_reused(pair, tmp_path, monkeypatch):
    calls, evaluate = [], run_scores.evaluate
    monkeypatch.setattr(run_scores, 'evaluate', lambda *a, **kw: calls.append(kw) or evaluate(*a, **kw))
    data = demo_dataset(tmp_path / 'style.zip', count=8)
    run = make_run(tmp_path / '00000-run', pair, data=data)
    ex = BlendExplorer(DEMO_BASE, run, seeds='0', outdir=tmp_path / 'out', score_options=PIXELS)
    assert ex.scores is None and ex.jump_button.disabled and not (run / 'scores.json').exists()
    ex.mode.value = 'scores'
    assert 'Compute scores' in ex.scores_caption.value
    ex.compute_button.click()
    assert len(calls) == 1 and calls[0]['progress'] is True and calls[0]['features'] == 'pixels'
    saved = load_scores(run / 'scores.json')
    assert saved.labels == LABELS and saved.num_images == 4 and saved.num_style == 8
    assert [label for label, _ in ex.snapshot.options] == [f'{LABELS[i]} · KID {saved.style_kid[i, 0]:.3g}'
                                                          + (' · copying' if saved.copying[i]['flagged'] else '') for i in range(2)]
    assert ex.scores_image.value and 'cached in' in ex.status.value
    assert ex.jump_button.disabled == (saved.recommended is None)
    again = BlendExplorer(DEMO_BASE, run, seeds='0', outdir=tmp_path / 'out', score_options=PIXELS)
    assert len(calls) == 1 and again.scores.to_dict() == saved.to_dict()
    assert [label for label, _ in again.snapshot.options] == [label for label, _ in ex.snapshot.options]


def test_without_style_data_compute_says_what_to_give(pair, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(run_scores, 'evaluate', lambda *a, **kw: calls.append((a, kw)) or made_scores())
    base, toon, halfway = pair
    snapshots = {LABELS[0]: halfway, LABELS[1]: toon}                           # networks, no run: nothing records the data
    ex = BlendExplorer(base, snapshots, seeds='0', outdir=tmp_path / 'out')
    assert 'give <code>style_data=</code>' in ex.scores_note.value
    ex.compute_button.click()
    assert calls == [] and ex.scores is None
    assert 'no style data known' in ex.scores_note.value and 'style_data=' in ex.scores_note.value
    # Given explicitly, the style data reaches evaluate; with no run the scores are cached in outdir.
    ex = BlendExplorer(base, snapshots, seeds='0', outdir=tmp_path / 'out', style_data=tmp_path / 'style')
    ex.compute_button.click()
    assert calls[0][0][2] == tmp_path / 'style' and calls[0][0][1] == snapshots
    assert load_scores(tmp_path / 'out' / 'scores.json').recommended == (LABELS[1], 8)
    assert [label for label, _ in ex.snapshot.options][0] == 'epoch 6 (2 kimg) · KID 0.5 · copying'
