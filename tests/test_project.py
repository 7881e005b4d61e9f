"""Projection into W / W+ (NVlabs projector semantics) and the perceptual distances it uses."""


import numpy as np
import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import perceptual
from stylegan2_lib.assets import DEMO_BASE
from stylegan2_lib.project import noise_regularisation, project, save_projected_w


@pytest.fixture(scope='module')
def target(tiny32):
    """An image the generator can make: G(w) for a known w (truncated toward the mean), as the float [3, H, W]
    image it shows (clamped to [-1, 1]), and the raw output."""
    G = tiny32.G_ema
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, 64, generator=torch.Generator().manual_seed(5)), None, truncation_psi=0.7)
        img = G.synthesis(ws, noise_mode='const')
    return img[0].clamp(-1, 1), img


def test_projection_fits_a_generated_target(tiny32, target):
    G = tiny32.G_ema
    shown, img = target
    fits = {}
    for w_plus in (False, True):
        p = project(G, shown, steps=60, w_plus=w_plus, loss='pixel', progress=False)
        assert p.method == 'pixel' and p.ws.shape == (1, G.num_ws, G.w_dim)
        assert p.loss[-1] < p.loss[0] / 5                           # the error falls by a large factor
        if not w_plus:
            assert torch.equal(p.ws[:, 0], p.ws[:, -1])              # W: one w for every layer
        with torch.no_grad():
            fits[w_plus] = float((G.synthesis(p.ws, noise=p.noise) - img).square().mean())
        # noise regularisation + renormalisation keep the maps N(0, 1)-like
        for v in p.noise:
            assert abs(float(v.mean())) < 1e-4 and abs(float(v.var(unbiased=False)) - 1) < 1e-3
    assert fits[True] <= fits[False] * 1.05                          # W+ fits at least as well as W


def test_noise_regularisation_penalises_correlated_noise():
    white = [torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))]
    smooth = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(white[0], [1, 1, 1, 1], mode='circular'), 3, stride=1)
    smooth = [(smooth - smooth.mean()) / smooth.std()]              # same variance, neighbours correlated
    assert noise_regularisation(smooth) > 10 * noise_regularisation(white)


def test_projected_w_npz_is_nvlabs_format(tmp_path, tiny32):
    ws = torch.randn(1, tiny32.G_ema.num_ws, 64)
    save_projected_w(tmp_path / 'projected_w.npz', ws)
    data = np.load(tmp_path / 'projected_w.npz')
    assert list(data.keys()) == ['w'] and data['w'].shape == (1, 8, 64) and data['w'].dtype == np.float32
    np.testing.assert_array_equal(data['w'], ws.numpy())

#----------------------------------------------------------------------------
# Distances.

def _fake_vgg16_file(path, legacy=True):
    """A file in torchvision's vgg16 state-dict format (random weights; the real one is not offline)."""
    torch.manual_seed(0)
    state = {}
    for idx, (cin, cout) in zip([0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28], perceptual._VGG_CHANNELS):
        state[f'features.{idx}.weight'] = torch.randn(cout, cin, 3, 3) * (2 / (9 * cin)) ** 0.5
        state[f'features.{idx}.bias'] = torch.zeros(cout)
    state['classifier.0.weight'] = torch.zeros(4, 4)                  # present in theirs, unused here
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return state


@pytest.mark.parametrize('legacy', [True, False])
def test_vgg16_distance_from_a_torchvision_format_file(tmp_path, legacy):
    _fake_vgg16_file(tmp_path / 'vgg16.pth', legacy)
    dist = perceptual.load_vgg16(tmp_path / 'vgg16.pth')
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    b = a.flip(3)
    feats_a = dist.features(a)
    assert [f.shape[1] for f in feats_a] == [64, 128, 256, 512, 512]
    assert torch.allclose(dist(a, feats_a), torch.zeros(2), atol=1e-6)
    assert (dist(b, feats_a) > 1e-3).all()


def test_vgg16_with_lpips_weights(tmp_path):
    _fake_vgg16_file(tmp_path / 'vgg16.pth')
    lin = {f'lin{i}.model.1.weight': torch.rand(1, c, 1, 1) for i, c in enumerate([64, 128, 256, 512, 512])}
    torch.save(lin, tmp_path / 'vgg.pth')
    plain = perceptual.load_vgg16(tmp_path / 'vgg16.pth')
    weighted = perceptual.load_vgg16(tmp_path / 'vgg16.pth', tmp_path / 'vgg.pth')
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    feats = weighted.features(a)
    expected = sum(((perceptual._unit(x) - perceptual._unit(y)).square() * lin[f'lin{i}.model.1.weight']).sum(1).mean()
                   for i, (x, y) in enumerate(zip(weighted.features(b), feats)))
    torch.testing.assert_close(weighted(b, feats), expected.reshape(1))
    assert not torch.allclose(weighted(b, feats), plain(b, plain.features(a)))


def test_missing_vgg16_is_a_clear_error_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(perceptual, 'CACHE', tmp_path)
    with pytest.raises(FileNotFoundError, match='VGG16 weights not found'):
        perceptual.load_vgg16()
    with pytest.raises(sg.CheckpointError, match='not torchvision VGG16 weights'):
        torch.save({'x': torch.zeros(1)}, tmp_path / 'other.pth')
        perceptual.load_vgg16(tmp_path / 'other.pth')


def test_auto_falls_back_to_the_discriminator(tmp_path, monkeypatch, tiny32, target):
    monkeypatch.setattr(perceptual, 'CACHE', tmp_path)
    p = project(tiny32.G_ema, target[0], steps=2, D=tiny32.D, progress=False)
    assert p.method == 'discriminator'
    _fake_vgg16_file(tmp_path / 'vgg16-397923af.pth')
    assert project(tiny32.G_ema, target[0], steps=2, D=tiny32.D, progress=False).method == 'vgg'


def test_discriminator_distance(tiny32):
    dist = perceptual.DiscriminatorDistance(tiny32.D)
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    feats = dist.features(a)
    assert len(feats) == len(tiny32.D.block_resolutions)
    assert torch.allclose(dist(a, feats), torch.zeros(2), atol=1e-6) and (dist(a.flip(2), feats) > 0).all()


#----------------------------------------------------------------------------
# What a target's values mean: integers are [0, 255] pixels, floats [-1, 1] as the generator's images.

def test_the_generators_own_image_projects_to_itself():
    """A float tensor is read as [-1, 1]: G's own image ([1, 3, H, W], as G returns it, clamped to the image it
    shows) projects back close to itself. Read as [0, 255], as it once was, the same tensor was a near-black
    image, and its projection lands far from the image."""
    G = sg.load(DEMO_BASE).G_ema                                    # trained: its images are faces, not noise
    with torch.no_grad():
        shown = G(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(5)), None, truncation_psi=0.7).clamp(-1, 1)
    def error_of(aim):
        p = project(G, aim, steps=60, loss='pixel', progress=False)
        with torch.no_grad():
            return float((G.synthesis(p.ws, noise=p.noise).clamp(-1, 1) - shown).square().mean())
    fit, misread = error_of(shown), error_of(shown / 127.5 - 1)     # the old reading: every value about -1
    assert fit < 0.02 and misread > 50 * fit, (fit, misread)


def test_one_image_in_every_form_is_one_target(tiny32):
    """uint8 tensor, uint8 array, PIL image, and the same pixels as floats in [-1, 1]: the same first distance."""
    from PIL import Image
    pixels = np.random.RandomState(0).randint(0, 256, [32, 32, 3]).astype(np.uint8)
    forms = {'array': pixels, 'pil': Image.fromarray(pixels), 'tensor': torch.from_numpy(pixels).permute(2, 0, 1),
             'int64 array': pixels.astype(np.int64), 'float tensor': torch.from_numpy(pixels).permute(2, 0, 1) / 127.5 - 1,
             'float array': pixels / 127.5 - 1}
    first = {k: project(tiny32.G_ema, v, steps=1, loss='pixel', progress=False).loss[0] for k, v in forms.items()}
    assert max(first.values()) - min(first.values()) <= 1e-6 * max(first.values()), first


@pytest.mark.parametrize('case', ['float 0-255 tensor', 'float 0-255 array', 'raw output', 'nan', 'int above 255'])
def test_a_target_in_another_range_is_refused(tiny32, target, case):
    _, raw = target
    pixels = np.random.RandomState(0).randint(0, 256, [32, 32, 3])
    bad = {'float 0-255 tensor': torch.from_numpy(pixels).permute(2, 0, 1).float(),
           'float 0-255 array': pixels.astype(np.float32), 'raw output': raw,
           'nan': torch.full([3, 32, 32], float('nan')), 'int above 255': pixels + 300}[case]
    expected = 'is read as \\[0, 255\\]' if case == 'int above 255' else r'float .* is read as \[-1, 1\].*uint8.*clamp\(-1, 1\)'
    with pytest.raises(ValueError, match=expected):
        project(tiny32.G_ema, bad, steps=1, loss='pixel', progress=False)
