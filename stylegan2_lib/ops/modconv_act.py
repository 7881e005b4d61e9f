"""Modulated convolution followed by bias + activation + gain + clamp: one synthesis-network layer
(NVlabs `SynthesisLayer.forward` / `ToRGBLayer.forward` after the affine), as one op so that faster paths
can fold the steps together (gain into the demodulation coefficients, bias into the convolution, the
activation in place).

    y = clamp(act(modulated_conv2d(x, weight, styles, noise) + b, alpha) * gain, -clamp, clamp)

The reference path is literally `bias_act(modulated_conv2d(...))`, the bias_act being the one selected for the
device (the CUDA kernels on CUDA tensors), as the reference modulated_conv2d's resampling goes through the
registry too; `use_impl('ref')` makes every part the reference.
"""

from .bias_act import bias_act
from .modconv import modulated_conv2d
from .registry import register_impl, resolve

#----------------------------------------------------------------------------
# Reference path: the two ops one after the other.

def modulated_conv2d_bias_act_ref(x, weight, styles, bias=None, noise=None, up=1, down=1, padding=0,
                                   resample_filter=None, demodulate=True, flip_weight=True, fused_modconv=True,
                                   act='linear', alpha=None, gain=None, clamp=None):
    x = modulated_conv2d(x, weight, styles, noise=noise, up=up, down=down, padding=padding,
                         resample_filter=resample_filter, demodulate=demodulate, flip_weight=flip_weight,
                         fused_modconv=fused_modconv, impl='ref')
    return bias_act(x, bias, act=act, alpha=alpha, gain=gain, clamp=clamp)

register_impl('modulated_conv2d_bias_act', 'ref', modulated_conv2d_bias_act_ref)

#----------------------------------------------------------------------------
# Public function.

def modulated_conv2d_bias_act(x, weight, styles, bias=None, noise=None, up=1, down=1, padding=0, resample_filter=None,
                              demodulate=True, flip_weight=True, fused_modconv=True, act='linear', alpha=None,
                              gain=None, clamp=None, impl=None):
    """One synthesis layer after its affine: bias_act(modulated_conv2d(x, weight, styles, noise), bias, act,
    alpha, gain, clamp), as one op so that the fast paths can fold the steps together.

    Args:
        x, weight, styles:      [batch, in_channels, height, width], [out_channels, in_channels, k, k],
                                [batch, in_channels].
        bias:                   [out_channels] or None.
        noise, up, down, padding, resample_filter, demodulate, flip_weight, fused_modconv: as in modulated_conv2d.
        act, alpha, gain, clamp: as in bias_act (applied after the bias).
        impl:                   'ref', 'fast' or None (the default for x's device).

    Returns:
        [batch, out_channels, height * up // down, width * up // down].
    """
    return resolve('modulated_conv2d_bias_act', impl, x.device)(
        x, weight, styles, bias=bias, noise=noise, up=up, down=down, padding=padding,
        resample_filter=resample_filter, demodulate=demodulate, flip_weight=flip_weight,
        fused_modconv=fused_modconv, act=act, alpha=alpha, gain=gain, clamp=clamp)
