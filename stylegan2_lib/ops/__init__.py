"""Low-level StyleGAN2 operations.

Every op has one public function with an ``impl`` argument. ``impl='ref'`` is the plain-PyTorch
reference path: it *is* the specification, and every faster path registered later (fused CPU code,
JIT-built CUDA kernels) is tested against it. ``impl=None`` picks the registered default.
"""

from .registry import register_impl, available_impls, set_default_impl, get_default_impl, set_cuda_default_impl, selected_impl
from .upfirdn2d import setup_filter, upfirdn2d, upsample2d, downsample2d, filter2d
from .bias_act import bias_act, activation_funcs
from .conv2d_resample import conv2d_resample
from .modconv import modulated_conv2d, normalize_2nd_moment
from .modconv_act import modulated_conv2d_bias_act
from .registry import use_impl
from . import fast_bias_act, fast_resample, fast_modconv   # noqa: F401 (they register the 'fast' impls)
from . import cuda_ops   # noqa: F401 (registers impl 'cuda': JIT-built kernels, built on first use only)

# 'fast' is the default for every op: on CPU it measures faster for generator inference
# (benchmarks/generator_speed.py: 2.4x at 256x256, batch 4) and for training (benchmarks/train_speed.py: 1.4x
# in float32; the path-length penalty and R1 about 1.5x, through the FIR's own gradient). ops.use_impl('ref') runs the
# reference path.
for _op in ('upfirdn2d', 'conv2d_resample', 'bias_act', 'modulated_conv2d', 'modulated_conv2d_bias_act'):
    set_default_impl(_op, 'fast')
# On CUDA tensors bias_act and upfirdn2d take the JIT-built kernels, where every call of the networks reaches
# them (the fast convolutions route their FIR and activation through the registry). Measured on an H200
# (tools/gpu_check.py, README "GPU"): per op 1.2-4x the PyTorch paths. Built on first use (about 30 s on
# 16 cores, minutes on Colab's 2; cached); without nvcc/ninja, or with STYLEGAN2_LIB_CUDA=0, one warning and
# the PyTorch path.
for _op in ('bias_act', 'upfirdn2d'):
    set_cuda_default_impl(_op, 'cuda')
del _op

__all__ = [
    'register_impl', 'available_impls', 'set_default_impl', 'get_default_impl', 'set_cuda_default_impl', 'selected_impl',
    'setup_filter', 'upfirdn2d', 'upsample2d', 'downsample2d', 'filter2d',
    'bias_act', 'activation_funcs', 'conv2d_resample', 'modulated_conv2d', 'normalize_2nd_moment',
    'modulated_conv2d_bias_act', 'use_impl',
]
