// upfirdn2d per output element, the reference's semantics (ops/upfirdn2d.py), along each axis:
//   u[j] = x[j / up]  if j % up == 0 else 0          (zero insertion, length H*up)
//   p[k] = u[k - pad0]  (0 outside u)                  (pad; a negative pad crops)
//   c[o] = sum_t p[o + t] * g[t],  t in [0, K)         (correlation with g = flip(f), or f if flip_filter)
//   y[o] = c[o * down],  length (H*up + pad0 + pad1 - K + down) / down
// Only taps that land on an inserted sample contribute: with b = o*down - pad0, tap t reads x[(b + t) / up]
// when (b + t) % up == 0 and 0 <= (b + t) / up < H, so the loop starts at the first such t and steps by
// `up` (polyphase: K/up taps per axis instead of K). The 2-D filter is f[ty][tx], or f[ty] * f[tx] for a
// 1-D (separable) f; the result is scaled by `gain` (the reference scales f by gain ** (f.ndim / 2)).
#pragma once
#include "common.h"

namespace sg2 {

struct UpfirdnParams {
    int64_t N, C, H, W;          // input
    int64_t OH, OW;              // output
    int64_t sN, sC, sH, sW;      // input strides (elements): any layout
    int upx, upy, downx, downy;
    int padx0, pady0;            // pad1 only sets the output size
    int fw, fh;                  // filter taps along x / y
    bool separable;              // f is 1-D: tap (ty, tx) = f[ty] * f[tx]
    bool flip;                   // flip_filter: correlate with f as given
    double gain;
};

// First tap t >= 0 with (b + t) % up == 0 and b + t >= 0.
template <typename I>
SG2_HD I first_tap(I b, I up) {
    const I lo = b < 0 ? -b : 0;
    return up == 1 ? lo : lo + pmod(-(b + lo), up);
}

// One output value y[n, c, oy, ox]; `f` holds the filter in the accumulation type. I: the index type
// (int32 when every offset fits: 64-bit division is slow on GPUs).
template <typename scalar_t, typename acc_t, typename I>
SG2_HD acc_t upfirdn2d_element(const UpfirdnParams& p, const scalar_t* x, const acc_t* f, I n, I c, I oy, I ox) {
    const I upx = p.upx, upy = p.upy, fw = p.fw, fh = p.fh, H = static_cast<I>(p.H), W = static_cast<I>(p.W);
    const I sH = static_cast<I>(p.sH), sW = static_cast<I>(p.sW);
    const scalar_t* xp = x + n * static_cast<I>(p.sN) + c * static_cast<I>(p.sC);
    const I by = oy * p.downy - p.pady0, bx = ox * p.downx - p.padx0;
    const I ty0 = first_tap<I>(by, upy), tx0 = first_tap<I>(bx, upx);
    const I iy0 = upy == 1 ? by + ty0 : (by + ty0) / upy;  // exact: by + ty0 is a non-negative multiple of upy
    const I ix0 = upx == 1 ? bx + tx0 : (bx + tx0) / upx;
    acc_t sum = 0;
    I iy = iy0;
    for (I ty = ty0; ty < fh && iy < H; ty += upy, ++iy) {
        const I fy = p.flip ? ty : fh - 1 - ty;            // correlation tap -> index into f
        acc_t row = 0;
        I ix = ix0;
        for (I tx = tx0; tx < fw && ix < W; tx += upx, ++ix) {
            const I fx = p.flip ? tx : fw - 1 - tx;
            const acc_t tap = p.separable ? f[fx] : f[fy * fw + fx];
            row += static_cast<acc_t>(xp[iy * sH + ix * sW]) * tap;
        }
        sum += p.separable ? f[fy] * row : row;
    }
    return sum * static_cast<acc_t>(p.gain);
}

// Output element i -> (n, c, oy, ox) in the output's layout: NCHW, or NHWC (channels_last, c fastest).
template <typename I>
SG2_HD void output_coords(const UpfirdnParams& p, I i, bool channels_last, I& n, I& c, I& oy, I& ox) {
    const I C = static_cast<I>(p.C), OH = static_cast<I>(p.OH), OW = static_cast<I>(p.OW);
    if (channels_last) {
        c = i % C; i /= C; ox = i % OW; i /= OW; oy = i % OH; n = i / OH;
    } else {
        ox = i % OW; i /= OW; oy = i % OH; i /= OH; c = i % C; n = i / C;
    }
}

}  // namespace sg2
