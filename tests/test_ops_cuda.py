"""impl='cuda' (ops/cuda_ops.py, ops/cuda/*) against the reference ops.

(a) Without a GPU: CPU tensors take the PyTorch path with no build attempt; a failed build warns once and
    the results stay right; importing builds nothing; the gradient-as-upfirdn2d derivation (checked with the
    reference op itself).
(b) The kernels against 'ref': forward, gradients (gradcheck in float64), second order (R1). Run on two
    backends: 'emulation' compiles the same sources (bindings.cpp and the per-element maths of
    bias_act.h / upfirdn2d.h) for the CPU, so the arithmetic and the autograd wrappers are checked on any
    machine with a C++ compiler and ninja; 'cuda' is the real extension and runs only with a GPU.
(c) The real CUDA build, without a GPU, when nvcc and a CUDA PyTorch are present (slow: minutes).
"""

import os
import subprocess
import sys
import warnings

import pytest
import torch

import stylegan2_lib as sg
from stylegan2_lib import ops
from stylegan2_lib.ops import cuda_build, cuda_ops
from stylegan2_lib.ops.bias_act import bias_act_ref
from stylegan2_lib.ops.upfirdn2d import upfirdn2d_ref, adjoint_config

ACTS = list(ops.activation_funcs)
FIR = ops.setup_filter([1, 3, 3, 1])                                # the networks' 2-D resample filter
FIR1D = ops.setup_filter([1, 3, 3, 1], separable=True)
ASYM = torch.tensor([[1., 2., 0.5], [0., 3., 1.], [2., 1., 4.]])    # catches a missing or extra flip
WIDE = torch.tensor([[1., 2., 0.5, 3.], [0., 3., 1., 1.]])          # fh != fw
ODD1D = torch.tensor([0.5, 2., 1., -1., 3.])                         # asymmetric, 5 taps, separable


def rand(*shape, seed=0, dtype=torch.float64, device='cpu'):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)


def fallback(op):
    return cuda_ops._fallback(op)


@pytest.fixture
def fresh_build_state():
    cuda_build.reset()
    yield
    cuda_build.reset()

#----------------------------------------------------------------------------
# (a) The fallback: no GPU needed.

def test_import_builds_nothing():
    code = ('import sys; import stylegan2_lib.ops.cuda_ops as c; from stylegan2_lib.ops import cuda_build as b; '
            "assert 'torch.utils.cpp_extension' not in sys.modules; assert not b._state['tried']; "
            "assert 'cuda' in c.available_impls('bias_act') and 'cuda' in c.available_impls('upfirdn2d')")
    subprocess.run([sys.executable, '-c', code], check=True)


def test_cpu_tensors_take_pytorch_path_without_build(monkeypatch, fresh_build_state):
    def no_build(*a, **k):
        raise AssertionError('build attempted for CPU tensors')
    monkeypatch.setattr(cuda_build, 'build', no_build)
    x, b = rand(2, 5, 4, 3, dtype=torch.float32), rand(5, seed=1, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for act in ACTS:
            for kw in ({}, {'gain': 0.7, 'clamp': 0.5}):
                got = ops.bias_act(x, b, act=act, impl='cuda', **kw)
                assert torch.equal(got, fallback('bias_act')(x, b, act=act, **kw))
                torch.testing.assert_close(got, bias_act_ref(x, b, act=act, **kw), rtol=1e-5, atol=1e-5)
        for f, up, down, pad in ((FIR, 2, 1, [2, 1, 2, 1]), (FIR, 1, 2, 1), (ASYM, 1, 1, [1, 0, -1, 2])):
            got = ops.upfirdn2d(x, f, up=up, down=down, padding=pad, impl='cuda')
            assert torch.equal(got, fallback('upfirdn2d')(x, f, up=up, down=down, padding=pad))
            torch.testing.assert_close(got, upfirdn2d_ref(x, f, up=up, down=down, padding=pad), rtol=1e-5, atol=1e-5)
    assert not cuda_build._state['tried']


def test_failed_build_warns_once_and_falls_back(monkeypatch, fresh_build_state):
    calls = []
    def failing_build(*a, **k):
        calls.append(1)
        raise RuntimeError('Error building extension: nvcc exploded')
    monkeypatch.setattr(cuda_build, 'build', failing_build)
    monkeypatch.setattr(cuda_ops, '_KERNEL_DEVICE', 'cpu')        # CPU tensors now "want" the kernels
    x, b = rand(2, 5, 4, 3, dtype=torch.float32), rand(5, seed=1, dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(5):
            assert torch.equal(ops.bias_act(x, b, act='lrelu', impl='cuda'), fallback('bias_act')(x, b, act='lrelu'))
            assert torch.equal(ops.upfirdn2d(x, FIR, up=2, padding=[2, 1, 2, 1], impl='cuda'),
                               fallback('upfirdn2d')(x, FIR, up=2, padding=[2, 1, 2, 1]))
    mine = [w for w in caught if issubclass(w.category, cuda_build.CudaKernelWarning)]
    assert len(calls) == 1 and len(mine) == 1, (calls, [str(w.message) for w in caught])
    assert 'nvcc exploded' in str(mine[0].message)
    assert isinstance(cuda_build.failure(), RuntimeError)


@pytest.mark.skipif(torch.cuda.is_available(), reason='here the real build would run')
def test_no_gpu_gives_one_warning_naming_the_reason(monkeypatch, fresh_build_state):
    monkeypatch.setattr(cuda_ops, '_KERNEL_DEVICE', 'cpu')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(3):
            ops.bias_act(rand(3, 4), rand(4), act='relu', impl='cuda')
    assert [str(w.message) for w in caught] and len(caught) == 1
    assert 'without CUDA' in str(caught[0].message) or 'no CUDA device' in str(caught[0].message)
    monkeypatch.setenv('STYLEGAN2_LIB_CUDA', '0')
    assert cuda_build.unavailable_reason() == 'disabled by STYLEGAN2_LIB_CUDA=0'


@pytest.mark.parametrize('f', [FIR, FIR1D, ASYM, WIDE, ODD1D], ids=['fir', '1d', 'asym', 'wide', 'odd1d'])
@pytest.mark.parametrize('up, down, pad', [(1, 1, (1, 2, 0, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                           (2, 2, (1, 2, 0, 1)), (1, 1, (-1, 2, 1, -1)), (3, 2, (0, 1, 2, 1))])
@pytest.mark.parametrize('flip', [False, True])
def test_gradient_is_an_upfirdn2d(f, up, down, pad, flip):
    # adjoint_config's derivation (the kernel's and the fast path's gradient), checked with the reference op.
    x = rand(2, 3, 7, 6).requires_grad_()
    y = upfirdn2d_ref(x, f, up=up, down=down, padding=list(pad), flip_filter=flip, gain=1.7)
    dy = rand(*y.shape, seed=5)
    (dx,) = torch.autograd.grad(y, x, dy)
    cfg = (up, up, down, down, *pad, flip, 1.7)
    g = adjoint_config(cfg, x.shape[2:], y.shape[2:], f.shape[-1], f.shape[0])
    got = upfirdn2d_ref(dy, f, up=g[:2], down=g[2:4], padding=list(g[4:8]), flip_filter=g[8], gain=g[9])
    torch.testing.assert_close(got, dx, rtol=1e-10, atol=1e-10)

#----------------------------------------------------------------------------
# (b) The kernels against the reference, on the CPU emulation build and on a GPU.

@pytest.fixture(scope='session')
def emulation_module():
    try:
        return cuda_build.build_cpu_emulation()
    except Exception as e:                              # noqa: BLE001 (no compiler / ninja here)
        pytest.skip(f'cannot build the CPU emulation of the kernels: {str(e).splitlines()[0]}')


@pytest.fixture(params=['emulation', 'cuda'])
def kernel(request, monkeypatch):
    """The device the kernels run on, with impl='cuda' wired to them (and to nothing else)."""
    if request.param == 'emulation':
        ext = request.getfixturevalue('emulation_module')
        monkeypatch.setattr(cuda_ops, '_KERNEL_DEVICE', 'cpu')
        monkeypatch.setattr(cuda_ops, '_extension', lambda: ext)
        return 'cpu'
    if not torch.cuda.is_available():
        pytest.skip('no CUDA device')
    ext = cuda_build.extension()
    assert ext is not None, f'the CUDA build failed: {cuda_build.failure()}'
    monkeypatch.setattr(cuda_ops, '_extension', lambda: ext)    # a fallback would make the tests vacuous
    return 'cuda'


TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 2e-2}


def assert_close(got, expected):
    assert got.shape == expected.shape and got.dtype == expected.dtype, (got.shape, expected.shape, got.dtype)
    err = (got.double() - expected.double()).abs().max().item() if got.numel() else 0.0
    tol = TOL[got.dtype] * max(1.0, expected.double().abs().max().item())
    assert err <= tol, f'max|diff| {err:.3g} > {tol:.3g}'


def ba_case(act, device, dtype=torch.float64, shape=(3, 6, 5, 4), seed=0, away=0.05):
    """x, b with x + b at least `away` from relu/lrelu's kink (finite differences straddle it otherwise)."""
    x = rand(*shape, seed=seed, dtype=torch.float64) * 2
    b = rand(shape[1], seed=seed + 1, dtype=torch.float64)
    v = x + b.reshape(1, -1, *[1] * (len(shape) - 2))
    x = torch.where(v.abs() < away, x + 2 * away * torch.sign(v + 1e-9), x)
    return x.to(device, dtype), b.to(device, dtype)


@pytest.mark.parametrize('act', ACTS)
@pytest.mark.parametrize('gain, clamp', [(None, None), (0.7, None), (None, 0.8), (2.0, 0.3)])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_bias_act_forward(kernel, act, gain, clamp, dtype):
    x, b = ba_case(act, kernel, dtype)
    expected = bias_act_ref(x.double(), b.double(), act=act, gain=gain, clamp=clamp).to(dtype)
    assert_close(ops.bias_act(x, b, act=act, gain=gain, clamp=clamp, impl='cuda'), expected)


@pytest.mark.parametrize('act', ['lrelu', 'swish'])
def test_bias_act_layouts_and_dims(kernel, act):
    x, b = ba_case(act, kernel, shape=(2, 5, 6, 3))
    xl = x.contiguous(memory_format=torch.channels_last)
    got = ops.bias_act(xl, b, act=act, alpha=0.3, impl='cuda')
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert_close(got, bias_act_ref(x, b, act=act, alpha=0.3))
    xt = x.transpose(1, 3)                                          # not dense in any memory format order
    assert_close(ops.bias_act(xt, b, dim=3, act=act, impl='cuda'), bias_act_ref(xt, b, dim=3, act=act))
    x2 = x.reshape(10, 18)                                          # FC layers: [N, C], dim 1; and dim 0
    assert_close(ops.bias_act(x2, b[:1].expand(18).contiguous(), act=act, impl='cuda'),
                 bias_act_ref(x2, b[:1].expand(18).contiguous(), act=act))
    b0 = rand(10, seed=3, dtype=torch.float64).to(kernel)
    assert_close(ops.bias_act(x2, b0, dim=0, act=act, impl='cuda'), bias_act_ref(x2, b0, dim=0, act=act))
    assert_close(ops.bias_act(x, None, act=act, clamp=0.5, impl='cuda'), bias_act_ref(x, None, act=act, clamp=0.5))


@pytest.mark.parametrize('act', ACTS)
@pytest.mark.parametrize('gain, clamp', [(None, None), (0.7, 0.8)])
def test_bias_act_gradcheck(kernel, act, gain, clamp):
    x, b = ba_case(act, kernel, shape=(2, 3, 4, 3))
    if clamp is not None:       # put the clamp in the widest gap of |s| (finite differences straddle it otherwise)
        s = bias_act_ref(x, b, act=act, gain=gain).abs().flatten().sort().values
        lo, hi = len(s) // 4, len(s) * 3 // 4                   # some values clamped, most not
        i = lo + int((s[lo + 1: hi + 1] - s[lo: hi]).argmax())
        clamp = float(s[i] + s[i + 1]) / 2
    fn = lambda x, b: ops.bias_act(x, b, act=act, gain=gain, clamp=clamp, impl='cuda')
    inputs = (x.requires_grad_(), b.requires_grad_())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def bias_act_second_order(impl, x, b, **kw):
    """R1's pattern: g = d<y, w>/d(x, b) with create_graph, then d|g|^2 / d(x, b)."""
    x, b = x.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    y = ops.bias_act(x, b, impl=impl, **kw)
    w = rand(*y.shape, seed=7, dtype=y.dtype).to(y.device)
    gx, gb = torch.autograd.grad((y * w).sum(), [x, b], create_graph=True)
    loss = gx.square().sum() + (gb * gb.detach()).sum() + 0 * (x.sum() + b.sum())   # 0 *: linear has no graph
    second = torch.autograd.grad(loss, [x, b], allow_unused=True)
    second = [torch.zeros_like(t) if s is None else s for s, t in zip(second, (x, b))]
    return [y.detach(), gx.detach(), gb.detach()] + second


@pytest.mark.parametrize('act', ACTS)
@pytest.mark.parametrize('gain, clamp', [(None, None), (1.3, 0.6)])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_bias_act_second_order_matches_ref(kernel, act, gain, clamp, dtype):
    x, b = ba_case(act, kernel, dtype, shape=(4, 8, 5, 5))
    got = bias_act_second_order('cuda', x, b, act=act, gain=gain, clamp=clamp)
    ref = bias_act_second_order('ref', x, b, act=act, gain=gain, clamp=clamp)
    for name, g, r in zip(['y', 'dx', 'db', 'ddx', 'ddb'], got, ref):
        assert_close(g, r), name


UP_DOWN_PAD = [(1, 1, (0, 0, 0, 0)), (1, 1, (1, 2, 0, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
               (2, 2, (1, 2, 0, 1)), (1, 1, (-1, 2, 1, -1)), ((2, 1), (1, 2), (3, 0, 1, 2)), (3, 1, (0, 1, 2, 1)),
               (1, 3, (2, 0, 1, 1)), (2, 1, (-2, 3, 0, -1))]


@pytest.mark.parametrize('f', [FIR, FIR1D, ASYM, WIDE, ODD1D], ids=['fir', '1d', 'asym', 'wide', 'odd1d'])
@pytest.mark.parametrize('up, down, pad', UP_DOWN_PAD)
@pytest.mark.parametrize('flip', [False, True])
@pytest.mark.parametrize('gain', [1, 4.0])
def test_upfirdn2d_forward(kernel, f, up, down, pad, flip, gain):
    x = rand(2, 3, 9, 8, dtype=torch.float32, device=kernel)
    kw = dict(up=up, down=down, padding=list(pad), flip_filter=flip, gain=gain)
    assert_close(ops.upfirdn2d(x, f, impl='cuda', **kw), upfirdn2d_ref(x, f.to(kernel), **kw))


@pytest.mark.parametrize('dtype', [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('channels_last', [False, True])
def test_upfirdn2d_dtypes_and_layouts(kernel, dtype, channels_last):
    x = rand(2, 5, 8, 7, seed=2, dtype=dtype, device=kernel)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for f, kw in ((FIR, dict(up=2, padding=[2, 1, 2, 1], gain=4)), (FIR, dict(down=2, padding=1)),
                  (ASYM, dict(padding=[1, 0, -1, 2], flip_filter=True)), (FIR1D, dict(up=2, padding=[2, 1, 2, 1]))):
        got = ops.upfirdn2d(x, f, impl='cuda', **kw)
        assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert_close(got, upfirdn2d_ref(x.double(), f.double().to(kernel), **kw).to(dtype))
    xt = rand(2, 8, 7, 5, dtype=dtype, device=kernel).permute(0, 3, 1, 2)   # any strides
    assert_close(ops.upfirdn2d(xt, FIR, down=2, padding=1, impl='cuda'),
                 upfirdn2d_ref(xt.double(), FIR.double().to(kernel), down=2, padding=1).to(dtype))
    assert_close(ops.upfirdn2d(x, None, up=2, impl='cuda'), upfirdn2d_ref(x, None, up=2))


@pytest.mark.parametrize('f', [FIR, ASYM, ODD1D], ids=['fir', 'asym', 'odd1d'])
@pytest.mark.parametrize('up, down, pad', UP_DOWN_PAD[1:7])
def test_upfirdn2d_gradcheck(kernel, f, up, down, pad):
    fn = lambda x: ops.upfirdn2d(x, f.double(), up=up, down=down, padding=list(pad), flip_filter=True, gain=1.5, impl='cuda')
    x = rand(1, 2, 5, 6, device=kernel).requires_grad_()
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-7)


def test_downsample_then_bias_act_r1_matches_ref(kernel):
    # A discriminator-like stack (FIR down, lrelu, FIR up, swish) differentiated twice, as R1 does.
    img = rand(2, 3, 12, 12, seed=11, device=kernel)
    b1, b2 = rand(3, seed=12, device=kernel), rand(3, seed=13, device=kernel)
    def run(impl):
        x = img.clone().requires_grad_()
        y = ops.bias_act(ops.downsample2d(x, FIR, impl=impl), b1, act='lrelu', clamp=1.0, impl=impl)
        y = ops.bias_act(ops.upsample2d(y, FIR1D, impl=impl), b2, act='swish', impl=impl)
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), x)
        return y.detach(), g.detach(), gg
    for got, ref in zip(run('cuda'), run('ref')):
        assert_close(got, ref)

# Reach: with the kernels selected, every activation and every FIR of the networks runs on them (not only the
# few calls outside the fused convolutions), in float32 and in the float16 blocks, and the networks' outputs
# and R1 gradient equal the reference path's. Expected counts from the architecture: G has one bias_act per
# mapping layer, synthesis layer and ToRGB, and one FIR per upsampling conv and per image upsampling; D one
# bias_act per conv layer (fromrgb, conv0, conv1, skip, epilogue conv and fc) and two FIRs per block.

class CountingExtension:
    def __init__(self, ext):
        self.ext, self.calls = ext, {'bias_act': 0, 'upfirdn2d': 0}

    def bias_act(self, *args):
        self.calls['bias_act'] += 1
        return self.ext.bias_act(*args)

    def upfirdn2d(self, *args):
        self.calls['upfirdn2d'] += 1
        return self.ext.upfirdn2d(*args)


@pytest.mark.parametrize('half', [False, True], ids=['fp32', 'fp16-blocks'])
def test_every_activation_and_fir_of_the_networks_reaches_the_kernels(kernel, monkeypatch, half):
    import contextlib
    from stylegan2_lib import layers
    counting = CountingExtension(cuda_ops._extension())
    monkeypatch.setattr(cuda_ops, '_extension', lambda: counting)
    torch.manual_seed(0)
    cfg = dict(img_resolution=32, channel_base=256, channel_max=32, num_fp16_res=2 if half else 0, conv_clamp=256 if half else None)
    G = sg.Generator(z_dim=16, w_dim=16, mapping_layers=2, **cfg).to(kernel)
    D = sg.Discriminator(**cfg).to(kernel)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1)).to(kernel)
    emulate = lambda: layers.emulate_half_blocks(torch.float16) if half and kernel == 'cpu' else contextlib.nullcontext()

    def run(impl):
        with ops.use_impl(impl), emulate():
            img = G(z, None, noise_mode='const')
            x = img.detach().requires_grad_(True)
            logits = D(x, None)
            (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            return img.detach(), logits.detach(), g.detach()

    counting.calls.update(bias_act=0, upfirdn2d=0)
    with ops.use_impl('cuda'), emulate(), torch.no_grad():
        G(z, None, noise_mode='const')
        g_calls = dict(counting.calls)
        counting.calls.update(bias_act=0, upfirdn2d=0)
        D(torch.zeros(4, 3, 32, 32, device=kernel), None)
        d_calls = dict(counting.calls)
    blocks = G.synthesis.blocks()
    n_layers = sum(len(b.conv_layers()) for b in blocks)
    assert g_calls == {'bias_act': 2 + n_layers + len(blocks), 'upfirdn2d': 2 * (len(blocks) - 1)}
    n_d_blocks = len(D.block_resolutions)
    assert d_calls == {'bias_act': 1 + 3 * n_d_blocks + 2, 'upfirdn2d': 2 * n_d_blocks}
    got, want = run('cuda'), run('ref')
    tol = 2e-2 if half else 1e-4
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and torch.isfinite(a).all()
        assert (a - b).abs().max() <= tol * max(1.0, float(b.abs().max())), float((a - b).abs().max())

#----------------------------------------------------------------------------
# (c) The real CUDA build (no GPU needed), where nvcc, ninja and a CUDA build of PyTorch are present.

@pytest.mark.slow
@pytest.mark.skipif(cuda_build.unavailable_reason(require_device=False) is not None,
                    reason=f'cannot build here: {cuda_build.unavailable_reason(require_device=False)}')
def test_real_cuda_build(monkeypatch):
    if not torch.cuda.is_available() and 'TORCH_CUDA_ARCH_LIST' not in os.environ:
        monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '8.0;9.0')    # no GPU to ask (tools/check_cuda_build.py's default)
    ext = cuda_build.build(require_device=False)
    assert callable(ext.bias_act) and callable(ext.upfirdn2d)


def test_emulation_int64_indexing(emulation_module, monkeypatch):
    # The kernels index in int32 unless a tensor is huge; take the int64 path on small tensors here.
    monkeypatch.setattr(cuda_ops, '_KERNEL_DEVICE', 'cpu')
    monkeypatch.setattr(cuda_ops, '_extension', lambda: emulation_module)
    emulation_module.set_force_int64(True)
    try:
        x, b = ba_case('swish', 'cpu', shape=(2, 5, 4, 3))
        got = bias_act_second_order('cuda', x, b, act='swish', clamp=0.9)
        for g, r in zip(got, bias_act_second_order('ref', x, b, act='swish', clamp=0.9)):
            assert_close(g, r)
        for xx in (x, x.contiguous(memory_format=torch.channels_last)):
            kw = dict(up=2, down=(1, 2), padding=[2, -1, 1, 3], flip_filter=True)
            assert_close(ops.upfirdn2d(xx, ASYM.double(), impl='cuda', **kw), upfirdn2d_ref(x, ASYM.double(), **kw))
    finally:
        emulation_module.set_force_int64(False)


def test_cuda_activation_ids_are_the_kernel_enum():
    # The ids travel with the activation table (ops.bias_act); the kernels number them in bias_act.h's enum.
    import re
    text = (cuda_build.SOURCE_DIR / 'bias_act.h').read_text()
    names = [n.split('=')[0].strip().lower() for n in re.search(r'enum Act \{([^}]*)\}', text).group(1).split(',')]
    assert {name: i for i, name in enumerate(names)} == {k: spec.cuda_id for k, spec in ops.activation_funcs.items()}
