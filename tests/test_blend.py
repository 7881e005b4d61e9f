"""Layer-swapping blends (Pinkney & Adler 2020): which tensors come from which model, the smooth-blend
formula, exactness at the ends, and clear errors for blends that cannot work."""

import copy
import math

import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib.blend import blend, blended_state, layer_names, swap_weights


@pytest.fixture(scope='module')
def pair(tiny32):
    return tiny32.G_ema, tiny32.G          # same architecture, different weights (README: separately perturbed)


def _res_of(name):
    return int(name.split('.')[1][1:])


def _render(G, seed=0):
    z = torch.randn([3, G.z_dim], generator=torch.Generator().manual_seed(seed))
    return G(z, None, truncation_psi=0.7, noise_mode='const')


@pytest.mark.parametrize('resolution', [4, 8, 16, 32])
@pytest.mark.parametrize('mapping', ['low', 'high'])
def test_hard_swap_takes_each_tensor_from_its_source(pair, resolution, mapping):
    low, high = pair
    out = blend(low, high, resolution, mapping=mapping)
    lo, hi = low.state_dict(), high.state_dict()
    for name, t in out.state_dict().items():
        if name.startswith('synthesis.'):
            src = lo if _res_of(name) <= resolution else hi
        else:
            src = lo if mapping == 'low' else hi              # mapping.fc*, mapping.w_avg
        assert torch.equal(t, src[name]), name
    # and the sources really differ, so the test can fail
    assert not torch.equal(lo['synthesis.b32.conv1.weight'], hi['synthesis.b32.conv1.weight'])


def test_ends_render_like_the_inputs(pair):
    low, high = pair
    assert torch.equal(_render(blend(low, high, low.img_resolution)), _render(low))
    assert torch.equal(_render(blend(low, high, 0, mapping='high')), _render(high))


def test_inputs_untouched(pair):
    low, high = pair
    before = [{k: v.clone() for k, v in g.state_dict().items()} for g in pair]
    blend(low, high, 16, width=0.7)
    for g, b in zip(pair, before):
        assert all(torch.equal(v, b[k]) for k, v in g.state_dict().items())


def test_smooth_blend_formula(pair):
    low, high = pair
    width = 0.8
    out = blend(low, high, 16, width=width)
    centre = 2 * math.log2(16 / 4) + 1.5                     # halfway between b16.conv1 (5) and b32.conv0 (6)
    cases = {'synthesis.b8.conv0.weight': 2, 'synthesis.b16.conv1.affine.bias': 5,
             'synthesis.b16.torgb.weight': 5, 'synthesis.b32.conv0.noise_const': 6, 'synthesis.b4.const': 0}
    for name, position in cases.items():
        y = 1 / (1 + math.exp(-(position - centre) / width))
        expected = (1 - y) * low.state_dict()[name] + y * high.state_dict()[name]
        torch.testing.assert_close(out.state_dict()[name], expected, rtol=1e-6, atol=1e-6)


def test_tiny_width_is_the_hard_swap(pair):
    low, high = pair
    for r in (0, 4, 8, 16, 32):
        soft = blend(low, high, r, width=1e-3)
        hard = blend(low, high, r)
        assert all(torch.equal(v, hard.state_dict()[k]) for k, v in soft.state_dict().items())


def test_swap_weights_positions(pair):
    G = pair[0]
    assert layer_names(G)[:4] == ['b4.const', 'b4.conv1', 'b4.torgb', 'b8.conv0']
    y = swap_weights(G, 8)
    assert [y[n] for n in layer_names(G)] == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert set(swap_weights(G, 0).values()) == {1.0}
    assert set(swap_weights(G, 32).values()) == {0.0}
    smooth = [swap_weights(G, 8, width=2)[n] for n in layer_names(G)]
    assert all(a <= b for a, b in zip(smooth, smooth[1:])) and 0 < smooth[0] < 0.5 < smooth[-1] < 1


def test_custom_schedule(pair):
    low, high = pair
    by_res = blend(low, high, weights={4: 0, 8: 0, 16: 1, 32: 1})
    hard = blend(low, high, 8)
    assert all(torch.equal(v, hard.state_dict()[k]) for k, v in by_res.state_dict().items())
    names = {n: 0.25 for n in layer_names(low)}
    names['b32.torgb'] = 1.0
    out = blend(low, high, weights=names)
    torch.testing.assert_close(out.synthesis.b32.torgb.weight, high.synthesis.b32.torgb.weight, rtol=0, atol=0)
    torch.testing.assert_close(out.synthesis.b8.conv0.weight, torch.lerp(low.synthesis.b8.conv0.weight, high.synthesis.b8.conv0.weight, 0.25))
    with pytest.raises(ValueError, match='no value for layer b32.conv0'):
        blend(low, high, weights={4: 0, 8: 0, 16: 1})
    with pytest.raises(ValueError, match=r'must be in \[0, 1\]'):
        blend(low, high, weights={4: 0, 8: 0, 16: 1, 32: 1.5})
    with pytest.raises(ValueError, match="unknown layer 'b64.conv0'"):
        blend(low, high, weights={4: 0, 8: 0, 16: 1, 32: 1, 'b64.conv0': 1})


def _other(**changes):
    base = dict(z_dim=64, w_dim=64, img_resolution=32, channels={4: 32, 8: 32, 16: 32, 32: 16}, mapping_layers=2)
    base.update(changes)
    return sg.Generator(sg.GeneratorConfig(**base))


@pytest.mark.parametrize('changes, message', [
    (dict(img_resolution=16, channels={4: 32, 8: 32, 16: 32}), 'img_resolution differs'),
    (dict(z_dim=32), 'z_dim differs'),
    (dict(w_dim=32), 'w_dim differs'),
    (dict(channels={4: 32, 8: 32, 16: 16, 32: 16}), 'channels at resolution 16 differ'),
    (dict(mapping_layers=3), 'mapping_layers differs'),
])
def test_mismatched_architectures(pair, changes, message):
    with pytest.raises(ValueError, match=message):
        blend(pair[0], _other(**changes), 16)


def test_bad_arguments(pair):
    low, high = pair
    with pytest.raises(ValueError, match=r'not a block resolution.*\[0, 4, 8, 16, 32\]'):
        blend(low, high, 12)
    with pytest.raises(ValueError, match='not a block resolution'):
        blend(low, high, 64)
    with pytest.raises(ValueError, match="mapping must be 'low' or 'high'"):
        blend(low, high, 16, mapping='middle')
    with pytest.raises(ValueError, match='width must be >= 0'):
        blend(low, high, 16, width=-1)
    with pytest.raises(ValueError, match='either resolution'):
        blend(low, high)


def test_settings_carry_over(pair):
    low = _other(conv_clamp=256, num_fp16_res=2)
    high = _other(conv_clamp=256, num_fp16_res=2)
    out = blend(low, high, 16)
    assert out.cfg.conv_clamp == 256 and out.cfg.num_fp16_res == 2
    assert out.synthesis.b32.use_fp16 and not out.synthesis.b8.use_fp16


def test_generators_on_two_devices_blend_on_the_low_ones(pair):
    # A smooth blend of a CPU generator into one on another device used to fail in lerp (device mismatch). The
    # meta device stands in for CUDA: the blend's tensors all land on low's device, for hard and smooth blends.
    low, high = pair
    low_meta = copy.deepcopy(low).to('meta')
    for kw in ({'resolution': 8}, {'resolution': 8, 'width': 1.0}):
        state = blended_state(low_meta, high, swap_weights(low_meta, **kw), mapping='high')
        assert {t.device.type for t in state.values()} == {'meta'}
