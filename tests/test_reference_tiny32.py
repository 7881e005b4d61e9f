"""Reproduce every array of the NVlabs reference case (tests/data/tiny32/README.md says how each was made)."""

import pytest
import torch

from conftest import assert_close_ref

T = torch.from_numpy


def test_loads_networks_and_meta(tiny32):
    assert tiny32.meta['format'] == 'nvlabs'
    assert tiny32.meta['training_set_kwargs']['resolution'] == 32
    for net in (tiny32.G, tiny32.G_ema):
        assert (net.z_dim, net.w_dim, net.c_dim, net.img_resolution, net.num_ws) == (64, 64, 0, 32, 8)
    assert tiny32.D is not None and tiny32.D.img_resolution == 32


def test_parameter_names_are_nvlabs(tiny32):
    names = dict(tiny32.G_ema.named_parameters())
    buffers = dict(tiny32.G_ema.named_buffers())
    assert names['synthesis.b4.const'].shape == (32, 4, 4)
    assert names['synthesis.b32.conv0.affine.bias'].shape == (32,)
    assert names['mapping.fc1.weight'].shape == (64, 64)
    assert buffers['mapping.w_avg'].shape == (64,)
    assert buffers['synthesis.b32.conv1.noise_const'].shape == (32, 32)
    d_names = dict(tiny32.D.named_parameters())
    assert d_names['b4.fc.weight'].shape == (32, 512) and 'b32.fromrgb.weight' in d_names


@pytest.mark.parametrize('name, kwargs', [
    ('ws_psi1', dict(truncation_psi=1.0)),
    ('ws_psi05', dict(truncation_psi=0.5)),
    ('ws_psi05_cutoff4', dict(truncation_psi=0.5, truncation_cutoff=4)),
])
def test_mapping(tiny32, tiny32_expected, name, kwargs):
    e = tiny32_expected
    assert_close_ref(tiny32.G_ema.mapping(T(e['z']), None, **kwargs), e[name], name)


def test_ws_mixed(tiny32, tiny32_expected):
    e = tiny32_expected
    ws = tiny32.G_ema.mapping(T(e['z_mix']), None, truncation_psi=1.0)[:, 0].reshape(4, 8, 64)
    assert_close_ref(ws, e['ws_mixed'], 'ws_mixed')


@pytest.mark.parametrize('name, psi, noise_mode', [
    ('img_psi1_const', 1.0, 'const'),
    ('img_psi05_const', 0.5, 'const'),
    ('img_psi1_none', 1.0, 'none'),
])
def test_images(tiny32, tiny32_expected, name, psi, noise_mode):
    e = tiny32_expected
    img = tiny32.G_ema(T(e['z']), None, truncation_psi=psi, noise_mode=noise_mode, force_fp32=True)
    assert img.dtype == torch.float32
    assert_close_ref(img, e[name], name)


def test_default_call_equals_force_fp32_on_cpu(tiny32, tiny32_expected):
    z = T(tiny32_expected['z'])
    a = tiny32.G_ema(z, None, noise_mode='const')
    b = tiny32.G_ema(z, None, noise_mode='const', force_fp32=True)
    assert torch.equal(a, b)


def test_synthesis_of_mixed_ws(tiny32, tiny32_expected):
    e = tiny32_expected
    img = tiny32.G_ema.synthesis(T(e['ws_mixed']), noise_mode='const', force_fp32=True)
    assert_close_ref(img, e['img_synth_ws_mixed_const'], 'img_synth_ws_mixed_const')


def test_non_ema_generator(tiny32, tiny32_expected):
    e = tiny32_expected
    img = tiny32.G(T(e['z']), None, truncation_psi=1.0, noise_mode='const', force_fp32=True)
    assert_close_ref(img, e['img_G_psi1_const'], 'img_G_psi1_const')


@pytest.mark.parametrize('name, images', [
    ('d_logits_psi1', ['img_psi1_const']),
    ('d_logits_psi05', ['img_psi05_const']),
    ('d_logits_batch8', ['img_psi1_const', 'img_psi05_const']),
])
def test_discriminator(tiny32, tiny32_expected, name, images):
    e = tiny32_expected
    img = torch.cat([T(e[k]) for k in images])
    assert_close_ref(tiny32.D(img, None, force_fp32=True), e[name], name)


def test_random_noise_differs_from_const(tiny32, tiny32_expected):
    z = T(tiny32_expected['z'])
    torch.manual_seed(0)
    a = tiny32.G_ema(z, None, noise_mode='random')
    b = tiny32.G_ema(z, None, noise_mode='const')
    assert (a - b).abs().max() > 0.1


def test_explicit_noise_equal_to_buffers_matches_const(tiny32, tiny32_expected):
    G = tiny32.G_ema
    ws = G.mapping(T(tiny32_expected['z']), None)
    noise = [layer.noise_const[None, None] for layer in G.synthesis.noise_layers()]
    assert [n.shape[-1] for n in noise] == [4, 8, 8, 16, 16, 32, 32]
    assert_close_ref(G.synthesis(ws, noise=noise), tiny32_expected['img_psi1_const'], 'explicit noise')
    zeros = [torch.zeros_like(n) for n in noise]
    assert_close_ref(G.synthesis(ws, noise=zeros), tiny32_expected['img_psi1_none'], 'zero noise = none')
