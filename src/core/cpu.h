// Run-time CPU feature detection: kernels compiled for AVX2/FMA are used only where the CPU has
// them. SLM_FORCE_SCALAR=1 in the environment forces the portable kernels (for tests and bench).
#pragma once

namespace slm {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
};

const CpuFeatures& cpu_features();
// True when the AVX2+FMA+F16C kernels are compiled in, supported, and not disabled.
bool use_avx2();
// Tests switch kernels explicitly; returns the previous setting.
bool set_use_avx2(bool on);

}  // namespace slm
