// Run-time CPU feature detection: kernels compiled for AVX2/FMA are used only where the CPU has
// them. SLM_FORCE_SCALAR=1 in the environment forces the portable kernels (for tests and bench).
#pragma once

namespace slm {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  // AVX-512 F/BW/VL + VNNI: the AVX2 kernels then use vpdpbusd (8-bit dot products into 32-bit
  // sums in one instruction) on 256-bit vectors.
  bool avx512vnni = false;
  // AVX-512 F alone: the float-weight prefill kernel uses 512-bit FMAs and all 32 registers.
  bool avx512f = false;
};

const CpuFeatures& cpu_features();
// True when the AVX2+FMA+F16C kernels are compiled in, supported, and not disabled.
bool use_avx2();
// Tests switch kernels explicitly; returns the previous setting.
bool set_use_avx2(bool on);
// True when the AVX2 kernels may also use AVX-512 VNNI instructions (CPU has them, not disabled by
// SLM_NO_AVX512=1). Tests switch it to cover both variants; returns the previous setting.
bool use_avx512_vnni();
bool set_use_avx512_vnni(bool on);
// True when the AVX2 float-weight kernels may use AVX-512F (512-bit) instructions (CPU has them, not
// disabled by SLM_NO_AVX512=1). Tests switch it to cover both variants; returns the previous setting.
bool use_avx512f();
bool set_use_avx512f(bool on);

}  // namespace slm
