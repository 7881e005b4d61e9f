"""Speed settings of a training run: the arithmetic (--precision) and, on CUDA, the global flags.

    --precision fp16   (default) CUDA: the network's own float16 blocks (num_fp16_res) with its conv_clamp, as
                       loaded: what NVlabs trains with; TF32 for the float32 layers. CPU: float32 (CPU float16
                       is slow).
    --precision bf16   every synthesis and D layer under torch.autocast(bfloat16) (the network's float16 blocks
                       off); mapping, augmentation and the losses stay float32. CUDA: Ampere or newer. CPU: one
                       with native bfloat16 (AVX512-BF16 or AMX), where convolutions run about 2x faster
                       (benchmarks/train_speed.py).
    --precision fp32   float32 everywhere, TF32 off: the exact reference mode

plus, on CUDA in the fp16 and bf16 modes, channels-last convolution inputs in the blocks that run in reduced
precision (tensor-core convolutions read NHWC; the CPU fast ops are channels-last anyway), and cuDNN
autotuning. The global flags (TF32, cudnn.benchmark) are set when training starts and restored when it
ends, never at import.
"""

import contextlib

import torch

from .options import TrainingError

PRECISIONS = ('fp16', 'bf16', 'fp32')

#----------------------------------------------------------------------------

def check_precision(precision, device):
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
    if precision != 'bf16' or native_bf16(device):
        return
    if device.type == 'cuda':
        raise TrainingError(f'--precision bf16: {torch.cuda.get_device_name(device)} has no native bfloat16 '
                            '(Ampere or newer needed); use --precision fp16')
    raise TrainingError('--precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX needed), where it '
                        'would be slower than float32; use the default precision')

def native_bf16(device):
    """Whether `device` (the CPU or a CUDA GPU) runs bfloat16 natively."""
    return cuda_native_bf16() if device.type == 'cuda' else cpu_native_bf16()

def cuda_native_bf16():
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:                                  # older PyTorch: no emulation to exclude
        return torch.cuda.is_bf16_supported()

def cpu_native_bf16():
    """Whether oneDNN runs bfloat16 natively on this CPU (the test behind PyTorch's own CPU autocast checks)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):             # a PyTorch without the query
        return False

def loss_precision(precision, device):
    """StyleGAN2Loss keyword arguments: force_fp32 for G.synthesis and D, and the autocast dtype around them."""
    if device.type != 'cuda':
        bf16 = precision == 'bf16'
        return {'force_fp32': bf16, 'autocast_dtype': torch.bfloat16 if bf16 else None}
    return {'fp16': {'force_fp32': False, 'autocast_dtype': None},
            'bf16': {'force_fp32': True, 'autocast_dtype': torch.bfloat16},
            'fp32': {'force_fp32': True, 'autocast_dtype': None}}[precision]

def use_channels_last(precision, device, *nets):
    """Channels-last convolution inputs in the blocks that run in reduced precision (all of them under bf16)."""
    if device.type != 'cuda' or precision == 'fp32':
        return
    for net in nets:
        blocks = net.synthesis.blocks() if hasattr(net, 'synthesis') else [getattr(net, f'b{r}') for r in net.block_resolutions]
        for block in blocks:
            block.channels_last = block.use_fp16 or precision == 'bf16'

#----------------------------------------------------------------------------
# TF32 through the API that does not mix with the newer per-backend fp32_precision settings (PyTorch refuses
# to report a flag set through both): set_float32_matmul_precision for matmuls, cudnn.conv.fp32_precision
# (or cudnn.allow_tf32 before PyTorch 2.9) for convolutions.

def _conv_tf32():
    conv = getattr(torch.backends.cudnn, 'conv', None)
    return conv.fp32_precision if hasattr(conv, 'fp32_precision') else torch.backends.cudnn.allow_tf32

def _set_conv_tf32(value):
    conv = getattr(torch.backends.cudnn, 'conv', None)
    if hasattr(conv, 'fp32_precision'):
        conv.fp32_precision = value if isinstance(value, str) else ('tf32' if value else 'ieee')
    else:
        torch.backends.cudnn.allow_tf32 = bool(value)

@contextlib.contextmanager
def cuda_flags(precision, device):
    """TF32 (off for fp32) and cudnn.benchmark while training on CUDA; the previous settings afterwards."""
    if device.type != 'cuda':
        yield
        return
    saved = torch.get_float32_matmul_precision(), _conv_tf32(), torch.backends.cudnn.benchmark
    tf32 = precision != 'fp32'
    torch.set_float32_matmul_precision('high' if tf32 else 'highest')
    _set_conv_tf32(tf32)
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        _set_conv_tf32(saved[1])
        torch.backends.cudnn.benchmark = saved[2]
