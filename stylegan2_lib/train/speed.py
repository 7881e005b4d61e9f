"""Speed settings of a training run: the arithmetic (--precision) and, on CUDA, the global flags.

    --precision fp16   (default) CUDA: the network's float16 blocks (num_fp16_res) with its conv_clamp, as
                       NVlabs trains: a network with none (trained from scratch, a rosinality .pt or a TF pickle)
                       gets NVlabs's training setting, num_fp16_res 4 and conv_clamp 256, and the run says so
                       (`--num-fp16-res N` chooses). CPU: float32 (CPU float16 is slow).
    --precision bf16   every synthesis and D layer under torch.autocast(bfloat16) (the network's float16 blocks
                       off); mapping, styles, demodulation, D's epilogue, augmentation and the losses stay
                       float32. CUDA: Ampere or newer. CPU: one with native bfloat16 (AVX512-BF16 or AMX), where
                       convolutions run about 2x faster (benchmarks/train_speed.py).
    --precision fp32   float32 everywhere: the exact reference mode

TF32 (float32 matmuls and convolutions on tensor cores, 10-bit mantissa) is off unless asked for (`--tf32`), in
every mode, as NVlabs keeps it. On CUDA in the fp16 and bf16 modes the blocks that run in reduced precision take
channels-last inputs (tensor-core convolutions read NHWC; the CPU fast ops are channels-last anyway), and cuDNN
autotunes. The global flags are set when training starts and restored exactly when it ends, never at import.

`layers.emulate_half_blocks(dtype)` makes the CPU behave as CUDA does here (fp16 blocks, NVlabs's setting,
bf16 without native support): how the tests and tools/gpu_check.py reach these paths without a GPU.
"""

import contextlib
import dataclasses

import torch

from .. import layers
from .options import TrainingError

PRECISIONS = ('fp16', 'bf16', 'fp32')

#----------------------------------------------------------------------------

def check_precision(precision, device):
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
    if precision != 'bf16' or native_bf16(device) or emulated(device):
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

def emulated(device):
    """Whether the CPU stands in for CUDA's reduced-precision paths here (layers.emulate_half_blocks)."""
    return device.type != 'cuda' and layers.half_blocks_dtype(device) is not None

def loss_precision(precision, device):
    """StyleGAN2Loss keyword arguments: force_fp32 for G.synthesis and D, and the autocast dtype around them."""
    return {'fp16': {'force_fp32': False, 'autocast_dtype': None},
            'bf16': {'force_fp32': True, 'autocast_dtype': torch.bfloat16},
            'fp32': {'force_fp32': True, 'autocast_dtype': None}}[precision]

#----------------------------------------------------------------------------
# The fp16 blocks of a training run. NVlabs's train.py sets num_fp16_res = 4 and conv_clamp = 256 for every run
# not in fp32 (the clamp keeps float16 activations finite), whatever the resumed pickle had; here the loaded
# network's own setting is kept when it has fp16 blocks, and NVlabs's is used when it has none.

NVLABS_FP16 = {'num_fp16_res': 4, 'conv_clamp': 256}

def fp16_setting(precision, device, cfg, num_fp16_res=None):
    """(num_fp16_res, conv_clamp) for training `cfg`'s network, and whether that differs from the file's."""
    if precision != 'fp16' or layers.half_blocks_dtype(device) is None:
        return cfg.num_fp16_res, cfg.conv_clamp, False
    n = num_fp16_res if num_fp16_res is not None else cfg.num_fp16_res or NVLABS_FP16['num_fp16_res']
    clamp = cfg.conv_clamp if cfg.conv_clamp is not None or n == 0 else NVLABS_FP16['conv_clamp']
    return n, clamp, (n, clamp) != (cfg.num_fp16_res, cfg.conv_clamp)

def with_fp16_setting(net, num_fp16_res, conv_clamp):
    """The same network (same tensors) built with another num_fp16_res / conv_clamp; `net` itself if unchanged."""
    if (net.cfg.num_fp16_res, net.cfg.conv_clamp) == (num_fp16_res, conv_clamp):
        return net
    with layers.uninitialised():                       # every tensor comes from `net`
        out = type(net)(dataclasses.replace(net.cfg, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp))
    out.load_state_dict({k: t.clone() for k, t in net.state_dict().items()}, assign=True)
    return out.train(net.training).requires_grad_(any(p.requires_grad for p in net.parameters()))

def block_dtypes(precision, device, net):
    """{resolution: dtype name} of the blocks of G.synthesis or D in a run of this precision."""
    blocks = net.synthesis.blocks() if hasattr(net, 'synthesis') else [getattr(net, f'b{r}') for r in net.block_resolutions]
    force_fp32 = loss_precision(precision, device)['force_fp32']
    autocast = 'bfloat16 (autocast)' if precision == 'bf16' else None
    return {b.resolution: autocast or str(layers.compute_dtype(b.use_fp16, force_fp32, device)).replace('torch.', '')
            for b in blocks}

def describe(precision, device, G, D, tf32, changed=False):
    """One line: which blocks run in which dtype, TF32, and the fp16 setting when it is not the file's."""
    def spans(dtypes):
        groups = {}
        for res, dt in sorted(dtypes.items()):
            groups.setdefault(dt, []).append(res)
        return ', '.join(f'{min(r)}-{max(r)} {dt}' if len(r) > 1 else f'{r[0]} {dt}' for dt, r in groups.items())
    line = (f'precision {precision} on {device.type}{" (emulated)" if emulated(device) else ""}: G blocks '
            f'{spans(block_dtypes(precision, device, G))}; D blocks {spans(block_dtypes(precision, device, D))}, epilogue float32; '
            f'TF32 {"on" if tf32 else "off"}')
    if changed:
        line += (f'; num_fp16_res {G.cfg.num_fp16_res} and conv_clamp {G.cfg.conv_clamp} set for training (NVlabs\'s '
                 'setting: the loaded network had no float16 blocks)')
    return line

def use_channels_last(precision, device, *nets):
    """Channels-last convolution inputs in the blocks that run in reduced precision (all of them under bf16)."""
    if device.type != 'cuda' or precision == 'fp32':
        return
    for net in nets:
        blocks = net.synthesis.blocks() if hasattr(net, 'synthesis') else [getattr(net, f'b{r}') for r in net.block_resolutions]
        for block in blocks:
            block.channels_last = block.use_fp16 or precision == 'bf16'

#----------------------------------------------------------------------------
# TF32 and cuDNN autotuning for the run, and every flag back as it was. PyTorch 2.9+ keeps per-backend
# fp32_precision settings beside the legacy allow_tf32 flags, and refuses to report a legacy flag once the two
# were mixed (cudnn.allow_tf32 raises when conv and rnn differ). So: set through the legacy setters, which keep
# every backend consistent (conv and rnn alike), and save/restore through the new per-backend settings where
# they exist, which reproduces any state, a mixed one too.

_PRECISION_SETTINGS = (('fp32_precision',), ('cuda', 'matmul', 'fp32_precision'), ('cudnn', 'fp32_precision'),
                       ('cudnn', 'conv', 'fp32_precision'), ('cudnn', 'rnn', 'fp32_precision'))   # parents first

def _setting(path):
    obj = torch.backends
    for name in path[:-1]:
        obj = getattr(obj, name, None)
    return obj if obj is not None and hasattr(obj, path[-1]) else None

def tf32_flags():
    """Every TF32-related flag as it is now (restorable by restore_tf32_flags)."""
    new = {path: getattr(_setting(path), path[-1]) for path in _PRECISION_SETTINGS if _setting(path) is not None}
    if new:
        return {'new': new, 'matmul_precision': torch.get_float32_matmul_precision()}
    return {'legacy': (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32),
            'matmul_precision': torch.get_float32_matmul_precision()}

def restore_tf32_flags(flags):
    torch.set_float32_matmul_precision(flags['matmul_precision'])     # first: it also sets the matmul backend's
    if 'new' in flags:
        for path, value in flags['new'].items():
            setattr(_setting(path), path[-1], value)
    else:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags['legacy']

@contextlib.contextmanager
def cuda_flags(precision, device, tf32=False):
    """TF32 as asked (off by default) and cudnn.benchmark while training on CUDA; the previous flags afterwards."""
    if device.type != 'cuda':
        yield
        return
    saved, benchmark = tf32_flags(), torch.backends.cudnn.benchmark
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = bool(tf32)
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        restore_tf32_flags(saved)
        torch.backends.cudnn.benchmark = benchmark
