"""Blend modes (docs/blending.md, "Blend modes"): Toonify's blend_models.py (Pinkney), VToonify-T's presets and
Cartoon-StyleGAN's feature-map swap, each against weights written out by hand from the original code."""

import math

import numpy as np
import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import ops
from stylegan2_lib.blend import (VTOONIFY_PRESETS, blend, blend_pinkney, blend_vtoonify, feature_swap_images,
                                 feature_swap_preview, pinkney_weights, swap_weights, vtoonify_shares)
from stylegan2_lib.checkpoints import rosinality, tensorflow


@pytest.fixture(scope='module')
def pair(tiny32):
    return tiny32.G_ema, tiny32.G          # same architecture, different weights


def _ws(G, n=3, seed=0):
    z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(seed))
    return G.mapping(z, None, truncation_psi=0.7)

#----------------------------------------------------------------------------
# Pinkney. The expected y of every TF variable group of a 32x32 generator, computed by hand from
# blend_models.py: position = 2 * log2(r / 4) + level (level 0: Const, Conv0_up; 1: Conv1, ToRGB),
# x = position - position(resolution, level), hard y = 1 if x > 1 else 0, smooth y = 1 / (1 + exp(-x / width)).
# '4x4/Conv' is in neither list (y = 0); noise buffers, dlatent_avg and the mapping are not matched (y = 0).

S = {-4: 0.01798620996209156, -3: 0.04742587317756678, -2: 0.11920292202211755, -1: 0.2689414213699951,
     0: 0.5, 1: 0.7310585786300049, 2: 0.8807970779778823, 3: 0.9525741268224334}   # 1 / (1 + e^-x)

PINKNEY_CASES = {
    # (resolution, level, width): y of 4x4/Const, 4x4/Conv, 4x4/ToRGB, 8x8/Conv0_up, 8x8/Conv1, 8x8/ToRGB, 16x16/..., 32x32/...
    (4, 0, None):  [0, 0, 0,   1, 1, 1,   1, 1, 1,   1, 1, 1],          # x = p: x > 1 from position 2
    (8, 0, None):  [0, 0, 0,   0, 0, 0,   1, 1, 1,   1, 1, 1],          # x = p - 2
    (8, 1, None):  [0, 0, 0,   0, 0, 0,   0, 1, 1,   1, 1, 1],          # x = p - 3: 16x16/Conv0_up has x = 1
    (16, 0, None): [0, 0, 0,   0, 0, 0,   0, 0, 0,   1, 1, 1],
    (32, 1, None): [0, 0, 0,   0, 0, 0,   0, 0, 0,   0, 0, 0],
    (16, 0, 1.0):  [S[-4], 0, S[-3],   S[-2], S[-1], S[-1],   S[0], S[1], S[1],   S[2], S[3], S[3]],
    (8, 1, 2.0):   [1 / (1 + math.exp(1.5)), 0, 1 / (1 + math.exp(1.0)),  1 / (1 + math.exp(0.5)), S[0], S[0],
                    1 / (1 + math.exp(-0.5)), S[1], S[1],  1 / (1 + math.exp(-1.5)), S[2], S[2]],
}
TF_LAYERS = ['4x4/Const', '4x4/Conv', '4x4/ToRGB'] + [f'{r}x{r}/{n}' for r in (8, 16, 32) for n in ('Conv0_up', 'Conv1', 'ToRGB')]


def _tf_layer(tf_var):
    """'synthesis/16x16/Conv0_up/weight' -> '16x16/Conv0_up'; None for mapping, dlatent_avg and noise buffers."""
    parts = tf_var.split('/')
    return '/'.join(parts[1:3]) if parts[0] == 'synthesis' and len(parts) == 4 else None


@pytest.mark.parametrize('case', list(PINKNEY_CASES))
def test_pinkney_takes_every_variable_with_the_weight_of_their_formula(pair, case):
    low, high = pair
    resolution, level, width = case
    expected_y = dict(zip(TF_LAYERS, PINKNEY_CASES[case]))
    out = blend(low, high, resolution, width=width, mode='pinkney', level=level)
    lo, hi, got = low.state_dict(), high.state_dict(), out.state_dict()
    rules = tensorflow.generator_rules(low.cfg)
    assert {ours for ours, _, _ in rules} == {k for k in got if not k.endswith('resample_filter')}
    mixed = 0
    for ours, theirs, _ in rules:
        y = expected_y.get(_tf_layer(theirs), 0)
        assert torch.equal(got[ours], hi[ours] * y + lo[ours] * (1 - y)), (ours, theirs, y)
        assert torch.allclose(got[ours], (1 - y) * lo[ours] + y * hi[ours], rtol=0, atol=1e-6)
        if y in (0, 1):
            assert torch.equal(got[ours], (lo, hi)[y][ours]), ours
        mixed += 0 < y < 1
    assert (mixed > 0) == (width is not None)
    assert not torch.equal(lo['synthesis.b4.conv1.weight'], hi['synthesis.b4.conv1.weight'])   # the test can fail


def test_pinkney_weights_per_layer(pair):
    low, _ = pair
    names = ['b4.const', 'b4.conv1', 'b4.torgb'] + [f'b{r}.{n}' for r in (8, 16, 32) for n in ('conv0', 'conv1', 'torgb')]
    for (resolution, level, width), ys in PINKNEY_CASES.items():
        got = pinkney_weights(low, resolution, level, width)
        assert list(got) == names
        assert list(got.values()) == pytest.approx(ys, abs=1e-15), (resolution, level, width)


def test_pinkney_hard_level_0_is_the_default_hard_swap_but_not_its_smooth_blend(pair):
    low, high = pair
    for r in (4, 8, 16):
        a, b = blend(low, high, r, mode='pinkney').state_dict(), blend(low, high, r).state_dict()
        differs = [k for k in a if not torch.equal(a[k], b[k])]
        # the 4x4 conv (and its noise buffer), and every noise buffer above r, stay model 1's
        assert differs and all(k.startswith('synthesis.b4.conv1') or k.endswith('noise_const') for k in differs)
    # smooth: theirs is centred on the first layer of block 16 (position 4), the default between 16 and 32 (5.5)
    assert pinkney_weights(low, 16, 0, 1.0)['b16.conv0'] == 0.5
    assert swap_weights(low, 16, 1.0)['b16.conv0'] == pytest.approx(1 / (1 + math.exp(1.5)), abs=1e-15)


def test_pinkney_errors(pair):
    low, high = pair
    a, b = blend_pinkney(low, high, 8, level=1, width=0.5).state_dict(), blend(low, high, 8, 0.5, mode='pinkney', level=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match='block resolution'):
        blend(low, high, 0, mode='pinkney')
    with pytest.raises(ValueError, match='level'):
        blend(low, high, 8, mode='pinkney', level=2)
    with pytest.raises(ValueError, match='mapping'):
        blend(low, high, 8, mode='pinkney', mapping='high')
    with pytest.raises(ValueError, match='preset'):
        blend(low, high, 8, level=1)
    with pytest.raises(ValueError, match='unknown blend mode'):
        blend(low, high, 8, mode='toonify')

#----------------------------------------------------------------------------
# VToonify-T: util.gather_params puts rosinality's conv1 in layer 0, to_rgb1 in 1, convs.i in i + 1 and to_rgbs.i
# in 2 * i + 3; blend_models(G_low=fine-tune, G_high=base, weight) = base * (1 - weight) + fine-tune * weight;
# everything else ('input', 'noises', 'style') from the base.

def _vtoonify_layer(rosi_name):
    head = rosi_name.split('.')
    if head[0] == 'conv1':
        return 0
    if head[0] == 'to_rgb1':
        return 1
    if head[0] == 'convs':
        return int(head[1]) + 1
    if head[0] == 'to_rgbs':
        return int(head[1]) * 2 + 3
    return None


def test_vtoonify_presets_are_their_paper_weights():
    assert VTOONIFY_PRESETS == {
        'cartoon': [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        'caricature': [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        'pixar': [1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        'comic': [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        'arcane': [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}


def test_vtoonify_shares_by_hand(pair):
    G = pair[0]
    got = vtoonify_shares(G, [0, .1, .2, .3, .4, .5, .6, .7])
    assert got == {'b4.conv1': 0, 'b4.torgb': .1, 'b8.conv0': .1, 'b8.conv1': .2, 'b8.torgb': .3,
                   'b16.conv0': .3, 'b16.conv1': .4, 'b16.torgb': .5, 'b32.conv0': .5, 'b32.conv1': .6, 'b32.torgb': .7}
    assert vtoonify_shares(G, 'comic') == {**{n: .5 for n in got}, 'b32.torgb': 1}       # 18 numbers cut to num_ws 8
    assert vtoonify_shares(G, 'cartoon') == {n: 1 for n in got}


@pytest.mark.parametrize('preset', ['pixar', 'comic', [0, .1, .25, .3, .4, .5, .6, .7]])
def test_vtoonify_takes_every_tensor_with_their_weight(pair, preset):
    finetune, base = pair
    shares = VTOONIFY_PRESETS[preset][:8] if isinstance(preset, str) else preset
    out = blend(finetune, base, mode='vtoonify', preset=preset)
    ft, bs, got = finetune.state_dict(), base.state_dict(), out.state_dict()
    for ours, theirs, _ in rosinality.generator_rules(finetune.cfg):
        i = _vtoonify_layer(theirs)
        if i is None:                                   # input.input, noises.*, style.*: the base's
            assert torch.equal(got[ours], bs[ours]), ours
            continue
        w = shares[i]
        assert torch.equal(got[ours], bs[ours] * (1 - w) + ft[ours] * w), (ours, theirs, w)
    assert torch.equal(got['mapping.w_avg'], bs['mapping.w_avg'])
    assert torch.equal(blend_vtoonify(finetune, base, preset).state_dict()['synthesis.b8.conv1.weight'],
                       got['synthesis.b8.conv1.weight'])


def test_vtoonify_errors(pair):
    a, b = pair
    with pytest.raises(ValueError, match='unknown VToonify preset'):
        blend(a, b, mode='vtoonify', preset='anime')
    with pytest.raises(ValueError, match='8 numbers'):
        blend(a, b, mode='vtoonify', preset=[1] * 18)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        blend(a, b, mode='vtoonify', preset=[2] * 8)
    with pytest.raises(ValueError, match='mapping'):
        blend(a, b, mode='vtoonify', mapping='low')
    with pytest.raises(ValueError, match='not resolution'):
        blend(a, b, 8, mode='vtoonify')

#----------------------------------------------------------------------------
# Feature-map swap, as Cartoon-StyleGAN's model.py (swap=True): generator2 (high) renders; after the convolutions
# of block k its feature map `out` is replaced by generator1's (low) at the same point; then high's to_rgb of
# that block and high's later blocks, on high's own RGB skip image so far.

def test_feature_swap_at_0_is_high(pair):
    low, high = pair
    ws = _ws(low)
    assert torch.equal(feature_swap_images(low, high, ws, 0), high.synthesis(ws, noise_mode='const'))


@pytest.mark.parametrize('k', [4, 8, 16, 32])
def test_feature_swap_is_a_two_stage_render(pair, k):
    low, high = pair
    ws = _ws(low, seed=k)
    start, count = {4: 0, 8: 1, 16: 3, 32: 5}, {4: 2, 8: 3, 16: 3, 32: 3}   # ws of each block (b4: conv1, torgb)
    w = {r: ws[:, start[r]:start[r] + count[r]] for r in start}
    # stage 1: low's layers up to block k's convolutions
    x = None
    for r in (4, 8, 16, 32):
        if r <= k:
            x, _ = getattr(low.synthesis, f'b{r}')(x, None, w[r], noise_mode='const')
    low_features = x
    # stage 2: high's blocks; block k's ToRGB on low's features (fused modulated conv, as in eval), then on from there
    x = img = None
    for r in (4, 8, 16, 32):
        block = getattr(high.synthesis, f'b{r}')
        if r != k:
            x, img = block(x, img, w[r], noise_mode='const')
            continue
        rgb = block.torgb(low_features, w[r][:, -1], fused_modconv=True).float()
        img = rgb if img is None else ops.upsample2d(img, block.resample_filter) + rgb
        x = low_features
    got = feature_swap_images(low, high, ws, k)
    assert torch.equal(got, img)
    for other in (low.synthesis(ws, noise_mode='const'), high.synthesis(ws, noise_mode='const'),
                  blend(low, high, k).synthesis(ws, noise_mode='const')):      # not a weight blend
        assert not torch.equal(got, other)


def test_feature_swap_errors_and_preview(pair):
    low, high = pair
    with pytest.raises(ValueError, match='block resolution'):
        feature_swap_images(low, high, _ws(low), 12)
    with pytest.raises(ValueError, match='ws must be'):
        feature_swap_images(low, high, _ws(low)[:, :3], 8)
    grid = feature_swap_preview(low, high, seeds=[0, 1], min_tile=32)
    assert grid.dtype.name == 'uint8' and grid.ndim == 3 and grid.shape[2] == 3


def test_cli_blend_preview_with_feature_swap(capsys, tmp_path, pair):
    from PIL import Image
    from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
    from stylegan2_lib.cli import main
    out, preview = tmp_path / 'b.safetensors', tmp_path / 'p.png'
    rc = main(['blend', '--resolution', '8', '--out', str(out), '--preview', str(preview), '--seeds', '0,3',
               '--feature-swap', '--device', 'cpu'])              # the expected preview below is rendered on the CPU
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert 'feature swap after block 4, 8, 16, 32' in stdout
    low, high = sg.load(DEMO_BASE).generator, sg.load(DEMO_TOON).generator
    expected = feature_swap_preview(low, high, [0, 3], truncation_psi=0.7)
    np.testing.assert_array_equal(np.asarray(Image.open(preview).convert('RGB')), expected)
    # the written network is the weight blend, as without the flag
    written = sg.load(out).generator.state_dict()
    assert all(torch.equal(t, blend(low, high, 8).state_dict()[k]) for k, t in written.items())
    rc = main(['blend', '--resolution', '8', '--out', str(tmp_path / 'c.safetensors'), '--feature-swap'])
    assert rc == 1 and '--preview' in capsys.readouterr().err and not (tmp_path / 'c.safetensors').exists()


def test_blend_views_render_a_feature_swap_and_refuse_to_export_it(pair, tmp_path):
    from stylegan2_lib.blend_views import BlendViews, ViewState
    from stylegan2_lib.images import seed_latents, to_uint8
    base, toon = pair
    views = BlendViews(base, {'toon': toon}, device='cpu')
    for base_is_low in (True, False):
        v = ViewState(snapshot=0, resolution=8, seeds=(0, 2), base_is_low=base_is_low, feature_swap=True)
        low, high = (base, toon) if base_is_low else (toon, base)
        with torch.no_grad():
            ws = base.mapping(seed_latents([0, 2], base.z_dim), None, truncation_psi=0.7)
        expected = to_uint8(feature_swap_images(low, high, ws, 8, force_fp32=True))
        np.testing.assert_array_equal(views.columns(v)['blend'], expected)
        assert views.column_labels(v)['blend'] == 'features after 8'
        assert not np.array_equal(views.columns(v)['blend'],          # not the hard weight swap
                                  views.columns(ViewState(snapshot=0, resolution=8, seeds=(0, 2), base_is_low=base_is_low))['blend'])
    with pytest.raises(ValueError, match='not a network'):
        views.export(v, tmp_path / 'x.pkl')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('mode', ['pinkney', 'vtoonify'])
def test_previews_of_the_modes_show_their_blends(capsys, tmp_path, pair, mode):
    from PIL import Image
    from stylegan2_lib.blend import blend_preview, preview_columns
    from stylegan2_lib.cli import main
    low, high = pair
    columns = preview_columns(low, high, mode=mode, level=1 if mode == 'pinkney' else 0)
    if mode == 'pinkney':                                  # one per swap resolution below the image size, at level 1
        expected = [(f'pinkney {r}.1', blend_pinkney(low, high, r, 1)) for r in low.synthesis.block_resolutions[:-1]]
    else:                                                  # one per VToonify preset
        expected = [(f'vtoonify {p}', blend_vtoonify(low, high, p)) for p in VTOONIFY_PRESETS]
    assert [label for label, _ in columns] == [label for label, _ in expected]
    for (_, G), (_, want) in zip(columns, expected):
        assert all(torch.equal(t, want.state_dict()[k]) for k, t in G.state_dict().items())
    # the CLI writes that preview beside the mode's blend
    out, preview = tmp_path / 'b.safetensors', tmp_path / 'p.png'
    extra = ['--resolution', '8', '--level', '1'] if mode == 'pinkney' else ['--preset', 'pixar']
    assert main(['blend', '--mode', mode, *extra, '--out', str(out), '--preview', str(preview), '--seeds', '0,1',
                 '--device', 'cpu']) == 0
    stdout = capsys.readouterr().out
    assert f'wrote {preview}: 2 seeds x' in stdout
    from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
    a, b = sg.load(DEMO_BASE).generator, sg.load(DEMO_TOON).generator
    lo, hi = (b, a) if mode == 'vtoonify' else (a, b)      # vtoonify's low is the fine-tune
    want = blend_preview(lo, hi, [0, 1], truncation_psi=0.7, mode=mode, level=1 if mode == 'pinkney' else 0)
    np.testing.assert_array_equal(np.asarray(Image.open(preview).convert('RGB')), want)
