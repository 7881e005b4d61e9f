"""The reference ops against independent computations: explicit numpy loops and the formulas they cite."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylegan2_lib import ops
from stylegan2_lib.ops import registry

#----------------------------------------------------------------------------
# Independent upfirdn2d: zero insertion, padding (negative = crop), true convolution, subsampling.

def np_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    n, c, h, w = x.shape
    px0, px1, py0, py1 = pad
    up_x = np.zeros([n, c, h * up, w * up], x.dtype)
    up_x[:, :, ::up, ::up] = x
    padded = np.zeros([n, c, h * up + max(py0, 0) + max(py1, 0), w * up + max(px0, 0) + max(px1, 0)], x.dtype)
    padded[:, :, max(py0, 0): max(py0, 0) + h * up, max(px0, 0): max(px0, 0) + w * up] = up_x
    padded = padded[:, :, max(-py0, 0): padded.shape[2] - max(-py1, 0), max(-px0, 0): padded.shape[3] - max(-px1, 0)]
    f = np.asarray(f, np.float64) * gain
    fh, fw = f.shape
    oh, ow = padded.shape[2] - fh + 1, padded.shape[3] - fw + 1
    out = np.zeros([n, c, oh, ow])
    for i in range(oh):
        for j in range(ow):
            # convolution: out[i, j] = sum_{a,b} in[i + a, j + b] * f[fh-1-a, fw-1-b]
            out[:, :, i, j] = (padded[:, :, i: i + fh, j: j + fw] * f[::-1, ::-1]).sum(axis=(2, 3))
    return out[:, :, ::down, ::down]


@pytest.fixture(autouse=True)
def reference_path():
    # These tests are about the reference ops (the spec); tests/test_ops_fast.py compares the fast ones to them.
    with ops.use_impl('ref'):
        yield


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


ASYM = torch.tensor([[1., 2., 0.5], [0., 3., 1.], [2., 1., 4.]])   # asymmetric: catches a missing flip


@pytest.mark.parametrize('up, down, pad', [(1, 1, (1, 1, 1, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                           (2, 2, (1, 2, 0, 1)), (1, 1, (-1, 2, 0, -1)), (3, 1, (0, 0, 2, 1))])
def test_upfirdn2d_matches_numpy(up, down, pad):
    x = rand(2, 3, 6, 5)
    expected = np_upfirdn2d(x.numpy().astype(np.float64), ASYM.numpy(), up, down, pad, gain=1.5)
    got = ops.upfirdn2d(x, ASYM, up=up, down=down, padding=list(pad), gain=1.5)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_flip_filter_is_correlation():
    x = rand(1, 1, 5, 5)
    conv = ops.upfirdn2d(x, ASYM, padding=1)
    corr = ops.upfirdn2d(x, ASYM, padding=1, flip_filter=True)
    np.testing.assert_allclose(corr.numpy(), F.conv2d(F.pad(x, [1, 1, 1, 1]), ASYM[None, None]).numpy(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(conv, corr)


def test_setup_filter_is_normalised_outer_product():
    f = ops.setup_filter([1, 3, 3, 1])
    expected = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64
    np.testing.assert_allclose(f.numpy(), expected, rtol=1e-7)


def test_separable_filter_equals_2d():
    x = rand(2, 2, 8, 8)
    f1 = ops.setup_filter([1, 3, 3, 1], separable=True)
    f2 = ops.setup_filter([1, 3, 3, 1])
    np.testing.assert_allclose(ops.upsample2d(x, f1).numpy(), ops.upsample2d(x, f2).numpy(), rtol=1e-5, atol=1e-6)


def test_resampling_keeps_constant_images_constant():
    f = ops.setup_filter([1, 3, 3, 1])
    x = torch.full([1, 2, 8, 8], 0.7)
    up = ops.upsample2d(x, f)
    down = ops.downsample2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    # away from the zero-padded border the DC gain is exactly 1
    np.testing.assert_allclose(up[:, :, 2:-2, 2:-2].numpy(), 0.7, rtol=1e-6)
    np.testing.assert_allclose(down[:, :, 1:-1, 1:-1].numpy(), 0.7, rtol=1e-6)


#----------------------------------------------------------------------------
# conv2d_resample: every fast path equals the definition upsample -> conv -> downsample.

def definition(x, w, f, up, down, padding, flip_weight):
    fw = f.shape[-1]
    p = [padding] * 4
    if up > 1:
        p = [p[0] + (fw + up - 1) // 2, p[1] + (fw - up) // 2, p[2] + (fw + up - 1) // 2, p[3] + (fw - up) // 2]
    if down > 1:
        p = [q + d for q, d in zip(p, [(fw - down + 1) // 2, (fw - down) // 2] * 2)]
    xs = np_upfirdn2d(x.double().numpy(), (f if up > 1 else torch.ones(1, 1)).numpy(), up, 1, p, gain=up ** 2)
    ww = w if flip_weight else w.flip([2, 3])
    y = F.conv2d(torch.from_numpy(xs), ww.double())
    if down > 1:
        y = torch.from_numpy(np_upfirdn2d(y.numpy(), f.numpy(), 1, down, (0, 0, 0, 0)))
    return y


@pytest.mark.parametrize('k, up, down, flip_weight', [
    (3, 1, 1, True), (3, 2, 1, False), (3, 2, 1, True), (3, 1, 2, True), (1, 1, 2, True), (1, 2, 1, True), (3, 2, 2, False),
])
def test_conv2d_resample_matches_definition(k, up, down, flip_weight):
    x = rand(2, 3, 8, 8, seed=1)
    w = rand(4, 3, k, k, seed=2)
    f = ops.setup_filter([1, 3, 3, 1])
    got = ops.conv2d_resample(x, w, f=f, up=up, down=down, padding=k // 2, flip_weight=flip_weight)
    expected = definition(x, w, f, up, down, k // 2, flip_weight)
    assert got.shape == expected.shape == (2, 4, 8 * up // down, 8 * up // down)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_up_conv_is_rosinality_transpose_then_blur():
    # rosi32 README: conv_transpose2d(stride 2, padding 0) with the weight [in, out, k, k], not flipped,
    # then Blur with the [1,3,3,1] kernel times 4 and padding (1, 1).
    x = rand(1, 3, 6, 6, seed=3)
    w = rand(5, 3, 3, 3, seed=4)
    f = ops.setup_filter([1, 3, 3, 1])
    theirs = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
    theirs = np_upfirdn2d(theirs.double().numpy(), (f * 4).numpy(), 1, 1, (1, 1, 1, 1))
    ours = ops.conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-5)


#----------------------------------------------------------------------------
# Modulated convolution (Karras et al. 2020, Eq. 1-3), per sample by hand.

def modconv_by_hand(x, weight, styles, demodulate, up, f):
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)                        # Eq. 1
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()   # Eq. 3
        outs.append(definition(x[i:i + 1], w, f, up, 1, weight.shape[-1] // 2, flip_weight=(up == 1)))
    return torch.cat(outs)


@pytest.mark.parametrize('demodulate, up, fused', [(True, 1, True), (True, 1, False), (True, 2, True),
                                                   (True, 2, False), (False, 1, True), (False, 1, False)])
def test_modulated_conv2d(demodulate, up, fused):
    x = rand(3, 4, 8, 8, seed=5)
    weight = rand(6, 4, 3, 3, seed=6)
    styles = rand(3, 4, seed=7) + 1
    f = ops.setup_filter([1, 3, 3, 1])
    got = ops.modulated_conv2d(x, weight, styles, up=up, padding=1, resample_filter=f, demodulate=demodulate,
                               flip_weight=(up == 1), fused_modconv=fused)
    np.testing.assert_allclose(got.numpy(), modconv_by_hand(x, weight, styles, demodulate, up, f).numpy(), rtol=1e-4, atol=1e-4)


def test_modulated_conv2d_adds_noise():
    x, weight, styles = rand(2, 4, 8, 8), rand(6, 4, 3, 3, seed=1), rand(2, 4, seed=2)
    noise = rand(2, 1, 8, 8, seed=3)
    for fused in (True, False):
        a = ops.modulated_conv2d(x, weight, styles, padding=1, fused_modconv=fused)
        b = ops.modulated_conv2d(x, weight, styles, padding=1, noise=noise, fused_modconv=fused)
        np.testing.assert_allclose((b - a).numpy(), noise.expand_as(a).numpy(), rtol=1e-5, atol=1e-5)


#----------------------------------------------------------------------------
# bias_act: y = clamp(act(x + b) * gain, -clamp, clamp).

@pytest.mark.parametrize('act, gain, clamp', [('linear', None, None), ('lrelu', None, None), ('lrelu', 0.5, 0.3),
                                              ('relu', None, 1.0), ('tanh', 2.0, None), ('sigmoid', None, None), ('swish', None, None)])
def test_bias_act_formula(act, gain, clamp):
    x, b = rand(2, 5, 3, 3), rand(5, seed=1)
    y = x + b.reshape(1, -1, 1, 1)
    funcs = {'linear': lambda v: v, 'lrelu': lambda v: torch.where(v >= 0, v, 0.2 * v), 'relu': lambda v: v.clamp(min=0),
             'tanh': torch.tanh, 'sigmoid': torch.sigmoid, 'swish': lambda v: v * torch.sigmoid(v)}
    default_gain = {'lrelu': 2 ** 0.5, 'relu': 2 ** 0.5, 'swish': 2 ** 0.5}.get(act, 1.0)
    y = funcs[act](y) * (default_gain if gain is None else gain)
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    np.testing.assert_allclose(ops.bias_act(x, b, act=act, gain=gain, clamp=clamp).numpy(), y.numpy(), rtol=1e-6, atol=1e-6)


def test_bias_act_second_order_gradients():
    # R1 regularisation differentiates through D twice; the reference path must support it.
    x = rand(2, 3, 4, 4).double().requires_grad_()
    b = rand(3, seed=1).double().requires_grad_()
    fn = lambda x, b: ops.bias_act(x, b, act='lrelu', clamp=10.0)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_normalize_2nd_moment():
    z = rand(4, 16) * 3
    n = ops.normalize_2nd_moment(z)
    np.testing.assert_allclose(n.square().mean(dim=1).numpy(), 1.0, rtol=1e-5)


#----------------------------------------------------------------------------
# The impl switch: fast paths slot in behind the same function.

def test_impl_registry_dispatch_and_errors():
    calls = []

    def traced(x, b=None, **kwargs):
        calls.append(kwargs['act'])
        return ops.bias_act(x, b, impl='ref', **kwargs)

    ops.register_impl('bias_act', 'traced', traced)
    x = rand(1, 2, 2, 2)
    try:
        assert torch.equal(ops.bias_act(x, act='lrelu', impl='traced'), ops.bias_act(x, act='lrelu', impl='ref'))
        assert calls == ['lrelu']
    finally:
        registry._IMPLS['bias_act'].pop('traced')
    assert ops.get_default_impl('bias_act') == 'ref'
    with pytest.raises(ValueError, match='unknown impl'):
        ops.bias_act(x, impl='no-such-impl')
    with pytest.raises(ValueError, match='unknown impl'):
        ops.set_default_impl('upfirdn2d', 'no-such-impl')


def test_filters_made_on_the_cpu_work_on_another_device():
    # setup_filter() builds on the CPU; the CUDA kernels moved it to the input's device, the PyTorch paths failed
    # (seen on an H200). The meta device stands in for CUDA.
    x = torch.empty(2, 3, 8, 8, device='meta')
    f = ops.setup_filter([1, 3, 3, 1])
    for impl in ('ref', 'fast'):
        assert ops.upsample2d(x, f, impl=impl).shape == (2, 3, 16, 16)
        assert ops.downsample2d(x, f, impl=impl).device.type == 'meta'


@pytest.mark.parametrize('name', ['upfirdn2d', 'bias_act', 'conv2d_resample', 'modulated_conv2d', 'modulated_conv2d_bias_act'])
def test_public_ops_document_every_argument(name):
    import inspect
    fn = getattr(ops, name)
    doc = inspect.getdoc(fn) or ''
    missing = [p for p in inspect.signature(fn).parameters if p not in doc]
    assert doc and not missing, (name, missing)
