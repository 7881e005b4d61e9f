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
# Activation table: function, default alpha, default gain, and the id of the same activation in the CUDA
# kernels (`enum Act` of cuda/bias_act.h).

@dataclass(frozen=True)
class ActivationSpec:
    func:      Callable
    def_alpha: float
    def_gain:  float
    cuda_id:   int

activation_funcs = {
    'linear':   ActivationSpec(lambda x, alpha: x,                       0.0, 1.0,          0),
    'relu':     ActivationSpec(lambda x, alpha: F.relu(x),               0.0, math.sqrt(2), 1),
    'lrelu':    ActivationSpec(lambda x, alpha: F.leaky_relu(x, alpha),  0.2, math.sqrt(2), 2),
    'tanh':     ActivationSpec(lambda x, alpha: torch.tanh(x),           0.0, 1.0,          3),
    'sigmoid':  ActivationSpec(lambda x, alpha: torch.sigmoid(x),        0.0, 1.0,          4),
    'elu':      ActivationSpec(lambda x, alpha: F.elu(x),                0.0, 1.0,          5),
    'selu':     ActivationSpec(lambda x, alpha: F.selu(x),               0.0, 1.0,          6),
    'softplus': ActivationSpec(lambda x, alpha: F.softplus(x),           0.0, 1.0,          7),
    'swish':    ActivationSpec(lambda x, alpha: torch.sigmoid(x) * x,    0.0, math.sqrt(2), 8),
}

def activation_spec(act):
    try:
        return activation_funcs[act]
    except (KeyError, TypeError):
        raise ValueError(f'unknown activation {act!r:.40}; known: {sorted(activation_funcs)}') from None

def resolve_act_args(act, alpha, gain, clamp):
    """(spec, alpha, gain, clamp) with the activation's defaults filled in (None = default; clamp -1 = none)."""
    spec = activation_spec(act)
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    return spec, alpha, gain, clamp

#----------------------------------------------------------------------------
# Reference path.

def bias_act_ref(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    spec, alpha, gain, clamp = resolve_act_args(act, alpha, gain, clamp)
    if b is not None:
        assert b.ndim == 1 and b.shape[0] == x.shape[dim], (tuple(b.shape), tuple(x.shape), dim)
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x

register_impl('bias_act', 'ref', bias_act_ref)

#----------------------------------------------------------------------------
# Public function.

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl=None):
    """Bias, activation, gain and clamp in one op (NVlabs `bias_act`): clamp(act(x + b, alpha) * gain).

    Args:
        x:      float tensor of any shape.
        b:      bias [x.shape[dim]], of x's dtype, or None.
        dim:    the axis of x that b runs along (1 for [N, C, ...]).
        act:    one of activation_funcs: 'linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu', 'selu', 'softplus', 'swish'.
        alpha:  the activation's shape parameter (lrelu's negative slope), None = its default (0.2 for lrelu).
        gain:   scale after the activation, None = the activation's default (sqrt(2) for relu, lrelu, swish).
        clamp:  clamp the result to [-clamp, clamp]; None = no clamp.
        impl:   'ref', 'fast', 'cuda' or None (the default for x's device: ops.selected_impl).

    Returns:
        A tensor of x's shape and dtype. Differentiable twice (R1), in every impl.
    """
    return resolve('bias_act', impl, x.device)(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
