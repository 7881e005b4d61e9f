"""2-D convolution combined with FIR up/downsampling (NVlabs `conv2d_resample` semantics).

Mathematically: upsample (zero insertion + FIR, gain up**2) -> conv2d with `padding` -> FIR + downsample.
The upsampling case runs as a transposed convolution followed by the FIR filter, and the downsampling
case as the FIR filter followed by a strided convolution; both give the same result as the
three-step form (tests check this).

`flip_weight=True` means plain correlation (what torch's conv2d computes); False flips the kernel
(true convolution). The transposed path uses the weight as stored, unflipped, when flip_weight=False.
"""

import torch.nn.functional as F

from .upfirdn2d import upfirdn2d, filter_size, parse_padding
from .registry import register_impl, resolve

#----------------------------------------------------------------------------
# conv2d / conv_transpose2d with grouped weights and optional flip.

def plain_conv2d(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)

#----------------------------------------------------------------------------
# The padding extended by what the FIR filter needs to keep the output size = input * up / down
# (shared with the fast path).

def resample_padding(f, up, down, padding):
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    return px0, px1, py0, py1

#----------------------------------------------------------------------------
# The upsampling path: a transposed strided convolution takes what padding it can (the part both sides
# share, [pad_y, pad_x]); the FIR filter after it gets the rest (shared with the fast path).

def transposed_paddings(padding, kw, kh, up):
    px0, px1, py0, py1 = padding
    px0 -= kw - 1
    px1 -= kw - up
    py0 -= kh - 1
    py1 -= kh - up
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    return [pyt, pxt], [px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt]

#----------------------------------------------------------------------------
# Reference path.

def conv2d_resample_ref(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    assert x.ndim == 4 and w.ndim == 4                            # [NCHW], [OIkk]
    assert isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = resample_padding(f, up, down, padding)

    # 1x1 kernel, downsampling only: filter + subsample first, then the (cheap) 1x1 conv.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return plain_conv2d(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, upsampling only: conv first, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = plain_conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)

    # Downsampling only: FIR filter, then strided conv.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return plain_conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: transposed strided conv (zero insertion + conv in one), then the FIR filter.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        conv_padding, fir_padding = transposed_paddings((px0, px1, py0, py1), kw, kh, up)
        x = plain_conv2d(x, w, stride=up, padding=conv_padding, groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=fir_padding, gain=up ** 2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling, symmetric padding: plain conv2d.
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return plain_conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case: the three-step definition.
    x = upfirdn2d(x, (f if up > 1 else None), up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    x = plain_conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x

register_impl('conv2d_resample', 'ref', conv2d_resample_ref)

#----------------------------------------------------------------------------
# Public function.

def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False, impl=None):
    """2D convolution with optional FIR upsampling before it and downsampling after it (NVlabs `conv2d_resample`).

    Args:
        x:            [batch, in_channels, in_height, in_width].
        w:            [out_channels, in_channels // groups, kernel_height, kernel_width], x's dtype.
        f:            the FIR filter (setup_filter's layout), or None for up == down == 1.
        up, down:     integer up/downsampling factors (the upsampling keeps the mean: gain up ** 2).
        padding:      padding of the convolution, int or [x0, x1, y0, y1]; the FIR's own padding is added.
        groups:       as in torch.nn.functional.conv2d.
        flip_weight:  True = correlation (what conv2d computes), False = true convolution.
        flip_filter:  flip the FIR filter (correlation instead of convolution).
        impl:         'ref', 'fast' or None (the default).

    Returns:
        [batch, out_channels, in_height * up // down, in_width * up // down] (for padding = kernel_size // 2).
    """
    return resolve('conv2d_resample', impl)(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                                            flip_weight=flip_weight, flip_filter=flip_filter)
