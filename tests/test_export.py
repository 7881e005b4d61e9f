"""Exports to the formats other tools load, each checked by loading it back and against the upstream
layouts: the NVlabs-readable TF-StyleGAN2 pickle (legacy.py's rules and kwargs), rosinality's state_dict
(their tensor names and shapes from the rosi32 reference, bitwise against their own file), and ours."""

import argparse
import io
import json
import pickle

import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib.checkpoints.rosinality import channel_multiplier, rosinality_state
from stylegan2_lib.checkpoints.tensorflow import channel_formula
from conftest import DATA, ROSI32
from fake_formats import assert_close, make_discriminator, make_generator, pickle_globals

# The kwargs legacy.py's convert_tf_generator / convert_tf_discriminator accept; any other is an error there.
LEGACY_G_KWARGS = {'latent_size', 'label_size', 'dlatent_size', 'resolution', 'num_channels', 'mapping_layers', 'label_fmaps',
                   'mapping_fmaps', 'mapping_nonlinearity', 'mapping_lrmul', 'w_avg_beta', 'fmap_base', 'fmap_max',
                   'num_fp16_res', 'conv_clamp', 'architecture', 'resample_kernel', 'use_noise', 'nonlinearity',
                   'truncation_psi', 'truncation_cutoff', 'style_mixing_prob', 'structure'}
LEGACY_D_KWARGS = {'label_size', 'resolution', 'num_channels', 'architecture', 'fmap_base', 'fmap_max', 'num_fp16_res',
                   'conv_clamp', 'mapping_fmaps', 'nonlinearity', 'resample_kernel', 'freeze_layers', 'mapping_layers',
                   'mapping_lrmul', 'mbstd_group_size', 'mbstd_num_features', 'structure'}


class _TFNetworkStub(dict):
    """What legacy.py's _LegacyUnpickler substitutes for dnnlib.tflib.network.Network (an EasyDict)."""


class _StockUnpickler(pickle.Unpickler):
    """legacy.py's unpickler: the stock one, with only the TF network class replaced by a stub."""
    def find_class(self, module, name):
        if (module, name) == ('dnnlib.tflib.network', 'Network'):
            return _TFNetworkStub
        return super().find_class(module, name)


def render(G, c=None, seed=0):
    z = torch.randn([3, G.z_dim], generator=torch.Generator().manual_seed(seed))
    return G(z, c, truncation_psi=0.7, noise_mode='const')


def same_networks(a, b, c=None):
    assert_close(render(b.G_ema, c), render(a.G_ema, c), name='G_ema')
    if a.G is not None:
        assert_close(render(b.G, c), render(a.G, c), name='G')
    if a.D is not None:
        n = 4 if c is None else len(c)
        img = torch.randn([n, 3, a.D.img_resolution, a.D.img_resolution], generator=torch.Generator().manual_seed(1))
        assert_close(b.D(img, c), a.D(img, c), name='D')

#----------------------------------------------------------------------------
# NVlabs (.pkl in the TF-StyleGAN2 layout).

def test_nvlabs_pickle_is_readable_by_their_unpickler_and_holds_no_code(tmp_path, tiny32):
    path = tmp_path / 'blended.pkl'
    assert sg.export(path, tiny32) == 'nvlabs'
    data = path.read_bytes()
    assert pickle_globals(data) <= {'dnnlib.tflib.network.Network', 'numpy.core.multiarray._reconstruct', 'numpy.ndarray', 'numpy.dtype'}
    nets = _StockUnpickler(io.BytesIO(data)).load()
    # legacy.load_network_pkl converts exactly a 3-tuple of TF networks: (G, D, Gs)
    assert isinstance(nets, tuple) and len(nets) == 3 and all(isinstance(n, _TFNetworkStub) for n in nets)
    G, D, Gs = (n.__dict__ for n in nets)
    for net, known in ((G, LEGACY_G_KWARGS), (D, LEGACY_D_KWARGS), (Gs, LEGACY_G_KWARGS)):
        assert net['version'] >= 4 and set(net['static_kwargs']) <= known
    assert Gs['static_kwargs']['fmap_base'] * 2 == 512 and Gs['static_kwargs']['fmap_max'] == 32   # tiny32: 512 / 32
    variables = dict(Gs['variables'])
    assert set(variables) == {'dlatent_avg'} and set(Gs['components']) == {'mapping', 'synthesis'}
    synthesis = dict(Gs['components']['synthesis'].__dict__['variables'])
    assert synthesis['32x32/Conv0_up/weight'].shape == (3, 3, 32, 16)        # [kh, kw, in, out]
    assert synthesis['noise6'].shape == (1, 1, 32, 32)
    assert synthesis['4x4/Const/const'].shape == (1, 32, 4, 4)
    # TF stores mod_bias without the +1 the runtime adds (legacy.py adds it back)
    torch.testing.assert_close(torch.from_numpy(synthesis['8x8/Conv1/mod_bias']) + 1, tiny32.G_ema.synthesis.b8.conv1.affine.bias)
    # and the up-conv kernel is flipped relative to ours
    ours = tiny32.G_ema.synthesis.b16.conv0.weight
    torch.testing.assert_close(torch.from_numpy(synthesis['16x16/Conv0_up/weight'].copy()), ours.permute(2, 3, 1, 0).flip([0, 1]))

    back = sg.load(path)
    assert back.meta['format'] == 'tensorflow'
    same_networks(tiny32, back)


def test_nvlabs_keeps_fp16_clamp_and_conditioning(tmp_path):
    cfg = dict(z_dim=16, w_dim=16, img_resolution=16, channel_base=256, channel_max=32, mapping_layers=2,
               num_fp16_res=2, conv_clamp=256, c_dim=3)
    ck = sg.Checkpoint(G=make_generator(1, **cfg), G_ema=make_generator(2, **cfg),
                       D=make_discriminator(3, img_resolution=16, channel_base=256, channel_max=32, c_dim=3,
                                            num_fp16_res=2, conv_clamp=256, mbstd_group_size=None))
    path = tmp_path / 'cond.pkl'
    sg.export(path, ck)
    back = sg.load(path)
    for a, b in ((ck.G_ema, back.G_ema), (ck.D, back.D)):
        assert (b.cfg.num_fp16_res, b.cfg.conv_clamp, b.cfg.c_dim, b.cfg.channels) == (2, 256, 3, a.cfg.channels)
    assert back.D.cfg.mbstd_group_size is None
    same_networks(ck, back, c=torch.eye(3)[[0, 1, 2]])


def test_nvlabs_generator_only_gets_a_placeholder_discriminator(tmp_path, tiny32):
    path = tmp_path / 'g.pkl'
    with pytest.warns(UserWarning, match='placeholder D'):
        sg.export(path, tiny32.G_ema)
    back = sg.load(path)
    assert back.D is not None and back.D.img_resolution == 32
    same_networks(sg.Checkpoint(G=tiny32.G_ema, G_ema=tiny32.G_ema), sg.Checkpoint(G=back.G, G_ema=back.G_ema))
    # the same input gives the same bytes (seeded placeholder)
    with pytest.warns(UserWarning):
        sg.export(tmp_path / 'again.pkl', tiny32.G_ema)
    assert (tmp_path / 'again.pkl').read_bytes() == path.read_bytes()


def test_channel_formula():
    assert channel_formula({4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}) == (32768, 512)
    assert channel_formula({4: 32, 8: 32, 16: 32, 32: 16}) == (512, 32)
    base, cmax = channel_formula({4: 32, 8: 32, 16: 24})
    assert [min(base // r, cmax) for r in (4, 8, 16)] == [32, 32, 24] and base % 2 == 0
    assert channel_formula({4: 12, 8: 5, 16: 7}) is None           # channels grow with resolution: no formula


def test_nvlabs_refuses_a_table_it_cannot_hold(tmp_path):
    G = make_generator(1, z_dim=8, w_dim=8, img_resolution=16, channels={4: 12, 8: 5, 16: 7}, mapping_layers=1)
    path = tmp_path / 'odd.pkl'
    with pytest.raises(sg.ExportError, match=r'odd.pkl: .*channel table .* cannot hold'):
        sg.export(path, G)
    assert not path.exists() and list(tmp_path.iterdir()) == []

#----------------------------------------------------------------------------
# rosinality (.pt).

def _their_state_dicts():
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(ROSI32, weights_only=True)       # trusted test data, read with torch only here


def test_rosinality_state_equals_their_file_bitwise(rosi32):
    theirs = _their_state_dicts()
    for key, net in (('g_ema', rosi32.G_ema), ('g', rosi32.G), ('d', rosi32.D)):
        ours = rosinality_state(net)
        assert set(ours) == set(theirs[key]), key
        for name, t in theirs[key].items():
            assert torch.equal(ours[name], t), f'{key}.{name}'


def test_rosinality_writes_a_divided_table_with_a_warning(tmp_path, rosi32):
    # rosi32's channels are their table divided by 16: their Generator(size, ...) cannot build it, but the file
    # format does not fix the table (forks use others): written, with a warning, and read back exactly.
    path = tmp_path / 'rosi.pt'
    with pytest.warns(UserWarning, match=r"not rosinality's .* their model.py builds its own table"):
        sg.export(path, rosi32)
    data = torch.load(path, weights_only=True)
    assert data['args']['channel_multiplier'] is None and data['args']['channels'] == rosi32.G_ema.cfg.channels
    back = sg.load(path)
    for label in ('G', 'D', 'G_ema'):
        want, got = getattr(rosi32, label).state_dict(), getattr(back, label).state_dict()
        # the format keeps one latent_avg (G_ema's), which both generators get back
        assert all(torch.equal(want[k], got[k]) for k in want if k != 'mapping.w_avg'), label


def test_rosinality_standard_table_matches_their_names_and_shapes(tmp_path):
    G = make_generator(4, z_dim=64, w_dim=64, img_resolution=8, channel_base=32768, channel_max=512, mapping_layers=2)
    path = tmp_path / 'g.pt'
    assert sg.export(path, G) == 'rosinality'
    data = torch.load(path, weights_only=True)               # no allowlist needed: plain dicts and tensors
    assert set(data) == {'g_ema', 'latent_avg', 'args'}
    assert data['args'] == {'size': 8, 'latent': 64, 'n_mlp': 2, 'channel_multiplier': 2, 'arch': 'stylegan2'}
    assert torch.equal(data['latent_avg'], G.mapping.w_avg)
    # Their names and shapes for Generator(size=8, style_dim=64, n_mlp=2): the rosi32 facts (size 32, channel
    # table / 16, so 32 channels stand for 512), restricted to the 4x4 and 8x8 layers.
    facts = json.loads((DATA / 'rosi32' / 'facts.json').read_text())['g_ema_state_dict']['tensors']
    keep = ('style.', 'input.', 'conv1.', 'to_rgb1.', 'convs.0.', 'convs.1.', 'to_rgbs.0.', 'noises.noise_0', 'noises.noise_1', 'noises.noise_2')
    expected = {t['name']: [512 if d == 32 else d for d in t['shape']] for t in facts if t['name'].startswith(keep)}
    assert {k: list(v.shape) for k, v in data['g_ema'].items()} == expected
    back = sg.load(path)
    assert back.meta['format'] == 'rosinality' and 'w_avg' not in back.meta
    assert_close(render(back.G_ema), render(G))


@pytest.mark.parametrize('cm', [1, 2, 4])
def test_rosinality_channel_multiplier(cm):
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm}
    assert channel_multiplier(table, 256) == cm
    assert channel_multiplier({**table, 256: 64 * cm + 1}, 256) is None


def test_rosinality_round_trip_with_discriminator(tmp_path):
    ck = sg.Checkpoint(G_ema=make_generator(5, z_dim=64, w_dim=64, img_resolution=8, channel_base=32768, mapping_layers=1),
                       D=make_discriminator(6, img_resolution=8, channel_base=32768))
    ck.G = ck.G_ema
    path = tmp_path / 'train.pt'
    sg.export(path, ck, meta={'augment_p': 0.25})
    data = torch.load(path, weights_only=True)
    assert set(data) == {'g_ema', 'g', 'd', 'latent_avg', 'args', 'ada_aug_p'} and data['ada_aug_p'] == 0.25
    assert 'convs.1.conv2.0.kernel' in data['d'] and 'final_linear.1.weight' in data['d']
    back = sg.load(path)
    same_networks(ck, back)


def test_rosinality_refusals_and_warnings(tmp_path):
    base = dict(z_dim=64, w_dim=64, img_resolution=8, channel_base=32768, mapping_layers=1)
    path = tmp_path / 'x.pt'
    with pytest.raises(sg.ExportError, match='conditional'):
        sg.export(path, make_generator(1, c_dim=2, **base))
    with pytest.raises(sg.ExportError, match='z_dim differs'):
        sg.export(path, make_generator(1, **{**base, 'z_dim': 32}))
    assert not path.exists()
    with pytest.warns(UserWarning, match='no conv_clamp'):
        sg.export(path, make_generator(1, conv_clamp=256, **base))
    assert path.exists()

#----------------------------------------------------------------------------
# Format choice, our own format, atomicity.

def test_format_from_extension_or_argument(tmp_path, tiny32):
    assert sg.export(tmp_path / 'a.safetensors', tiny32) == 'native'
    assert sg.load(tmp_path / 'a.safetensors').meta['derived_from_format'] == 'nvlabs'
    assert sg.export(tmp_path / 'b.bin', tiny32, format='native') == 'native'
    assert sg.load(tmp_path / 'b.bin').meta['format'] == 'native'
    with pytest.raises(sg.ExportError, match='cannot tell the format'):
        sg.export(tmp_path / 'c.bin', tiny32)
    with pytest.raises(sg.ExportError, match="unknown format 'tflite'"):
        sg.export(tmp_path / 'c.tflite', tiny32, format='tflite')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.safetensors', 'b.bin']


def test_failed_export_keeps_an_existing_file(tmp_path):
    path = tmp_path / 'keep.pt'
    path.write_bytes(b'previous contents')
    with pytest.raises(sg.ExportError, match='z_dim differs'):
        sg.export(path, make_generator(1, z_dim=8, w_dim=16, img_resolution=8, mapping_layers=2))
    assert path.read_bytes() == b'previous contents'
