"""rosinality stylegan2-pytorch checkpoints the rosi32 reference does not cover, hand-made with
tests/fake_formats.py: converted releases ({g_ema, latent_avg}) with any n_mlp, style_dim, channel
multiplier or channel table, in torch's zip and legacy formats, and a train.py checkpoint in the legacy
format with a discriminator and no latent_avg."""

import argparse

import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib.checkpoints import detect_format
from fake_formats import (assert_close, make_discriminator, make_generator, rosinality_discriminator_state,
                          rosinality_generator_state)

def rosinality_table(res, channel_multiplier, divide=32):
    """Their Generator's channel table, divided (as the rosi32 reference divides it by 16)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier}
    return {r: c // divide for r, c in table.items() if r <= res}

VARIANTS = {
    'n_mlp1-style24-odd-table': dict(res=16, n_mlp=1, style_dim=24, channels={4: 16, 8: 24, 16: 8}),
    'n_mlp3-style16-cm1-64px': dict(res=64, n_mlp=3, style_dim=16, channels=rosinality_table(64, 1)),
    'n_mlp4-style8-cm2-64px': dict(res=64, n_mlp=4, style_dim=8, channels=rosinality_table(64, 2)),
}

def source_generator(seed, res, n_mlp, style_dim, channels):
    return make_generator(seed=seed, z_dim=style_dim, w_dim=style_dim, img_resolution=res, channels=channels,
                          mapping_layers=n_mlp)

def save(path, obj, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == 'zip'))
    assert detect_format(path.read_bytes()) == {'zip': 'torch_zip', 'legacy': 'torch_legacy'}[fmt]

def same_generator(G_loaded, G_src, dim):
    z = torch.randn([4, dim], generator=torch.Generator().manual_seed(5))
    for psi in (1.0, 0.5):
        assert_close(G_loaded(z, None, truncation_psi=psi, noise_mode='const'), G_src(z, None, truncation_psi=psi, noise_mode='const'))

#----------------------------------------------------------------------------

@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
@pytest.mark.parametrize('variant', list(VARIANTS))
def test_converted_release(tmp_path, fmt, variant):
    v = VARIANTS[variant]
    G = source_generator(1, **v)
    path = tmp_path / 'stylegan2-converted.pt'
    latent_avg = G.mapping.w_avg.clone()               # convert_weight.py stores Gs's dlatent_avg, [style_dim]
    save(path, {'g_ema': rosinality_generator_state(G), 'latent_avg': latent_avg}, fmt)
    ck = sg.load(path)
    assert ck.meta['format'] == 'rosinality' and 'w_avg' not in ck.meta
    assert ck.G is None and ck.D is None
    Gl = ck.G_ema
    assert (Gl.z_dim, Gl.w_dim, Gl.cfg.mapping_layers, Gl.img_resolution) == (v['style_dim'], v['style_dim'], v['n_mlp'], v['res'])
    assert Gl.cfg.channels == v['channels']
    assert torch.equal(Gl.mapping.w_avg, latent_avg)     # latent_avg is the W average used for truncation
    same_generator(Gl, G, v['style_dim'])


def test_latent_avg_with_a_batch_axis(tmp_path):
    v = VARIANTS['n_mlp1-style24-odd-table']
    G = source_generator(2, **v)
    path = tmp_path / 'converted.pt'
    save(path, {'g_ema': rosinality_generator_state(G), 'latent_avg': G.mapping.w_avg.clone()[None]}, 'zip')
    ck = sg.load(path)
    assert torch.equal(ck.G_ema.mapping.w_avg, G.mapping.w_avg)
    same_generator(ck.G_ema, G, v['style_dim'])

#----------------------------------------------------------------------------
# A train.py checkpoint, legacy format: g, d, g_ema, optimizer states, args, ada_aug_p; no latent_avg.

def _adam_state(net, lr):
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(0.0, 0.99)).state_dict()

def test_train_checkpoint_legacy_format_with_discriminator(tmp_path):
    v = dict(res=16, n_mlp=2, style_dim=16, channels={4: 16, 8: 24, 16: 8})
    G, G_ema = source_generator(3, **v), source_generator(4, **v)
    D = make_discriminator(seed=5, img_resolution=16, channels={16: 8, 8: 24, 4: 16}, mbstd_group_size=4)
    args = argparse.Namespace(size=16, latent=16, n_mlp=2, channel_multiplier=2, batch=8, augment=True)
    path = tmp_path / '000100.pt'
    save(path, {'g': rosinality_generator_state(G), 'd': rosinality_discriminator_state(D),
                'g_ema': rosinality_generator_state(G_ema), 'g_optim': _adam_state(G, 0.0016),
                'd_optim': _adam_state(D, 0.0019), 'args': args, 'ada_aug_p': 0.25}, 'legacy')
    ck = sg.load(path)
    assert ck.meta['augment_p'] == 0.25 and ck.meta['args']['size'] == 16 and ck.meta['args']['augment'] is True
    assert ck.D.cfg.channels == {16: 8, 8: 24, 4: 16}
    img = torch.randn([8, 3, 16, 16], generator=torch.Generator().manual_seed(6))   # two stddev groups of 4
    assert_close(ck.D(img, None), D(img, None))
    z = torch.randn([4, 16], generator=torch.Generator().manual_seed(7))
    for loaded, src in ((ck.G, G), (ck.G_ema, G_ema)):
        assert_close(loaded(z, None, noise_mode='const'), src(z, None, noise_mode='const'))

    # No latent_avg: W average estimated (and said so); it must be the mean of the mapping output.
    assert 'estimated' in ck.meta['w_avg']
    zz = torch.randn([20000, 16], generator=torch.Generator().manual_seed(8))
    w = G_ema.mapping(zz, None)[:, 0]
    mean, sem = w.mean(dim=0), w.std(dim=0) / 100
    assert float(((ck.G_ema.mapping.w_avg - mean).abs() / sem).max()) < 6
    assert float((G_ema.mapping.w_avg - mean).abs().max()) > 10 * float(sem.max())   # the source's w_avg was random


def test_blur_kernel_other_than_1331_is_refused(tmp_path):
    G = source_generator(9, res=16, n_mlp=1, style_dim=16, channels={4: 8, 8: 8, 16: 8})
    sd = rosinality_generator_state(G)
    sd['convs.0.conv.blur.kernel'] = torch.ones([4, 4]) / 4
    path = tmp_path / 'custom-kernel.pt'
    save(path, {'g_ema': sd, 'latent_avg': G.mapping.w_avg.clone()}, 'zip')
    with pytest.raises(sg.CheckpointError, match='blur kernel'):
        sg.load(path)
