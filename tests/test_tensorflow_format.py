"""TensorFlow StyleGAN2 pickles, hand-made with tests/fake_formats.py: a tuple (G, D, Gs) or a single Gs of
`dnnlib.tflib.network.Network` states (version 4, variables as (name, array) pairs, sub-networks in
components), converted with NVlabs legacy.py's rules. The files are written from our networks with the
inverse rules; the loaded networks must compute what the source networks compute."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import stylegan2_lib as sg
from stylegan2_lib import ops
from stylegan2_lib.checkpoints.safe_pickle import as_array, load_pickle
from fake_formats import (assert_close, make_discriminator, make_generator, pickle_globals, tf_discriminator,
                          tf_generator, write_pickle)

RES = 16
G_TF = {'num_channels': 3, 'resolution': RES, 'label_size': 0, 'latent_size': 16, 'dlatent_size': 16,
        'mapping_layers': 2, 'fmap_base': 64, 'fmap_max': 32}          # channel_base = 2 * fmap_base = 128
G_OURS = dict(z_dim=16, w_dim=16, img_resolution=RES, channel_base=128, channel_max=32, mapping_layers=2)
D_TF = {'num_channels': 3, 'resolution': RES, 'label_size': 0, 'fmap_base': 64, 'fmap_max': 32}
D_OURS = dict(img_resolution=RES, channel_base=128, channel_max=32)

def latents(n=4, seed=3):
    return torch.randn([n, 16], generator=torch.Generator().manual_seed(seed))

def images(n, seed=4):
    return torch.randn([n, 3, RES, RES], generator=torch.Generator().manual_seed(seed))

def same_generator(G_loaded, G_src, c=None):
    z = latents()
    for psi in (1.0, 0.6):
        assert_close(G_loaded(z, c, truncation_psi=psi, noise_mode='const'), G_src(z, c, truncation_psi=psi, noise_mode='const'))
    assert_close(G_loaded(z, c, noise_mode='none'), G_src(z, c, noise_mode='none'))

def write(tmp_path, obj, numpy_names='2.x'):
    path = tmp_path / 'network-final.pkl'
    return path, write_pickle(path, obj, numpy_names)

#----------------------------------------------------------------------------

@pytest.mark.parametrize('numpy_names', ['1.x', '2.x'])
@pytest.mark.parametrize('mbstd', [None, 2])
def test_tuple_G_D_Gs(tmp_path, numpy_names, mbstd):
    G = make_generator(seed=1, **G_OURS)
    Gs = make_generator(seed=2, **G_OURS)
    D = make_discriminator(seed=3, mbstd_group_size=mbstd, **D_OURS)
    D_kwargs = dict(D_TF, **({} if mbstd is None else {'mbstd_group_size': mbstd}))
    Gs_kwargs = dict(G_TF, truncation_psi=0.5)              # read and ignored by legacy.py
    path, data = write(tmp_path, (tf_generator(G, G_TF), tf_discriminator(D, D_kwargs), tf_generator(Gs, Gs_kwargs, 'Gs')), numpy_names)
    reconstruct = 'numpy.core.multiarray._reconstruct' if numpy_names == '1.x' else 'numpy._core.multiarray._reconstruct'
    assert {'dnnlib.tflib.network.Network', reconstruct, 'numpy.ndarray', 'numpy.dtype'} <= pickle_globals(data)

    ck = sg.load(path)
    assert ck.meta['format'] == 'tensorflow'
    assert ck.G_ema.cfg.channels == {4: 32, 8: 16, 16: 8}
    assert ck.D.b4.mbstd.group_size == mbstd                    # legacy.py: None (whole batch) when absent
    same_generator(ck.G, G)
    same_generator(ck.G_ema, Gs)
    assert torch.equal(ck.G_ema.mapping.w_avg, Gs.mapping.w_avg)
    img = images(6)
    assert_close(ck.D(img, None), D(img, None))


def test_single_Gs_network(tmp_path):
    Gs = make_generator(seed=4, **G_OURS)
    path, _ = write(tmp_path, tf_generator(Gs, G_TF, 'Gs'))
    ck = sg.load(path)
    assert ck.G is None and ck.D is None and ck.generator is ck.G_ema
    same_generator(ck.G_ema, Gs)


def test_conditional_fp16_and_clamp_kwargs(tmp_path):
    # stylegan2-ada's TF networks carry label_size, num_fp16_res and conv_clamp; D maps labels with
    # mapping_layers / mapping_fmaps (cmap_dim) and legacy.py's D default mapping_lrmul 0.1.
    G_kwargs = dict(G_TF, label_size=3, num_fp16_res=2, conv_clamp=256)
    D_kwargs = dict(D_TF, label_size=3, mapping_layers=1, mapping_fmaps=12, num_fp16_res=2, conv_clamp=256)
    Gs = make_generator(seed=5, c_dim=3, num_fp16_res=2, conv_clamp=256, **G_OURS)
    D = make_discriminator(seed=6, c_dim=3, cmap_dim=12, mapping_layers=1, mapping_embed_features=12,
                           mapping_layer_features=12, mapping_lr_multiplier=0.1, num_fp16_res=2, conv_clamp=256, **D_OURS)
    path, _ = write(tmp_path, (tf_generator(Gs, G_kwargs), tf_discriminator(D, D_kwargs), tf_generator(Gs, G_kwargs, 'Gs')))
    ck = sg.load(path)
    assert ck.G_ema.cfg.conv_clamp == 256 and [b.use_fp16 for b in ck.G_ema.synthesis.blocks()] == [False, True, True]
    assert ck.D.cfg.mapping_lr_multiplier == 0.1 and ck.D.cfg.effective_cmap_dim == 12
    c = F.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()
    same_generator(ck.G_ema, Gs, c)
    img = Gs(latents(), c, noise_mode='const')
    assert_close(ck.D(img, c), D(img, c))

#----------------------------------------------------------------------------
# The conversion rules against TF's definitions, on the loaded tensors and the file's arrays.

def _tf_vars(data, component=None):
    net = load_pickle(data)
    net = net[2] if isinstance(net, tuple) else net
    if component:
        net = net.state['components'][component]
    return {k: torch.from_numpy(np.array(as_array(v))) for k, v in net.state['variables']}

def test_rules_follow_tensorflow_semantics(tmp_path):
    Gs = make_generator(seed=7, **G_OURS)
    path, data = write(tmp_path, tf_generator(Gs, G_TF, 'Gs'))
    ck = sg.load(path)
    syn, mapping = _tf_vars(data, 'synthesis'), _tf_vars(data, 'mapping')
    layer = ck.G_ema.synthesis.b8.conv0

    # Up-conv: TF's upsample_conv_2d is "upsample_2d() followed by tf.nn.conv2d()" (a correlation) with its
    # [kh, kw, in, out] kernel; ours runs conv2d_resample(up=2, flip_weight=False) on the converted kernel.
    # Both fused ops crop the filtered signal before the conv ends, so only the outermost ring may differ.
    x = torch.randn([2, 32, 8, 8], generator=torch.Generator().manual_seed(0))
    f = ops.setup_filter([1, 3, 3, 1])
    tf_w = syn['8x8/Conv0_up/weight']
    assert not torch.equal(tf_w, tf_w.flip([0, 1]))             # an asymmetric kernel: the flip matters
    expected = F.conv2d(ops.upsample2d(x, f), tf_w.permute(3, 2, 0, 1), padding=1)
    ours = ops.conv2d_resample(x, layer.weight, f=f, up=2, padding=1, flip_weight=False, impl='ref')
    assert_close(ours[:, :, 1:-1, 1:-1], expected[:, :, 1:-1, 1:-1])
    # Plain convs: correlations in both, so only the axes move ([kh, kw, in, out] -> [out, in, kh, kw]).
    assert torch.equal(ck.G_ema.synthesis.b8.conv1.weight, syn['8x8/Conv1/weight'].permute(3, 2, 0, 1))

    # TF computes styles = dense(w) + mod_bias + 1; dense layers are x @ W with W [in, out].
    w = torch.randn([3, 16])
    tf_styles = w @ syn['8x8/Conv0_up/mod_weight'] / np.sqrt(16) + syn['8x8/Conv0_up/mod_bias'] + 1
    assert_close(layer.affine(w), tf_styles)
    z = torch.randn([3, 16])
    assert_close(ck.G_ema.mapping.fc0(z), F.leaky_relu(z @ mapping['Dense0/weight'] * (0.01 / 4) + mapping['Dense0/bias'] * 0.01, 0.2) * np.sqrt(2))
    # noise{i}: [1, 1, r, r] per conv layer in order; const carries a batch axis.
    assert torch.equal(ck.G_ema.synthesis.b8.conv1.noise_const, syn['noise2'][0, 0])
    assert torch.equal(ck.G_ema.synthesis.b4.const, syn['4x4/Const/const'][0])

#----------------------------------------------------------------------------
# What legacy.py refuses, refused with a message naming the problem.

def _gs_with(state_change=None, kwargs_change=None, drop=None, add=None):
    Gs = make_generator(seed=8, **G_OURS)
    net = tf_generator(Gs, dict(G_TF, **(kwargs_change or {})), 'Gs')
    state = net.__getstate__()
    syn = state['components']['synthesis'].__getstate__()
    syn['variables'] = [(k, v) for k, v in syn['variables'] if k != drop] + list(add or [])
    state.update(state_change or {})
    return net

@pytest.mark.parametrize('change, message', [
    (dict(kwargs_change={'fancy_option': 1}), "unknown TensorFlow kwarg 'fancy_option'"),
    (dict(state_change={'version': 3}), 'version 3'),
    (dict(drop='16x16/Conv1/mod_bias'), '16x16/Conv1/mod_bias'),
    (dict(add=[('ToRGB_lod0/weight', np.zeros([1, 1, 8, 3], np.float32))]), 'progressive'),
    (dict(kwargs_change={'architecture': 'resnet'}), 'resnet'),
])
def test_refused(tmp_path, change, message):
    path, _ = write(tmp_path, _gs_with(**change))
    with pytest.raises(sg.CheckpointError, match=message) as info:
        sg.load(path)
    assert str(path) in str(info.value)

