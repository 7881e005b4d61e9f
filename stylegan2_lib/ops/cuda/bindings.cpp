// Python bindings: argument checks, output allocation, then the launchers of launch.h. Built with the CUDA
// kernels (the extension the library loads) or, with -DSG2_CPU_EMULATION, with cpu_emulation.cpp (tests).
#include <torch/extension.h>
#include "launch.h"

namespace {

#ifdef SG2_CPU_EMULATION
#define CHECK_DEVICE(t) TORCH_CHECK(t.device().is_cpu(), #t " must be a CPU tensor (CPU emulation build)")
#else
#define CHECK_DEVICE(t) TORCH_CHECK(t.is_cuda(), #t " must be a CUDA tensor")
#endif

bool given(const at::Tensor& t) { return t.defined() && t.numel() > 0; }

// A tensor like `ref` (same dtype, device and strides) holding the values of `t` (copied only if needed).
at::Tensor like(const at::Tensor& t, const at::Tensor& ref, const char* name) {
    TORCH_CHECK(t.sizes() == ref.sizes(), name, ": shape ", t.sizes(), " != ", ref.sizes());
    TORCH_CHECK(t.scalar_type() == ref.scalar_type() && t.device() == ref.device(), name, ": dtype/device differ from x");
    return t.strides() == ref.strides() ? t : at::empty_like(ref).copy_(t);
}

// y = bias_act(x, b) (mode 0), or its first (mode 1, g) / second (mode 2, g, h) derivative: see bias_act.h.
at::Tensor bias_act(at::Tensor x, const at::Tensor& b, const at::Tensor& g, const at::Tensor& h, int64_t dim,
                    int64_t mode, int64_t act, double alpha, double gain, double clamp) {
    CHECK_DEVICE(x);
    TORCH_CHECK(at::isFloatingType(x.scalar_type()), "x must be floating point");
    TORCH_CHECK(mode >= 0 && mode <= 2, "mode must be 0, 1 or 2");
    TORCH_CHECK(act >= 0 && act <= 8, "unknown activation id ", act);
    if (!x.is_non_overlapping_and_dense()) x = x.contiguous();
    at::Tensor bb = given(b) ? b.contiguous() : at::Tensor();
    int64_t bstride = 1;
    if (bb.defined()) {
        TORCH_CHECK(dim >= 0 && dim < x.dim(), "dim out of range");
        TORCH_CHECK(bb.dim() == 1 && bb.numel() == x.size(dim), "b must be 1-D with x.size(dim) entries");
        TORCH_CHECK(bb.scalar_type() == x.scalar_type() && bb.device() == x.device(), "b: dtype/device differ from x");
        bstride = x.stride(dim);
    }
    at::Tensor gg = mode >= 1 ? like(g, x, "g") : at::Tensor();
    at::Tensor hh = mode == 2 ? like(h, x, "h") : at::Tensor();
    at::Tensor out = at::empty_like(x);   // dense x: same strides
    sg2::launch_bias_act(out, x, bb, gg, hh, bstride, static_cast<int>(mode), static_cast<int>(act), alpha, gain, clamp);
    return out;
}

// y = upfirdn2d(x, f): see upfirdn2d.h. f: 1-D (separable) or 2-D [fh, fw], any floating dtype.
at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                     double gain) {
    CHECK_DEVICE(x);
    TORCH_CHECK(x.dim() == 4, "x must be [N, C, H, W]");
    TORCH_CHECK(at::isFloatingType(x.scalar_type()), "x must be floating point");
    TORCH_CHECK(f.dim() == 1 || f.dim() == 2, "f must be 1-D or 2-D");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "up and down must be >= 1");
    const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    const at::Tensor ff = f.to(x.device(), acc).contiguous();
    sg2::UpfirdnParams p;
    p.N = x.size(0); p.C = x.size(1); p.H = x.size(2); p.W = x.size(3);
    p.sN = x.stride(0); p.sC = x.stride(1); p.sH = x.stride(2); p.sW = x.stride(3);
    p.fw = static_cast<int>(ff.size(-1));
    p.fh = static_cast<int>(ff.size(0));
    p.separable = ff.dim() == 1;
    p.upx = static_cast<int>(upx); p.upy = static_cast<int>(upy);
    p.downx = static_cast<int>(downx); p.downy = static_cast<int>(downy);
    p.padx0 = static_cast<int>(padx0); p.pady0 = static_cast<int>(pady0);
    p.flip = flip;
    p.gain = gain;
    // Output size: (H*up + pad0 + pad1 - K) / down + 1 samples (the reference's [::down] of the full conv).
    const int64_t lw = p.W * upx + padx0 + padx1 - p.fw, lh = p.H * upy + pady0 + pady1 - p.fh;
    TORCH_CHECK(lw >= 0 && lh >= 0, "upfirdn2d: the padded input is smaller than the filter");
    p.OW = lw / downx + 1;
    p.OH = lh / downy + 1;
    const bool cl = x.dim() == 4 && x.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
    at::Tensor out = at::empty({p.N, p.C, p.OH, p.OW},
                               x.options().memory_format(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
    sg2::launch_upfirdn2d(out, x, ff, p, cl);
    return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "stylegan2_lib bias_act / upfirdn2d kernels (see stylegan2_lib/ops/cuda_ops.py)";
    m.def("bias_act", &bias_act, "bias_act forward (mode 0) and derivatives (modes 1, 2)");
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample");
#ifdef SG2_CPU_EMULATION
    m.def("set_force_int64", [](bool v) { sg2::emulation_force_int64 = v; }, "tests: use 64-bit indices");
#endif
}
