"""NVlabs network pickles the tiny32 reference does not cover, hand-made with tests/fake_formats.py:
fp16 blocks + conv_clamp, stylegan3-repo StyleGAN2 networks (other constructor defaults), snapshots with an
augment_pipe, numpy 1.x / 2.x scalar names, conditional G and D, minibatch-stddev over the whole batch,
and StyleGAN3 networks (refused)."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import stylegan2_lib as sg
from stylegan2_lib.checkpoints.safe_pickle import load_pickle
from fake_formats import (EasyDict, PersistentObj, ada_D_kwargs, ada_G_kwargs, assert_close, augment_pipe_record,
                          make_discriminator, make_generator, module_record, nvlabs_snapshot, pickle_globals,
                          write_pickle)

RES, BASE, CMAX = 16, 128, 32          # channels {4: 32, 8: 16, 16: 8}

def G_cfg(**kw):
    return dict(dict(z_dim=16, w_dim=16, img_resolution=RES, channel_base=BASE, channel_max=CMAX, mapping_layers=2), **kw)

def D_cfg(**kw):
    return dict(dict(img_resolution=RES, channel_base=BASE, channel_max=CMAX), **kw)

def load_snapshot(tmp_path, snapshot, numpy_names='2.x', name='network-snapshot.pkl'):
    path = tmp_path / name
    data = write_pickle(path, snapshot, numpy_names)
    return sg.load(path), data

def latents(n=4, dim=16, seed=123):
    return torch.randn([n, dim], generator=torch.Generator().manual_seed(seed))

def images(n=4, seed=7):
    return torch.randn([n, 3, RES, RES], generator=torch.Generator().manual_seed(seed))

def same_outputs(G_loaded, G_src, z, c=None):
    for psi in (1.0, 0.6):
        assert_close(G_loaded(z, c, truncation_psi=psi, noise_mode='const'), G_src(z, c, truncation_psi=psi, noise_mode='const'), name=f'psi {psi}')

def capture(net, kinds):
    """Forward hooks collecting the outputs of every sub-module whose class is in `kinds`: {name: output}."""
    out, handles = {}, []
    for name, mod in net.named_modules():
        if type(mod).__name__ in kinds:
            handles.append(mod.register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, o)))
    return out, handles

#----------------------------------------------------------------------------
# fp16 blocks + conv_clamp 256 (stylegan2-ada-pytorch's paper configs).

def test_fp16_blocks_are_kept_and_compute_float32_on_cpu(tmp_path):
    G = make_generator(seed=1, **G_cfg(num_fp16_res=2, conv_clamp=256))
    D = make_discriminator(seed=2, **D_cfg(num_fp16_res=2, conv_clamp=256))
    ck, _ = load_snapshot(tmp_path, nvlabs_snapshot(
        G_ema=(G, ada_G_kwargs(G.cfg, BASE, CMAX, num_fp16_res=2, conv_clamp=256)),
        D=(D, ada_D_kwargs(D.cfg, BASE, CMAX, num_fp16_res=2, conv_clamp=256, epilogue=dict(mbstd_group_size=4)))))
    assert [b.use_fp16 for b in ck.G_ema.synthesis.blocks()] == [False, True, True]
    assert [getattr(ck.D, f'b{r}').use_fp16 for r in ck.D.block_resolutions] == [True, True]
    assert ck.G_ema.cfg.conv_clamp == 256 and ck.D.cfg.conv_clamp == 256

    # The float32 twin: same tensors, no fp16 blocks. On CPU the fp16 blocks compute float32, bitwise the same.
    G32 = sg.Generator(ck.G_ema.cfg.replace(num_fp16_res=0)).eval().requires_grad_(False)
    G32.load_state_dict(ck.G_ema.state_dict())
    D32 = sg.Discriminator(ck.D.cfg.replace(num_fp16_res=0)).eval().requires_grad_(False)
    D32.load_state_dict(ck.D.state_dict())
    z, img = latents(), images()
    out = ck.G_ema(z, None, noise_mode='const')
    assert out.dtype == torch.float32
    assert torch.equal(out, G32(z, None, noise_mode='const'))
    assert torch.equal(out, ck.G_ema(z, None, noise_mode='const', force_fp32=True))
    assert torch.equal(ck.D(img, None), D32(img, None))
    same_outputs(ck.G_ema, G, z)
    assert_close(ck.D(img, None), D(img, None))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='the fp16 path runs on CUDA only')
def test_fp16_blocks_on_cuda_are_close_to_force_fp32(tmp_path):
    G = make_generator(seed=1, **G_cfg(num_fp16_res=2, conv_clamp=256))
    ck, _ = load_snapshot(tmp_path, nvlabs_snapshot(G_ema=(G, ada_G_kwargs(G.cfg, BASE, CMAX, num_fp16_res=2, conv_clamp=256))))
    G16 = ck.G_ema.cuda()
    seen, handles = capture(G16, {'SynthesisLayer'})
    z = latents().cuda()
    fast = G16(z, None, noise_mode='const')
    assert seen['synthesis.b16.conv1'].dtype == torch.float16 and seen['synthesis.b4.conv1'].dtype == torch.float32
    ref = G16(z, None, noise_mode='const', force_fp32=True)
    assert seen['synthesis.b16.conv1'].dtype == torch.float32
    for h in handles:
        h.remove()
    assert fast.dtype == torch.float32
    err = float((fast - ref).abs().max())
    assert err <= 0.02 * float(ref.abs().max()), err

#----------------------------------------------------------------------------
# conv_clamp really clamps, checked layer by layer and against a hand computation with plain torch.

def test_conv_clamp_clamps_every_layer(tmp_path):
    clamp = 0.5
    G = make_generator(seed=3, **G_cfg(conv_clamp=clamp))
    D = make_discriminator(seed=4, **D_cfg(conv_clamp=clamp))
    ck, _ = load_snapshot(tmp_path, nvlabs_snapshot(
        G_ema=(G, ada_G_kwargs(G.cfg, BASE, CMAX, num_fp16_res=0, conv_clamp=clamp)),
        D=(D, ada_D_kwargs(D.cfg, BASE, CMAX, num_fp16_res=0, conv_clamp=clamp))))
    z, img = latents(), images()
    same_outputs(ck.G_ema, G, z)
    assert_close(ck.D(img, None), D(img, None))

    # Every synthesis layer and ToRGB output lies within +-clamp (gain 1 here), and the bound is reached.
    seen, handles = capture(ck.G_ema, {'SynthesisLayer', 'ToRGBLayer'})
    out = ck.G_ema(z, None, noise_mode='const')
    for h in handles:
        h.remove()
    assert len(seen) == 8
    for name, y in seen.items():
        assert float(y.abs().max()) <= clamp + 1e-6, name
    assert sum(int((y.abs() >= clamp - 1e-6).sum()) for y in seen.values()) > 100

    # Without the clamp the same tensors give another image: the loader did keep conv_clamp.
    free = sg.Generator(ck.G_ema.cfg.replace(conv_clamp=None)).eval().requires_grad_(False)
    free.load_state_dict(ck.G_ema.state_dict())
    assert float((free(z, None, noise_mode='const') - out).abs().max()) > 0.1

    # D: fromrgb/conv0/b4.conv clamp at +-clamp, conv1 (gain sqrt(1/2)) at +-clamp*sqrt(1/2).
    seen, handles = capture(ck.D, {'Conv2dLayer'})
    ck.D(img, None)
    for h in handles:
        h.remove()
    for name, y in seen.items():
        bound = {'conv1': clamp * np.sqrt(0.5), 'skip': np.inf}.get(name.rsplit('.', 1)[-1], clamp)
        assert float(y.abs().max()) <= bound + 1e-6, name
    assert float(seen['b16.fromrgb'].abs().max()) == pytest.approx(clamp)


def test_first_layer_matches_a_hand_computation(tmp_path):
    # b4.conv1: modulated 3x3 conv of the constant, demodulated, + const noise, + bias, lrelu * sqrt(2), clamp.
    clamp = 0.7
    G = make_generator(seed=5, **G_cfg(conv_clamp=clamp))
    ck, _ = load_snapshot(tmp_path, nvlabs_snapshot(G_ema=(G, ada_G_kwargs(G.cfg, BASE, CMAX, conv_clamp=clamp))))
    sd = G.state_dict()
    ws = ck.G_ema.mapping(latents(), None)
    seen, handles = capture(ck.G_ema, {'SynthesisLayer'})
    ck.G_ema.synthesis(ws, noise_mode='const')
    for h in handles:
        h.remove()
    p = 'synthesis.b4.conv1.'
    styles = ws[:, 0] @ (sd[p + 'affine.weight'] / np.sqrt(16)).t() + sd[p + 'affine.bias']
    w = sd[p + 'weight'][None] * styles[:, None, :, None, None]
    w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    x = sd['synthesis.b4.const']
    y = torch.stack([F.conv2d(x[None], w[i], padding=1)[0] for i in range(len(ws))])
    y = y + sd[p + 'noise_const'] * sd[p + 'noise_strength'] + sd[p + 'bias'].reshape(1, -1, 1, 1)
    y = (F.leaky_relu(y, 0.2) * np.sqrt(2)).clamp(-clamp, clamp)
    assert_close(seen['synthesis.b4.conv1'], y)

#----------------------------------------------------------------------------
# The stylegan3 repo's StyleGAN2 (training/networks_stylegan2.py, --cfg=stylegan2): synthesis options at
# the top level of init_kwargs, and its train.py leaves num_fp16_res / conv_clamp out, so its constructor
# defaults hold: conv_clamp 256, num_fp16_res 4, mapping w_avg_beta 0.998.

def _stylegan3_repo_pair():
    G = make_generator(seed=6, **G_cfg(conv_clamp=256, num_fp16_res=4, w_avg_beta=0.998))
    D = make_discriminator(seed=7, **D_cfg(conv_clamp=256, num_fp16_res=4))
    with torch.no_grad():             # large enough that the 256 clamp matters
        for block in G.synthesis.blocks():
            block.torgb.bias[0] = 400.0
        D.b16.fromrgb.bias[:2] = 300.0
    G_kwargs = {'z_dim': 16, 'w_dim': 16, 'mapping_kwargs': EasyDict(num_layers=2), 'channel_base': BASE,
                'channel_max': CMAX, 'fused_modconv_default': 'inference_only', 'c_dim': 0, 'img_resolution': RES,
                'img_channels': 3}
    D_kwargs = {'block_kwargs': EasyDict(freeze_layers=0), 'mapping_kwargs': EasyDict(),
                'epilogue_kwargs': EasyDict(mbstd_group_size=4), 'channel_base': BASE, 'channel_max': CMAX,
                'c_dim': 0, 'img_resolution': RES, 'img_channels': 3}
    extra = {'synthesis': {'num_fp16_res': 4}, **{f'synthesis.b{r}': {'fused_modconv_default': 'inference_only'} for r in (4, 8, 16)}}
    return G, D, G_kwargs, D_kwargs, extra


def test_stylegan3_repo_stylegan2_pickle(tmp_path):
    G, D, G_kwargs, D_kwargs, extra = _stylegan3_repo_pair()
    ck, _ = load_snapshot(tmp_path, nvlabs_snapshot(G=(G, G_kwargs, extra), G_ema=(G, G_kwargs, extra), D=(D, D_kwargs)))
    for net in (ck.G, ck.G_ema, ck.D):
        assert net.cfg.conv_clamp == 256 and net.cfg.num_fp16_res > 0
    assert [b.use_fp16 for b in ck.G_ema.synthesis.blocks()] == [b.use_fp16 for b in G.synthesis.blocks()] == [False, True, True]
    assert ck.G_ema.cfg.channels == {4: 32, 8: 16, 16: 8}
    z, img = latents(), images()
    same_outputs(ck.G_ema, G, z)
    assert_close(ck.D(img, None), D(img, None))

    # The clamp is what makes these outputs: without it they differ by a lot.
    free = sg.Generator(ck.G_ema.cfg.replace(conv_clamp=None)).eval().requires_grad_(False)
    free.load_state_dict(ck.G_ema.state_dict())
    assert float((free(z, None, noise_mode='const') - G(z, None, noise_mode='const')).abs().max()) > 100
    free_D = sg.Discriminator(ck.D.cfg.replace(conv_clamp=None)).eval().requires_grad_(False)
    free_D.load_state_dict(ck.D.state_dict())
    assert float((free_D(img, None) - D(img, None)).abs().max()) > 1e-3


def test_stylegan3_repo_update_emas(tmp_path):
    # Their calls: G.mapping(z, c, update_emas=...) and G(z, c, update_emas=...); w_avg moves only when asked,
    # by w_avg <- mean(w).lerp(w_avg, w_avg_beta) with their default beta 0.998.
    G, D, G_kwargs, D_kwargs, extra = _stylegan3_repo_pair()
    ck, _ = load_snapshot(tmp_path, nvlabs_snapshot(G_ema=(G, G_kwargs, extra), D=(D, D_kwargs)))
    Gl = ck.G_ema
    assert Gl.cfg.w_avg_beta == 0.998
    z = latents(8)
    before = Gl.mapping.w_avg.clone()
    assert torch.equal(Gl(z, None, update_emas=False, noise_mode='const'), G(z, None, noise_mode='const'))
    ws = Gl.mapping(z, None, update_emas=False)
    assert torch.equal(Gl.mapping.w_avg, before)
    Gl.mapping(z, None, update_emas=True)
    expected = before + (ws[:, 0].mean(dim=0) - before) * (1 - 0.998)
    assert_close(Gl.mapping.w_avg, expected)
    assert not torch.equal(Gl.mapping.w_avg, before)
    assert ck.D(images(), None, update_emas=False).shape == (4, 1)

#----------------------------------------------------------------------------
# A training snapshot: training_set_kwargs, an AugmentPipe persistent object, nested storage blobs.

def test_snapshot_with_augment_pipe(tmp_path):
    G = make_generator(seed=8, **G_cfg())
    G_ema = make_generator(seed=9, **G_cfg())
    D = make_discriminator(seed=10, **D_cfg())
    training_set_kwargs = {'class_name': 'training.dataset.ImageFolderDataset', 'path': '~/datasets/faces.zip',
                           'use_labels': False, 'max_size': 70000, 'xflip': True, 'resolution': RES}
    snap = nvlabs_snapshot(G=(G, ada_G_kwargs(G.cfg, BASE, CMAX)), D=(D, ada_D_kwargs(D.cfg, BASE, CMAX)),
                           G_ema=(G_ema, ada_G_kwargs(G_ema.cfg, BASE, CMAX)),
                           training_set_kwargs=training_set_kwargs, augment_pipe=augment_pipe_record(0.3125))
    ck, data = load_snapshot(tmp_path, snap)
    assert 'torch_utils' not in sys.modules and 'dnnlib' not in sys.modules   # the stand-ins were removed
    names = pickle_globals(data)
    assert {'torch.storage._load_from_bytes', 'torch_utils.persistence._reconstruct_persistent_obj',
            'dnnlib.util.EasyDict', 'torch._utils._rebuild_parameter'} <= names
    assert ck.meta['format'] == 'nvlabs'
    assert ck.meta['augment_p'] == 0.3125
    assert ck.meta['augment_kwargs']['xflip'] == 1 and ck.meta['augment_kwargs']['saturation'] == 1
    assert ck.meta['training_set_kwargs'] == training_set_kwargs
    z = latents()
    same_outputs(ck.G, G, z)
    same_outputs(ck.G_ema, G_ema, z)
    assert_close(ck.D(images(), None), D(images(), None))
    assert float((ck.G(z, None, noise_mode='const') - ck.G_ema(z, None, noise_mode='const')).abs().max()) > 0.1


def test_module_src_is_never_run(tmp_path):
    marker = tmp_path / 'ran'
    G = make_generator(seed=11, **G_cfg())
    rec = module_record(G, ada_G_kwargs(G.cfg, BASE, CMAX))
    rec.meta['module_src'] = f'open({str(marker)!r}, "w").write("module_src ran")\n'
    ck, _ = load_snapshot(tmp_path, {'G_ema': rec})
    assert not marker.exists()
    assert ck.G is None and ck.D is None
    same_outputs(ck.G_ema, G, latents())

#----------------------------------------------------------------------------
# numpy scalars (weight_gain, act_gain attributes) under numpy 1.x and 2.x module names.

@pytest.mark.parametrize('numpy_names, name', [('1.x', 'numpy.core.multiarray.scalar'), ('2.x', 'numpy._core.multiarray.scalar')])
def test_numpy_scalar_module_names(tmp_path, numpy_names, name):
    G = make_generator(seed=12, **G_cfg())
    ck, data = load_snapshot(tmp_path, nvlabs_snapshot(G_ema=(G, ada_G_kwargs(G.cfg, BASE, CMAX))), numpy_names)
    names = pickle_globals(data)
    assert name in names
    assert not any(n.endswith('multiarray.scalar') and n != name for n in names)
    same_outputs(ck.G_ema, G, latents())
    # The scalars decode to the values NVlabs computed: weight_gain = lr_multiplier / sqrt(in_features).
    fc0 = load_pickle(data)['G_ema'].state['_modules']['mapping'].state['_modules']['fc0']
    assert isinstance(fc0.state['weight_gain'], np.float64) and fc0.state['weight_gain'] == 0.01 / np.sqrt(16)
    layer = load_pickle(data)['G_ema'].state['_modules']['synthesis'].state['_modules']['b8'].state['_modules']['conv0']
    assert layer.state['act_gain'] == np.sqrt(2)

#----------------------------------------------------------------------------
# Conditional networks: G maps (z, c) with a label embedding; D projects its output onto cmap(c).

def _fc(x, weight, bias, lr, act):
    y = x @ (weight * (lr / np.sqrt(weight.shape[1]))).t() + bias * lr
    return F.leaky_relu(y, 0.2) * np.sqrt(2) if act else y

def _norm(x):
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()

def test_conditional_generator_and_discriminator(tmp_path):
    c_dim, cmap_dim = 5, 12
    G = make_generator(seed=13, **G_cfg(c_dim=c_dim))
    D = make_discriminator(seed=14, **D_cfg(c_dim=c_dim, cmap_dim=cmap_dim, mapping_layers=2))
    ck, _ = load_snapshot(tmp_path, nvlabs_snapshot(
        G_ema=(G, ada_G_kwargs(G.cfg, BASE, CMAX)),
        D=(D, ada_D_kwargs(D.cfg, BASE, CMAX, cmap_dim=cmap_dim, mapping=dict(num_layers=2)))))
    assert ck.G_ema.c_dim == c_dim and ck.D.c_dim == c_dim and ck.D.cfg.effective_cmap_dim == cmap_dim
    z = latents()
    c = F.one_hot(torch.tensor([0, 2, 4, 1]), c_dim).float()
    same_outputs(ck.G_ema, G, z, c)
    with pytest.raises(ValueError, match='conditional'):
        ck.G_ema(z, None)

    # Mapping by hand: [norm(z), norm(embed(c))] -> 2 lrelu layers (lr 0.01).
    g = G.state_dict()
    x = torch.cat([_norm(z), _norm(_fc(c, g['mapping.embed.weight'], g['mapping.embed.bias'], 1, False))], dim=1)
    for i in range(2):
        x = _fc(x, g[f'mapping.fc{i}.weight'], g[f'mapping.fc{i}.bias'], 0.01, True)
    assert_close(ck.G_ema.mapping(z, c)[:, 3], x)

    # D: logits = <out(x), cmap(c)> / sqrt(cmap_dim), cmap computed by hand from the source tensors.
    img = ck.G_ema(z, c, noise_mode='const')
    d = D.state_dict()
    cmap = _norm(_fc(c, d['mapping.embed.weight'], d['mapping.embed.bias'], 1, False))
    for i in range(2):
        cmap = _fc(cmap, d[f'mapping.fc{i}.weight'], d[f'mapping.fc{i}.bias'], 0.01, True)
    seen = {}
    h = ck.D.b4.out.register_forward_hook(lambda m, i, o: seen.__setitem__('out', o))
    logits = ck.D(img, c)
    h.remove()
    assert seen['out'].shape == (4, cmap_dim)
    assert_close(logits, (seen['out'] * cmap).sum(dim=1, keepdim=True) / np.sqrt(cmap_dim))
    assert_close(logits, D(img, c))
    assert float((ck.D(img, c.roll(1, dims=0)) - logits).abs().max()) > 1e-4

#----------------------------------------------------------------------------
# Minibatch stddev with group size None: the whole batch is one group.

def test_mbstd_group_size_none(tmp_path):
    D = make_discriminator(seed=15, **D_cfg(mbstd_group_size=None))
    ck, _ = load_snapshot(tmp_path, nvlabs_snapshot(D=(D, ada_D_kwargs(D.cfg, BASE, CMAX, epilogue=dict(mbstd_group_size=None)))))
    assert ck.D.b4.mbstd.group_size is None
    img = images(6)                     # 6 is no multiple of the usual group size 4
    seen = {}
    h = ck.D.b4.mbstd.register_forward_hook(lambda m, i, o: seen.update(x=i[0], y=o))
    logits = ck.D(img, None)
    h.remove()
    x = seen['x']
    std = (x.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    assert_close(seen['y'][:, -1], std.expand(6, 4, 4))
    assert_close(logits, D(img, None))

#----------------------------------------------------------------------------
# StyleGAN3 (alias-free) generators: a clear "not supported" error, whatever gives them away.

def _bare_record(class_name, kwargs=None, modules=None, params=None):
    return PersistentObj(class_name, {'training': False, '_parameters': params or {}, '_buffers': {},
                                      '_non_persistent_buffers_set': set(), '_modules': modules or {},
                                      '_init_args': (), '_init_kwargs': kwargs or {}})

def _stylegan3_generator(hint_kwargs):
    layer = _bare_record('SynthesisLayer', params={'weight': torch.nn.Parameter(torch.randn(8, 8, 3, 3), requires_grad=False)})
    synthesis = _bare_record('SynthesisNetwork', modules={'input': _bare_record('SynthesisInput'), 'L0_36_8': layer,
                                                          'L1_36_8': layer})
    kwargs = {'z_dim': 16, 'w_dim': 16, 'mapping_kwargs': EasyDict(num_layers=2), 'channel_base': 256,
              'channel_max': 8, **hint_kwargs, 'c_dim': 0, 'img_resolution': 16, 'img_channels': 3}
    return _bare_record('Generator', kwargs, modules={'synthesis': synthesis, 'mapping': _bare_record('MappingNetwork')})

@pytest.mark.parametrize('hint_kwargs', [{'magnitude_ema_beta': 0.999}, {'magnitude_ema_beta': 0.999, 'conv_kernel': 1, 'use_radial_filters': True}, {}],
                         ids=['stylegan3-t', 'stylegan3-r', 'layers-only'])
def test_stylegan3_generator_is_refused(tmp_path, hint_kwargs):
    path = tmp_path / 'stylegan3.pkl'
    write_pickle(path, {'G_ema': _stylegan3_generator(hint_kwargs), 'training_set_kwargs': None, 'augment_pipe': None})
    with pytest.raises(sg.CheckpointError, match='StyleGAN3') as info:
        sg.load(path)
    assert 'not supported' in str(info.value) and str(path) in str(info.value)
