// CPU versions of the launchers, for tests only: the same per-element maths (bias_act.h, upfirdn2d.h) in
// plain loops, so the kernels' arithmetic and the Python autograd wrappers can be checked on a machine
// without a GPU. Built by tests/test_ops_cuda.py together with bindings.cpp and -DSG2_CPU_EMULATION.
#include <ATen/Dispatch.h>
#include "bias_act.h"
#include "launch.h"

namespace sg2 {

bool emulation_force_int64 = false;

template <typename T>
static T* ptr_or_null(const at::Tensor& t) { return t.defined() && t.numel() > 0 ? t.data_ptr<T>() : nullptr; }

void launch_bias_act(at::Tensor& out, const at::Tensor& x, const at::Tensor& b, const at::Tensor& g,
                     const at::Tensor& h, int64_t bstride, int mode, int act, double alpha, double gain,
                     double clamp) {
    const int64_t numel = x.numel();
    const int64_t bsize = b.defined() && b.numel() > 0 ? b.numel() : 1;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "bias_act", [&] {
        using acc_t = typename Acc<scalar_t>::type;
        scalar_t* o = out.data_ptr<scalar_t>();
        const scalar_t *xp = x.data_ptr<scalar_t>(), *bp = ptr_or_null<scalar_t>(b);
        const scalar_t *gp = ptr_or_null<scalar_t>(g), *hp = ptr_or_null<scalar_t>(h);
        auto loop = [&](auto index) {
            using I = decltype(index);
            const I bs = static_cast<I>(bstride), bn = static_cast<I>(bsize);
            for (I i = 0; i < static_cast<I>(numel); ++i) {
                acc_t v = static_cast<acc_t>(xp[i]);
                if (bp != nullptr) v += static_cast<acc_t>(bp[(i / bs) % bn]);
                const acc_t gi = gp != nullptr ? static_cast<acc_t>(gp[i]) : acc_t(0);
                const acc_t hi = hp != nullptr ? static_cast<acc_t>(hp[i]) : acc_t(0);
                o[i] = static_cast<scalar_t>(bias_act_element<acc_t>(mode, act, v, gi, hi, static_cast<acc_t>(alpha),
                                                                     static_cast<acc_t>(gain), static_cast<acc_t>(clamp)));
            }
        };
        if (fits_int32(numel, 0) && !emulation_force_int64) loop(int32_t(0)); else loop(int64_t(0));  // as on CUDA
    });
}

void launch_upfirdn2d(at::Tensor& out, const at::Tensor& x, const at::Tensor& f, const UpfirdnParams& p,
                      bool channels_last) {
    const int64_t numel = out.numel();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d", [&] {
        using acc_t = typename Acc<scalar_t>::type;
        scalar_t* o = out.data_ptr<scalar_t>();
        const scalar_t* xp = x.data_ptr<scalar_t>();
        const acc_t* fp = f.data_ptr<acc_t>();
        auto loop = [&](auto index) {
            using I = decltype(index);
            for (I i = 0; i < static_cast<I>(numel); ++i) {
                I n, c, oy, ox;
                output_coords<I>(p, i, channels_last, n, c, oy, ox);
                o[i] = static_cast<scalar_t>(upfirdn2d_element<scalar_t, acc_t, I>(p, xp, fp, n, c, oy, ox));
            }
        };
        if (fits_int32(x, p, numel, 0) && !emulation_force_int64) loop(int32_t(0)); else loop(int64_t(0));
    });
}

}  // namespace sg2
