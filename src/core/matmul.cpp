// matmul: checks, activation quantization (once per call, on the calling thread's scratch), and the
// split of output rows over the pool; the row kernels are in matmul_scalar.cpp / avx2/.
#include "core/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/quant.h"
#include "core/matmul_kernels.h"

namespace slm {
namespace {

void check(const WeightView& w, const float* x, int64_t m, const float* y, const char* fn) {
  const DTypeInfo& info = dtype_info(w.type);
  if (!info.matmul)
    throw Error(std::string(fn) + ": weights of type " + std::string(info.name) + " are not supported");
  if (w.rows < 0 || w.cols < 0 || m < 0)
    throw Error(std::string(fn) + ": negative shape");
  (void)row_bytes(w.type, w.cols);  // throws unless cols is a whole number of blocks
  if (w.rows > 0 && w.cols > 0 && m > 0 && (!w.data || !x || !y))
    throw Error(std::string(fn) + ": null weight, input or output buffer");
}

void quantize_act(ActKind k, const float* x, int64_t n, void* dst) {
#ifdef SLM_HAVE_AVX2_KERNELS
  if (use_avx2()) return quantize_act_avx2(k, x, n, dst);
#endif
  quantize_act_scalar(k, x, n, dst);
}

std::atomic<bool>& interleaved_flag() {
  static std::atomic<bool> on{std::getenv("SLM_NO_INTERLEAVED") == nullptr};
  return on;
}

}  // namespace

bool use_interleaved() { return interleaved_flag().load(std::memory_order_relaxed); }
bool set_use_interleaved(bool on) { return interleaved_flag().exchange(on); }

ActKind activation_kind(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return ActKind::Float;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return ActKind::Q8K;
    default:
      return ActKind::Q8;
  }
}

size_t activation_row_bytes(ActKind k, int64_t cols) {
  switch (k) {
    case ActKind::Float: return static_cast<size_t>(cols) * sizeof(float);
    case ActKind::Q8: return static_cast<size_t>(cols / 32) * sizeof(ActQ8);
    case ActKind::Q8K: return static_cast<size_t>(cols / 256) * sizeof(ActQ8K);
  }
  return 0;
}

void activation_roundtrip(DType t, const float* x, int64_t n, float* out) {
  const ActKind k = activation_kind(t);
  if (k == ActKind::Float) {
    std::copy(x, x + n, out);
    return;
  }
  std::vector<unsigned char> buf(activation_row_bytes(k, n));
  quantize_act_scalar(k, x, n, buf.data());
  if (k == ActKind::Q8) {
    const ActQ8* b = reinterpret_cast<const ActQ8*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = b[i / 32].d * static_cast<float>(b[i / 32].qs[i % 32]);
  } else {
    const ActQ8K* b = reinterpret_cast<const ActQ8K*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = b[i / 256].d * static_cast<float>(b[i / 256].qs[i % 256]);
  }
}

void matmul(ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y) {
  check(w, x, m, y, "matmul");
  if (w.rows == 0 || m == 0) return;
  if (w.cols == 0) {
    std::fill(y, y + m * w.rows, 0.0f);
    return;
  }
  MatmulTask task;
  task.w = w;
  task.m = m;
  task.y = y;
  const ActKind kind = activation_kind(w.type);
  if (kind == ActKind::Float) {
    task.x = x;
    task.x_stride = static_cast<size_t>(w.cols) * sizeof(float);
  } else {
    // Scratch of the calling thread, reused across calls (decode makes hundreds per token).
    thread_local std::vector<unsigned char> act;
    const size_t stride = activation_row_bytes(kind, w.cols);
    if (act.size() < stride * static_cast<size_t>(m)) act.resize(stride * static_cast<size_t>(m));
    unsigned char* a = act.data();
    const int64_t cols = w.cols;
    if (m >= 16 && pool.size() > 1) {
      pool.parallel_for(m, 1, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) quantize_act(kind, x + i * cols, cols, a + i * stride);
      });
    } else {
      for (int64_t i = 0; i < m; ++i) quantize_act(kind, x + i * cols, cols, a + i * stride);
    }
    task.x = a;
    task.x_stride = stride;
  }
  const bool avx2 = use_avx2();
  auto rows = [&](int64_t r0, int64_t r1) {
#ifdef SLM_HAVE_AVX2_KERNELS
    if (avx2) return matmul_rows_avx2(task, r0, r1);
#endif
    matmul_rows_scalar(task, r0, r1);
  };
  // Grain 16 keeps chunk edges off shared cache lines of y and matches the 4-row micro-kernels.
  pool.parallel_for(w.rows, 16, rows);
}

void matmul_reference(const WeightView& w, const float* x, int64_t m, float* y) {
  check(w, x, m, y, "matmul_reference");
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    weight_row(w, r, row.data());
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * w.cols;
      double s = 0;
      for (int64_t c = 0; c < w.cols; ++c) s += static_cast<double>(row[c]) * xi[c];
      y[i * w.rows + r] = static_cast<float>(s);
    }
  }
}

void weight_row(const WeightView& w, int64_t r, float* out) {
  if (r < 0 || r >= w.rows)
    throw Error("weight_row: row " + std::to_string(r) + " out of range [0, " + std::to_string(w.rows) + ")");
  const size_t stride = w.row_stride();
  dequantize_row(w.type, static_cast<const unsigned char*>(w.data) + static_cast<size_t>(r) * stride, out, w.cols);
}

}  // namespace slm
