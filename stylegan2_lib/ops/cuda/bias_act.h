// bias_act per element:  v = x + b[c],  s = act(v) * gain,  y = clamp(s, -clamp, clamp)  (clamp < 0: none).
//
// Three modes, so that the kernel also serves as its own first and second derivative:
//   mode 0 (forward):        out = y
//   mode 1 (gradient):       out = g * dy/dx   = g * gain * act'(v)  * m(v)
//   mode 2 (2nd derivative): out = g * h * d2y/dx2 = g * h * gain * act''(v) * m(v)
// where m(v) = [-clamp <= s <= clamp] is the clamp's pass-through mask (inclusive, as torch.clamp's
// backward; the mask is piecewise constant, so it adds no term to the second derivative).
// dL/dx = mode1(g = dL/dy); for the double backward of dx = mode1(dy): d(dx)/d(dy) is mode 1 again and
// d(dx)/dx is mode 2 with h = dy.  dL/db = sum of dL/dx over every axis but `dim` (done in PyTorch).
#pragma once
#include "common.h"

namespace sg2 {

// Activation ids: the order of ops/cuda_ops.py ACTS (and ops/bias_act.py's table).
enum Act { LINEAR = 0, RELU, LRELU, TANH, SIGMOID, ELU, SELU, SOFTPLUS, SWISH };

// act(v), act'(v) (order >= 1) and act''(v) (order >= 2); `alpha` is lrelu's negative slope.
// elu uses alpha 1 and softplus beta 1 / threshold 20, as F.elu / F.softplus do in the reference.
template <typename T>
SG2_HD void act_eval(int act, T v, T alpha, int order, T& f, T& d1, T& d2) {
    const T one = 1, zero = 0;
    d1 = zero; d2 = zero;
    switch (act) {
    case LINEAR:  f = v; d1 = one; break;
    case RELU:    f = v > zero ? v : zero; d1 = v > zero ? one : zero; break;    // relu'(0) = 0 (torch)
    case LRELU:   f = v > zero ? v : v * alpha; d1 = v > zero ? one : alpha; break;
    case TANH:    f = tanh_(v); d1 = one - f * f; d2 = -2 * f * d1; break;
    case SIGMOID: f = one / (one + exp_(-v)); d1 = f * (one - f); d2 = d1 * (one - 2 * f); break;
    case ELU:     // v > 0: v;  else exp(v) - 1,  d1 = d2 = exp(v)
        if (v > zero) { f = v; d1 = one; }
        else { f = expm1_(v); if (order >= 1) { d1 = exp_(v); d2 = d1; } }
        break;
    case SELU: {  // scale * (v > 0 ? v : a * (exp(v) - 1))
        const T scale = T(1.0507009873554804934193349852946), a = T(1.6732632423543772848170429916717);
        if (v > zero) { f = scale * v; d1 = scale; }
        else { f = scale * a * expm1_(v); if (order >= 1) { d1 = scale * a * exp_(v); d2 = d1; } }
        break;
    }
    case SOFTPLUS: // log(1 + exp(v)), linear above the threshold 20;  d1 = sigmoid(v), d2 = s (1 - s)
        if (v > T(20)) { f = v; d1 = one; }
        else {
            f = log1p_(exp_(v));
            if (order >= 1) { T s = one / (one + exp_(-v)); d1 = s; d2 = s * (one - s); }
        }
        break;
    case SWISH: { // v * s(v);  d1 = s (1 + v (1 - s));  d2 = s (1 - s) (2 + v (1 - 2 s))
        T s = one / (one + exp_(-v));
        f = v * s;
        d1 = s * (one + v * (one - s));
        d2 = s * (one - s) * (T(2) + v * (one - 2 * s));
        break;
    }
    default: f = v; d1 = one; break;
    }
}

template <typename T>
SG2_HD T bias_act_element(int mode, int act, T v, T g, T h, T alpha, T gain, T clamp) {
    T f, d1, d2;
    act_eval(act, v, alpha, mode, f, d1, d2);
    T s = f * gain;
    if (mode == 0) {
        if (clamp >= T(0)) s = s < -clamp ? -clamp : (s > clamp ? clamp : s);    // NaN passes through
        return s;
    }
    if (clamp >= T(0) && !(s >= -clamp && s <= clamp)) return T(0);
    return mode == 1 ? g * gain * d1 : g * h * gain * d2;
}

}  // namespace sg2
