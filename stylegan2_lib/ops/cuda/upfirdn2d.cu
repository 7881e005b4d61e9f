// CUDA kernel for upfirdn2d: one thread per output element (grid-stride loop), maths in upfirdn2d.h.
// Threads walk the output in its memory order (NCHW, or NHWC for channels_last), so neighbouring threads
// read neighbouring inputs in either layout.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <algorithm>
#include "launch.h"
#include "upfirdn2d.h"

namespace sg2 {
namespace {

template <typename scalar_t, typename I, bool CL>
__global__ void upfirdn2d_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                 const typename Acc<scalar_t>::type* __restrict__ f, const UpfirdnParams p,
                                 I numel) {
    using acc_t = typename Acc<scalar_t>::type;
    const I step = static_cast<I>(blockDim.x) * static_cast<I>(gridDim.x);
    for (I i = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + threadIdx.x; i < numel; i += step) {
        I n, c, oy, ox;
        output_coords<I>(p, i, CL, n, c, oy, ox);
        out[i] = static_cast<scalar_t>(upfirdn2d_element<scalar_t, acc_t, I>(p, x, f, n, c, oy, ox));
    }
}

}  // namespace

void launch_upfirdn2d(at::Tensor& out, const at::Tensor& x, const at::Tensor& f, const UpfirdnParams& p,
                      bool channels_last) {
    const int64_t numel = out.numel();
    if (numel == 0) return;
    const c10::cuda::CUDAGuard guard(x.device());
    const int threads = 256;
    const int64_t sms = multiprocessors(x.get_device());
    const int64_t blocks = std::min<int64_t>((numel + threads - 1) / threads, sms * 32);
    const bool small = fits_int32(x, p, numel, blocks * threads);
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d", [&] {
        using acc_t = typename Acc<scalar_t>::type;
        auto run = [&](auto index, auto cl) {
            using I = decltype(index);
            upfirdn2d_kernel<scalar_t, I, decltype(cl)::value><<<blocks, threads, 0, stream>>>(
                out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), f.data_ptr<acc_t>(), p, static_cast<I>(numel));
        };
        if (small && channels_last) run(int32_t(0), std::true_type());
        else if (small) run(int32_t(0), std::false_type());
        else if (channels_last) run(int64_t(0), std::true_type());
        else run(int64_t(0), std::false_type());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace sg2
