// CUDA kernel for bias_act: one thread per element (grid-stride loop), maths in bias_act.h.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <algorithm>
#include "bias_act.h"
#include "launch.h"

namespace sg2 {
namespace {

template <typename scalar_t, typename I>
__global__ void bias_act_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                const scalar_t* __restrict__ b, const scalar_t* __restrict__ g,
                                const scalar_t* __restrict__ h, I numel, I bstride, I bsize, int mode, int act,
                                typename Acc<scalar_t>::type alpha, typename Acc<scalar_t>::type gain,
                                typename Acc<scalar_t>::type clamp) {
    using acc_t = typename Acc<scalar_t>::type;
    const I step = static_cast<I>(blockDim.x) * static_cast<I>(gridDim.x);
    for (I i = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + threadIdx.x; i < numel; i += step) {
        acc_t v = static_cast<acc_t>(x[i]);
        if (b != nullptr) v += static_cast<acc_t>(b[(i / bstride) % bsize]);
        const acc_t gi = g != nullptr ? static_cast<acc_t>(g[i]) : acc_t(0);
        const acc_t hi = h != nullptr ? static_cast<acc_t>(h[i]) : acc_t(0);
        out[i] = static_cast<scalar_t>(bias_act_element<acc_t>(mode, act, v, gi, hi, alpha, gain, clamp));
    }
}

template <typename T>
T* ptr_or_null(const at::Tensor& t) { return t.defined() && t.numel() > 0 ? t.data_ptr<T>() : nullptr; }

}  // namespace

void launch_bias_act(at::Tensor& out, const at::Tensor& x, const at::Tensor& b, const at::Tensor& g,
                     const at::Tensor& h, int64_t bstride, int mode, int act, double alpha, double gain,
                     double clamp) {
    const int64_t numel = x.numel();
    if (numel == 0) return;
    const c10::cuda::CUDAGuard guard(x.device());
    const int threads = 256;
    const int64_t sms = multiprocessors(x.get_device());
    const int64_t blocks = std::min<int64_t>((numel + threads - 1) / threads, sms * 32);
    const bool small = fits_int32(numel, blocks * threads);
    const int64_t bsize = b.defined() && b.numel() > 0 ? b.numel() : 1;
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "bias_act", [&] {
        using acc_t = typename Acc<scalar_t>::type;
        auto args = [&](auto index) {
            using I = decltype(index);
            bias_act_kernel<scalar_t, I><<<blocks, threads, 0, stream>>>(
                out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(b),
                ptr_or_null<scalar_t>(g), ptr_or_null<scalar_t>(h), static_cast<I>(numel),
                static_cast<I>(bstride), static_cast<I>(bsize), mode, act, static_cast<acc_t>(alpha),
                static_cast<acc_t>(gain), static_cast<acc_t>(clamp));
        };
        if (small) args(int32_t(0)); else args(int64_t(0));
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace sg2
