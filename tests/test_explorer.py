"""The blend explorer, driven from pytest: sliders change exactly the images they should, against blends
and renders computed here independently; the export button writes the blend that is shown."""

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip('ipywidgets')

import stylegan2_lib as sg
from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
from stylegan2_lib.blend import feature_swap_images
from stylegan2_lib.blend_views import BlendViews, ViewState, swap_choices
from stylegan2_lib.explorer import BlendExplorer
from stylegan2_lib.images import seed_latents, to_uint8


@pytest.fixture(scope='module')
def pair():
    base, toon = sg.load(DEMO_BASE).G_ema, sg.load(DEMO_TOON).G_ema
    halfway = sg.blend(base, toon, weights={r: 0.5 for r in base.synthesis.block_resolutions})   # a stand-in early snapshot
    return base, toon, halfway


def render(G, base, seeds, psi=0.7):
    """What a tile must show: G's synthesis on the base mapping's truncated w, as the views define it."""
    with torch.no_grad():
        ws = base.mapping(seed_latents(seeds, base.z_dim), None, truncation_psi=psi)
        return to_uint8(G.synthesis(ws, noise_mode='const'))


def decode(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))


def test_swap_choices_run_from_all_high_to_all_low():
    assert swap_choices(64) == [('all high', 0), ('4', 4), ('8', 8), ('16', 16), ('32', 32), ('all low', 64)]


def test_columns_are_low_blend_high_renders(pair):
    base, toon, _ = pair
    views = BlendViews(base, {'toon': toon}, device='cpu')               # render() below runs on the CPU
    cols = views.columns(ViewState(snapshot=0, resolution=8, seeds=(3, 4)))
    assert np.array_equal(cols['low'], render(base, base, [3, 4]))
    assert np.array_equal(cols['high'], render(toon, base, [3, 4]))
    assert np.array_equal(cols['blend'], render(sg.blend(base, toon, 8), base, [3, 4]))
    flipped = views.columns(ViewState(snapshot=0, resolution=8, seeds=(3,), base_is_low=False))
    assert np.array_equal(flipped['blend'], render(sg.blend(toon, base, 8, mapping='high'), base, [3]))
    ends = [views.columns(ViewState(snapshot=0, resolution=r, seeds=(3,)))['blend'] for r in (0, 32)]
    assert np.array_equal(ends[0], cols['high'][:1]) and np.array_equal(ends[1], cols['low'][:1])


def test_sliders_render_only_what_changed(pair, tmp_path):
    base, toon, halfway = pair
    ex = BlendExplorer(base, {'early': halfway, 'late': toon}, seeds='0-1', resolution=16, outdir=tmp_path, device='cpu')
    before = {k: im.value for k, im in ex.images.items()}
    tile = decode(before['blend'])[: ex.tile, : ex.tile]      # seed 0's tile, enlarged k times (nearest)
    k = ex.tile // 32
    assert np.array_equal(tile[::k, ::k], render(sg.blend(base, toon, 16), base, [0])[0])

    renders = ex.views.renders
    ex.swap.value = 8                                   # only the blended column is new
    assert ex.views.renders == renders + 1
    assert ex.images['blend'].value != before['blend']
    assert ex.images['low'].value == before['low'] and ex.images['high'].value == before['high']
    assert np.array_equal(decode(ex.images['blend'].value)[: ex.tile, : ex.tile][::k, ::k], render(sg.blend(base, toon, 8), base, [0])[0])

    ex.swap.value = 16                                  # seen before: from the cache, nothing rendered
    assert ex.views.renders == renders + 1 and ex.images['blend'].value == before['blend']

    ex.snapshot.value = 0                               # the earlier snapshot: blend and high change, low does not
    assert ex.images['low'].value == before['low'] and ex.images['high'].value != before['high']
    assert np.array_equal(decode(ex.images['high'].value)[: ex.tile, : ex.tile][::k, ::k], render(halfway, base, [0])[0])

    ex.seeds.value = '0-2'                              # one new seed: one tile per column, three renders
    renders = ex.views.renders
    ex.seeds.value = '0-2'
    assert ex.views.renders == renders
    assert decode(ex.images['low'].value).shape[0] == 3 * ex.tile + 2 * 2

    ex.seeds.value = 'zero'                             # a bad seed box says so and keeps the images
    assert 'seeds' in ex.status.value and ex.images['low'].value


def test_width_and_truncation_reach_the_render(pair, tmp_path):
    base, toon, _ = pair
    ex = BlendExplorer(base, [toon], seeds='5', resolution=8, outdir=tmp_path, device='cpu')
    k = ex.tile // 32
    ex.width.value = 1.0
    assert np.array_equal(decode(ex.images['blend'].value)[::k, ::k], render(sg.blend(base, toon, 8, width=1.0), base, [5])[0])
    ex.psi.value = 0.3
    assert np.array_equal(decode(ex.images['low'].value)[::k, ::k], render(base, base, [5], psi=0.3)[0])


def test_compare_mode_shows_every_swap(pair, tmp_path):
    base, toon, _ = pair
    ex = BlendExplorer(base, [toon], seeds='0', outdir=tmp_path, device='cpu')
    ex.mode.value = 'compare'
    assert ex.compare_box in ex.children and ex.columns_box not in ex.children
    grid = decode(ex.compare_image.value)
    tile = grid.shape[0] - 14                           # one row, under the labels
    choices = swap_choices(32)
    assert grid.shape[1] == len(choices) * (tile + 2) - 2
    k = tile // 32
    for i, (_, r) in enumerate(choices):
        shown = grid[14:, i * (tile + 2): i * (tile + 2) + tile][::k, ::k]
        assert np.array_equal(shown, render(sg.blend(base, toon, r), base, [0])[0]), r


def test_export_button_writes_the_shown_blend(pair, tmp_path):
    base, toon, halfway = pair
    ex = BlendExplorer(base, {'early': halfway, 'late': toon}, seeds='0', resolution=16, outdir=tmp_path / 'out', device='cpu')
    ex.format.value = 'native'
    ex.export_button.click()
    first = ex.last_export
    assert first.name == 'blend-late-swap16.safetensors' and 'download' in ex.link.value
    want = sg.blend(base, toon, 16).state_dict()
    got = sg.load(first).G_ema.state_dict()
    assert all(torch.equal(got[name], want[name]) for name in want)
    assert sg.load(first).meta['blend']['resolution'] == 16

    ex.swap.value = 4
    ex.format.value = 'nvlabs'
    ex.export_button.click()
    assert ex.last_export.name == 'blend-late-swap4.pkl' and first.exists()
    G = sg.load(ex.last_export).G_ema
    ref = sg.blend(base, toon, 4)
    assert np.abs(render(G, base, [0]).astype(int) - render(ref, base, [0]).astype(int)).max() <= 1   # .pkl: float round-trip
    assert not torch.equal(sg.load(first).G_ema.synthesis.b8.conv0.weight, G.synthesis.b8.conv0.weight)


@pytest.mark.parametrize('fmt', ['nvlabs', 'native'])
def test_export_says_the_size_before_writing(pair, tmp_path, fmt):
    """The estimate shown before the file is written is within 2% of the size of the file then written."""
    base, toon, _ = pair
    ex = BlendExplorer(base, [toon], seeds='0', resolution=8, outdir=tmp_path)
    ex.format.value = fmt
    shown, write = [], ex.views.export
    ex.views.export = lambda *args, **kwargs: shown.append(ex.link.value) or write(*args, **kwargs)
    path = ex.export()
    estimate = re.fullmatch(r'writing (\S+) \(about ([\d.]+) (KiB|MiB)\) \.\.\.', shown[0])
    assert estimate and estimate.group(1) == path.name
    unit = {'KiB': 2 ** 10, 'MiB': 2 ** 20}[estimate.group(3)]
    actual = path.stat().st_size / unit
    assert abs(float(estimate.group(2)) - actual) <= 0.02 * actual + 0.05      # 2%, and the display's rounding
    assert f'({actual:.1f} {estimate.group(3)}, saved at' in ex.link.value     # the link says the real size


def test_run_directory_snapshots_are_listed_by_epoch(pair, tmp_path):
    base, toon, halfway = pair
    run = tmp_path / '00000-run'
    run.mkdir()
    (run / 'training-state.pt').write_bytes(b'')
    sg.save(run / 'network-snapshot-kimg000004.000-epoch0012.safetensors', G_ema=toon)
    sg.save(run / 'network-snapshot-kimg000002.000-epoch0006.safetensors', G_ema=halfway)
    views = BlendViews(base, run)
    assert views.labels == ['epoch 6 (2 kimg)', 'epoch 12 (4 kimg)']
    grid = views.epoch_swap_grid(seed=1)
    assert grid.shape[0] == 2 * (14 + 64)              # a labelled row of 64-pixel tiles per snapshot
    with pytest.raises(ValueError, match='no snapshots yet'):
        empty = tmp_path / '00001-empty'
        empty.mkdir()
        (empty / 'training-state.pt').write_bytes(b'')
        BlendViews(base, empty)


def test_mismatched_snapshot_is_refused_by_name(pair, tiny32):
    base = pair[0]
    views = BlendViews(base, {'odd': tiny32.G_ema})
    with pytest.raises(ValueError, match='cannot blend'):
        views.columns(ViewState(snapshot=0))


def test_in_colab_the_export_button_starts_the_download(pair, tmp_path, fake_colab):
    base, toon, _ = pair
    ex = BlendExplorer(base, [toon], seeds='0', resolution=8, outdir=tmp_path)
    ex.export_button.click()
    path = tmp_path / 'blend-network-0-swap8.pkl'
    assert fake_colab['downloaded'] == [str(path)]
    assert f'downloading blend-network-0-swap8.pkl ({path.stat().st_size / 2 ** 20:.1f} MiB' in ex.link.value


def test_feature_swap_toggle_renders_the_feature_swap_and_refuses_export(pair, tmp_path):
    """The checkbox turns the blend column into Cartoon-StyleGAN's feature swap (blend.feature_swap_images on the
    base mapping's w, the same block k), leaves low and high alone, and turns export off with the reason."""
    base, toon, _ = pair
    seeds = [0, 2]
    ex = BlendExplorer(base, {'toon': toon}, seeds='0,2', resolution=8, outdir=tmp_path / 'out', device='cpu')
    before = {k: im.value for k, im in ex.images.items()}
    assert not ex.export_button.disabled
    ex.width.value = 1.0                                 # a feature swap has no width: it must not leak into the render
    ex.feature_swap.value = True
    with torch.no_grad():                                # independent render: one w per seed, swap after block 8
        ws = base.mapping(seed_latents(seeds, base.z_dim), None, truncation_psi=0.7)
        expected = to_uint8(feature_swap_images(base, toon, ws, 8, noise_mode='const', force_fp32=True))
    strip, k = decode(ex.images['blend'].value), ex.tile // base.img_resolution
    for i in range(len(seeds)):
        tile = strip[i * (ex.tile + 2): i * (ex.tile + 2) + ex.tile, : ex.tile]
        assert np.array_equal(tile[::k, ::k], expected[i]), i
    assert not np.array_equal(expected, render(sg.blend(base, toon, 8), base, seeds))   # not the weight swap
    assert ex.images['low'].value == before['low'] and ex.images['high'].value == before['high']
    assert ex.titles['blend'].value == '<b>features after 8</b>'

    assert ex.export_button.disabled and 'not a network' in ex.export_button.tooltip
    assert ex.export() is None and 'not a network' in ex.link.value and 'nothing to export' in ex.link.value
    assert ex.last_export is None and not (tmp_path / 'out').exists()

    ex.feature_swap.value = False                        # back to the weight blend (width 1), exportable again
    assert not ex.export_button.disabled and 'not a network' not in ex.link.value
    ex.width.value = 0.0
    assert ex.images['blend'].value == before['blend']
    ex.format.value = 'native'
    assert sg.load(ex.export()).meta['blend']['resolution'] == 8
