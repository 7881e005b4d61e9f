"""The 'fast' op implementations against the 'ref' ones (the spec): values over the parameter grid the
generator and discriminator use, first-order gradients everywhere, second-order ones for what R1 and
path-length regularisation differentiate twice, and whole networks on either path."""

import numpy as np
import pytest
import torch

from stylegan2_lib import ops
from stylegan2_lib.discriminator import Discriminator, DiscriminatorConfig
from stylegan2_lib.generator import Generator, GeneratorConfig
from stylegan2_lib.ops import registry

FIR = ops.setup_filter([1, 3, 3, 1])                               # the networks' resample filter (2-D)
ASYM = torch.tensor([[1., 2., 0.5], [0., 3., 1.], [2., 1., 4.]])   # not rank 1: takes the reference path
SEP = torch.outer(torch.tensor([1., 2., 4.]), torch.tensor([3., 1., 0.5, 2.]))   # rank 1, asymmetric


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def both(fn, *args, **kwargs):
    """fn(*args, impl=...) on the reference path (every op 'ref') and on the fast one."""
    with ops.use_impl('ref'):
        ref = fn(*args, impl='ref', **kwargs)
    return ref, fn(*args, impl='fast', **kwargs)


def assert_close(got, expected, dtype=torch.float32, scale=1.0):
    tol = (2e-5 if dtype == torch.float32 else 1e-12) * max(1.0, scale)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    err = (got - expected).abs().max().item()
    assert err <= tol * max(1.0, expected.abs().max().item()), f'max|diff| {err:.3g}'


def grads(fn, inputs, impl):
    """First-order gradients of a fixed random projection of fn(*inputs) on one path."""
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    with ops.use_impl(impl):
        out = fn(*inputs)
        proj = rand(*out.shape, seed=99, dtype=out.dtype)
        return out.detach(), torch.autograd.grad((out * proj).sum(), inputs)


def assert_same_grads(fn, inputs, dtype=torch.float64):
    out_r, g_r = grads(fn, inputs, 'ref')
    out_f, g_f = grads(fn, inputs, 'fast')
    assert_close(out_f, out_r, dtype)
    for a, b in zip(g_f, g_r):
        assert_close(a, b, dtype)

#----------------------------------------------------------------------------
# upfirdn2d and the helpers built on it.

@pytest.mark.parametrize('f', [FIR, ops.setup_filter([1, 3, 3, 1], separable=True), SEP, ASYM], ids=['2d', '1d', 'sep', 'asym'])
@pytest.mark.parametrize('up, down, pad', [(1, 1, (1, 1, 1, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (2, 2, (1, 2, 0, 1)),
                                           (1, 1, (-1, 2, 0, -1)), (3, 1, (0, 0, 2, 1)), (2, 1, (-1, 3, 0, 0)), (1, 3, (2, 0, 1, 1))])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_upfirdn2d(f, up, down, pad, flip_filter):
    x = rand(2, 3, 7, 6)
    ref, fast = both(ops.upfirdn2d, x, f, up=up, down=down, padding=list(pad), flip_filter=flip_filter, gain=1.5)
    assert_close(fast, ref)


def test_upfirdn2d_helpers_and_float64():
    x = rand(2, 4, 8, 8, dtype=torch.float64)
    f = FIR.double()
    for fn in (ops.upsample2d, ops.downsample2d, ops.filter2d):
        ref, fast = both(fn, x, f)
        assert_close(fast, ref, torch.float64)


@pytest.mark.parametrize('f', [FIR, ops.setup_filter([1, 3, 3, 1], separable=True), SEP, ASYM], ids=['2d', '1d', 'sep', 'asym'])
@pytest.mark.parametrize('kwargs', [dict(up=2, padding=[2, 1, 2, 1]), dict(down=2, padding=1), dict(padding=[1, 2, 2, 1], flip_filter=True),
                                    dict(up=3, padding=[-1, 2, 0, 1]), dict(down=3, padding=[2, 0, -1, 1], flip_filter=True)],
                         ids=['up2', 'down2', 'flip', 'up3-crop', 'down3-crop'])
def test_upfirdn2d_gradients_second_order(f, kwargs):
    # Augmentation and D's downsampling sit inside R1's double backward; the fast gradient is itself a fast
    # upfirdn2d (adjoint_config), so the third order is checked too.
    x = rand(1, 2, 5, 4, dtype=torch.float64).requires_grad_()
    f = f.double()
    fn = lambda x: ops.upfirdn2d(x, f, impl='fast', gain=2.0, **kwargs)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    dx = lambda x: torch.autograd.grad(fn(x).square().sum(), x, create_graph=True)[0]
    assert torch.autograd.gradgradcheck(dx, (x,))
    assert_same_grads(lambda x: ops.upfirdn2d(x, f, gain=2.0, **kwargs), [x])


@pytest.mark.parametrize('up, down, pad', [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (1, 1, (1, 2, 1, 2))])
def test_upfirdn2d_bfloat16_and_autocast(up, down, pad):
    # CPU bfloat16 training (--precision bf16): bfloat16 in, bfloat16 out (upsampling computed in float32),
    # and under autocast a float32 input stays float32; values as the float32 reference within bf16 rounding.
    x = rand(2, 4, 8, 8)
    kwargs = dict(up=up, down=down, padding=list(pad), gain=1.5)
    with ops.use_impl('ref'):
        ref = ops.upfirdn2d(x.bfloat16().float(), FIR, **kwargs)
    fast = ops.upfirdn2d(x.bfloat16(), FIR, impl='fast', **kwargs)
    assert fast.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), ref, rtol=1e-2, atol=1e-2)
    xg = x.bfloat16().requires_grad_()
    (dx,) = torch.autograd.grad(ops.upfirdn2d(xg, FIR, impl='fast', **kwargs).float().sum(), xg)
    xr = x.bfloat16().float().requires_grad_()
    with ops.use_impl('ref'):
        (dx_ref,) = torch.autograd.grad(ops.upfirdn2d(xr, FIR, **kwargs).sum(), xr)
    assert dx.dtype == torch.bfloat16
    torch.testing.assert_close(dx.float(), dx_ref, rtol=1e-2, atol=2e-2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = ops.upfirdn2d(x, FIR, impl='fast', **kwargs)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ops.upfirdn2d(x, FIR, impl='ref', **kwargs), rtol=1e-5, atol=1e-5)


def test_upfirdn2d_bias_gradient():
    # conv2d_up adds its bias inside the FIR pass: d/dbias is the sum of the output gradient.
    from stylegan2_lib.ops.fast_resample import upfirdn2d_fast
    x, b = rand(2, 3, 5, 5, dtype=torch.float64).requires_grad_(), rand(3, seed=1, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x, b: upfirdn2d_fast(x, FIR.double(), up=2, padding=[2, 1, 2, 1], bias=b), (x, b))


def test_upfirdn2d_filter_gradient():
    # A filter that needs a gradient takes plain differentiable ops.
    x, f = rand(1, 2, 6, 5, dtype=torch.float64), SEP.double().requires_grad_()
    assert_same_grads(lambda x, f: ops.upfirdn2d(x, f, down=2, padding=1, gain=1.5), [x, f])

#----------------------------------------------------------------------------
# conv2d_resample: every combination the layers use (and groups for the reference's grouped paths).

@pytest.mark.parametrize('k, up, down, flip_weight, groups', [
    (3, 1, 1, True, 1), (3, 2, 1, False, 1), (3, 2, 1, True, 1), (3, 1, 2, True, 1), (1, 1, 2, True, 1), (1, 2, 1, True, 1),
    (3, 2, 2, False, 1), (1, 1, 1, True, 1), (3, 1, 1, False, 2), (3, 1, 2, True, 2), (3, 2, 1, False, 2),
])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_conv2d_resample(k, up, down, flip_weight, groups, dtype):
    x = rand(2, 4, 8, 8, seed=1, dtype=dtype)
    w = rand(6, 4 // groups, k, k, seed=2, dtype=dtype)
    ref, fast = both(ops.conv2d_resample, x, w, f=FIR.to(dtype), up=up, down=down, padding=k // 2, groups=groups,
                     flip_weight=flip_weight)
    assert_close(fast, ref, dtype, scale=4)


@pytest.mark.parametrize('k, up, down', [(3, 1, 2), (1, 1, 2), (3, 2, 1), (3, 1, 1)])
def test_conv2d_resample_gradients(k, up, down):
    x = rand(2, 3, 6, 6, seed=3, dtype=torch.float64).requires_grad_()
    w = rand(4, 3, k, k, seed=4, dtype=torch.float64).requires_grad_()
    fn = lambda x, w: ops.conv2d_resample(x, w, f=FIR.double(), up=up, down=down, padding=k // 2, flip_weight=(up == 1),
                                          impl='fast')
    assert torch.autograd.gradcheck(fn, (x, w))
    if up == 1:     # D's layers: R1 differentiates them twice
        assert torch.autograd.gradgradcheck(fn, (x, w))
    assert_same_grads(lambda x, w: ops.conv2d_resample(x, w, f=FIR.double(), up=up, down=down, padding=k // 2,
                                                       flip_weight=(up == 1)), [x, w])

#----------------------------------------------------------------------------
# bias_act: every activation, default and explicit gain (negative: not folded), clamp, no bias, dim.

@pytest.mark.parametrize('act', sorted(ops.activation_funcs))
@pytest.mark.parametrize('gain, clamp', [(None, None), (0.5, 0.3), (-1.5, None), (1.0, 2.0)])
def test_bias_act(act, gain, clamp):
    x, b = rand(2, 5, 3, 3) * 2, rand(5, seed=1)
    for bias in (b, None):
        ref, fast = both(ops.bias_act, x, bias, act=act, gain=gain, clamp=clamp)
        assert_close(fast, ref)
    x2, b2 = rand(4, 7), rand(7, seed=2)          # fully connected layers: [N, C], dim 1
    ref, fast = both(ops.bias_act, x2, b2, act=act, alpha=0.1, gain=gain)
    assert_close(fast, ref)
    x_before = x.clone()
    ops.bias_act(x, None, act=act, gain=gain, clamp=clamp, impl='fast')
    assert torch.equal(x, x_before)               # never writes into the caller's tensor


@pytest.mark.parametrize('act', ['lrelu', 'linear', 'relu', 'tanh', 'swish'])
def test_bias_act_gradients_second_order(act):
    x = rand(2, 3, 4, 4, dtype=torch.float64).requires_grad_()
    b = rand(3, seed=1, dtype=torch.float64).requires_grad_()
    fn = lambda x, b: ops.bias_act(x, b, act=act, clamp=10.0, impl='fast')
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))
    assert_same_grads(lambda x, b: ops.bias_act(x, b, act=act, gain=0.7, clamp=0.5), [x, b])

#----------------------------------------------------------------------------
# Modulated convolution (+ bias + activation): both executions (per sample: H*W >= O*k*k or batch 1;
# shared otherwise), up 1/2, demodulate, flip_weight, fused_modconv, every noise shape.

def modconv_inputs(N, I, O, k, res, dtype=torch.float32, seed=0):
    x = rand(N, I, res, res, seed=seed, dtype=dtype)
    w = rand(O, I, k, k, seed=seed + 1, dtype=dtype)
    s = rand(N, I, seed=seed + 2, dtype=dtype) + 1
    return x, w, s


NOISE = {'none': lambda N, r: None, 'hw': lambda N, r: rand(r, r, seed=7) * 0.3,
         'shared': lambda N, r: rand(1, 1, r, r, seed=7) * 0.3, 'per-sample': lambda N, r: rand(N, 1, r, r, seed=7) * 0.3}


@pytest.mark.parametrize('N, O', [(1, 6), (3, 6), (3, 16)], ids=['batch1', 'per-sample', 'shared'])
@pytest.mark.parametrize('up, demodulate, flip_weight', [(1, True, True), (1, False, True), (1, True, False),
                                                         (2, True, False), (2, False, False), (2, True, True)])
@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('noise', sorted(NOISE))
def test_modulated_conv2d(N, O, up, demodulate, flip_weight, fused, noise):
    x, w, s = modconv_inputs(N, 4, O, 3, 8)
    n = NOISE[noise](N, 8 * up)
    ref, fast = both(ops.modulated_conv2d, x, w, s, noise=n, up=up, padding=1, resample_filter=FIR,
                     demodulate=demodulate, flip_weight=flip_weight, fused_modconv=fused)
    assert_close(fast, ref, scale=1 if demodulate else 10)


@pytest.mark.parametrize('act', sorted(ops.activation_funcs))
@pytest.mark.parametrize('N, O, up', [(1, 6, 1), (3, 6, 2), (3, 16, 1), (2, 16, 2)])
def test_modulated_conv2d_bias_act(act, N, O, up):
    x, w, s = modconv_inputs(N, 4, O, 3, 8, seed=3)
    b = rand(O, seed=9)
    for gain, clamp, noise in ((None, None, 'shared'), (0.5, 0.4, 'per-sample'), (-2.0, 1.0, 'hw')):
        ref, fast = both(ops.modulated_conv2d_bias_act, x, w, s, b, noise=NOISE[noise](N, 8 * up), up=up, padding=1,
                         resample_filter=FIR, flip_weight=(up == 1), act=act, gain=gain, clamp=clamp)
        assert_close(fast, ref)


@pytest.mark.parametrize('N, clamp', [(1, None), (3, None), (3, 0.05)])
def test_torgb_pointwise(N, clamp):
    x, w, s = modconv_inputs(N, 8, 3, 1, 8, seed=5)
    b = rand(3, seed=6)
    ref, fast = both(ops.modulated_conv2d_bias_act, x, w, s * 0.3, b, demodulate=False, clamp=clamp)
    assert_close(fast, ref)


def test_modconv_float64_and_fallbacks():
    x, w, s = modconv_inputs(2, 4, 6, 3, 8, dtype=torch.float64)
    n = rand(2, 1, 16, 16, seed=8, dtype=torch.float64)
    ref, fast = both(ops.modulated_conv2d_bias_act, x, w, s, rand(6, dtype=torch.float64), noise=n, up=2, padding=1,
                     resample_filter=FIR.double(), flip_weight=False, act='lrelu')
    assert_close(fast, ref, torch.float64)
    # Paths the fast code hands to the reference: asymmetric padding, down > 1, float16.
    x, w, s = modconv_inputs(2, 4, 6, 3, 8)
    for kwargs in (dict(padding=[1, 0, 1, 1]), dict(down=2, padding=1, resample_filter=FIR)):
        ref, fast = both(ops.modulated_conv2d, x, w, s, **kwargs)
        assert_close(fast, ref)
    y = ops.modulated_conv2d(x.half(), w.half(), s.half(), padding=1, fused_modconv=False, impl='fast')
    assert y.dtype == torch.float16


@pytest.mark.parametrize('N, up', [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_modconv_gradients_second_order(N, up):
    # Projection backpropagates through G; path-length regularisation differentiates it twice.
    res = 4 if up == 1 else 2
    x, w, s = modconv_inputs(N, 2, 3, 3, res, dtype=torch.float64, seed=11)
    b = rand(3, seed=12, dtype=torch.float64)
    n = rand(N, 1, res * up, res * up, seed=13, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (x, w, s, b, n)]
    fn = lambda x, w, s, b, n: ops.modulated_conv2d_bias_act(x, w, s, b, noise=n, up=up, padding=1, resample_filter=FIR.double(),
                                                             flip_weight=(up == 1), act='lrelu', clamp=5.0, impl='fast')
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)
    assert_same_grads(lambda *a: ops.modulated_conv2d_bias_act(a[0], a[1], a[2], a[3], noise=a[4], up=up, padding=1,
                                                               resample_filter=FIR.double(), flip_weight=(up == 1),
                                                               act='lrelu', gain=0.8, clamp=0.7), inputs)

def test_modconv_second_order_with_a_zero_kernel():
    # sum_k w^2 of an all-zero kernel row: its second derivative must stay finite (no norm's sqrt at 0).
    x, w, s = modconv_inputs(2, 3, 4, 3, 4, dtype=torch.float64, seed=14)
    w[0, 1] = 0
    inputs = [t.requires_grad_() for t in (x, w, s)]
    y = ops.modulated_conv2d(*inputs, padding=1, impl='fast')
    first = torch.autograd.grad(y.square().sum(), inputs, create_graph=True)
    second = torch.autograd.grad(sum(g.sum() for g in first), inputs)
    assert all(torch.isfinite(g).all() for g in first + second)

#----------------------------------------------------------------------------
# Whole networks on either path.

def paper_like_generator(seed=0):
    torch.manual_seed(seed)
    cfg = GeneratorConfig(z_dim=32, w_dim=32, img_resolution=32, channel_base=512, channel_max=64, mapping_layers=2)
    G = Generator(cfg).eval()
    with torch.no_grad():    # trained-looking: non-zero noise strengths and biases
        for name, p in G.named_parameters():
            if name.endswith('noise_strength') or name.endswith('.bias'):
                p.copy_(torch.randn_like(p) * 0.2)
    return G


@pytest.mark.parametrize('N', [1, 3])
def test_generator_fast_equals_ref(N):
    G = paper_like_generator()
    z = rand(N, 32, seed=21)
    with torch.no_grad():
        with ops.use_impl('ref'):
            ref = G(z, truncation_psi=0.7, noise_mode='const')
        with ops.use_impl('fast'):
            fast = G(z, truncation_psi=0.7, noise_mode='const')
    assert (fast - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_generator_gradients_fast_equals_ref():
    # What projection needs: d(image)/d(ws) on the fast path equals the reference.
    G = paper_like_generator(1)
    ws = G.mapping(rand(2, 32, seed=22), None).detach()
    results = {}
    for impl in ('ref', 'fast'):
        w = ws.clone().requires_grad_()
        with ops.use_impl(impl):
            img = G.synthesis(w, noise_mode='const')
        (g,) = torch.autograd.grad((img * rand(*img.shape, seed=23)).sum(), w)
        results[impl] = (img.detach(), g)
    np.testing.assert_allclose(results['fast'][0].numpy(), results['ref'][0].numpy(), atol=1e-4)
    np.testing.assert_allclose(results['fast'][1].numpy(), results['ref'][1].numpy(), rtol=1e-4, atol=1e-5)


def test_discriminator_r1_fast_equals_ref():
    # R1: |d D(x) / dx|^2, then its gradient w.r.t. D's parameters (double backward through D).
    torch.manual_seed(2)
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32))
    img = rand(4, 3, 16, 16, seed=24)
    results = {}
    for impl in ('ref', 'fast'):
        x = img.clone().requires_grad_()
        with ops.use_impl(impl):
            logits = D(x)
            (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            penalty = g.square().sum()
            params = torch.autograd.grad(penalty, list(D.parameters()), allow_unused=True)
        results[impl] = [logits.detach(), g.detach()] + [p for p in params if p is not None]
    for a, b in zip(results['fast'], results['ref']):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5 * max(1.0, b.abs().max().item()))

#----------------------------------------------------------------------------
# The registry's use_impl switches every op that has the impl and restores the defaults after.

def test_use_impl_restores_defaults():
    before = {op: ops.get_default_impl(op) for op in registry._IMPLS}
    with ops.use_impl('ref'):
        assert all(ops.get_default_impl(op) == 'ref' for op in registry._IMPLS)
        with ops.use_impl('fast'):
            assert ops.get_default_impl('modulated_conv2d') == 'fast'
            assert ops.get_default_impl('modulated_conv2d_bias_act') == 'fast'
    assert {op: ops.get_default_impl(op) for op in registry._IMPLS} == before
