"""Helpers the ops and the layers share."""

import contextlib

import torch

#----------------------------------------------------------------------------
# Autocast switched off for a region: what must stay in its own dtype whatever autocast says. Under bfloat16
# autocast (--precision bf16) the styles, the demodulation coefficients and D's epilogue stay float32, as
# NVlabs keeps its epilogue and its modulation arithmetic in float32 around the float16 blocks; the CPU FIR
# pass keeps its input's dtype.

def autocast_off(device):
    kind = torch.device(device).type
    return torch.autocast(kind, enabled=False) if kind in ('cpu', 'cuda') else contextlib.nullcontext()

#----------------------------------------------------------------------------
# A per-sample or per-channel scale (styles, demodulation coefficients) in the dtype of the activations it
# multiplies, as NVlabs does for its float16 blocks; except under autocast, where it stays float32: the product
# is then rounded once, by the next convolution's cast, instead of the scale first.

def scale_for(t, x):
    return t if autocast_enabled(x.device) else t.to(x.dtype)

def autocast_enabled(device):
    kind = torch.device(device).type
    if kind not in ('cpu', 'cuda'):
        return False
    try:
        return torch.is_autocast_enabled(kind)
    except TypeError:                                  # PyTorch before 2.4: one query per device type
        return torch.is_autocast_enabled() if kind == 'cuda' else torch.is_autocast_cpu_enabled()
