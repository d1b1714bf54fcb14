#include "core/dtype.h"

#include <array>
#include <cctype>
#include <string>

#include "core/error.h"

namespace slm {
namespace {

struct Entry {
  DType type;
  DTypeInfo info;
};

// Block sizes and byte counts from the GGUF specification (ggml.c type_traits).
constexpr std::array<Entry, 20> kTable = {{
    {DType::F32, {"f32", 1, 4, true}},
    {DType::F16, {"f16", 1, 2, true}},
    {DType::Q4_0, {"q4_0", 32, 18, true}},
    {DType::Q4_1, {"q4_1", 32, 20, true}},
    {DType::Q5_0, {"q5_0", 32, 22, true}},
    {DType::Q5_1, {"q5_1", 32, 24, true}},
    {DType::Q8_0, {"q8_0", 32, 34, true}},
    {DType::Q8_1, {"q8_1", 32, 36, false}},
    {DType::Q2_K, {"q2_k", 256, 84, false}},
    {DType::Q3_K, {"q3_k", 256, 110, false}},
    {DType::Q4_K, {"q4_k", 256, 144, true}},
    {DType::Q5_K, {"q5_k", 256, 176, true}},
    {DType::Q6_K, {"q6_k", 256, 210, true}},
    {DType::Q8_K, {"q8_k", 256, 292, false}},
    {DType::I8, {"i8", 1, 1, false}},
    {DType::I16, {"i16", 1, 2, false}},
    {DType::I32, {"i32", 1, 4, false}},
    {DType::I64, {"i64", 1, 8, false}},
    {DType::F64, {"f64", 1, 8, false}},
    {DType::BF16, {"bf16", 1, 2, true}},
}};

}  // namespace

std::optional<DType> dtype_from_id(uint32_t id) {
  for (const auto& e : kTable)
    if (static_cast<uint32_t>(e.type) == id) return e.type;
  return std::nullopt;
}

const DTypeInfo& dtype_info(DType t) {
  for (const auto& e : kTable)
    if (e.type == t) return e.info;
  throw Error("unknown tensor type id " + std::to_string(static_cast<uint32_t>(t)));
}

std::optional<DType> dtype_from_name(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& e : kTable)
    if (e.info.name == lower) return e.type;
  return std::nullopt;
}

size_t row_bytes(DType t, int64_t n) {
  const DTypeInfo& info = dtype_info(t);
  if (n < 0 || n % info.block_size != 0)
    throw Error("a row of " + std::to_string(n) + " values is not a whole number of " +
                std::string(info.name) + " blocks of " + std::to_string(info.block_size));
  return static_cast<size_t>(n / info.block_size) * info.block_bytes;
}

}  // namespace slm
