// Keys and values of every layer for the positions seen so far, in F32 or F16.
// Layout per layer: K and V each [capacity, n_kv_heads * head_dim], row = one position.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"

namespace slm {

class KvCache {
 public:
  // type: DType::F32 or DType::F16; throws slm::Error otherwise or if capacity < 1.
  KvCache(const ModelConfig& config, int64_t capacity, DType type = DType::F32);

  int64_t size() const { return size_; }          // positions stored
  int64_t capacity() const { return capacity_; }
  DType type() const { return type_; }
  int64_t row_values() const { return row_; }     // n_kv_heads * head_dim
  int64_t n_layers() const { return n_layers_; }
  // Drops positions >= n (n <= size()): for rollback in speculative decoding and reuse of a prefix.
  void truncate(int64_t n);
  void clear() { size_ = 0; }
  size_t bytes() const { return bytes_; }  // reserved; resident memory grows with size()

  // Raw row pointers (element type type()) for layer l at position p < capacity().
  void* key(int64_t layer, int64_t pos);
  void* value(int64_t layer, int64_t pos);
  const void* key(int64_t layer, int64_t pos) const;
  const void* value(int64_t layer, int64_t pos) const;
  // The transformer advances size after it wrote the rows of a batch.
  void advance(int64_t n);

 private:
  int64_t n_layers_, capacity_, row_, size_ = 0;
  DType type_;
  size_t elem_;
  size_t bytes_ = 0;
  std::unique_ptr<uint8_t[]> data_;
};

}  // namespace slm
