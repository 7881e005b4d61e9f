"""Fast paths ('fast') for upfirdn2d and conv2d_resample: plain PyTorch, differentiable (any order), and
equal to the reference path up to float rounding (tests/test_ops_fast.py checks both).

upfirdn2d = zero insertion -> pad/crop -> FIR -> subsample factors per axis, because every step does. Along
one axis:
    up > 1:   zero insertion + FIR is one depthwise *transposed* convolution with stride `up`: each input
              sample scatters the filter, so the zeros are never built or filtered;
    down > 1: FIR + subsampling is one depthwise convolution with stride `down`: only the kept outputs
              are computed.
The pass runs channels-last. Under autograd the gradient is another upfirdn2d through the same pass (_FIR),
to any order. Up and down at once takes the reference path.
"""

import torch
import torch.nn.functional as F

from .bias_act import bias_act
from .common import autocast_off
from .conv2d_resample import plain_conv2d, conv2d_resample_ref, resample_padding, transposed_paddings
from .fast_bias_act import needs_autograd
from .registry import register_impl, resolve, selected_impl
from .upfirdn2d import parse_padding, parse_scaling, upfirdn2d_ref, adjoint_config

#----------------------------------------------------------------------------
# Channels-last (NHWC): the layout of oneDNN's fast convolution and depthwise kernels on CPU.

def channels_last(x):
    return x.contiguous(memory_format=torch.channels_last)

#----------------------------------------------------------------------------
# Crop (positive) or zero-pad (negative) the ends of the two spatial axes: (top, bottom, left, right).

def _crop(x, y0, y1, x0, x1):
    if y0 == y1 == x0 == x1 == 0:
        return x
    return F.pad(x, [-x0, -x1, -y0, -y1])

#----------------------------------------------------------------------------
# One depthwise FIR convolution with taps `g` [kh, kw] (as given: no flip here) on every channel.
# Reference, per axis: u[q] = x[q / up] (q % up == 0), padded by (p0, p1), y[j] = sum_t u[j + t] * f[K-1-t],
# then y[::down]. With up > 1 that is a transposed conv with stride up and taps f (y_full[i*up + t] +=
# x[i] * f[t]) cropped by K-1-p0 at the start and K-up-p1 at the end; otherwise a correlation with the
# flipped taps, stride down, padded by (p0, p1). `bias` is added by the conv itself.

def _fir_conv(x, g, up, down, pad, bias=None):
    (upy, upx), (downy, downx), (py0, py1, px0, px1) = up, down, pad
    C = x.shape[1]
    kh, kw = g.shape
    w = g.to(x.device, x.dtype).reshape(1, 1, kh, kw).expand(C, 1, kh, kw)
    if upy > 1 or upx > 1:
        assert downy == downx == 1
        ly, hy, lx, hx = kh - 1 - py0, kh - upy - py1, kw - 1 - px0, kw - upx - px1
        py, px = max(min(ly, hy), 0), max(min(lx, hx), 0)
        x = F.conv_transpose2d(x, w, bias=bias, stride=(upy, upx), padding=(py, px), groups=C)
        return _crop(x, ly - py, hy - py, lx - px, hx - px)
    py, px = max(min(py0, py1), 0), max(min(px0, px1), 0)
    x = _crop(x, py - py0, py - py1, px - px0, px - px1)
    return F.conv2d(x, w.flip([2, 3]), bias=bias, stride=(downy, downx), padding=(py, px), groups=C)

#----------------------------------------------------------------------------
# The FIR pass for cfg = (upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain) (the layout of
# upfirdn2d.adjoint_config): one 2-D depthwise pass, channels-last. Measured on CPU (oneDNN) for the
# networks' shapes, NHWC is 2-10x faster than NCHW, and one 4x4 pass beats two 1-D passes (4x1, 1x4) by
# 10-80%. `bias` (per channel) is added by the pass. No autograd inside.

def _fir_pass(x, f, cfg, bias=None):
    upx, upy, downx, downy, px0, px1, py0, py1, flip, gain = cfg
    g = f * (gain ** (f.ndim / 2))                                # ref: the 1-D taps apply along both axes
    g = g.flip(list(range(g.ndim))) if flip else g                # correlation = convolution with flipped taps
    g = g if g.ndim == 2 else g.unsqueeze(1) * g.unsqueeze(0)
    # In x's dtype, whatever autocast says, except that oneDNN has no fast bfloat16 depthwise *transposed*
    # convolution (50x slower than float32 on CPU): upsampling bfloat16 filters in float32.
    dtype = x.dtype
    compute = torch.float32 if (dtype == torch.bfloat16 and x.device.type == 'cpu' and max(upx, upy) > 1) else dtype
    with autocast_off(x.device):
        y = _fir_conv(channels_last(x.to(compute)), g, (upy, upx), (downy, downx), (py0, py1, px0, px1),
                      bias=None if bias is None else bias.to(compute))
    return y.to(dtype)

# Under autograd: upfirdn2d is linear in x, so its gradient is another upfirdn2d (adjoint_config), run by
# this same Function: every order of derivative takes the fast pass (PyTorch's own double backward of a
# grouped convolution loops over the channels one by one, which dominated R1 and the path-length penalty).

class _FIR(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, f, cfg):
        y = _fir_pass(x, f, cfg, bias)
        ctx.f, ctx.cfg, ctx.in_hw, ctx.out_hw = f, cfg, tuple(x.shape[2:]), tuple(y.shape[2:])
        return y

    @staticmethod
    def backward(ctx, dy):
        dx = db = None
        if ctx.needs_input_grad[0]:
            fw, fh = int(ctx.f.shape[-1]), int(ctx.f.shape[0])
            dx = _FIR.apply(dy, None, ctx.f, adjoint_config(ctx.cfg, ctx.in_hw, ctx.out_hw, fw, fh))
        if ctx.needs_input_grad[1]:
            db = dy.sum([0, 2, 3])
        return dx, db, None, None

#----------------------------------------------------------------------------
# Fast upfirdn2d. Up and down at once take the reference path.

def upfirdn2d_fast(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, bias=None):
    assert x.ndim == 4                                            # [NCHW]
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    assert f.ndim in (1, 2)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    if max(upx, upy) > 1 and max(downx, downy) > 1:
        x = upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
        return x if bias is None else x + bias.reshape(1, -1, 1, 1)
    cfg = (upx, upy, downx, downy, padx0, padx1, pady0, pady1, bool(flip_filter), float(gain))
    if needs_autograd(x, bias) and not needs_autograd(f):
        return _FIR.apply(x, bias, f, cfg)
    return _fir_pass(x, f, cfg, bias)                             # plain ops: differentiable in f too

def _upfirdn2d_fast(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    return upfirdn2d_fast(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)

register_impl('upfirdn2d', 'fast', _upfirdn2d_fast)

# The FIR step of the fast convolutions, through the registry: the upfirdn2d selected for x's device (the CUDA
# kernels on CUDA tensors) with the bias after it, or this module's pass with the bias folded in.

def fir(x, f, bias=None, **kwargs):
    impl = selected_impl('upfirdn2d', x.device)
    if impl == 'fast':
        return upfirdn2d_fast(x, f, bias=bias, **kwargs)
    y = resolve('upfirdn2d', impl)(x, f, **kwargs)
    return y if bias is None else bias_act(y, bias)

#----------------------------------------------------------------------------
# Upsampling convolution, no groups: transposed strided conv (zero insertion + conv in one), then the
# FIR filter with gain up**2 (NVlabs conv2d_resample). `w` is [O, I, kh, kw] as stored, or already
# [I, O, kh, kw] (conv_transpose2d's layout) when `transposed`; `bias` is added after the filter.
# flip_weight=False (the generator's up layers) uses the weight unflipped.

def conv2d_up(x, w, f, up=2, padding=0, flip_weight=True, flip_filter=False, bias=None, transposed=False):
    wt = w if transposed else w.transpose(0, 1)                   # [I, O, kh, kw]
    assert x.ndim == 4 and wt.ndim == 4 and x.shape[1] == wt.shape[0]
    kh, kw = wt.shape[2:]
    conv_padding, fir_padding = transposed_paddings(resample_padding(f, up, 1, padding), kw, kh, up)
    x = plain_conv2d(x, wt, stride=up, padding=conv_padding, transpose=True, flip_weight=not flip_weight)
    return fir(x, f, padding=fir_padding, gain=up ** 2, flip_filter=flip_filter, bias=bias)

#----------------------------------------------------------------------------
# Fast conv2d_resample: the reference's decomposition, with the FIR steps on the fast upfirdn2d and the
# activations channels-last (oneDNN's fast layout on CPU). Grouped upsampling and up+down at once take
# the reference path.

def _conv2d_resample_fast(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    assert x.ndim == 4 and w.ndim == 4                            # [NCHW], [OIkk]
    assert isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1
    kh, kw = w.shape[2:]
    if up > 1 and (down > 1 or groups != 1):
        return conv2d_resample_ref(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                                    flip_weight=flip_weight, flip_filter=flip_filter)
    x = channels_last(x)
    if up > 1:
        return conv2d_up(x, w, f, up=up, padding=padding, flip_weight=flip_weight, flip_filter=flip_filter)
    px0, px1, py0, py1 = resample_padding(f, up, down, padding)
    if down > 1 and kw == 1 and kh == 1:
        # 1x1 kernel: filter + subsample first, then the (cheap) 1x1 conv.
        x = fir(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return plain_conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        # FIR filter, then strided conv.
        x = fir(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return plain_conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return plain_conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    return conv2d_resample_ref(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                                flip_weight=flip_weight, flip_filter=flip_filter)

register_impl('conv2d_resample', 'fast', _conv2d_resample_fast)
