// GGUF reader: parses the header, metadata and tensor infos of a mapped file. Layout (all little
// endian; versions 2 and 3 share it):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x (string key | u32 value type | value)         string = u64 length + bytes
//   n_tensors x (string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset)
//   padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
// Every count and length is checked against the bytes left before anything is allocated, and
// every error names the file and the field.
#include <cstring>
#include <new>
#include <limits>

#include "core/error.h"
#include "io/gguf.h"

namespace slm {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
// Smallest possible encodings, used to reject absurd counts before allocating:
// a key-value pair is an empty key (8), a type (4) and a one-byte value (1);
// a tensor info is an empty name (8), n_dims (4), one dim (8), a type (4) and an offset (8).
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
// Each array item becomes a GgufValue (~100 bytes) however small its encoding (1 byte for a
// uint8), so a large hostile file could ask for 100x its size in memory. Real vocabularies hold
// a few million values at most (tokens, scores, types, merges of a 256k vocabulary).
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 25;

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::FLOAT64); }

// Encoded size of the smallest value of type t.
uint64_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: return 8;   // the length
    case GgufType::ARRAY: return 12;   // item type + length
  }
  return 1;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

// Bounds-checked reading of the mapping. `context_` names what is being read ("header",
// "metadata key 'x'", "tensor 'y'"); `items_` the array indices inside the current value.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  void set_context(std::string c) { context_ = std::move(c); }

  [[noreturn]] void fail(const std::string& msg) const {
    std::string where = context_;
    if (!items_.empty()) {
      where += " item ";
      for (uint64_t i : items_) where += "[" + std::to_string(i) + "]";
    }
    throw Error(path_ + ": " + where + ": " + msg);
  }

  template <class T>
  T get(const char* field) {
    if (left() < sizeof(T))
      fail(std::string(field) + ": truncated: needs " + std::to_string(sizeof(T)) +
           " bytes at offset " + std::to_string(pos_) + " but the file ends at " +
           std::to_string(size_));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string get_string(const char* field) {
    uint64_t n = get<uint64_t>(field);
    if (n > left())
      fail(std::string(field) + ": truncated or corrupt: string length " + std::to_string(n) +
           " exceeds the " + std::to_string(left()) + " bytes left in the file");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  std::vector<uint64_t>& items() { return items_; }
  // Counts array items against kMaxMetadataValues.
  void count_values(uint64_t n) {
    values_ += n;
    if (values_ > kMaxMetadataValues)
      fail("the metadata holds more than " + std::to_string(kMaxMetadataValues) +
           " array items; refusing (corrupt or hostile file)");
  }

 private:
  const uint8_t* data_;
  size_t size_;
  const std::string& path_;
  size_t pos_ = 0;
  std::string context_ = "header";
  std::vector<uint64_t> items_;
  uint64_t values_ = 0;
};

GgufType read_type(Cursor& c, const char* field) {
  uint32_t t = c.get<uint32_t>(field);
  if (!known_value_type(t)) c.fail(std::string(field) + ": unknown value type id " + std::to_string(t));
  return static_cast<GgufType>(t);
}

GgufValue read_value(Cursor& c, GgufType type, int depth);

// `depth` is the nesting level of this array (1 for an array that is not inside another).
void read_array(Cursor& c, GgufValue& v, int depth) {
  if (depth > kGgufMaxArrayDepth)
    c.fail("arrays nested more than " + std::to_string(kGgufMaxArrayDepth) + " deep");
  v.item_type = read_type(c, "array item type");
  uint64_t n = c.get<uint64_t>("array length");
  if (n > c.left() / min_value_bytes(v.item_type))
    c.fail("array of " + std::to_string(n) + " " + std::string(gguf_type_name(v.item_type)) +
           " items cannot fit in the " + std::to_string(c.left()) +
           " bytes left in the file (truncated or corrupt length)");
  c.count_values(n);
  v.items.reserve(static_cast<size_t>(n));
  c.items().push_back(0);
  for (uint64_t k = 0; k < n; ++k) {
    c.items().back() = k;
    v.items.push_back(read_value(c, v.item_type, depth));
  }
  c.items().pop_back();
}

GgufValue read_value(Cursor& c, GgufType type, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::UINT8: v.u = c.get<uint8_t>("value"); break;
    case GgufType::UINT16: v.u = c.get<uint16_t>("value"); break;
    case GgufType::UINT32: v.u = c.get<uint32_t>("value"); break;
    case GgufType::UINT64: v.u = c.get<uint64_t>("value"); break;
    case GgufType::INT8: v.i = c.get<int8_t>("value"); break;
    case GgufType::INT16: v.i = c.get<int16_t>("value"); break;
    case GgufType::INT32: v.i = c.get<int32_t>("value"); break;
    case GgufType::INT64: v.i = c.get<int64_t>("value"); break;
    case GgufType::FLOAT32: v.f = c.get<float>("value"); break;
    case GgufType::FLOAT64: v.f = c.get<double>("value"); break;
    case GgufType::BOOL: {
      uint8_t b = c.get<uint8_t>("value");
      if (b > 1) c.fail("bool value " + std::to_string(b) + ": expected 0 or 1");
      v.u = b;
      break;
    }
    case GgufType::STRING: v.s = c.get_string("string value"); break;
    case GgufType::ARRAY: read_array(c, v, depth + 1); break;
  }
  return v;
}

void read_header(Cursor& c, uint32_t& version, uint64_t& n_tensors, uint64_t& n_kv) {
  if (c.left() < 4) c.fail("not a GGUF file (only " + std::to_string(c.left()) + " bytes)");
  uint32_t magic = c.get<uint32_t>("magic");
  if (magic != kMagic) {
    std::string shown;
    for (int k = 0; k < 4; ++k) {
      unsigned char ch = static_cast<unsigned char>(magic >> (8 * k));
      shown += (ch >= 0x20 && ch < 0x7f) ? static_cast<char>(ch) : '.';
    }
    c.fail("not a GGUF file (magic '" + shown + "', expected 'GGUF')");
  }
  version = c.get<uint32_t>("version");
  if (version == 1)
    c.fail("GGUF version 1 is not supported (only versions 2 and 3); convert the file with a "
           "current llama.cpp");
  if (version != 2 && version != 3) {
    uint32_t swapped = __builtin_bswap32(version);
    if (swapped >= 1 && swapped <= 3)
      c.fail("big-endian GGUF file (version field reads " + std::to_string(version) +
             ", byte-swapped " + std::to_string(swapped) +
             "): only little-endian files are supported");
    c.fail("unsupported GGUF version " + std::to_string(version) + " (expected 2 or 3)");
  }
  n_tensors = c.get<uint64_t>("n_tensors");
  n_kv = c.get<uint64_t>("n_kv");
  if (n_kv > c.left() / kMinKvBytes)
    c.fail("n_kv " + std::to_string(n_kv) + " is impossible: the " + std::to_string(c.left()) +
           " bytes left hold at most " + std::to_string(c.left() / kMinKvBytes) +
           " key-value pairs (corrupt header)");
  if (n_tensors > c.left() / kMinTensorInfoBytes ||
      n_kv * kMinKvBytes + n_tensors * kMinTensorInfoBytes > c.left())
    c.fail("n_tensors " + std::to_string(n_tensors) + " is impossible: the " +
           std::to_string(c.left()) + " bytes left cannot hold " + std::to_string(n_kv) +
           " key-value pairs and " + std::to_string(n_tensors) + " tensor infos (corrupt header)");
}

}  // namespace

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // the reader checked that this does not overflow
  return n;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->file_ = std::make_unique<MappedFile>(path);
  try {
    f->parse();
  } catch (const std::bad_alloc&) {
    throw Error(path + ": out of memory while reading the metadata (corrupt file?)");
  }
  return f;
}

void GgufFile::parse() {
  const std::string& p = file_->path();
  const size_t size = file_->size();
  Cursor c(file_->data(), size, p);

  uint64_t n_tensors = 0, n_kv = 0;
  read_header(c, version_, n_tensors, n_kv);

  kv_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    c.set_context("metadata key #" + std::to_string(k));
    std::string key = c.get_string("key");
    c.set_context("metadata key '" + key + "'");
    if (kv_index_.count(key)) c.fail("duplicate key");
    GgufType type = read_type(c, "value type");
    GgufValue v = read_value(c, type, 0);
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(v));
  }

  alignment_ = kDefaultAlignment;
  if (const GgufValue* a = find("general.alignment")) {
    c.set_context("metadata key 'general.alignment'");
    if (!a->is_integer()) c.fail("expected an integer, got " + a->type_string());
    bool negative = a->type != GgufType::UINT8 && a->type != GgufType::UINT16 &&
                    a->type != GgufType::UINT32 && a->type != GgufType::UINT64 && a->i < 0;
    uint64_t v = a->i != 0 ? static_cast<uint64_t>(a->i) : a->u;
    if (negative || v == 0 || (v & (v - 1)) != 0 || v > std::numeric_limits<uint32_t>::max())
      c.fail("expected a non-zero power of two that fits in 32 bits, got " + a->to_string());
    alignment_ = v;
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    c.set_context("tensor #" + std::to_string(k));
    GgufTensorInfo t;
    t.name = c.get_string("name");
    c.set_context("tensor '" + t.name + "'");
    if (tensor_index_.count(t.name)) c.fail("duplicate tensor name");
    uint32_t n_dims = c.get<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > 4) c.fail("n_dims " + std::to_string(n_dims) + ": expected 1 to 4");
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = c.get<uint64_t>("shape");
      std::string field = "ne[" + std::to_string(d) + "] = " + std::to_string(ne);
      // A zero dimension would make an empty tensor that no layer can use; reject it here so
      // that every consumer may assume at least one element.
      if (ne == 0) c.fail(field + ": every dimension must be at least 1");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        c.fail(field + ": too large");
      t.shape.push_back(static_cast<int64_t>(ne));
      if (__builtin_mul_overflow(n_elements, static_cast<int64_t>(ne), &n_elements))
        c.fail("element count of shape " + shape_string(t.shape) + "... overflows");
    }
    uint32_t type_id = c.get<uint32_t>("type");
    std::optional<DType> type = dtype_from_id(type_id);
    if (!type) c.fail("unknown tensor type id " + std::to_string(type_id));
    t.type = *type;
    const DTypeInfo& info = dtype_info(t.type);
    if (t.shape[0] % info.block_size != 0)
      c.fail("ne[0] = " + std::to_string(t.shape[0]) + " is not a multiple of the " +
             std::string(info.name) + " block size " + std::to_string(info.block_size));
    uint64_t row = 0, total = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(t.shape[0] / info.block_size),
                               static_cast<uint64_t>(info.block_bytes), &row) ||
        __builtin_mul_overflow(row, static_cast<uint64_t>(n_elements / t.shape[0]), &total))
      c.fail("byte size of shape " + shape_string(t.shape) + " overflows");
    t.nbytes = static_cast<size_t>(total);
    t.offset = c.get<uint64_t>("offset");
    if (t.offset % alignment_ != 0)
      c.fail("data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(alignment_));
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // pos <= size < 2^63 and alignment < 2^32: no overflow. A file without tensors may end right
  // after the tensor infos (vocabulary-only files do), so the padding is not required then.
  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  for (GgufTensorInfo& t : tensors_) {
    uint64_t begin = 0;
    if (__builtin_add_overflow(static_cast<uint64_t>(data_offset_), t.offset, &begin) ||
        begin > size || t.nbytes > size - begin)
      throw Error(p + ": tensor '" + t.name + "': data (offset " +
                  (begin >= t.offset ? std::to_string(begin) : "past 2^64") + ", " +
                  std::to_string(t.nbytes) + " bytes) extends past the end of the file (size " +
                  std::to_string(size) + ")");
    t.data = file_->data() + begin;
  }
}

}  // namespace slm
