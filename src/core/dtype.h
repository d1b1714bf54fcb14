// Tensor element types, with the numeric ids and block layouts of the GGUF specification
// (ggml_type). A quantized type stores `block_size` values in `block_bytes` bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace slm {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeInfo {
  std::string_view name;  // lower case as GGUF tools print it: "f32", "q4_k"
  int64_t block_size;     // values per block (1 for plain types)
  size_t block_bytes;     // bytes per block
  bool matmul;            // slm can multiply with weights of this type
};

// Known types only; nullopt for an id that is not in the table (a corrupt or newer file).
std::optional<DType> dtype_from_id(uint32_t id);
const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
// Parses "f32", "q4_k", ... (case-insensitive); nullopt if unknown.
std::optional<DType> dtype_from_name(std::string_view name);
// Bytes of a row of n values; throws slm::Error if n is not a multiple of the block size.
size_t row_bytes(DType t, int64_t n);
inline bool is_quantized(DType t) { return dtype_info(t).block_size > 1; }

}  // namespace slm
