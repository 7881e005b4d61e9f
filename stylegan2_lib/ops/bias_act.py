"""Fused bias + activation + gain + clamp, as in NVlabs stylegan2-ada-pytorch `bias_act`.

    y = clamp(act(x + b, alpha) * gain, -clamp, clamp)

`gain=None` uses the activation's default gain (sqrt(2) for relu/lrelu, He et al. 2015), which keeps the
signal's second moment; `clamp=None` or a negative value means no clamping.
"""

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .registry import register_impl, resolve

#----------------------------------------------------------------------------
# Activation table: function, default alpha, default gain.

@dataclass(frozen=True)
class ActivationSpec:
    func:      Callable
    def_alpha: float
    def_gain:  float

activation_funcs = {
    'linear':   ActivationSpec(lambda x, alpha: x,                       0.0, 1.0),
    'relu':     ActivationSpec(lambda x, alpha: F.relu(x),               0.0, math.sqrt(2)),
    'lrelu':    ActivationSpec(lambda x, alpha: F.leaky_relu(x, alpha),  0.2, math.sqrt(2)),
    'tanh':     ActivationSpec(lambda x, alpha: torch.tanh(x),           0.0, 1.0),
    'sigmoid':  ActivationSpec(lambda x, alpha: torch.sigmoid(x),        0.0, 1.0),
    'elu':      ActivationSpec(lambda x, alpha: F.elu(x),                0.0, 1.0),
    'selu':     ActivationSpec(lambda x, alpha: F.selu(x),               0.0, 1.0),
    'softplus': ActivationSpec(lambda x, alpha: F.softplus(x),           0.0, 1.0),
    'swish':    ActivationSpec(lambda x, alpha: torch.sigmoid(x) * x,    0.0, math.sqrt(2)),
}

def _activation(act):
    try:
        return activation_funcs[act]
    except KeyError:
        raise ValueError(f'unknown activation {act!r}; known: {sorted(activation_funcs)}') from None

#----------------------------------------------------------------------------
# Reference path.

def _bias_act_ref(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    spec = _activation(act)
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    if b is not None:
        assert b.ndim == 1 and b.shape[0] == x.shape[dim], (tuple(b.shape), tuple(x.shape), dim)
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x

register_impl('bias_act', 'ref', _bias_act_ref)

#----------------------------------------------------------------------------
# Public function.

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl=None):
    return resolve('bias_act', impl, x.device)(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
