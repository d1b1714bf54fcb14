#include "core/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace slm {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  // GCC has no "f16c" name for __builtin_cpu_supports in all versions; every AVX2 CPU has F16C.
  f.f16c = f.avx2;
  f.avx512vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  f.avx512f = __builtin_cpu_supports("avx512f");
#endif
  return f;
}

bool initial_avx2() {
#ifdef SLM_HAVE_AVX2_KERNELS
  const char* force = std::getenv("SLM_FORCE_SCALAR");
  if (force && std::strcmp(force, "0") != 0 && force[0] != '\0') return false;
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c;
#else
  return false;
#endif
}

std::atomic<bool>& avx2_flag() {
  static std::atomic<bool> flag{initial_avx2()};
  return flag;
}

bool avx512_disabled() {
  const char* off = std::getenv("SLM_NO_AVX512");
  return off && std::strcmp(off, "0") != 0 && off[0] != '\0';
}

bool initial_vnni() { return !avx512_disabled() && cpu_features().avx512vnni; }

std::atomic<bool>& avx512f_flag() {
  static std::atomic<bool> flag{!avx512_disabled() && cpu_features().avx512f};
  return flag;
}

std::atomic<bool>& vnni_flag() {
  static std::atomic<bool> flag{initial_vnni()};
  return flag;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool use_avx2() { return avx2_flag().load(std::memory_order_relaxed); }

bool set_use_avx2(bool on) {
#ifdef SLM_HAVE_AVX2_KERNELS
  const CpuFeatures& f = cpu_features();
  on = on && f.avx2 && f.fma && f.f16c;
#else
  on = false;
#endif
  return avx2_flag().exchange(on);
}

bool use_avx512_vnni() { return vnni_flag().load(std::memory_order_relaxed); }

bool set_use_avx512_vnni(bool on) { return vnni_flag().exchange(on && cpu_features().avx512vnni); }

bool use_avx512f() { return avx512f_flag().load(std::memory_order_relaxed); }

bool set_use_avx512f(bool on) { return avx512f_flag().exchange(on && cpu_features().avx512f); }

}  // namespace slm
