"""Freshly built networks: the NVlabs API contract, configs, and behaviour the reference cases do not reach."""

import numpy as np
import pytest
import torch

import stylegan2_lib as sg


def small_G(res=16, **kw):
    torch.manual_seed(0)
    cfg = sg.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=res, channel_base=128, channel_max=16, mapping_layers=2, **kw)
    G = sg.Generator(cfg).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith('noise_strength'):
                p.fill_(0.3)
    return G


@pytest.mark.parametrize('res', [4, 8, 32, 128, 1024])
def test_num_ws_and_block_layout(res):
    cfg = sg.GeneratorConfig(img_resolution=res, channel_base=4096, channel_max=4, z_dim=4, w_dim=4, mapping_layers=1)
    G = sg.Generator(cfg)
    log2 = int(np.log2(res))
    assert G.num_ws == cfg.num_ws == 2 * log2 - 2     # NVlabs: sum of num_conv + 1 torgb
    assert G.synthesis.block_resolutions == [2 ** i for i in range(2, log2 + 1)]
    assert len(G.synthesis.noise_layers()) == G.num_ws - 1
    if res <= 32:
        img = G(torch.randn(2, 4), None, noise_mode='const')
        assert img.shape == (2, 3, res, res) and img.dtype == torch.float32


def test_config_validation():
    with pytest.raises(ValueError, match='power of two'):
        sg.GeneratorConfig(img_resolution=48)
    with pytest.raises(ValueError, match='power of two'):
        sg.GeneratorConfig(img_resolution=2048)
    with pytest.raises(ValueError, match="architecture 'resnet' is not supported"):
        sg.GeneratorConfig(architecture='resnet')
    with pytest.raises(ValueError, match="architecture 'skip' is not supported"):
        sg.DiscriminatorConfig(architecture='skip')
    with pytest.raises(ValueError, match='no entry for resolutions'):
        sg.GeneratorConfig(img_resolution=16, channels={4: 8, 8: 8})
    with pytest.raises(ValueError, match=r'no channels at resolutions \[128\]'):
        sg.GeneratorConfig(img_resolution=128, channel_base=64, channel_max=8)


def test_config_json_round_trip():
    cfg = sg.GeneratorConfig(img_resolution=64, channels={4: 8, 8: 8, 16: 6, 32: 4, 64: 2}, conv_clamp=256, num_fp16_res=2)
    again = sg.GeneratorConfig.from_dict(__import__('json').loads(__import__('json').dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match='unknown fields'):
        sg.GeneratorConfig.from_dict({**cfg.to_dict(), 'bogus': 1})


def test_any_channel_table():
    G = sg.Generator(z_dim=8, w_dim=8, img_resolution=16, channels={4: 12, 8: 5, 16: 7}, mapping_layers=1)
    assert G.synthesis.b8.conv0.weight.shape == (5, 12, 3, 3)
    assert G.synthesis.b16.torgb.weight.shape == (3, 7, 1, 1)
    assert G(torch.randn(1, 8), None).shape == (1, 3, 16, 16)


def test_truncation_semantics():
    G = small_G()
    G.mapping.w_avg.normal_()
    z = torch.randn(3, 16)
    w = G.mapping(z, None)
    assert torch.equal(w[:, 0], w[:, -1])                     # broadcast to every row
    w05 = G.mapping(z, None, truncation_psi=0.5)
    torch.testing.assert_close(w05, G.mapping.w_avg + 0.5 * (w - G.mapping.w_avg))
    cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=3)
    torch.testing.assert_close(cut[:, :3], w05[:, :3])
    torch.testing.assert_close(cut[:, 3:], w[:, 3:])


def test_w_avg_tracks_in_training_mode_only():
    G = small_G()
    z = torch.randn(8, 16)
    G.eval()
    G.mapping(z, None)
    assert torch.equal(G.mapping.w_avg, torch.zeros(16))
    G.train()
    w = G.mapping(z, None)[:, 0].detach()
    # NVlabs: w_avg <- lerp(mean(w), w_avg, beta) = mean(w) * (1 - beta) + w_avg * beta
    torch.testing.assert_close(G.mapping.w_avg, w.mean(0) * (1 - 0.995))


def test_noise_modes_and_explicit_noise():
    G = small_G()
    ws = G.mapping(torch.randn(2, 16), None)
    const = G.synthesis(ws, noise_mode='const')
    none = G.synthesis(ws, noise_mode='none')
    assert (const - none).abs().max() > 1e-3
    layers = G.synthesis.noise_layers()
    per_sample = [torch.randn(2, 1, l.resolution, l.resolution) for l in layers]
    a = G.synthesis(ws, noise=per_sample)
    b = torch.cat([G.synthesis(ws[i:i + 1], noise=[n[i:i + 1] for n in per_sample]) for i in range(2)])
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)          # [N,1,r,r]: one noise map per sample
    with pytest.raises(ValueError, match='one per conv layer'):
        G.synthesis(ws, noise=per_sample[:-1])
    with pytest.raises(AssertionError, match='noise for a 4x4 layer'):
        G.synthesis(ws, noise=[torch.randn(1, 1, 5, 5)] + per_sample[1:])
    with pytest.raises(ValueError, match='noise_mode'):
        G.synthesis(ws, noise_mode='sometimes')


def test_ws_shape_checked():
    G = small_G()
    with pytest.raises(ValueError, match=r'ws must be \[N, 6, 16\]'):
        G.synthesis(torch.zeros(1, 5, 16))


def test_fused_and_unfused_modconv_agree():
    G = small_G()
    ws = G.mapping(torch.randn(3, 16), None)
    a = G.synthesis(ws, noise_mode='const', fused_modconv=True)
    b = G.synthesis(ws, noise_mode='const', fused_modconv=False)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_conditional_generator_needs_and_uses_c():
    G = small_G(c_dim=3)
    z = torch.randn(2, 16)
    with pytest.raises(ValueError, match='conditional'):
        G(z, None)
    c0 = torch.eye(3)[[0, 0]]
    c1 = torch.eye(3)[[1, 1]]
    assert (G(z, c0, noise_mode='const') - G(z, c1, noise_mode='const')).abs().max() > 1e-3
    assert G.mapping.embed.weight.shape == (16, 3)


def test_gradients_reach_every_parameter():
    G = small_G()
    G.train()
    img = G(torch.randn(2, 16), None, noise_mode='random')
    img.square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


#----------------------------------------------------------------------------
# Discriminator.

def small_D(res=16, **kw):
    torch.manual_seed(1)
    return sg.Discriminator(sg.DiscriminatorConfig(img_resolution=res, channel_base=128, channel_max=16, **kw)).eval()


def test_discriminator_shapes_and_names():
    D = small_D()
    assert D.block_resolutions == [16, 8]
    names = dict(D.named_parameters())
    assert {'b16.fromrgb.weight', 'b16.skip.weight', 'b8.conv1.bias', 'b4.conv.weight', 'b4.out.bias'} <= set(names)
    assert 'b8.fromrgb.weight' not in names
    assert D(torch.randn(4, 3, 16, 16), None).shape == (4, 1)
    with pytest.raises(ValueError, match=r'D expects images \[N, 3, 16, 16\]'):
        D(torch.randn(4, 3, 8, 8), None)


def test_minibatch_stddev_groups():
    x = torch.randn(6, 4, 2, 2)
    out = sg.discriminator.MinibatchStdLayer(group_size=None)(x)
    # one group = whole batch: every sample gets the same statistic
    expected = (x.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(out[:, 4], expected.expand(6, 2, 2))
    out3 = sg.discriminator.MinibatchStdLayer(group_size=3)(x)
    # group size 3 over 6 samples: sample i is in group i mod 2
    for g in range(2):
        members = x[g::2]
        stat = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out3[g::2, 4], stat.expand(3, 2, 2))
    with pytest.raises(ValueError, match='not a multiple'):
        sg.discriminator.MinibatchStdLayer(group_size=4)(torch.randn(6, 4, 2, 2))


def test_discriminator_r1_second_order_gradient():
    D = small_D(res=8)
    img = torch.randn(2, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(D(img, None).sum(), img, create_graph=True)
    penalty = grad.square().sum()
    penalty.backward()
    # every weight shapes d logits / d img; b4.out.bias shifts the logits and so cannot
    weights = {n: p for n, p in D.named_parameters() if n.endswith('weight')}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights.values())
    assert D.b4.out.bias.grad is None
