// GGUF reader (versions 2 and 3), memory-mapped. Every field is checked against the file's size
// before use: a corrupt, truncated or hostile file gets slm::Error naming the file and the field,
// never a crash. Tensor data is not copied; tensors point into the mapping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "io/mapped_file.h"

namespace slm {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view gguf_type_name(GgufType t);
// Arrays may nest (an array of arrays ...) at most this deep; deeper is rejected by the reader and
// the writer, so that a hostile file cannot exhaust the stack.
inline constexpr int kGgufMaxArrayDepth = 8;

// One metadata value. Scalars live in the matching field; arrays in `items` (arrays may nest).
struct GgufValue {
  GgufType type = GgufType::UINT8;
  uint64_t u = 0;     // UINT8/16/32/64, BOOL
  int64_t i = 0;      // INT8/16/32/64
  double f = 0;       // FLOAT32/64
  std::string s;      // STRING
  GgufType item_type = GgufType::UINT8;  // ARRAY: type of the items
  std::vector<GgufValue> items;          // ARRAY

  bool is_integer() const;
  bool is_number() const { return is_integer() || type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }
  // Conversions that throw slm::Error (naming `what`) when the type does not fit.
  int64_t as_int(std::string_view what) const;
  double as_double(std::string_view what) const;
  // Short human rendering, arrays abbreviated: [1, 2, 3, ... (32000 items)]
  std::string to_string(size_t max_items = 8) const;
  // Type as a message shows it: "uint32", "string", "array of string".
  std::string type_string() const;

  // Builders (the writer and tests use them). of_uint/of_int/of_float take the exact GGUF type.
  static GgufValue of_uint(GgufType t, uint64_t v);
  static GgufValue of_int(GgufType t, int64_t v);
  static GgufValue of_float(GgufType t, double v);
  static GgufValue of_bool(bool v);
  static GgufValue of_string(std::string v);
  static GgufValue of_array(GgufType item_type, std::vector<GgufValue> items);
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // ne[0] first: ne[0] is the contiguous dimension
  DType type = DType::F32;
  uint64_t offset = 0;          // relative to the data section
  const uint8_t* data = nullptr;  // into the mapping
  size_t nbytes = 0;
  int64_t n_elements() const;
};

class GgufFile {
 public:
  // Maps and parses the file; throws slm::Error on any inconsistency.
  static std::unique_ptr<GgufFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  size_t file_size() const { return file_->size(); }
  size_t data_offset() const { return data_offset_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // Typed getters: throw slm::Error naming the file and the key when the key is missing (the
  // versions without a default) or has the wrong type.
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, std::string_view def) const;
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t def) const;
  double get_float(std::string_view key) const;
  double get_float(std::string_view key, double def) const;
  bool get_bool(std::string_view key, bool def) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<double> get_float_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  void parse();

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace slm
