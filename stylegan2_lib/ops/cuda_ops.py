"""impl='cuda' for bias_act and upfirdn2d: the JIT-built kernels of ops/cuda/ (cuda_build.py) for CUDA
tensors, else the PyTorch path ('fast' where registered, else 'ref').

The kernels run when: the tensors are on CUDA, floating point (float16 / bfloat16 / float32 / float64), the
arguments are ones the kernels take (bias of x's dtype; a filter that needs no gradient) and the extension
built. Anything else (CPU tensors included) goes to the PyTorch path without a build attempt; a failed
build warns once (cuda_build.CudaKernelWarning) and never retries. Importing this module builds nothing.

Gradients:
  bias_act:  y = clamp(act(x + b) * gain).  dx = dy * gain * act'(x + b) * [|s| <= clamp] is the kernel in
             mode 1, wrapped in its own autograd.Function (_BiasActGrad) whose backward is the kernel in
             modes 1 (w.r.t. dy) and 2 (w.r.t. x: ddx * dy * gain * act''), so R1's double backward works;
             third-order gradients are not supported (once_differentiable). db = sum of dx over all axes
             but `dim`.
  upfirdn2d: linear in x, so its gradient is another upfirdn2d (see upfirdn2d.adjoint_config), differentiable to any
             order.
"""

import torch
from torch.autograd.function import once_differentiable

from . import cuda_build
from .bias_act import resolve_act_args
from .registry import available_impls, register_impl, resolve
from .upfirdn2d import parse_padding, parse_scaling, adjoint_config

PIECEWISE_LINEAR = ('linear', 'relu', 'lrelu')          # act'' = 0
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_KERNEL_DEVICE = 'cuda'     # tests point this (and _extension) at the CPU emulation build of the same sources
_EMPTY = torch.empty(0)


def _extension():
    return cuda_build.extension()


def _fallback(op):
    return resolve(op, 'fast' if 'fast' in available_impls(op) else 'ref')


def _sum_except(t, dim):
    """db from dx: the sum over every axis but `dim` (sum(dim=[]) would reduce everything)."""
    axes = [i for i in range(t.ndim) if i != dim]
    return t.sum(axes) if axes else t


def _on_kernel_device(*tensors):
    return all(t is None or (t.device.type == _KERNEL_DEVICE and t.dtype in DTYPES) for t in tensors)

#----------------------------------------------------------------------------
# bias_act.

class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, cfg):                        # cfg = (ext, dim, act_id, alpha, gain, clamp, act)
        ext, dim = cfg[0], cfg[1]
        y = ext.bias_act(x, _EMPTY if b is None else b, _EMPTY, _EMPTY, dim, 0, *cfg[2:6])
        ctx.save_for_backward(x, b)
        ctx.cfg = cfg
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        dim = ctx.cfg[1]
        dx = db = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            dx = _BiasActGrad.apply(dy, x, b, ctx.cfg)
        if ctx.needs_input_grad[1]:
            db = _sum_except(dx, dim)
        return dx, db, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * dy/dx (kernel mode 1), itself differentiable once more (for R1 / path-length penalties)."""

    @staticmethod
    def forward(ctx, dy, x, b, cfg):
        ext, dim = cfg[0], cfg[1]
        dx = ext.bias_act(x, _EMPTY if b is None else b, dy, _EMPTY, dim, 1, *cfg[2:6])
        ctx.save_for_backward(dy, x, b)
        ctx.cfg = cfg
        return dx

    @staticmethod
    @once_differentiable
    def backward(ctx, ddx):
        dy, x, b = ctx.saved_tensors
        ext, dim, act = ctx.cfg[0], ctx.cfg[1], ctx.cfg[6]
        bb = _EMPTY if b is None else b
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:                     # d(dx)/d(dy) = dy/dx: mode 1 applied to ddx
            d_dy = ext.bias_act(x, bb, ddx, _EMPTY, dim, 1, *ctx.cfg[2:6])
        if (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]) and act not in PIECEWISE_LINEAR:
            d_x = ext.bias_act(x, bb, ddx, dy, dim, 2, *ctx.cfg[2:6])     # d(dx)/dx = dy * d2y/dx2
            if ctx.needs_input_grad[2]:
                d_b = _sum_except(d_x, dim)
        return d_dy, d_x, d_b, None


def _bias_act_cuda(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    spec, alpha_, gain_, clamp_ = resolve_act_args(act, alpha, gain, clamp)
    usable = (_on_kernel_device(x, b) and (b is None or (b.dtype == x.dtype and b.device == x.device and b.ndim == 1
                                                         and 0 <= dim < x.ndim and b.shape[0] == x.shape[dim])))
    ext = _extension() if usable else None
    if ext is None:
        return _fallback('bias_act')(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    cfg = (ext, dim, spec.cuda_id, alpha_, gain_, clamp_, act)
    y = _BiasAct.apply(x, b, cfg)
    assert y.shape == x.shape, (tuple(y.shape), tuple(x.shape))
    return y

register_impl('bias_act', 'cuda', _bias_act_cuda)

#----------------------------------------------------------------------------
# upfirdn2d.
#
# Gradient: another upfirdn2d (upfirdn2d.adjoint_config).

class _Upfirdn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, cfg, ext):                  # cfg = (upx, upy, downx, downy, px0, px1, py0, py1, flip, gain)
        y = ext.upfirdn2d(x, f, *cfg)
        ctx.save_for_backward(f)
        ctx.cfg, ctx.ext, ctx.in_hw, ctx.out_hw = cfg, ext, tuple(x.shape[2:]), tuple(y.shape[2:])
        return y

    @staticmethod
    def backward(ctx, dy):
        f, = ctx.saved_tensors
        fw, fh = int(f.shape[-1]), int(f.shape[0])
        gcfg = adjoint_config(ctx.cfg, ctx.in_hw, ctx.out_hw, fw, fh)
        dx = _Upfirdn2d.apply(dy, f, gcfg, ctx.ext)
        assert tuple(dx.shape[2:]) == ctx.in_hw, (tuple(dx.shape), ctx.in_hw)
        return dx, None, None, None


def _upfirdn2d_cuda(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = int(f.shape[-1]), int(f.shape[0])
    usable = (x.ndim == 4 and f.ndim in (1, 2) and _on_kernel_device(x) and f.is_floating_point()
              and not (f.requires_grad and torch.is_grad_enabled())
              and x.shape[3] * upx + px0 + px1 >= fw and x.shape[2] * upy + py0 + py1 >= fh)
    ext = _extension() if usable else None
    if ext is None:
        return _fallback('upfirdn2d')(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    cfg = (upx, upy, downx, downy, px0, px1, py0, py1, bool(flip_filter), float(gain))
    y = _Upfirdn2d.apply(x, f.detach().to(device=x.device), cfg, ext)
    assert y.shape[:2] == x.shape[:2], (tuple(y.shape), tuple(x.shape))
    return y

register_impl('upfirdn2d', 'cuda', _upfirdn2d_cuda)
