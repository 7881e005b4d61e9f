"""Fast paths ('fast') for upfirdn2d and conv2d_resample: plain PyTorch, differentiable (any order), and
equal to the reference path up to float rounding (tests/test_ops_fast.py checks both).

upfirdn2d = zero insertion -> pad/crop -> FIR -> subsample factors per axis, because every step does. Along
one axis:
    up > 1:   zero insertion + FIR is one depthwise *transposed* convolution with stride `up`: each input
              sample scatters the filter, so the zeros are never built or filtered;
    down > 1: FIR + subsampling is one depthwise convolution with stride `down`: only the kept outputs
              are computed.
Without autograd a rank-1 2-D filter (setup_filter's outer product of [1, 3, 3, 1]) runs as two 1-D passes,
K + K taps per pixel instead of K * K; other filters, and everything under autograd, as one 2-D pass. Up
and down at once takes the reference path.
"""

import torch
import torch.nn.functional as F

from .conv2d_resample import _conv2d, _conv2d_resample_ref, resample_padding, transposed_paddings
from .fast_bias_act import needs_autograd
from .registry import register_impl
from .upfirdn2d import _parse_padding, _parse_scaling, _upfirdn2d_ref

#----------------------------------------------------------------------------
# A filter as two 1-D tap vectors (fy, fx) with outer(fy, fx) == f, or None when f is not rank 1.
# 1-D filters are separable by definition (upfirdn2d applies them along both axes).

def separable_taps(f):
    if f.ndim == 1:
        return f, f
    assert f.ndim == 2
    total = f.sum()
    if float(total) == 0:
        return None
    fy = f.sum(dim=1)
    fx = f.sum(dim=0) / total
    if not torch.allclose(fy.unsqueeze(1) * fx.unsqueeze(0), f, rtol=1e-6, atol=1e-7 * float(f.abs().max())):
        return None
    return fy, fx

#----------------------------------------------------------------------------
# Channels-last (NHWC): the layout of oneDNN's fast convolution and depthwise kernels on CPU.

def _channels_last(x):
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
    w = g.to(x.dtype).reshape(1, 1, kh, kw).expand(C, 1, kh, kw)
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
# Fast upfirdn2d.
#   no autograd, rank-1 filter: vertical then horizontal 1-D pass, channels-last (oneDNN's depthwise
#                               kernels are fastest in NHWC);
#   otherwise:                  one 2-D depthwise pass in the input's layout (PyTorch's double backward
#                               of a grouped conv loops over the groups, so one pass beats two for R1).
# `bias` (per channel) is added by the last pass.

def upfirdn2d_fast(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, bias=None):
    assert x.ndim == 4                                            # [NCHW]
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    assert f.ndim in (1, 2)
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    if max(upx, upy) > 1 and max(downx, downy) > 1:
        x = _upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
        return x if bias is None else x + bias.reshape(1, -1, 1, 1)
    f = f * (gain ** (f.ndim / 2))                                # ref: the 1-D taps apply along both axes
    if flip_filter:
        f = f.flip(list(range(f.ndim)))                           # correlation = convolution with flipped taps
    taps = separable_taps(f) if not needs_autograd(x, bias) else None
    if taps is not None:
        fy, fx = taps
        x = _channels_last(x)
        x = _fir_conv(x, fy.unsqueeze(1), (upy, 1), (downy, 1), (pady0, pady1, 0, 0))
        return _fir_conv(x, fx.unsqueeze(0), (1, upx), (1, downx), (0, 0, padx0, padx1), bias=bias)
    f2 = f if f.ndim == 2 else f.unsqueeze(1) * f.unsqueeze(0)
    return _fir_conv(x, f2, (upy, upx), (downy, downx), (pady0, pady1, padx0, padx1), bias=bias)

def _upfirdn2d_fast(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    return upfirdn2d_fast(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)

register_impl('upfirdn2d', 'fast', _upfirdn2d_fast)

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
    x = _conv2d(x, wt, stride=up, padding=conv_padding, transpose=True, flip_weight=not flip_weight)
    return upfirdn2d_fast(x, f, padding=fir_padding, gain=up ** 2, flip_filter=flip_filter, bias=bias)

#----------------------------------------------------------------------------
# Fast conv2d_resample: the reference's decomposition, with the FIR steps on the fast upfirdn2d and the
# activations channels-last (oneDNN's fast layout on CPU). Grouped upsampling and up+down at once take
# the reference path.

def _conv2d_resample_fast(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    assert x.ndim == 4 and w.ndim == 4                            # [NCHW], [OIkk]
    assert isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1
    kh, kw = w.shape[2:]
    if up > 1 and (down > 1 or groups != 1):
        return _conv2d_resample_ref(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                                    flip_weight=flip_weight, flip_filter=flip_filter)
    x = _channels_last(x)
    if up > 1:
        return conv2d_up(x, w, f, up=up, padding=padding, flip_weight=flip_weight, flip_filter=flip_filter)
    px0, px1, py0, py1 = resample_padding(f, up, down, padding)
    if down > 1 and kw == 1 and kh == 1:
        # 1x1 kernel: filter + subsample first, then the (cheap) 1x1 conv.
        x = upfirdn2d_fast(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        # FIR filter, then strided conv.
        x = upfirdn2d_fast(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    return _conv2d_resample_ref(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                                flip_weight=flip_weight, flip_filter=flip_filter)

register_impl('conv2d_resample', 'fast', _conv2d_resample_fast)
