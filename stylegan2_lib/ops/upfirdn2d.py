"""FIR resampling: upsample by zero insertion, pad, convolve with a 2-D FIR filter, downsample.

The semantics follow NVlabs stylegan2-ada-pytorch `upfirdn2d` (itself the TF StyleGAN2 op): the filter is
applied as a true convolution (flipped) unless `flip_filter=True`, and `gain` scales the filter by
gain ** (ndim / 2) so a separable filter gets the same total gain.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .registry import register_impl, resolve

#----------------------------------------------------------------------------
# Normalise the (padx0, padx1, pady0, pady1) and (x, y) argument forms.

def parse_scaling(scaling):
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = scaling
    assert sx >= 1 and sy >= 1
    return int(sx), int(sy)

def parse_padding(padding):
    if isinstance(padding, int):
        padding = [padding, padding]
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    return [int(p) for p in padding]

def filter_size(f):
    if f is None:
        return 1, 1
    assert f.ndim in (1, 2)
    fw = f.shape[-1]
    fh = f.shape[0]
    return int(fw), int(fh)

#----------------------------------------------------------------------------
# Build a filter tensor from a list: 1-D taps -> outer product (2-D, the form NVlabs stores in
# `resample_filter` buffers), normalised to sum 1 and scaled by `gain`.

def setup_filter(f, device=None, normalize=True, flip_filter=False, gain=1, separable=None):
    """A FIR filter for upfirdn2d from its taps: [1, 3, 3, 1] -> the 2D outer product [4, 4] (or the 1D taps
    when separable=True), normalised to sum 1 and times `gain`, float32. None -> the identity [[1]]."""
    # Built on the CPU even under a `with torch.device(...)` (a network built on the meta device still needs
    # these few taps), then moved to `device` when one is given.
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32, device='cpu')
    assert f.ndim in (0, 1, 2) and f.numel() > 0
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = (f.ndim == 1 and f.numel() >= 8)
    if f.ndim == 1 and not separable:
        f = f.ger(f)
    assert f.ndim == (1 if separable else 2)
    if normalize:
        f /= f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f if device is None else f.to(device=device)

#----------------------------------------------------------------------------
# Reference path: zero-insert, pad/crop, depthwise conv2d with the flipped filter, subsample.

def upfirdn2d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    assert x.ndim == 4                                            # [NCHW]
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    assert f.ndim in (1, 2)
    N, C, H, W = x.shape
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    padx0, padx1, pady0, pady1 = parse_padding(padding)

    # Upsample by inserting upx-1 / upy-1 zeros after every sample.
    x = x.reshape([N, C, H, 1, W, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([N, C, H * upy, W * upx])

    # Pad (positive) or crop (negative).
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0): x.shape[2] - max(-pady1, 0), max(-padx0, 0): x.shape[3] - max(-padx1, 0)]

    # conv2d computes correlation; flip to get convolution unless asked not to.
    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.device, x.dtype)                     # a filter made by setup_filter() on the CPU works on any device
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[np.newaxis, np.newaxis].repeat([C, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=C)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=C)
        x = F.conv2d(x, f.unsqueeze(3), groups=C)

    return x[:, :, ::downy, ::downx]

register_impl('upfirdn2d', 'ref', upfirdn2d_ref)

#----------------------------------------------------------------------------
# The gradient of upfirdn2d w.r.t. x, as the configuration of another upfirdn2d (the CUDA kernel and the
# fast path differentiate this way, to any order). cfg = (upx, upy, downx, downy, px0, px1, py0, py1,
# flip_filter, gain). Along one axis (input length H, output length O, filter length K, pad0 p0, correlation taps
# g = flip(f), or f with flip_filter):  y[o] = sum_i x[i] * g[i*up + p0 - o*down].  Hence
#   dx[i] = sum_o dy[o] * g[i*up + p0 - o*down].
# An upfirdn2d of dy with up' = down, down' = up, pad0' = q0 and taps h computes
#   r[i] = sum_o dy[o] * h[o*down + q0 - i*up];
# with h = flip(g) (h[t] = g[K-1-t], i.e. flip_filter toggled) this is g[K-1-q0 + i*up - o*down], which
# equals dx[i] for q0 = K - 1 - p0. Its output length (O*down + q0 + q1 - K + up) // up must be H:
# q1 = H*up - O*down + p0 - up + 1 makes the numerator exactly H*up. The gain is the same (linear in g).

def adjoint_config(cfg, in_hw, out_hw, fw, fh):
    upx, upy, downx, downy, px0, px1, py0, py1, flip, gain = cfg
    (H, W), (OH, OW) = in_hw, out_hw
    return (downx, downy, upx, upy,
            fw - 1 - px0, W * upx - OW * downx + px0 - upx + 1,
            fh - 1 - py0, H * upy - OH * downy + py0 - upy + 1,
            not flip, gain)

#----------------------------------------------------------------------------
# Public function.

def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl=None):
    """Pad, upsample, filter and downsample a batch of 2D images (NVlabs `upfirdn2d`).

    1. Upsample by inserting up - 1 zeros after each pixel (`up`: int or [x, y]).
    2. Pad with zeros, or crop where `padding` is negative (int, [x, y] or [x0, x1, y0, y1]).
    3. Convolve with the FIR filter `f` (true convolution; correlation with flip_filter=True), times `gain`.
    4. Downsample by keeping every `down`-th pixel (int or [x, y]).

    Args:
        x:           float tensor [batch, channels, in_height, in_width] (any layout).
        f:           float32 filter, [filter_height, filter_width] (non-separable), [filter_taps] (separable,
                     applied along both axes), or None (identity); see setup_filter().
        gain:        overall scale; the filter is multiplied by gain ** (f.ndim / 2) per axis.
        impl:        'ref', 'fast', 'cuda' or None (the default for x's device: ops.selected_impl).

    Returns:
        [batch, channels, out_height, out_width], out = (in * up + pad0 + pad1 - filter_size + down) // down.
    """
    return resolve('upfirdn2d', impl, x.device)(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)

#----------------------------------------------------------------------------
# Filter without resampling, keeping the size ("same" padding).

def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl=None):
    """Filter x [N, C, H, W] with `f` (setup_filter's layout), keeping the size; `padding` adds to that."""
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)

#----------------------------------------------------------------------------
# 2x (or `up`x) upsampling; the padding centres the filter so output = input * up.
# gain up**2 keeps the mean intensity (zero insertion divides it by up**2).

def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl=None):
    """x [N, C, H, W] -> [N, C, H * up, W * up]: zero insertion and the filter `f`, padded so the output is
    the input's size times `up`, with gain up**2 to keep the mean (zero insertion divides it by up**2)."""
    upx, upy = parse_scaling(up)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)

#----------------------------------------------------------------------------
# 2x (or `down`x) downsampling after low-pass filtering.

def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl=None):
    """x [N, C, H, W] -> [N, C, H // down, W // down]: the low-pass filter `f`, then every `down`-th pixel."""
    downx, downy = parse_scaling(down)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
