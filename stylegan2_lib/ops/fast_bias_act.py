"""Fast path ('fast') for bias_act: the same maths as the reference in fewer passes over memory.

    y = clamp(act(x + b) * gain, -c, c)

For a positively homogeneous activation (linear, relu, lrelu: act(g * v) = g * act(v) for g > 0) the gain
moves in front of the activation and joins the bias add: one `torch.add(b * g, x, alpha=g)` pass, then the
activation, then the clamp; the reference takes four. Without autograd the passes after the first run in
place, so only one new tensor is allocated. With autograd every step is an ordinary differentiable op
(double backward included, for R1).
"""

import torch
import torch.nn.functional as F

from .bias_act import activation_spec, resolve_act_args
from .registry import register_impl

HOMOGENEOUS = ('linear', 'relu', 'lrelu')   # act(g * v) = g * act(v) for g > 0

def folds_gain(act, gain):
    return act in HOMOGENEOUS and gain > 0

def needs_autograd(*tensors):
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)

#----------------------------------------------------------------------------
# Activation, then the gain that could not be folded, then the clamp; in place when `inplace` (the
# caller owns `x` and nothing needs it for backward).

def act_gain_clamp(x, act, alpha, post_gain, clamp, inplace):
    if act == 'lrelu':
        x = F.leaky_relu(x, alpha, inplace=inplace)
    elif act == 'relu':
        x = F.relu(x, inplace=inplace)
    elif act != 'linear':
        x = activation_spec(act).func(x, alpha)
        inplace = not needs_autograd(x)         # a fresh tensor now
    if post_gain != 1:
        x = x.mul_(post_gain) if inplace else x * post_gain
    if clamp >= 0:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x

#----------------------------------------------------------------------------
# Fast bias_act.

def _bias_act_fast(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    spec, alpha, gain, clamp = resolve_act_args(act, alpha, gain, clamp)
    inplace = not needs_autograd(x, b)
    fold = folds_gain(act, gain)
    pre_gain = gain if fold else 1.0
    if b is not None:
        assert b.ndim == 1 and b.shape[0] == x.shape[dim], (tuple(b.shape), tuple(x.shape), dim)
        b = b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        x = torch.add(b * pre_gain, x, alpha=pre_gain) if pre_gain != 1 else x + b
    elif pre_gain != 1:
        x = x * pre_gain
    elif act == 'linear' and clamp < 0 and gain == 1:
        return x                                # nothing to do (the reference returns x too)
    else:
        inplace = False                         # x is the caller's tensor
    return act_gain_clamp(x, act, alpha, 1.0 if fold else gain, clamp, inplace)

register_impl('bias_act', 'fast', _bias_act_fast)
