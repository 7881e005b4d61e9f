"""The library's own safetensors format: `sg.save` then `sg.load` gives back the same networks bitwise
(configs, every tensor, every output) and the same meta, for non-default configs too; files that do not
match their configs are refused."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save as st_save

import stylegan2_lib as sg
from fake_formats import make_discriminator, make_generator

G_CFG = dict(z_dim=16, c_dim=3, w_dim=12, img_resolution=16, channels={4: 16, 8: 24, 16: 8}, mapping_layers=3,
             mapping_embed_features=6, mapping_layer_features=20, num_fp16_res=2, conv_clamp=64, w_avg_beta=0.99)
D_CFG = dict(c_dim=3, img_resolution=16, channels={16: 8, 8: 24, 4: 16}, cmap_dim=10, mapping_layers=2,
             mbstd_group_size=None, mbstd_num_channels=2, num_fp16_res=1, conv_clamp=64)
META = {'augment_p': 0.125, 'training_set_kwargs': {'path': 'faces.zip', 'resolution': 16, 'xflip': True},
        'kimg': 1200, 'note': 'fine-tuned', 'nested': {'a': [1, 2.5, None], 'b': False}}

@pytest.fixture(scope='module')
def nets():
    return make_generator(seed=1, **G_CFG), make_discriminator(seed=2, **D_CFG), make_generator(seed=3, **G_CFG)

def assert_same_network(loaded, src):
    assert type(loaded) is type(src) and loaded.cfg == src.cfg
    a, b = loaded.state_dict(), src.state_dict()
    assert list(a) == list(b)
    for k in b:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k

def test_round_trip_is_exact(tmp_path, nets):
    G, D, G_ema = nets
    path = tmp_path / 'model.safetensors'
    sg.save(path, G=G, D=D, G_ema=G_ema, meta=META)
    ck = sg.load(path)
    for loaded, src in ((ck.G, G), (ck.D, D), (ck.G_ema, G_ema)):
        assert_same_network(loaded, src)
        assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert ck.meta['format'] == 'native'
    assert {k: ck.meta[k] for k in META} == META

    z = torch.randn([6, 16], generator=torch.Generator().manual_seed(4))
    c = F.one_hot(torch.arange(6) % 3, 3).float()
    for loaded, src in ((ck.G, G), (ck.G_ema, G_ema)):
        assert torch.equal(loaded(z, c, truncation_psi=0.7, truncation_cutoff=3, noise_mode='const'),
                           src(z, c, truncation_psi=0.7, truncation_cutoff=3, noise_mode='const'))
        ws = src.mapping(z, c)
        assert torch.equal(loaded.synthesis(ws, noise_mode='none'), src.synthesis(ws, noise_mode='none'))
    img = G_ema(z, c, noise_mode='const')
    assert torch.equal(ck.D(img, c), D(img, c))          # batch 6: one stddev group (group size None)
    assert not torch.equal(ck.G(z, c, noise_mode='const'), ck.G_ema(z, c, noise_mode='const'))


def test_file_is_plain_safetensors(tmp_path, nets):
    G, D, G_ema = nets
    path = tmp_path / 'model.safetensors'
    sg.save(path, G_ema=G_ema, D=D)
    tensors = load_file(path)                              # any safetensors reader can open it
    assert set(tensors) == {f'G_ema.{k}' for k in G_ema.state_dict()} | {f'D.{k}' for k in D.state_dict()}
    data = path.read_bytes()
    header = json.loads(data[8: 8 + int.from_bytes(data[:8], 'little')])
    metadata = header['__metadata__']
    assert metadata['format'] == 'stylegan2_lib' and metadata['version'] == '1'
    configs = json.loads(metadata['configs'])
    assert sg.GeneratorConfig.from_dict(configs['G_ema']) == G_ema.cfg
    assert sg.DiscriminatorConfig.from_dict(configs['D']) == D.cfg
    ck = sg.load(path)
    assert ck.G is None and ck.D is not None and ck.G_ema is not None


def test_meta_values_are_stored_as_plain_json(tmp_path, nets):
    path = tmp_path / 'model.safetensors'
    sg.save(path, G_ema=nets[2], meta={'p': np.float32(0.5), 'n': np.int64(7), 'shape': (1, 2), 'flag': np.bool_(True)})
    meta = sg.load(path).meta
    assert meta['p'] == 0.5 and type(meta['p']) is float
    assert meta['n'] == 7 and type(meta['n']) is int
    assert meta['shape'] == [1, 2] and meta['flag'] is True


def test_round_trip_of_a_loaded_nvlabs_snapshot(tmp_path, tiny32):
    path = tmp_path / 'converted.safetensors'
    sg.save(path, **tiny32.networks(), meta=tiny32.meta)
    ck = sg.load(path)
    for key, src in tiny32.networks().items():
        assert_same_network(getattr(ck, key), src)
    assert ck.meta['training_set_kwargs'] == tiny32.meta['training_set_kwargs']
    z = torch.randn([2, 64], generator=torch.Generator().manual_seed(5))
    assert torch.equal(ck.G_ema(z, None, noise_mode='const'), tiny32.G_ema(z, None, noise_mode='const'))


def test_save_refuses_nothing_and_foreign_modules(tmp_path):
    with pytest.raises(ValueError):
        sg.save(tmp_path / 'x.safetensors')
    with pytest.raises(TypeError):
        sg.save(tmp_path / 'x.safetensors', G=torch.nn.Linear(2, 2))
    assert not (tmp_path / 'x.safetensors').exists()

#----------------------------------------------------------------------------
# Files whose header and tensors disagree are refused, not half-loaded.

def _write(path, tensors, configs, version='1'):
    metadata = {'format': 'stylegan2_lib', 'version': version, 'configs': json.dumps(configs), 'meta': '{}'}
    path.write_bytes(st_save(tensors, metadata=metadata))

def _tensors(label, net):
    return {f'{label}.{k}': v.contiguous() for k, v in net.state_dict().items()}

def test_config_that_disagrees_with_the_tensors(tmp_path, nets):
    G_ema = nets[2]
    other = sg.GeneratorConfig(**dict(G_CFG, channels={4: 16, 8: 16, 16: 8}))
    path = tmp_path / 'bad.safetensors'
    _write(path, _tensors('G_ema', G_ema), {'G_ema': other.to_dict()})
    with pytest.raises(sg.CheckpointError, match='shape'):
        sg.load(path)

@pytest.mark.parametrize('case, message', [('version', 'version'), ('stray', 'belongs to no network'),
                                           ('label', 'unknown network'), ('missing', 'no tensor for')])
def test_inconsistent_files(tmp_path, nets, case, message):
    G_ema = nets[2]
    tensors, configs, version = _tensors('G_ema', G_ema), {'G_ema': G_ema.cfg.to_dict()}, '1'
    if case == 'version':
        version = '2'
    elif case == 'stray':
        tensors['G.mapping.w_avg'] = torch.zeros(12)
    elif case == 'label':
        configs['E'] = configs['G_ema']
    elif case == 'missing':
        del tensors['G_ema.synthesis.b8.conv0.noise_const']
    path = tmp_path / f'{case}.safetensors'
    _write(path, tensors, configs, version)
    with pytest.raises(sg.CheckpointError, match=message) as info:
        sg.load(path)
    assert str(path) in str(info.value)


def test_the_same_network_twice_is_saved_as_two_copies(tmp_path, tiny32):
    G = tiny32.G_ema
    sg.save(tmp_path / 'twice.safetensors', G=G, G_ema=G)         # safetensors alone refuses shared memory
    back = sg.load(tmp_path / 'twice.safetensors')
    for net in (back.G, back.G_ema):
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), G.state_dict().values()))
    with torch.no_grad():                                          # loaded as two networks that are not tied
        back.G.synthesis.b32.conv1.weight.add_(1)
    assert not torch.equal(back.G.synthesis.b32.conv1.weight, back.G_ema.synthesis.b32.conv1.weight)


def test_loaded_tensors_are_the_networks_own(tmp_path, nets):
    # The file is memory-mapped while loading: changing a loaded network (training does, in place) must not
    # reach the file, and the file can be replaced while the network lives.
    path = tmp_path / 'net.safetensors'
    sg.save(path, G=nets[0])
    before = path.read_bytes()
    G = sg.load(path).G
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(2)
    assert path.read_bytes() == before
    sg.save(path, G=nets[2])
    assert torch.equal(G.mapping.fc0.weight, nets[0].mapping.fc0.weight * 2)
