// Shared by the CUDA kernels (*.cu) and the CPU emulation (cpu_emulation.cpp, tests only): the per-element
// maths lives in __host__ __device__ functions so one source is compiled for both.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SG2_HD __host__ __device__ __forceinline__
#else
#define SG2_HD inline
#endif

namespace sg2 {

// Accumulation type: double for double, float for float / half / bfloat16 (the kernels load half, compute
// in float, store half).
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

// float / double overloads of the C maths functions, the same names on host and device.
SG2_HD float  exp_(float v)    { return expf(v); }
SG2_HD double exp_(double v)   { return exp(v); }
SG2_HD float  expm1_(float v)  { return expm1f(v); }
SG2_HD double expm1_(double v) { return expm1(v); }
SG2_HD float  log1p_(float v)  { return log1pf(v); }
SG2_HD double log1p_(double v) { return log1p(v); }
SG2_HD float  tanh_(float v)   { return tanhf(v); }
SG2_HD double tanh_(double v)  { return tanh(v); }

// Non-negative remainder: pmod(-3, 2) == 1 (C's % would give -1).
template <typename I> SG2_HD I pmod(I a, I m) { return ((a % m) + m) % m; }

}  // namespace sg2
