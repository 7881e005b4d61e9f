// Launchers: defined for CUDA in bias_act.cu / upfirdn2d.cu, and for the CPU in cpu_emulation.cpp (tests).
// The bindings (bindings.cpp) check the arguments and allocate `out` before calling them.
#pragma once
#include <ATen/ATen.h>
#include <cstdint>
#include <cstdlib>
#include "upfirdn2d.h"

namespace sg2 {

// out, x, g, h: same shape, dtype and strides (x dense); b: 1-D, x.size(dim) entries, or undefined.
// bstride = x.stride(dim): element i has channel (i / bstride) % x.size(dim).
void launch_bias_act(at::Tensor& out, const at::Tensor& x, const at::Tensor& b, const at::Tensor& g,
                     const at::Tensor& h, int64_t bstride, int mode, int act, double alpha, double gain,
                     double clamp);

// out: [N, C, OH, OW], NCHW- or NHWC-contiguous (channels_last); x: any strides; f: 1-D or 2-D, contiguous,
// in the accumulation type (double for double x, else float).
void launch_upfirdn2d(at::Tensor& out, const at::Tensor& x, const at::Tensor& f, const UpfirdnParams& p,
                      bool channels_last);

// int32 indexing (64-bit integer division is slow on GPUs) when every index fits: the last element index
// plus one grid-stride step, and for upfirdn2d every input offset and intermediate coordinate.
inline bool fits_int32(int64_t numel, int64_t step) { return numel + step < INT32_MAX; }

inline bool fits_int32(const at::Tensor& x, const UpfirdnParams& p, int64_t numel, int64_t step) {
    int64_t max_offset = 0;
    for (int d = 0; d < 4; ++d) max_offset += (x.size(d) - 1) * x.stride(d);
    const int64_t reach = p.downx * p.OW + p.downy * p.OH + std::abs(int64_t(p.padx0)) + std::abs(int64_t(p.pady0))
                        + p.upx * (p.W + p.fw + 1) + p.upy * (p.H + p.fh + 1);
    return fits_int32(numel, step) && max_offset < INT32_MAX / 2 && reach < INT32_MAX / 4;
}

#ifdef SG2_CPU_EMULATION
extern bool emulation_force_int64;      // tests: take the 64-bit index path the kernels use for huge tensors
#endif

#ifdef __CUDACC__
// Streaming multiprocessors of `device` (sizes the grid-stride launches). Only the CUDA runtime's header is
// needed: ATen/cuda/CUDAContext.h would also pull in cuBLAS / cuSPARSE headers that minimal toolkits lack.
inline int64_t multiprocessors(int device) {
    int n = 0;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n <= 0) n = 80;
    return n;
}
#endif

}  // namespace sg2
