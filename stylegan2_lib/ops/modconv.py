"""Modulated convolution with demodulation (Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN", Section 2.2, Equations 1-3):

    w'_ijk  = s_i * w_ijk                                   (modulation, Eq. 1)
    w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps)       (demodulation, Eq. 3)

with eps = 1e-8. Noise (already scaled) is added to the output. Two equivalent executions, as in NVlabs:
`fused_modconv=True` builds per-sample weights and runs one grouped convolution; False scales the
activations by the styles before the shared convolution and by the demodulation coefficients after it.
"""

import numpy as np
import torch

from .common import scale_for
from .conv2d_resample import conv2d_resample
from .registry import register_impl, resolve

#----------------------------------------------------------------------------
# Pixel norm of the latent (StyleGAN, Karras et al. 2019): x / sqrt(mean(x^2) + eps).

def normalize_2nd_moment(x, dim=1, eps=1e-8):
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()

#----------------------------------------------------------------------------
# Reference path.

def modulated_conv2d_ref(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                          demodulate=True, flip_weight=True, fused_modconv=True):
    N = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert x.ndim == 4 and x.shape[1] == in_channels              # [NIHW]
    assert styles.shape == (N, in_channels), (tuple(styles.shape), N, in_channels)

    # In float16, pre-normalise by the max-norms to avoid overflow; demodulation cancels the scale.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(N, 1, -1, 1, 1)  # [NOIkk]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()   # [NO]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(N, -1, 1, 1, 1)                      # [NOIkk]

    if not fused_modconv:
        x = x * scale_for(styles, x).reshape(N, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)
        if demodulate:
            x = x * scale_for(dcoefs, x).reshape(N, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    # One grouped convolution: the batch becomes the group axis.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=N, flip_weight=flip_weight)
    x = x.reshape(N, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x

register_impl('modulated_conv2d', 'ref', modulated_conv2d_ref)

#----------------------------------------------------------------------------
# Public function.

def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True, impl=None):
    """StyleGAN2's modulated convolution (Karras et al. 2020, Eq. 1-3; NVlabs `modulated_conv2d`).

    Args:
        x:                [batch, in_channels, height, width].
        weight:           [out_channels, in_channels, kernel_height, kernel_width].
        styles:           [batch, in_channels]: the per-sample scales of the input channels (Eq. 1).
        noise:            added to the output: [batch or 1, 1, out_height, out_width] or [out_height, out_width]
                          (already times its strength), or None.
        up, down:         integer resampling factors (conv2d_resample), with `resample_filter`.
        padding:          padding of the convolution.
        demodulate:       divide each output channel by its weights' norm (Eq. 3); False for ToRGB.
        flip_weight:      False for the upsampling layers (NVlabs).
        fused_modconv:    one grouped convolution with per-sample weights (True) or activation scaling around a
                          shared convolution (False): the same result.
        impl:             'ref', 'fast' or None (the default).

    Returns:
        [batch, out_channels, height * up // down, width * up // down].
    """
    return resolve('modulated_conv2d', impl)(x, weight, styles, noise=noise, up=up, down=down, padding=padding,
                                             resample_filter=resample_filter, demodulate=demodulate,
                                             flip_weight=flip_weight, fused_modconv=fused_modconv)
