// GGUF writer (version 3). Layout written:
//   header | metadata | tensor infos | zero padding to `alignment` | tensor data, each tensor
//   starting at a multiple of `alignment` from the data section and padded to one.
// A non-default alignment is recorded as `general.alignment` (uint32), as the specification asks.
// Everything is validated before the first byte is written; the file appears atomically.
#include "io/gguf_writer.h"

#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"

namespace slm {

namespace {

constexpr uint64_t kDefaultAlignment = 32;

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Checks that a value can be encoded as its type says: integer ranges, array item types, depth.
void validate_value(const std::string& key, const GgufValue& v, int depth) {
  auto bad = [&](const std::string& msg) { throw Error("GgufWriter: key '" + key + "': " + msg); };
  auto fits_u = [&](uint64_t max) { if (v.u > max) bad(std::to_string(v.u) + " does not fit in " + std::string(gguf_type_name(v.type))); };
  auto fits_i = [&](int64_t lo, int64_t hi) { if (v.i < lo || v.i > hi) bad(std::to_string(v.i) + " does not fit in " + std::string(gguf_type_name(v.type))); };
  switch (v.type) {
    case GgufType::UINT8: fits_u(0xff); break;
    case GgufType::UINT16: fits_u(0xffff); break;
    case GgufType::UINT32: fits_u(0xffffffffu); break;
    case GgufType::BOOL: fits_u(1); break;
    case GgufType::INT8: fits_i(-128, 127); break;
    case GgufType::INT16: fits_i(-32768, 32767); break;
    case GgufType::INT32: fits_i(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()); break;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT32:
    case GgufType::FLOAT64: case GgufType::STRING: break;
    case GgufType::ARRAY:
      if (depth + 1 > kGgufMaxArrayDepth)
        bad("arrays nested more than " + std::to_string(kGgufMaxArrayDepth) + " deep");
      for (const GgufValue& item : v.items) {
        if (item.type != v.item_type)
          bad("array of " + std::string(gguf_type_name(v.item_type)) + " holds a " +
              std::string(gguf_type_name(item.type)) + " item");
        validate_value(key, item, depth + 1);
      }
      break;
    default: bad("unknown value type " + std::to_string(static_cast<uint32_t>(v.type)));
  }
}

// Buffered little-endian output into a FILE* (x86 and ARM Linux are little endian).
class Out {
 public:
  Out(std::FILE* f, const std::string& path) : f_(f), path_(path) {}
  void bytes(const void* p, size_t n) {
    if (n != 0 && std::fwrite(p, 1, n, f_) != n)
      throw Error(path_ + ": write failed: " + std::strerror(errno));
    written_ += n;
  }
  template <class T>
  void pod(T v) { bytes(&v, sizeof v); }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const char zeros[256] = {};
    uint64_t n = align_up(written_, alignment) - written_;
    while (n > 0) {
      size_t k = n < sizeof zeros ? static_cast<size_t>(n) : sizeof zeros;
      bytes(zeros, k);
      n -= k;
    }
  }
  uint64_t written() const { return written_; }

 private:
  std::FILE* f_;
  const std::string& path_;
  uint64_t written_ = 0;
};

void write_value_body(Out& o, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: o.pod<uint8_t>(static_cast<uint8_t>(v.u)); break;
    case GgufType::UINT16: o.pod<uint16_t>(static_cast<uint16_t>(v.u)); break;
    case GgufType::UINT32: o.pod<uint32_t>(static_cast<uint32_t>(v.u)); break;
    case GgufType::UINT64: o.pod<uint64_t>(v.u); break;
    case GgufType::BOOL: o.pod<uint8_t>(v.u != 0 ? 1 : 0); break;
    case GgufType::INT8: o.pod<int8_t>(static_cast<int8_t>(v.i)); break;
    case GgufType::INT16: o.pod<int16_t>(static_cast<int16_t>(v.i)); break;
    case GgufType::INT32: o.pod<int32_t>(static_cast<int32_t>(v.i)); break;
    case GgufType::INT64: o.pod<int64_t>(v.i); break;
    case GgufType::FLOAT32: o.pod<float>(static_cast<float>(v.f)); break;
    case GgufType::FLOAT64: o.pod<double>(v.f); break;
    case GgufType::STRING: o.str(v.s); break;
    case GgufType::ARRAY:
      o.pod<uint32_t>(static_cast<uint32_t>(v.item_type));
      o.pod<uint64_t>(v.items.size());
      for (const GgufValue& item : v.items) write_value_body(o, item);
      break;
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
  set(key, GgufValue::of_string(v));
}
void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  set(key, GgufValue::of_uint(GgufType::UINT32, v));
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
  set(key, GgufValue::of_int(GgufType::INT32, v));
}
void GgufWriter::set_f32(const std::string& key, float v) {
  set(key, GgufValue::of_float(GgufType::FLOAT32, v));
}
void GgufWriter::set_bool(const std::string& key, bool v) { set(key, GgufValue::of_bool(v)); }

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const std::string& s : v) items.push_back(GgufValue::of_string(s));
  set(key, GgufValue::of_array(GgufType::STRING, std::move(items)));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(GgufValue::of_float(GgufType::FLOAT32, x));
  set(key, GgufValue::of_array(GgufType::FLOAT32, std::move(items)));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(GgufValue::of_int(GgufType::INT32, x));
  set(key, GgufValue::of_array(GgufType::INT32, std::move(items)));
}

void GgufWriter::copy_metadata(const GgufFile& src, const std::string& prefix) {
  for (const auto& [key, value] : src.metadata())
    if (key.compare(0, prefix.size(), prefix) == 0 && key != "general.alignment") set(key, value);
}

void GgufWriter::add_tensor(const std::string& name, DType type, std::vector<int64_t> shape,
                            std::vector<uint8_t> data) {
  auto bad = [&](const std::string& msg) {
    throw Error("GgufWriter: tensor '" + name + "': " + msg);
  };
  for (const Tensor& t : tensors_)
    if (t.name == name) bad("added twice");
  if (shape.empty() || shape.size() > 4)
    bad(std::to_string(shape.size()) + " dimensions: expected 1 to 4");
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 1) bad("dimension " + std::to_string(d) + ": every dimension must be at least 1");
    if (__builtin_mul_overflow(n, d, &n)) bad("element count overflows");
  }
  const DTypeInfo& info = dtype_info(type);
  if (shape[0] % info.block_size != 0)
    bad("ne[0] = " + std::to_string(shape[0]) + " is not a multiple of the " +
        std::string(info.name) + " block size " + std::to_string(info.block_size));
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(row_bytes(type, shape[0])),
                             static_cast<uint64_t>(n / shape[0]), &nbytes))
    bad("byte size overflows");
  if (data.size() != nbytes)
    bad("data holds " + std::to_string(data.size()) + " bytes, but a " +
        std::string(info.name) + " tensor of this shape needs " + std::to_string(nbytes));
  tensors_.push_back(Tensor{name, type, std::move(shape), std::move(data)});
}

void GgufWriter::write(const std::string& path) const {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 ||
      alignment_ > std::numeric_limits<uint32_t>::max())
    throw Error(path + ": GgufWriter: alignment " + std::to_string(alignment_) +
                " is not a non-zero power of two that fits in 32 bits");

  // The alignment key always matches the layout actually written.
  std::vector<std::pair<std::string, GgufValue>> kv = kv_;
  bool has_alignment = false;
  for (auto& [key, value] : kv) {
    if (key == "general.alignment") {
      value = GgufValue::of_uint(GgufType::UINT32, alignment_);
      has_alignment = true;
    }
  }
  if (!has_alignment && alignment_ != kDefaultAlignment)
    kv.emplace_back("general.alignment", GgufValue::of_uint(GgufType::UINT32, alignment_));
  for (const auto& [key, value] : kv) {
    try {
      validate_value(key, value, 0);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
  }

  write_file_atomic(path, [&](std::FILE* f) {
    Out o(f, path);
    o.pod<uint32_t>(0x46554747);  // "GGUF"
    o.pod<uint32_t>(3);
    o.pod<uint64_t>(tensors_.size());
    o.pod<uint64_t>(kv.size());
    for (const auto& [key, value] : kv) {
      o.str(key);
      o.pod<uint32_t>(static_cast<uint32_t>(value.type));
      write_value_body(o, value);
    }
    uint64_t offset = 0;  // relative to the data section
    for (const Tensor& t : tensors_) {
      o.str(t.name);
      o.pod<uint32_t>(static_cast<uint32_t>(t.shape.size()));
      for (int64_t d : t.shape) o.pod<uint64_t>(static_cast<uint64_t>(d));
      o.pod<uint32_t>(static_cast<uint32_t>(t.type));
      o.pod<uint64_t>(offset);
      offset = align_up(offset + t.data.size(), alignment_);
    }
    o.pad_to(alignment_);
    for (const Tensor& t : tensors_) {
      o.bytes(t.data.data(), t.data.size());
      o.pad_to(alignment_);
    }
  });
}

}  // namespace slm
