"""Fast paths ('fast') for modulated_conv2d and modulated_conv2d_bias_act (Karras et al. 2020, Eq. 1-3):
the same maths as the reference, executed in the order that is fastest on a CPU. Differentiable; equal to
the reference up to float rounding (tests/test_ops_fast.py).

- Demodulation coefficients without building the modulated weights (an identity):
      sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 * (sum_k w_oik^2)      -> one [N, I] x [I, O] matmul.
- The layer's gain goes into those per-(sample, output channel) coefficients, because lrelu/relu/linear
  are positively homogeneous (act(g v) = g act(v), g > 0); the bias goes into the convolution's own
  bias argument; without autograd, noise, activation and clamp then run in place on the one output
  tensor (the reference makes a new full-size tensor for each step).
- Two executions, as in NVlabs (`fused_modconv` True / False), picked by cost rather than by the flag:
    per sample: (no autograd) modulated + demodulated weights per sample, one plain convolution per
                sample, its noise + activation done on its own cache-sized output. Writes N * O * I * k * k
                weights, so only where the image is larger than the kernel stack (H * W >= O * k * k);
    shared:     x * styles -> one convolution shared by the batch -> * coefficients. For small images
                (where the weights dominate), and always under autograd: the backward then takes one
                batched conv, and no weight gradient at all when the weights are frozen (projection:
                1.95x the reference's steps/s at 256x256, README Performance).
- 1x1 kernels (ToRGB) run as one batched matmul over channels-last pixels: [N, HW, I] @ [N, I, O].
- Activations are channels-last (NHWC), oneDNN's fast layout for convolutions on CPU.
- Upsampling (up=2): transposed conv + FIR (fast_resample.conv2d_up), bias added by the FIR.

float16/bfloat16 (the reference pre-normalises for them), down > 1 and non-symmetric padding take the
reference path.
"""

import torch
import torch.nn.functional as F

from .common import autocast_off
from .bias_act import resolve_act_args
from .fast_bias_act import act_gain_clamp, folds_gain, needs_autograd
from .conv2d_resample import resample_padding
from .fast_resample import channels_last, conv2d_up
from .modconv_act import modulated_conv2d_bias_act_ref
from .registry import register_impl, resolve, selected_impl

#----------------------------------------------------------------------------
# Demodulation coefficients [N, O]: 1 / sqrt(sum_{i,k} (s_i w_oik)^2 + eps) (Eq. 3), via the identity.

def demod_coefs(weight, styles, eps=1e-8):
    with autocast_off(weight.device):                             # float32 under bfloat16 autocast too
        wsq = weight.square().sum(dim=[2, 3])                     # [OI] sum_k w_oik^2
        return (styles.square() @ wsq.t() + eps).rsqrt()          # [NO]

#----------------------------------------------------------------------------
# Noise as a 4-D tensor that broadcasts against [N, O, H, W] (the layers pass [H, W] or [1|N, 1, H, W]),
# and sample n's slice of it.

def _noise4d(noise, dtype, scale):
    if noise is None:
        return None
    noise = noise.to(dtype).reshape([1] * (4 - noise.ndim) + list(noise.shape))
    return noise * scale if scale != 1 else noise

def _sample(t, n):
    return t if t is None or t.shape[0] == 1 else t[n: n + 1]

#----------------------------------------------------------------------------
# The convolution part for one weight [O, I, k, k] (already flipped for flip_weight=False, up=1), or
# [I, O, k, k] when `transposed` (up > 1 only).

def _conv(x, w, bias, up, padding, f, flip_weight, transposed=False):
    if up > 1:
        return conv2d_up(x, w, f, up=up, padding=padding, flip_weight=flip_weight, bias=bias, transposed=transposed)
    return F.conv2d(x, w, bias=bias, padding=padding)

#----------------------------------------------------------------------------
# Per-sample weights w_n[o, i] = w[o, i] * s_n[i] * c_n[o] (no autograd: written with out=), [N, O, I, k, k],
# or for upsampling straight in conv_transpose2d's [N, I, O, k, k] layout; either way channels-last per
# sample, the layout the convolution would otherwise copy them into (saves one or two copies per sample).

def _modulated_weights(w, styles, coefs, transposed):
    m = styles.unsqueeze(1) if coefs is None else styles.unsqueeze(1) * coefs.unsqueeze(2)     # [NOI]
    m = m.reshape(*m.shape, 1, 1)
    N, (O, I, kh, kw) = m.shape[0], w.shape
    if not transposed:
        out = torch.empty([N, O, kh, kw, I], dtype=w.dtype, device=w.device).permute(0, 1, 4, 2, 3)   # [NOIkk], CL
        torch.mul(w.unsqueeze(0), m, out=out)
        return out
    out = torch.empty([N, I, kh, kw, O], dtype=w.dtype, device=w.device).permute(0, 1, 4, 2, 3)       # [NIOkk], CL
    torch.mul(w.unsqueeze(0), m, out=out.transpose(1, 2))
    return out

#----------------------------------------------------------------------------
# Per-sample execution (no autograd): one plain convolution per sample with its own weights; each
# sample's noise + activation runs on its own output while it is in cache, written into the batch.

def _per_sample(x, w, styles, coefs, bias, noise, up, padding, f, flip_weight, epilogue):
    N = x.shape[0]
    wn = _modulated_weights(w, styles, coefs, transposed=(up > 1))
    out = None
    for n in range(N):
        y = _conv(x[n: n + 1], wn[n], bias, up, padding, f, flip_weight, transposed=(up > 1))
        if out is None:
            out = torch.empty([N, *y.shape[1:]], dtype=y.dtype, device=y.device, memory_format=torch.channels_last)
        o = out[n: n + 1]
        if noise is None:
            o.copy_(y)
        else:
            torch.add(y, _sample(noise, n), out=o)
        r = epilogue(o, True)
        if r is not o:                          # an activation that is not computed in place
            o.copy_(r)
    return out

#----------------------------------------------------------------------------
# Shared execution: (x * s) conv w, then * c + b + noise (NVlabs fused_modconv=False form). Tiny images
# (N * H * W <= 256 input pixels) convolve in NCHW: channels-last would first copy the stored weight into
# that layout, which there costs more than the layout saves (measured at 4x4 to 16x16, batch 1 and 4).

def _shared(x, w, styles, coefs, bias, noise, up, padding, f, flip_weight, epilogue, inplace):
    N, _, H, W = x.shape
    xs = x * styles.reshape(N, -1, 1, 1)
    y = _conv(xs.contiguous() if N * H * W <= 256 else xs, w, None, up, padding, f, flip_weight)
    if inplace:
        if coefs is not None:
            y.mul_(coefs.reshape(N, -1, 1, 1))
        if bias is not None:
            y.add_(bias.reshape(1, -1, 1, 1))
        if noise is not None:
            y.add_(noise)
        return epilogue(y, True)
    if coefs is not None:
        y = torch.addcmul(bias.reshape(1, -1, 1, 1), y, coefs.reshape(N, -1, 1, 1)) if bias is not None else \
            y * coefs.reshape(N, -1, 1, 1)
    elif bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    if noise is not None:
        y = y + noise
    return epilogue(y, False)

#----------------------------------------------------------------------------
# 1x1 kernel, no resampling: per-sample matmul over the pixels of a channels-last batch.

def _pointwise(x, w, styles, coefs, bias, noise, epilogue, inplace):
    N, I, H, W = x.shape
    m = styles.unsqueeze(1) if coefs is None else styles.unsqueeze(1) * coefs.unsqueeze(2)     # [NOI]
    wn = (w[:, :, 0, 0].unsqueeze(0) * m).transpose(1, 2)                                     # [NIO]
    pixels = x.permute(0, 2, 3, 1).reshape(N, H * W, I)                                       # [N, HW, I]
    y = torch.baddbmm(bias.reshape(1, 1, -1), pixels, wn) if bias is not None else torch.bmm(pixels, wn)
    y = y.reshape(N, H, W, -1).permute(0, 3, 1, 2)                                            # [NOHW], NHWC
    if noise is not None:
        y = y.add_(noise) if inplace else y + noise
    return epilogue(y, inplace)

#----------------------------------------------------------------------------
# Which inputs the fast path handles; everything else goes to the reference.

def _supported(x, up, down, padding, resample_filter):
    if x.dtype not in (torch.float32, torch.float64) or down != 1 or up not in (1, 2):
        return False
    if up > 1:
        return resample_filter is not None
    px0, px1, py0, py1 = resample_padding(None, 1, 1, padding)
    return px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0

def _prefer_per_sample(x, weight, inplace, kernel_epilogue):
    # A CPU cache strategy: on a GPU, or with the epilogue in a kernel, one convolution for the batch is better.
    H, W = x.shape[2:]
    out_channels, _, kh, kw = weight.shape
    return inplace and not kernel_epilogue and x.device.type == 'cpu' and H * W >= out_channels * kh * kw

#----------------------------------------------------------------------------
# Activation, the gain not folded into the coefficients, and the clamp: in place here, or through the registry
# where another bias_act is selected for the device (the CUDA kernels: one pass).

def _epilogue(impl, act, alpha, post_gain, clamp):
    if impl == 'fast':
        return lambda y, inplace: act_gain_clamp(y, act, alpha, post_gain, clamp, inplace)
    kernel = resolve('bias_act', impl)
    return lambda y, inplace: kernel(y, None, act=act, alpha=alpha, gain=post_gain, clamp=clamp if clamp >= 0 else None)

#----------------------------------------------------------------------------
# Fast modulated_conv2d_bias_act.

def _modulated_conv2d_bias_act_fast(x, weight, styles, bias=None, noise=None, up=1, down=1, padding=0,
                                    resample_filter=None, demodulate=True, flip_weight=True, fused_modconv=True,
                                    act='linear', alpha=None, gain=None, clamp=None):
    N = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert x.ndim == 4 and x.shape[1] == in_channels              # [NIHW]
    assert styles.shape == (N, in_channels), (tuple(styles.shape), N, in_channels)
    if not _supported(x, up, down, padding, resample_filter):
        return modulated_conv2d_bias_act_ref(x, weight, styles, bias=bias, noise=noise, up=up, down=down,
                                              padding=padding, resample_filter=resample_filter, demodulate=demodulate,
                                              flip_weight=flip_weight, fused_modconv=fused_modconv, act=act,
                                              alpha=alpha, gain=gain, clamp=clamp)
    _, alpha, gain, clamp = resolve_act_args(act, alpha, gain, clamp)
    inplace = not needs_autograd(x, weight, styles, bias, noise)
    scale = gain if folds_gain(act, gain) else 1.0                # folded into the output coefficients
    post_gain = 1.0 if folds_gain(act, gain) else gain

    dtype = x.dtype
    x = channels_last(x)
    styles = styles.to(dtype)
    w = weight.to(dtype)
    if up == 1 and not flip_weight:
        w = w.flip([2, 3])
    coefs = demod_coefs(w, styles) if demodulate else None
    if scale != 1:
        coefs = coefs * scale if coefs is not None else torch.full([N, out_channels], scale, dtype=dtype, device=x.device)
    bias = bias.to(dtype) * scale if bias is not None else None
    noise = _noise4d(noise, dtype, scale)
    px, _, py, _ = resample_padding(None, 1, 1, padding)
    pad = (py, px) if up == 1 else padding                        # conv2d's (padH, padW); conv2d_up parses its own

    epilogue_impl = selected_impl('bias_act', x.device)
    epilogue = _epilogue(epilogue_impl, act, alpha, post_gain, clamp)

    if kh == 1 and kw == 1 and up == 1 and pad == (0, 0):
        return _pointwise(x, w, styles, coefs, bias, noise, epilogue, inplace)
    if _prefer_per_sample(x, w, inplace, kernel_epilogue=(epilogue_impl != 'fast')):
        return _per_sample(x, w, styles, coefs, bias, noise, up, pad, resample_filter, flip_weight, epilogue)
    return _shared(x, w, styles, coefs, bias, noise, up, pad, resample_filter, flip_weight, epilogue, inplace)

register_impl('modulated_conv2d_bias_act', 'fast', _modulated_conv2d_bias_act_fast)

#----------------------------------------------------------------------------
# Fast modulated_conv2d: the fused op with no bias and a linear activation of gain 1.

def _modulated_conv2d_fast(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                           demodulate=True, flip_weight=True, fused_modconv=True):
    return _modulated_conv2d_bias_act_fast(x, weight, styles, noise=noise, up=up, down=down, padding=padding,
                                           resample_filter=resample_filter, demodulate=demodulate,
                                           flip_weight=flip_weight, fused_modconv=fused_modconv)

register_impl('modulated_conv2d', 'fast', _modulated_conv2d_fast)
