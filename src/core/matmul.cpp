// matmul: checks, activation quantization (once per call, on the calling thread's scratch), and the
// split of output rows over the pool; the row kernels are in matmul_scalar.cpp / avx2/.
#include "core/matmul.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <span>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/fp16.h"
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
    case DType::BF16:
      return ActKind::Float;
    case DType::F16:
      return ActKind::F16;
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
    case ActKind::F16: return static_cast<size_t>(cols) * sizeof(uint16_t);
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
  if (k == ActKind::F16) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(h[i]);
    return;
  }
  if (k == ActKind::Q8) {
    const ActQ8* b = reinterpret_cast<const ActQ8*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = b[i / 32].d * static_cast<float>(b[i / 32].qs[i % 32]);
  } else {
    const ActQ8K* b = reinterpret_cast<const ActQ8K*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = b[i / 256].d * static_cast<float>(b[i / 256].qs[i % 256]);
  }
}

void matmul(ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y) {
  matmul_multi(pool, std::span<const WeightView>(&w, 1), x, m, std::span<float* const>(&y, 1));
}

void matmul_multi(ThreadPool& pool, std::span<const WeightView> ws, const float* x, int64_t m,
                  std::span<float* const> ys) {
  constexpr size_t kMax = 4;
  if (ws.size() != ys.size() || ws.empty() || ws.size() > kMax)
    throw Error("matmul: 1 to " + std::to_string(kMax) + " weights, one output each");
  for (size_t i = 0; i < ws.size(); ++i) {
    check(ws[i], x, m, ys[i], "matmul");
    if (ws[i].cols != ws[0].cols) throw Error("matmul: weights of one call must share their column count");
  }
  if (m == 0) return;
  const int64_t cols = ws[0].cols;
  // The input in each activation form the weights need, quantized once per call on scratch of
  // the calling thread, reused across calls (decode makes hundreds per token).
  thread_local std::array<std::vector<unsigned char>, 4> act;
  const void* act_x[4] = {x, nullptr, nullptr, nullptr};
  size_t act_stride[4] = {static_cast<size_t>(cols) * sizeof(float), 0, 0, 0};
  MatmulTask tasks[kMax];
  // Output rows of all the weights as one range, each weight starting at a multiple of 16, so
  // that a weight's chunks split its rows exactly as a call of its own would.
  int64_t offset[kMax + 1] = {0};
  for (size_t i = 0; i < ws.size(); ++i) {
    const WeightView& w = ws[i];
    const ActKind kind = activation_kind(w.type);
    const int k = static_cast<int>(kind);
    if (!act_x[k] && cols > 0) {
      const size_t stride = activation_row_bytes(kind, cols);
      if (act[k].size() < stride * static_cast<size_t>(m)) act[k].resize(stride * static_cast<size_t>(m));
      unsigned char* a = act[k].data();
      if (m >= 16 && pool.size() > 1) {
        pool.parallel_for(m, 1, [&](int64_t i0, int64_t i1) {
          for (int64_t r = i0; r < i1; ++r) quantize_act(kind, x + r * cols, cols, a + r * stride);
        });
      } else {
        for (int64_t r = 0; r < m; ++r) quantize_act(kind, x + r * cols, cols, a + r * stride);
      }
      act_x[k] = a;
      act_stride[k] = stride;
    }
    tasks[i] = MatmulTask{w, act_x[k], act_stride[k], m, ys[i]};
    if (cols == 0) std::fill(ys[i], ys[i] + m * w.rows, 0.0f);
    offset[i + 1] = offset[i] + (w.rows + 15) / 16 * 16;
  }
  if (cols == 0) return;
  const bool avx2 = use_avx2();
  const size_t n = ws.size();
  auto rows = [&](int64_t r0, int64_t r1) {
    for (size_t i = 0; i < n; ++i) {
      const int64_t a = std::max(r0, offset[i]) - offset[i];
      const int64_t b = std::min(r1 - offset[i], tasks[i].w.rows);
      if (a >= b) continue;
#ifdef SLM_HAVE_AVX2_KERNELS
      if (avx2) {
        matmul_rows_avx2(tasks[i], a, b);
        continue;
      }
#endif
      matmul_rows_scalar(tasks[i], a, b);
    }
  };
  // Grain 16 keeps chunk edges off shared cache lines of y and matches the 4-row micro-kernels.
  pool.parallel_for(offset[n], 16, rows);
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
