// KvCache: one contiguous buffer, per layer K then V, each [capacity, n_kv_heads * head_dim].
#include "model/kv_cache.h"

#include <string>

#include "core/error.h"

namespace slm {

KvCache::KvCache(const ModelConfig& config, int64_t capacity, DType type)
    : n_layers_(config.n_layers), capacity_(capacity), row_(config.n_kv_heads * config.head_dim),
      type_(type) {
  if (type != DType::F32 && type != DType::F16)
    throw Error("KV cache type must be f32 or f16, got " + std::string(dtype_name(type)));
  if (capacity < 1) throw Error("KV cache capacity must be at least 1, got " + std::to_string(capacity));
  if (n_layers_ < 1 || row_ < 1) throw Error("KV cache: the model config has no layers or heads");
  elem_ = type == DType::F32 ? 4 : 2;
  bytes_ = static_cast<size_t>(n_layers_) * 2 * static_cast<size_t>(capacity_) *
           static_cast<size_t>(row_) * elem_;
  // Left uninitialised on purpose: rows are written before they are read, and a large buffer
  // then takes memory only as positions fill (the allocator maps untouched pages lazily), so a
  // server with many slots of long context costs what its requests use, not what they could.
  data_.reset(new uint8_t[bytes_]);
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > size_)
    throw Error("KV cache: cannot truncate to " + std::to_string(n) + " positions, it holds " +
                std::to_string(size_));
  size_ = n;
}

void KvCache::advance(int64_t n) {
  if (n < 0 || size_ + n > capacity_)
    throw Error("KV cache overflow: " + std::to_string(size_) + " + " + std::to_string(n) +
                " positions exceed the capacity " + std::to_string(capacity_));
  size_ += n;
}

void* KvCache::key(int64_t layer, int64_t pos) {
  return data_.get() + ((static_cast<size_t>(layer) * 2 * capacity_ + pos) * row_) * elem_;
}
void* KvCache::value(int64_t layer, int64_t pos) {
  return data_.get() + (((static_cast<size_t>(layer) * 2 + 1) * capacity_ + pos) * row_) * elem_;
}
const void* KvCache::key(int64_t layer, int64_t pos) const {
  return const_cast<KvCache*>(this)->key(layer, pos);
}
const void* KvCache::value(int64_t layer, int64_t pos) const {
  return const_cast<KvCache*>(this)->value(layer, pos);
}

}  // namespace slm
