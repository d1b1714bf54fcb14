// GGUF writer (version 3): metadata and tensors in insertion order, data aligned as the
// specification requires, written atomically (io/atomic_file.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/gguf.h"

namespace slm {

class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32) : alignment_(alignment) {}

  void set(const std::string& key, GgufValue value);  // replaces an existing key
  void set_string(const std::string& key, const std::string& v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // Copies all metadata of `src` whose key starts with `prefix` (e.g. "tokenizer.").
  void copy_metadata(const GgufFile& src, const std::string& prefix);

  // shape: ne[0] first. `data` must hold exactly the bytes the type and shape need.
  void add_tensor(const std::string& name, DType type, std::vector<int64_t> shape,
                  std::vector<uint8_t> data);

  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace slm
