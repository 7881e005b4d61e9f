"""Reproduce every array of the rosinality reference case (tests/data/rosi32/README.md)."""

import pytest
import torch

from conftest import assert_close_ref

T = torch.from_numpy


def _with_w_avg(G, latent):
    """rosinality passes truncation_latent explicitly; ours lives in w_avg, so set it to theirs."""
    G.mapping.w_avg.copy_(T(latent).reshape(-1))
    return G


@pytest.fixture()
def g_ema(rosi32, rosi32_expected):
    saved = rosi32.G_ema.mapping.w_avg.clone()
    yield _with_w_avg(rosi32.G_ema, rosi32_expected['truncation_latent'])
    rosi32.G_ema.mapping.w_avg.copy_(saved)


def test_meta_and_shapes(rosi32):
    assert rosi32.meta['format'] == 'rosinality'
    assert rosi32.meta['args']['latent'] == 64 and rosi32.meta['args']['n_mlp'] == 2
    G = rosi32.G_ema
    assert (G.z_dim, G.w_dim, G.img_resolution, G.num_ws, G.mapping.num_layers) == (64, 64, 32, 8, 2)
    assert G.synthesis.b32.conv1.weight.shape == (32, 32, 3, 3)    # the /16 channel table, read from tensors
    assert rosi32.G is not None and rosi32.D is not None


def test_style(g_ema, rosi32_expected):
    e = rosi32_expected
    assert_close_ref(g_ema.mapping(T(e['z']), None)[:, 0], e['w'], 'w')


def test_images(g_ema, rosi32_expected):
    e = rosi32_expected
    z = T(e['z'])
    assert_close_ref(g_ema(z, None, noise_mode='const'), e['img_trunc1'], 'img_trunc1')
    assert_close_ref(g_ema(z, None, truncation_psi=0.5, noise_mode='const'), e['img_trunc05'], 'img_trunc05')
    assert_close_ref(g_ema.mapping(z, None, truncation_psi=0.5), e['latent_trunc05'], 'latent_trunc05')


def test_w_plus_and_mixing(g_ema, rosi32_expected):
    e = rosi32_expected
    assert_close_ref(g_ema.synthesis(T(e['w_plus_mixed']), noise_mode='const'), e['img_latent_mixed'], 'img_latent_mixed')
    # inject_index=3: rows 0..2 from style(z), rows 3.. from style(z2)
    ws = g_ema.mapping(T(e['z']), None).clone()
    ws[:, 3:] = g_ema.mapping(T(e['z2']), None)[:, 3:]
    assert_close_ref(g_ema.synthesis(ws, noise_mode='const'), e['img_mixing_inject3'], 'img_mixing_inject3')


def test_explicit_noise(g_ema, rosi32_expected):
    e = rosi32_expected
    noise = [T(e[f'noise_explicit_{i}']) for i in range(7)]
    img = g_ema.synthesis(g_ema.mapping(T(e['z']), None), noise=noise)
    assert_close_ref(img, e['img_explicit_noise'], 'img_explicit_noise')


def test_non_ema_generator(rosi32, rosi32_expected):
    e = rosi32_expected
    assert_close_ref(rosi32.G(T(e['z']), None, noise_mode='const'), e['img_g_trunc1'], 'img_g_trunc1')


@pytest.mark.parametrize('name, images', [
    ('d_logits_trunc1', ['img_trunc1']),
    ('d_logits_trunc05', ['img_trunc05']),
    ('d_logits_batch8', ['img_trunc1', 'img_trunc05']),
])
def test_discriminator(rosi32, rosi32_expected, name, images):
    e = rosi32_expected
    assert_close_ref(rosi32.D(torch.cat([T(e[k]) for k in images]), None), e[name], name)


def test_estimated_w_avg_is_the_mapping_mean(rosi32, rosi32_expected):
    # The file has no latent_avg; the loader estimates it like their mean_latent (mean of style(z)).
    assert 'estimated' in rosi32.meta['w_avg']
    ref = T(rosi32_expected['truncation_latent']).reshape(-1)     # their mean over 4096 samples
    spread = rosi32.G_ema.mapping(torch.randn(4096, 64, generator=torch.Generator().manual_seed(1)), None)[:, 0].std(0)
    assert ((rosi32.G_ema.mapping.w_avg - ref).abs() < 0.1 * spread + 1e-3).all()
