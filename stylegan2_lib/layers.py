"""Building blocks shared by the generator and the discriminator (NVlabs parameter names and maths).

Weights are stored at unit variance and scaled at run time ("equalized learning rate", Karras et al. 2018,
Section 4.1): a layer multiplies its weight by 1/sqrt(fan_in) (times lr_multiplier for the mapping MLP).
"""

import contextlib

import numpy as np
import torch

from . import ops
from .ops.common import autocast_off

#----------------------------------------------------------------------------
# Initial weights: N(0, 1), as NVlabs. Inside `uninitialised()` (the loaders, which assign every tensor from
# the file right after building, with load_state_dict(assign=True)) they are placeholders instead: one number
# expanded to the shape, so a network of any declared size is built in no memory and no time, and its shapes
# can be checked against the file before anything is allocated. (The meta device would do the same, but its
# first use in a process imports PyTorch's Python reference ops: about 1.3 s.)

_uninitialised = False

@contextlib.contextmanager
def uninitialised():
    global _uninitialised
    saved, _uninitialised = _uninitialised, True
    try:
        yield
    finally:
        _uninitialised = saved

def randn(shape, divisor=1):
    if _uninitialised:
        return torch.empty(1).expand(shape)
    return torch.randn(shape) / divisor if divisor != 1 else torch.randn(shape)

def is_placeholder(t):
    """A tensor `uninitialised()` left in a network (not yet assigned from a file)."""
    return t.numel() > 1 and 0 in t.stride()

#----------------------------------------------------------------------------
# fp16 only where asked for, on CUDA, and not forced off; CPU float16 is slow, so CPU stays float32.
# `emulate_half_blocks(dtype)` is the one switch that makes the CPU (and the meta device) run those blocks in
# float16 or bfloat16 as CUDA would: how the tests and the GPU self-check's CPU run reach the half-precision
# paths without a GPU. Process-wide, restored on exit.

_emulated_half = None

@contextlib.contextmanager
def emulate_half_blocks(dtype=torch.float16):
    global _emulated_half
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f'emulate_half_blocks: dtype must be torch.float16 or torch.bfloat16, got {dtype}')
    saved, _emulated_half = _emulated_half, dtype
    try:
        yield
    finally:
        _emulated_half = saved

def half_blocks_dtype(device):
    """The dtype the network's fp16 blocks run in on `device`, or None where they run in float32."""
    kind = torch.device(device).type
    return torch.float16 if kind == 'cuda' else _emulated_half if kind in ('cpu', 'meta') else None

def compute_dtype(use_fp16, force_fp32, device):
    half = half_blocks_dtype(device) if use_fp16 and not force_fp32 else None
    return half if half is not None else torch.float32

# Channels-last (NHWC) layout for a block's convolution inputs when the trainer asks for it on CUDA
# (block.channels_last): tensor-core convolutions read NHWC. The values are the same either way.

def block_layout(x, channels_last):
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x

#----------------------------------------------------------------------------
# Fully connected layer with equalized learning rate: y = act(x @ (W * gain).T + b * lr_multiplier).

class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features,                # Number of input features.
        out_features,               # Number of output features.
        bias            = True,     # Apply additive bias before the activation?
        activation      = 'linear', # Activation function name.
        lr_multiplier   = 1,        # Learning rate multiplier (0.01 in the mapping network).
        bias_init       = 0,        # Initial value of the bias (1 for style affines).
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(randn([out_features, in_features], divisor=lr_multiplier))
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        assert x.ndim == 2 and x.shape[1] == self.in_features, (tuple(x.shape), self.in_features)
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self):
        return f'in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}'

#----------------------------------------------------------------------------
# Plain convolution with optional FIR up/downsampling, bias, activation and clamp (discriminator).

class Conv2dLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Number of input channels.
        out_channels,                   # Number of output channels.
        kernel_size,                    # Width and height of the kernel.
        bias            = True,         # Apply additive bias before the activation?
        activation      = 'linear',     # Activation function name.
        up              = 1,            # Integer upsampling factor.
        down            = 1,            # Integer downsampling factor.
        resample_filter = (1, 3, 3, 1), # Low-pass filter taps for resampling.
        conv_clamp      = None,         # Clamp the output to +-X, None = no clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', ops.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ops.activation_funcs[activation].def_gain
        self.weight = torch.nn.Parameter(randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x, gain=1):
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = ops.conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                                padding=self.padding, flip_weight=(self.up == 1))
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self):
        return f'in={self.in_channels}, out={self.out_channels}, up={self.up}, down={self.down}, act={self.activation}'

#----------------------------------------------------------------------------
# Styles s = A(w) in float32 whatever autocast says (see ops.common.autocast_off).

def affine_styles(affine, w):
    with autocast_off(w.device):
        return affine(w.float())

#----------------------------------------------------------------------------
# Styled 3x3 convolution of the synthesis network: modulate/demodulate, noise, bias, lrelu, clamp.

class SynthesisLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Number of input channels.
        out_channels,                   # Number of output channels.
        w_dim,                          # Intermediate latent (W) dimensionality.
        resolution,                     # Output resolution of this layer.
        kernel_size     = 3,            # Convolution kernel size.
        up              = 1,            # Integer upsampling factor.
        use_noise       = True,         # Enable per-pixel noise input?
        activation      = 'lrelu',      # Activation function name.
        resample_filter = (1, 3, 3, 1), # Low-pass filter taps for upsampling.
        conv_clamp      = None,         # Clamp the output to +-X, None = no clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', ops.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = ops.activation_funcs[activation].def_gain
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer('noise_const', randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def _noise(self, x, noise_mode, noise):
        if not self.use_noise or (noise is None and noise_mode == 'none'):
            return None
        if noise is not None:               # explicit per-layer noise, [1 or N, 1, r, r]
            assert noise.ndim == 4 and noise.shape[1:] == (1, self.resolution, self.resolution), \
                f'noise for a {self.resolution}x{self.resolution} layer must be [1 or N, 1, {self.resolution}, {self.resolution}], got {list(noise.shape)}'
            return noise.to(x.device, torch.float32) * self.noise_strength
        if noise_mode == 'random':
            return torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        if noise_mode == 'const':
            return self.noise_const * self.noise_strength
        raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")

    def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1, noise=None):
        assert x.shape[2] * self.up == self.resolution, (tuple(x.shape), self.resolution)
        styles = affine_styles(self.affine, w)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.modulated_conv2d_bias_act(x, self.weight, styles, self.bias.to(x.dtype),
                                             noise=self._noise(x, noise_mode, noise), up=self.up, padding=self.padding,
                                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                                             fused_modconv=fused_modconv, act=self.activation, gain=act_gain,
                                             clamp=act_clamp)

    def extra_repr(self):
        return f'in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, up={self.up}'

#----------------------------------------------------------------------------
# ToRGB: modulated 1x1 convolution without demodulation, bias, clamp (no activation).

class ToRGBLayer(torch.nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x, w, fused_modconv=True):
        styles = affine_styles(self.affine, w) * self.weight_gain
        return ops.modulated_conv2d_bias_act(x, self.weight, styles, self.bias.to(x.dtype), demodulate=False,
                                             fused_modconv=fused_modconv, clamp=self.conv_clamp)

#----------------------------------------------------------------------------
# Minibatch standard deviation (Karras et al. 2018, Section 3): the mean over channels and pixels of
# the per-group stddev, appended as `num_channels` extra feature maps. Sample i belongs to group
# i mod (N/G), because the batch is reshaped as [G, N/G, ...]. group_size None = the whole batch.

class MinibatchStdLayer(torch.nn.Module):
    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        if N % G != 0:
            raise ValueError(f'minibatch-stddev: batch size {N} is not a multiple of the group size {G}')
        F = self.num_channels
        c = C // F
        y = x.reshape(G, -1, F, c, H, W)    # [GnFcHW] split the batch into n groups of size G
        y = y - y.mean(dim=0)               # [GnFcHW] subtract the group mean
        y = y.square().mean(dim=0)          # [nFcHW]  variance over the group (biased)
        y = (y + 1e-8).sqrt()               # [nFcHW]  stddev
        y = y.mean(dim=[2, 3, 4])           # [nF]     average over channels and pixels
        y = y.reshape(-1, F, 1, 1)          # [nF11]
        y = y.repeat(G, 1, H, W)            # [NFHW]   replicate over the group and pixels
        return torch.cat([x, y], dim=1)     # [NCHW]

    def extra_repr(self):
        return f'group_size={self.group_size}, num_channels={self.num_channels}'
