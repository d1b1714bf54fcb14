// GGUF reader and writer. Referees: byte buffers built by hand from the specification (so reader
// and writer cannot agree on a shared mistake), facts about the shared golden files derived by
// hand with a separate Python/struct dump, and writer -> reader round trips of every value type
// and every tensor type.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "test_util.h"

namespace slm {
namespace {

using test::TempDir;

// Little-endian byte buffer for hand-built files.
struct Bytes {
  std::string b;
  Bytes& u8(uint8_t v) { b.push_back(static_cast<char>(v)); return *this; }
  Bytes& u32(uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); return *this; }
  Bytes& u64(uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); return *this; }
  Bytes& i32(int32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); return *this; }
  Bytes& f32(float v) { b.append(reinterpret_cast<const char*>(&v), 4); return *this; }
  Bytes& str(const std::string& s) { u64(s.size()); b += s; return *this; }
  Bytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b += "GGUF";
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
  Bytes& kv_str(const std::string& key, const std::string& v) { return str(key).u32(8).str(v); }
  Bytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t off) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(off);
  }
  Bytes& pad(size_t a) {
    while (b.size() % a) b.push_back(0);
    return *this;
  }
  Bytes& zeros(size_t n) { b.append(n, '\0'); return *this; }
};

// Plain write (no fsync: the truncation test writes hundreds of files).
std::string write_bytes(const TempDir& dir, const std::string& name, const std::string& bytes) {
  std::string p = (dir / name).string();
  std::remove(p.c_str());  // not truncate: ext4 flushes a truncated-and-rewritten file on close
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + p);
  return p;
}

// Opens `bytes` as a file and expects slm::Error whose message holds the path and every word.
void expect_error(const std::string& bytes, std::vector<std::string> words) {
  TempDir dir;
  std::string p = write_bytes(dir, "bad.gguf", bytes);
  try {
    GgufFile::open(p);
    ADD_FAILURE() << "no error; expected one with: " << words[0];
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    for (const std::string& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
}

// A small valid file: 2 kv, one F32 tensor [4, 2] at offset 0 and one Q8_0 [32] at offset 32.
std::string small_valid() {
  Bytes f;
  f.header(3, 2, 2).kv_str("general.architecture", "llama").kv_u32("llama.block_count", 2);
  f.tensor("a", {4, 2}, 0, 0).tensor("b", {32}, 8, 32);
  f.pad(32);
  for (int k = 0; k < 8; ++k) f.f32(static_cast<float>(k) * 0.5f);
  f.pad(32).zeros(34);
  return f.b;
}

TEST(GgufRead, HandBuiltFile) {
  TempDir dir;
  std::string p = write_bytes(dir, "m.gguf", small_valid());
  auto g = GgufFile::open(p);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->alignment(), 32u);
  ASSERT_EQ(g->metadata().size(), 2u);
  EXPECT_EQ(g->metadata()[0].first, "general.architecture");
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->get_int("llama.block_count"), 2);
  // header 24 + kv1 (8+20+4+8+5=45) + kv2 (8+17+4+4=33) + tensor a (8+1+4+16+4+8=41)
  // + tensor b (8+1+4+8+4+8=33) = 176, padded to the next multiple of 32.
  EXPECT_EQ(g->data_offset(), 192u);
  ASSERT_EQ(g->tensors().size(), 2u);
  const GgufTensorInfo* a = g->find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(a->type, DType::F32);
  EXPECT_EQ(a->nbytes, 32u);
  EXPECT_EQ(a->n_elements(), 8);
  float x[8];
  std::memcpy(x, a->data, 32);
  EXPECT_EQ(x[5], 2.5f);
  const GgufTensorInfo* b = g->find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, DType::Q8_0);
  EXPECT_EQ(b->nbytes, 34u);
  EXPECT_EQ(b->data - a->data, 32);
  EXPECT_EQ(g->find_tensor("c"), nullptr);
}

// The VmFlags line of the mapping that holds `addr` in /proc/self/smaps ("" if not found).
std::string vm_flags_of(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2)  // a mapping's header line
      inside = lo <= a && a < hi;
    else if (inside && line.rfind("VmFlags:", 0) == 0)
      return line;
  }
  return "";
}

// Weights are mapped with 4 KiB page-table entries (MADV_NOHUGEPAGE: "nh" in VmFlags), unless
// SLM_MMAP_HUGEPAGES is set: 2 MiB entries made weight streaming 2-4x slower on the benchmark VM.
TEST(GgufRead, MappingAvoidsHugePageEntriesUnlessAsked) {
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage"))
    GTEST_SKIP() << "kernel without transparent huge pages: the advice does not apply";
  TempDir dir;
  std::string p = write_bytes(dir, "m.gguf", small_valid());
  auto g = GgufFile::open(p);
  const std::string flags = vm_flags_of(g->tensors()[0].data);
  ASSERT_NE(flags, "") << "mapping not found in /proc/self/smaps";
  EXPECT_NE(flags.find(" nh"), std::string::npos) << flags;
  ::setenv("SLM_MMAP_HUGEPAGES", "1", 1);
  auto h = GgufFile::open(p);
  ::unsetenv("SLM_MMAP_HUGEPAGES");
  const std::string flags_h = vm_flags_of(h->tensors()[0].data);
  ASSERT_NE(flags_h, "");
  EXPECT_EQ(flags_h.find(" nh"), std::string::npos) << flags_h;
}

TEST(GgufRead, Version2IsAccepted) {
  std::string bytes = small_valid();
  bytes[4] = 2;
  TempDir dir;
  auto g = GgufFile::open(write_bytes(dir, "v2.gguf", bytes));
  EXPECT_EQ(g->version(), 2u);
  EXPECT_EQ(g->tensors().size(), 2u);
}

// --- Corruption classes -------------------------------------------------------------------

TEST(GgufCorrupt, BadMagic) {
  std::string b = small_valid();
  b[3] = 'X';
  expect_error(b, {"not a GGUF file", "GGUX"});
  expect_error("GG", {"not a GGUF file"});
}

TEST(GgufCorrupt, Version1) { expect_error(Bytes().header(1, 0, 0).b, {"version 1", "not supported"}); }

TEST(GgufCorrupt, BigEndian) {
  Bytes f;
  f.b = "GGUF";
  f.u8(0).u8(0).u8(0).u8(3).zeros(16);
  expect_error(f.b, {"big-endian"});
}

TEST(GgufCorrupt, UnknownVersion) { expect_error(Bytes().header(4, 0, 0).b, {"unsupported GGUF version 4"}); }

TEST(GgufCorrupt, EmptyAndMissingFile) {
  expect_error("", {"empty"});
  try {
    GgufFile::open("/nonexistent-dir/x.gguf");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.gguf"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
}

TEST(GgufCorrupt, TruncatedAtEveryByte) {
  const std::string full = small_valid();
  const size_t data_end = 192 + 32 + 34;  // end of the last tensor's data
  ASSERT_EQ(full.size(), data_end);
  TempDir dir;
  for (size_t len = 1; len < full.size(); ++len) {
    std::string p = write_bytes(dir, "t.gguf", full.substr(0, len));
    try {
      GgufFile::open(p);
      ADD_FAILURE() << "prefix of " << len << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
}

TEST(GgufCorrupt, TruncatedVocabOnlyFile) {
  // Without tensors the file may end right after the metadata; any shorter prefix fails.
  Bytes f;
  f.header(3, 0, 2).kv_str("tokenizer.ggml.model", "gpt2").kv_u32("x", 7);
  TempDir dir;
  EXPECT_EQ(GgufFile::open(write_bytes(dir, "ok.gguf", f.b))->get_int("x"), 7);
  for (size_t len = 1; len < f.b.size(); ++len)
    EXPECT_THROW(GgufFile::open(write_bytes(dir, "t.gguf", f.b.substr(0, len))), Error) << len;
}

TEST(GgufCorrupt, AbsurdCounts) {
  expect_error(Bytes().header(3, 0, uint64_t{1} << 60).zeros(64).b, {"n_kv", "impossible"});
  expect_error(Bytes().header(3, uint64_t{1} << 40, 0).zeros(64).b, {"n_tensors", "impossible"});
  expect_error(Bytes().header(3, 0, 1).u64(~uint64_t{0}).zeros(32).b,
               {"metadata key #0", "key", "string length"});
  expect_error(Bytes().header(3, 0, 1).str("k").u32(8).u64(uint64_t{1} << 62).zeros(8).b,
               {"metadata key 'k'", "string length"});
  expect_error(Bytes().header(3, 0, 1).str("arr").u32(9).u32(4).u64(uint64_t{1} << 61).zeros(16).b,
               {"metadata key 'arr'", "array of 2305843009213693952 uint32 items cannot fit"});
  // Nested: inner array length is absurd.
  expect_error(Bytes().header(3, 0, 1).str("n").u32(9).u32(9).u64(1).u32(8).u64(999999).zeros(8).b,
               {"metadata key 'n' item [0]", "array of 999999 string items"});
  expect_error(Bytes().header(3, 1, 0).u64(1000).zeros(40).b, {"tensor #0", "name", "string length"});
}

TEST(GgufCorrupt, TooManyArrayItems) {
  // 2^25 + 1 uint8 items that do fit in the file (a sparse file of zeros) exceed the cap on
  // metadata values, which bounds the memory a hostile file can ask for.
  const uint64_t n = (uint64_t{1} << 25) + 1;
  std::string head = Bytes().header(3, 0, 1).str("big").u32(9).u32(0).u64(n).b;
  TempDir dir;
  std::string p = write_bytes(dir, "big.gguf", head);
  std::filesystem::resize_file(p, head.size() + n);
  try {
    GgufFile::open(p);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metadata key 'big'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("more than 33554432 array items"), std::string::npos) << e.what();
  }
}

TEST(GgufCorrupt, OffsetPastEnd) {
  Bytes f;
  f.header(3, 1, 0).tensor("blk.0.attn_q.weight", {32, 4}, 0, 4096).pad(32).zeros(512);
  expect_error(f.b, {"tensor 'blk.0.attn_q.weight'", "512 bytes", "extends past the end of the file",
                     "size " + std::to_string(f.b.size())});
  Bytes g;  // offset near 2^64: the sum overflows
  g.header(3, 1, 0).tensor("w", {8}, 0, ~uint64_t{0} - 31).pad(32).zeros(32);
  expect_error(g.b, {"tensor 'w'", "extends past the end"});
}

TEST(GgufCorrupt, UnknownTypes) {
  expect_error(Bytes().header(3, 1, 0).tensor("tok_embd", {8}, 99, 0).pad(32).zeros(64).b,
               {"tensor 'tok_embd'", "unknown tensor type id 99"});
  expect_error(Bytes().header(3, 0, 1).str("weird").u32(13).u32(0).b,
               {"metadata key 'weird'", "unknown value type id 13"});
  expect_error(Bytes().header(3, 0, 1).str("weird").u32(9).u32(77).u64(0).b,
               {"metadata key 'weird'", "array item type", "unknown value type id 77"});
  expect_error(Bytes().header(3, 0, 1).str("flag").u32(7).u8(2).b, {"metadata key 'flag'", "expected 0 or 1"});
}

TEST(GgufCorrupt, ShapeAndSize) {
  expect_error(Bytes().header(3, 1, 0).tensor("q", {33, 2}, 2, 0).pad(32).zeros(256).b,
               {"tensor 'q'", "ne[0] = 33", "q4_0 block size 32"});
  expect_error(Bytes().header(3, 1, 0).tensor("z", {4, 0}, 0, 0).pad(32).zeros(64).b,
               {"tensor 'z'", "ne[1] = 0", "at least 1"});
  expect_error(Bytes().header(3, 1, 0).tensor("d", {1, 1, 1, 1, 1}, 0, 0).pad(32).zeros(64).b,
               {"tensor 'd'", "n_dims 5"});
  expect_error(Bytes().header(3, 1, 0).tensor("d", {}, 0, 0).pad(32).zeros(64).b, {"tensor 'd'", "n_dims 0"});
  expect_error(Bytes().header(3, 1, 0).tensor("o", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0).pad(32).zeros(64).b,
               {"tensor 'o'", "overflows"});
  expect_error(Bytes().header(3, 1, 0).tensor("o", {uint64_t{1} << 62, 4}, 0, 0).pad(32).zeros(64).b,
               {"tensor 'o'", "overflows"});
  // Shape says 64 F32 values (256 bytes) but the file holds 128 bytes of data.
  expect_error(Bytes().header(3, 1, 0).tensor("s", {64}, 0, 0).pad(32).zeros(128).b,
               {"tensor 's'", "256 bytes", "extends past the end"});
}

TEST(GgufCorrupt, MisalignedOffset) {
  expect_error(Bytes().header(3, 1, 0).tensor("m", {4}, 0, 4).pad(32).zeros(64).b,
               {"tensor 'm'", "data offset 4 is not a multiple of the alignment 32"});
}

TEST(GgufCorrupt, BadAlignment) {
  for (uint32_t a : {0u, 24u, 3u})
    expect_error(Bytes().header(3, 0, 1).kv_u32("general.alignment", a).b,
                 {"general.alignment", "power of two", "got " + std::to_string(a)});
  expect_error(Bytes().header(3, 0, 1).kv_str("general.alignment", "32").b,
               {"general.alignment", "expected an integer, got string"});
}

TEST(GgufCorrupt, Duplicates) {
  expect_error(Bytes().header(3, 0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).b, {"metadata key 'a.b'", "duplicate key"});
  expect_error(Bytes().header(3, 2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad(32).zeros(64).b,
               {"tensor 'w'", "duplicate tensor name"});
}

TEST(GgufCorrupt, ArraysNestedTooDeep) {
  Bytes f;
  f.header(3, 0, 1).str("deep").u32(9);
  for (int d = 0; d < kGgufMaxArrayDepth; ++d) f.u32(9).u64(1);
  f.u32(4).u64(0);
  expect_error(f.b, {"metadata key 'deep'", "nested more than"});
}

// --- Writer ------------------------------------------------------------------------------

TEST(GgufWrite, ExactBytesOfATinyFile) {
  GgufWriter w;
  w.set_u32("n", 5);
  w.add_tensor("t", DType::F32, {2}, {1, 2, 3, 4, 5, 6, 7, 8});
  TempDir dir;
  std::string p = (dir / "w.gguf").string();
  w.write(p);
  Bytes e;
  e.header(3, 1, 1).kv_u32("n", 5).tensor("t", {2}, 0, 0).pad(32);
  for (int k = 1; k <= 8; ++k) e.u8(static_cast<uint8_t>(k));
  e.pad(32);
  EXPECT_EQ(read_file(p), e.b);
}

// Every value type, including nested arrays, empty containers and awkward strings.
std::vector<std::pair<std::string, GgufValue>> every_value() {
  using V = GgufValue;
  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.emplace_back("u8", V::of_uint(GgufType::UINT8, 255));
  kv.emplace_back("i8", V::of_int(GgufType::INT8, -128));
  kv.emplace_back("u16", V::of_uint(GgufType::UINT16, 65535));
  kv.emplace_back("i16", V::of_int(GgufType::INT16, -32768));
  kv.emplace_back("u32", V::of_uint(GgufType::UINT32, 4000000000u));
  kv.emplace_back("i32", V::of_int(GgufType::INT32, -2000000000));
  kv.emplace_back("f32", V::of_float(GgufType::FLOAT32, 0.1));
  kv.emplace_back("bool_t", V::of_bool(true));
  kv.emplace_back("bool_f", V::of_bool(false));
  kv.emplace_back("str", V::of_string(std::string("a\0b \xe7\xbb\x99\n", 8)));
  kv.emplace_back("empty_str", V::of_string(""));
  kv.emplace_back("u64", V::of_uint(GgufType::UINT64, ~uint64_t{0}));
  kv.emplace_back("i64", V::of_int(GgufType::INT64, INT64_MIN));
  kv.emplace_back("f64", V::of_float(GgufType::FLOAT64, -1e300));
  kv.emplace_back("arr_u8", V::of_array(GgufType::UINT8, {V::of_uint(GgufType::UINT8, 1), V::of_uint(GgufType::UINT8, 2)}));
  kv.emplace_back("arr_i16", V::of_array(GgufType::INT16, {V::of_int(GgufType::INT16, -5)}));
  kv.emplace_back("arr_u64", V::of_array(GgufType::UINT64, {V::of_uint(GgufType::UINT64, 1ull << 63)}));
  kv.emplace_back("arr_f64", V::of_array(GgufType::FLOAT64, {V::of_float(GgufType::FLOAT64, 2.5), V::of_float(GgufType::FLOAT64, -0.0)}));
  kv.emplace_back("arr_bool", V::of_array(GgufType::BOOL, {V::of_bool(true), V::of_bool(false)}));
  kv.emplace_back("arr_empty", V::of_array(GgufType::STRING, {}));
  kv.emplace_back("nested", V::of_array(GgufType::ARRAY, {
      V::of_array(GgufType::INT32, {V::of_int(GgufType::INT32, 1), V::of_int(GgufType::INT32, 2)}),
      V::of_array(GgufType::STRING, {V::of_string("x"), V::of_string("")}),
      V::of_array(GgufType::ARRAY, {V::of_array(GgufType::FLOAT32, {V::of_float(GgufType::FLOAT32, 1.5)})}),
  }));
  return kv;
}

void expect_same(const GgufValue& a, const GgufValue& b, const std::string& where) {
  ASSERT_EQ(a.type, b.type) << where;
  switch (a.type) {
    case GgufType::STRING: EXPECT_EQ(a.s, b.s) << where; break;
    case GgufType::FLOAT32: case GgufType::FLOAT64:
      EXPECT_EQ(a.f, b.f) << where;
      EXPECT_EQ(std::signbit(a.f), std::signbit(b.f)) << where;
      break;
    case GgufType::ARRAY:
      EXPECT_EQ(a.item_type, b.item_type) << where;
      ASSERT_EQ(a.items.size(), b.items.size()) << where;
      for (size_t k = 0; k < a.items.size(); ++k)
        expect_same(a.items[k], b.items[k], where + "[" + std::to_string(k) + "]");
      break;
    default:
      EXPECT_EQ(a.u, b.u) << where;
      EXPECT_EQ(a.i, b.i) << where;
  }
}

const DType kAllTypes[] = {DType::F32, DType::F16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                           DType::Q5_1, DType::Q8_0, DType::Q8_1, DType::Q2_K, DType::Q3_K,
                           DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K, DType::I8,
                           DType::I16, DType::I32, DType::I64, DType::F64, DType::BF16};

TEST(GgufWrite, RoundTripEveryValueAndTensorType) {
  for (uint64_t alignment : {uint64_t{32}, uint64_t{64}, uint64_t{1}}) {
    GgufWriter w(alignment);
    auto kv = every_value();
    for (const auto& [k, v] : kv) w.set(k, v);
    std::mt19937 rng(7);
    std::vector<std::vector<uint8_t>> datas;
    for (DType t : kAllTypes) {
      const DTypeInfo& info = dtype_info(t);
      std::vector<int64_t> shape = {info.block_size * 2, 3};
      std::vector<uint8_t> d(row_bytes(t, shape[0]) * 3);
      for (auto& x : d) x = static_cast<uint8_t>(rng());
      datas.push_back(d);
      w.add_tensor(std::string("t.") + std::string(info.name), t, shape, d);
    }
    TempDir dir;
    std::string p = (dir / "rt.gguf").string();
    w.write(p);
    auto g = GgufFile::open(p);
    EXPECT_EQ(g->version(), 3u);
    EXPECT_EQ(g->alignment(), alignment);
    EXPECT_EQ(g->has("general.alignment"), alignment != 32);
    if (alignment != 32) {
      EXPECT_EQ(g->get_int("general.alignment"), static_cast<int64_t>(alignment));
    }
    for (const auto& [k, v] : kv) {
      const GgufValue* got = g->find(k);
      ASSERT_NE(got, nullptr) << k;
      expect_same(v, *got, k);
    }
    ASSERT_EQ(g->tensors().size(), std::size(kAllTypes));
    for (size_t k = 0; k < std::size(kAllTypes); ++k) {
      const GgufTensorInfo& t = g->tensors()[k];
      EXPECT_EQ(t.type, kAllTypes[k]);
      EXPECT_EQ(t.shape, (std::vector<int64_t>{dtype_info(kAllTypes[k]).block_size * 2, 3}));
      EXPECT_EQ(t.offset % alignment, 0u) << t.name;
      EXPECT_EQ((t.data - g->tensors()[0].data + g->data_offset()) % alignment, 0u) << t.name;
      ASSERT_EQ(t.nbytes, datas[k].size());
      EXPECT_EQ(std::memcmp(t.data, datas[k].data(), t.nbytes), 0) << t.name;
    }
    EXPECT_EQ(g->data_offset() % alignment, 0u);
  }
}

TEST(GgufWrite, SetReplacesAndCopyMetadata) {
  TempDir dir;
  GgufWriter a;
  a.set_string("tokenizer.ggml.model", "llama");
  a.set_string_array("tokenizer.ggml.tokens", {"<unk>", "a"});
  a.set_f32_array("tokenizer.ggml.scores", {0.f, -1.5f});
  a.set_i32_array("tokenizer.ggml.token_type", {2, 1});
  a.set_u32("llama.block_count", 1);
  a.set_u32("llama.block_count", 3);  // replaces, keeps position
  a.set_i32("neg", -4);
  a.set_f32("eps", 1e-5f);
  a.set_bool("flag", true);
  a.write((dir / "a.gguf").string());
  auto ga = GgufFile::open((dir / "a.gguf").string());
  ASSERT_EQ(ga->metadata().size(), 8u);
  EXPECT_EQ(ga->metadata()[4].first, "llama.block_count");
  EXPECT_EQ(ga->get_int("llama.block_count"), 3);
  EXPECT_EQ(ga->get_int("neg"), -4);
  EXPECT_EQ(ga->get_float("eps"), static_cast<double>(1e-5f));
  EXPECT_TRUE(ga->get_bool("flag", false));

  GgufWriter b;
  b.copy_metadata(*ga, "tokenizer.");
  b.write((dir / "b.gguf").string());
  auto gb = GgufFile::open((dir / "b.gguf").string());
  ASSERT_EQ(gb->metadata().size(), 4u);
  EXPECT_EQ(gb->get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"<unk>", "a"}));
  EXPECT_EQ(gb->get_float_array("tokenizer.ggml.scores"), (std::vector<double>{0.0, -1.5}));
  EXPECT_EQ(gb->get_int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{2, 1}));
  EXPECT_FALSE(gb->has("llama.block_count"));
}

TEST(GgufWrite, RejectsBadInput) {
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("x", DType::F32, {4}, std::vector<uint8_t>(15)), Error);
  EXPECT_THROW(w.add_tensor("x", DType::Q4_0, {16}, std::vector<uint8_t>(9)), Error);
  EXPECT_THROW(w.add_tensor("x", DType::F32, {0}, {}), Error);
  EXPECT_THROW(w.add_tensor("x", DType::F32, {1, 1, 1, 1, 1}, std::vector<uint8_t>(4)), Error);
  w.add_tensor("x", DType::F32, {1}, std::vector<uint8_t>(4));
  EXPECT_THROW(w.add_tensor("x", DType::F32, {1}, std::vector<uint8_t>(4)), Error);
  TempDir dir;
  GgufWriter bad_align(48);
  EXPECT_THROW(bad_align.write((dir / "a.gguf").string()), Error);
  GgufWriter mixed;
  mixed.set("m", GgufValue::of_array(GgufType::INT32, {GgufValue::of_string("no")}));
  EXPECT_THROW(mixed.write((dir / "m.gguf").string()), Error);
  GgufWriter range;
  range.set("r", GgufValue::of_uint(GgufType::UINT8, 256));
  EXPECT_THROW(range.write((dir / "r.gguf").string()), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "m.gguf"));
}

// --- Getters and GgufValue ------------------------------------------------------------------

TEST(GgufGetters, TypesRangesAndMessages) {
  TempDir dir;
  GgufWriter w;
  w.set("u8", GgufValue::of_uint(GgufType::UINT8, 200));
  w.set("i64", GgufValue::of_int(GgufType::INT64, -7));
  w.set("u64big", GgufValue::of_uint(GgufType::UINT64, ~uint64_t{0}));
  w.set("f64", GgufValue::of_float(GgufType::FLOAT64, 0.25));
  w.set_string("llama.block_count", "two");
  w.set_i32_array("ints", {1, -2});
  w.set_string_array("strs", {"a"});
  w.set("bigs", GgufValue::of_array(GgufType::UINT64, {GgufValue::of_uint(GgufType::UINT64, ~uint64_t{0})}));
  std::string p = (dir / "g.gguf").string();
  w.write(p);
  auto g = GgufFile::open(p);
  EXPECT_EQ(g->get_int("u8"), 200);
  EXPECT_EQ(g->get_int("i64"), -7);
  EXPECT_EQ(g->get_float("u8"), 200.0);
  EXPECT_EQ(g->get_float("f64"), 0.25);
  EXPECT_EQ(g->get_int("missing", 42), 42);
  EXPECT_EQ(g->get_float("missing", 1.5), 1.5);
  EXPECT_EQ(g->get_string("missing", "d"), "d");
  EXPECT_TRUE(g->get_bool("missing", true));
  EXPECT_EQ(g->get_float_array("ints"), (std::vector<double>{1.0, -2.0}));
  auto message = [&](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([&] { g->get_int("llama.block_count"); }),
            p + ": metadata key 'llama.block_count': expected an integer, got string");
  EXPECT_EQ(message([&] { g->get_int("nope"); }), p + ": metadata key 'nope' is missing");
  EXPECT_NE(message([&] { g->get_int("u64big"); }).find("does not fit"), std::string::npos);
  EXPECT_NE(message([&] { g->get_int_array("bigs"); }).find("does not fit"), std::string::npos);
  EXPECT_EQ(message([&] { g->get_string("u8"); }), p + ": metadata key 'u8': expected a string, got uint8");
  EXPECT_EQ(message([&] { g->get_float("llama.block_count"); }),
            p + ": metadata key 'llama.block_count': expected a number, got string");
  EXPECT_EQ(message([&] { g->get_bool("u8", false); }), p + ": metadata key 'u8': expected a bool, got uint8");
  EXPECT_EQ(message([&] { g->get_string_array("ints"); }),
            p + ": metadata key 'ints': expected an array of string, got array of int32");
  EXPECT_EQ(message([&] { g->get_int_array("strs"); }),
            p + ": metadata key 'strs': expected an array of integers, got array of string");
  EXPECT_EQ(message([&] { g->get_float_array("strs"); }),
            p + ": metadata key 'strs': expected an array of numbers, got array of string");
  EXPECT_EQ(message([&] { g->get_int_array("u8"); }),
            p + ": metadata key 'u8': expected an array of integers, got uint8");
}

TEST(GgufValueTest, ToString) {
  using V = GgufValue;
  std::vector<V> items;
  for (int k = 1; k <= 10; ++k) items.push_back(V::of_int(GgufType::INT32, k));
  EXPECT_EQ(V::of_array(GgufType::INT32, items).to_string(3), "[1, 2, 3, ... (10 items)]");
  EXPECT_EQ(V::of_array(GgufType::INT32, items).to_string(10), "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]");
  EXPECT_EQ(V::of_array(GgufType::INT32, {}).to_string(), "[]");
  EXPECT_EQ(V::of_float(GgufType::FLOAT32, 0.1).to_string(), "0.1");
  EXPECT_EQ(V::of_float(GgufType::FLOAT64, 1e6).to_string(), "1e+06");
  EXPECT_EQ(V::of_string("a\"b\n").to_string(), "\"a\\\"b\\n\"");
  EXPECT_EQ(V::of_bool(true).to_string(), "true");
  EXPECT_EQ(V::of_uint(GgufType::UINT64, ~uint64_t{0}).to_string(), "18446744073709551615");
  EXPECT_EQ(V::of_array(GgufType::ARRAY, {V::of_array(GgufType::STRING, {V::of_string("x")})}).to_string(),
            "[[\"x\"]]");
  EXPECT_EQ(V::of_array(GgufType::STRING, {}).type_string(), "array of string");
  EXPECT_TRUE(V::of_uint(GgufType::UINT16, 1).is_integer());
  EXPECT_FALSE(V::of_bool(true).is_integer());
  EXPECT_TRUE(V::of_float(GgufType::FLOAT32, 1).is_number());
}

// --- Real files (facts derived by hand with a Python struct dump of each file) ----------------

TEST(GgufRealFiles, LlamaSpmGqa) {
  SLM_REQUIRE_SHARED_DATA(data);
  auto g = GgufFile::open((data / "models/t-llama-spm-gqa.gguf").string());
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->file_size(), 9287072u);
  EXPECT_EQ(g->metadata().size(), 23u);
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(g->get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(g->get_int("llama.feed_forward_length"), 176);
  EXPECT_EQ(g->get_float("llama.attention.layer_norm_rms_epsilon"), static_cast<double>(1e-5f));
  EXPECT_EQ(g->get_float("llama.rope.freq_base"), 10000.0);
  EXPECT_TRUE(g->get_bool("tokenizer.ggml.add_bos_token", false));
  EXPECT_FALSE(g->get_bool("tokenizer.ggml.add_eos_token", true));
  auto tokens = g->get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 32000u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(tokens.back(), "\xe7\xbb\x99");  // 给
  EXPECT_EQ(g->get_float_array("tokenizer.ggml.scores").back(), -31740.0);
  EXPECT_EQ(g->get_int_array("tokenizer.ggml.token_type")[0], 2);
  // Tensor infos end at byte 725134; the data section starts at the next multiple of 32.
  EXPECT_EQ(g->data_offset(), 725152u);
  ASSERT_EQ(g->tensors().size(), 21u);
  const GgufTensorInfo* e = g->find_tensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, DType::F16);
  EXPECT_EQ(e->shape, (std::vector<int64_t>{64, 32000}));
  EXPECT_EQ(e->offset, 0u);
  EXPECT_EQ(e->nbytes, 4096000u);
  EXPECT_EQ(e->data[0], 0xeb);
  EXPECT_EQ(e->data[3], 0xbd);
  const GgufTensorInfo* k = g->find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->type, DType::F32);
  EXPECT_EQ(k->shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(k->offset, 4112640u);
  float first;
  std::memcpy(&first, k->data, 4);
  EXPECT_FLOAT_EQ(first, 0.22126685f);
  const GgufTensorInfo* out = g->find_tensor("output.weight");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->data + out->nbytes, g->tensors()[0].data - g->data_offset() + g->file_size());
}

TEST(GgufRealFiles, QuantizedAndQwen) {
  SLM_REQUIRE_SHARED_DATA(data);
  auto q = GgufFile::open((data / "models/t-llama-spm-256-q4_k_m.gguf").string());
  EXPECT_EQ(q->get_int("general.file_type"), 15);
  EXPECT_EQ(q->get_int("general.quantization_version"), 2);
  EXPECT_EQ(q->tensors()[0].name, "output_norm.weight");
  const GgufTensorInfo* e = q->find_tensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, DType::Q6_K);
  EXPECT_EQ(e->offset, 1024u);
  EXPECT_EQ(e->nbytes, 6720000u);  // 32000 rows of one 210-byte Q6_K block
  EXPECT_EQ(e->data[0], 0x90);
  EXPECT_EQ(e->data[3], 0x01);
  const GgufTensorInfo* k = q->find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->type, DType::Q4_K);
  EXPECT_EQ(k->shape, (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(k->offset, 6721024u);

  auto q4 = GgufFile::open((data / "models/t-llama-spm-256-q4_0.gguf").string());
  EXPECT_EQ(q4->find_tensor("blk.0.attn_q.weight")->type, DType::Q4_0);
  EXPECT_EQ(q4->find_tensor("blk.0.attn_q.weight")->offset, 6777344u);
  auto q8 = GgufFile::open((data / "models/t-llama-spm-256-q8_0.gguf").string());
  EXPECT_EQ(q8->find_tensor("blk.1.attn_q.weight")->type, DType::Q8_0);
  EXPECT_EQ(q8->find_tensor("blk.1.attn_q.weight")->offset, 9439232u);

  auto w = GgufFile::open((data / "models/t-qwen2-gpt2-mqa.gguf").string());
  EXPECT_EQ(w->get_string("general.architecture"), "qwen2");
  EXPECT_EQ(w->get_float("qwen2.rope.freq_base"), 1e6);
  EXPECT_EQ(w->get_int("tokenizer.ggml.bos_token_id"), 50256);
  auto merges = w->get_string_array("tokenizer.ggml.merges");
  ASSERT_EQ(merges.size(), 50000u);
  EXPECT_EQ(merges[0], "\xc4\xa0 t");  // "Ġ t"
  EXPECT_EQ(w->tensors().size(), 26u);
  EXPECT_EQ(w->find_tensor("blk.0.attn_k.bias")->shape, (std::vector<int64_t>{16}));
}

TEST(GgufRealFiles, AllSharedFilesOpen) {
  SLM_REQUIRE_SHARED_DATA(data);
  int n = 0;
  for (const char* sub : {"models", "tokenizer"}) {
    for (const auto& entry : std::filesystem::directory_iterator(data / sub)) {
      if (entry.path().extension() != ".gguf") continue;
      auto g = GgufFile::open(entry.path().string());
      EXPECT_TRUE(g->has("general.architecture")) << entry.path();
      for (const auto& t : g->tensors())
        EXPECT_LE(t.data + t.nbytes, g->tensors()[0].data - g->tensors()[0].offset - g->data_offset() + g->file_size());
      ++n;
    }
  }
  EXPECT_GE(n, 6);
  auto v = GgufFile::open((data / "tokenizer/ggml-vocab-llama-spm.gguf").string());
  EXPECT_EQ(v->tensors().size(), 0u);
  EXPECT_EQ(v->metadata().size(), 22u);
  EXPECT_EQ(v->get_int("llama.embedding_length"), 4096);
  auto gpt2 = GgufFile::open((data / "tokenizer/ggml-vocab-gpt-2.gguf").string());
  EXPECT_EQ(gpt2->get_string_array("tokenizer.ggml.tokens").back(), "<|endoftext|>");
}

}  // namespace
}  // namespace slm
