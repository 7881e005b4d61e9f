"""Low-level StyleGAN2 operations.

Every op has one public function with an ``impl`` argument. ``impl='ref'`` is the plain-PyTorch
reference path: it *is* the specification, and every faster path registered later (fused CPU code,
JIT-built CUDA kernels) is tested against it. ``impl=None`` picks the registered default.
"""

from .registry import register_impl, available_impls, set_default_impl, get_default_impl
from .upfirdn2d import setup_filter, upfirdn2d, upsample2d, downsample2d, filter2d
from .bias_act import bias_act, activation_funcs
from .conv2d_resample import conv2d_resample
from .modconv import modulated_conv2d, normalize_2nd_moment

__all__ = [
    'register_impl', 'available_impls', 'set_default_impl', 'get_default_impl',
    'setup_filter', 'upfirdn2d', 'upsample2d', 'downsample2d', 'filter2d',
    'bias_act', 'activation_funcs', 'conv2d_resample', 'modulated_conv2d', 'normalize_2nd_moment',
]
