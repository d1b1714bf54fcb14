// Mutation fuzzing of the GGUF reader: thousands of corrupted variants of valid files (bit flips,
// interesting byte and integer values, length and count fields set huge, truncations, insertions,
// deletions) must each either parse into a self-consistent GgufFile or throw slm::Error: never
// crash, never throw anything else. Built under ASan+UBSan in CI (-DSLM_SANITIZE=ON), where any
// out-of-bounds read or overflow is reported.
// Deterministic (fixed seeds); bounded by an iteration count and by a wall-clock cap taken from
// SLM_FUZZ_SECONDS (default 20 s for the whole binary).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "test_util.h"

namespace slm {
namespace {

using Clock = std::chrono::steady_clock;

double budget_seconds() {
  if (const char* s = std::getenv("SLM_FUZZ_SECONDS")) return std::atof(s);
  return 20.0;
}
// Shared by all tests of this binary.
const Clock::time_point kStart = Clock::now();
bool out_of_time(double share) {
  return std::chrono::duration<double>(Clock::now() - kStart).count() > budget_seconds() * share;
}

// Offsets of the fields worth corrupting on purpose (counts, lengths, type ids, dims, offsets),
// found by walking a valid file with an independent minimal walker.
struct Field {
  size_t pos;
  int width;  // 4 or 8 bytes
};

class Walker {
 public:
  explicit Walker(const std::string& b) : b_(b) {}
  std::vector<Field> walk() {
    try {
      pos_ = 8;
      uint64_t n_tensors = u64(), n_kv = u64();
      for (uint64_t k = 0; k < n_kv; ++k) {
        str();
        value(u32());
      }
      for (uint64_t k = 0; k < n_tensors; ++k) {
        str();
        uint32_t n = u32();
        for (uint32_t d = 0; d < n; ++d) u64();
        u32();
        u64();
      }
    } catch (const std::out_of_range&) {
      // A truncated base (prefix of a real file): keep the fields found so far.
    }
    return fields_;
  }

 private:
  void need(size_t n) {
    if (pos_ + n > b_.size()) throw std::out_of_range("end");
  }
  uint32_t u32() {
    need(4);
    uint32_t v;
    std::memcpy(&v, b_.data() + pos_, 4);
    fields_.push_back({pos_, 4});
    pos_ += 4;
    return v;
  }
  uint64_t u64() {
    need(8);
    uint64_t v;
    std::memcpy(&v, b_.data() + pos_, 8);
    fields_.push_back({pos_, 8});
    pos_ += 8;
    return v;
  }
  void str() {
    uint64_t n = u64();
    need(n);
    pos_ += n;
  }
  void value(uint32_t t) {
    static const size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t == 8) return str();
    if (t == 9) {
      uint32_t it = u32();
      uint64_t n = u64();
      for (uint64_t k = 0; k < n; ++k) value(it);
      return;
    }
    if (t > 12) throw std::out_of_range("type");
    need(kSize[t]);
    pos_ += kSize[t];
  }
  const std::string& b_;
  size_t pos_ = 0;
  std::vector<Field> fields_;
};

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> d(n);
  for (auto& x : d) x = static_cast<uint8_t>(rng());
  return d;
}

// A small valid file with nested arrays, strings and several tensor types.
std::string writer_base(const test::TempDir& dir, uint64_t alignment) {
  std::mt19937_64 rng(1);
  GgufWriter w(alignment);
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_f32("llama.rope.freq_base", 10000.f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "\xe7\xbb\x99", ""});
  w.set_f32_array("tokenizer.ggml.scores", {0.f, -1.f, -2.f, -3.f, -4.f, -5.f});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  using V = GgufValue;
  w.set("nested", V::of_array(GgufType::ARRAY, {
      V::of_array(GgufType::UINT64, {V::of_uint(GgufType::UINT64, 7)}),
      V::of_array(GgufType::STRING, {V::of_string("x"), V::of_string("yz")}),
      V::of_array(GgufType::ARRAY, {V::of_array(GgufType::INT8, {V::of_int(GgufType::INT8, -1)})}),
  }));
  w.set("f64", V::of_float(GgufType::FLOAT64, 0.5));
  w.set("i16", V::of_int(GgufType::INT16, -3));
  w.add_tensor("token_embd.weight", DType::F16, {8, 6}, random_bytes(rng, 8 * 6 * 2));
  w.add_tensor("blk.0.attn_q.weight", DType::Q8_0, {32, 2}, random_bytes(rng, 2 * 34));
  w.add_tensor("blk.0.attn_k.weight", DType::Q4_0, {64, 1}, random_bytes(rng, 2 * 18));
  w.add_tensor("blk.0.ffn_down.weight", DType::Q4_K, {256}, random_bytes(rng, 144));
  w.add_tensor("output_norm.weight", DType::F32, {8}, random_bytes(rng, 32));
  std::string p = (dir / ("base" + std::to_string(alignment) + ".gguf")).string();
  w.write(p);
  return read_file(p);
}

// Removes the old file first: on ext4, truncating and rewriting a file forces a writeback on close
// (auto_da_alloc), which made every iteration wait for the disk.
void write_plain(const std::string& path, const std::string& bytes) {
  std::remove(path.c_str());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Reads everything a consumer would and checks the invariants the reader promises.
void exercise(const GgufFile& g) {
  for (const auto& [key, value] : g.metadata()) {
    (void)value.to_string();
    try { (void)g.get_int(key); } catch (const Error&) {}
    try { (void)g.get_float(key); } catch (const Error&) {}
    try { (void)g.get_string(key); } catch (const Error&) {}
    try { (void)g.get_bool(key, false); } catch (const Error&) {}
    try { (void)g.get_int_array(key); } catch (const Error&) {}
    try { (void)g.get_float_array(key); } catch (const Error&) {}
    try { (void)g.get_string_array(key); } catch (const Error&) {}
  }
  ASSERT_EQ(g.alignment() & (g.alignment() - 1), 0u);
  const uint8_t* base = nullptr;
  for (const GgufTensorInfo& t : g.tensors()) {
    const uint8_t* b = t.data - t.offset - g.data_offset();
    if (base == nullptr) base = b;
    ASSERT_EQ(b, base) << t.name;
    ASSERT_GE(t.shape.size(), 1u);
    ASSERT_LE(t.shape.size(), 4u);
    ASSERT_EQ(t.offset % g.alignment(), 0u);
    ASSERT_LE(g.data_offset() + t.offset + t.nbytes, g.file_size()) << t.name;
    ASSERT_EQ(t.nbytes, row_bytes(t.type, t.shape[0]) * static_cast<size_t>(t.n_elements() / t.shape[0]));
    ASSERT_EQ(g.find_tensor(t.name), &t);
    if (t.nbytes > 0) {
      volatile uint8_t sink = t.data[0];
      sink = t.data[t.nbytes - 1];
      (void)sink;
    }
  }
}

struct Stats {
  int parsed = 0, rejected = 0, iterations = 0;
};

const uint64_t kInteresting[] = {0, 1, 2, 3, 4, 7, 8, 9, 12, 13, 31, 32, 33, 0x7f, 0x80, 0xff, 0x100,
                                 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
                                 0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
                                 0xffffffffffffffffull, 0xfffffffffffffff0ull};
const uint8_t kInterestingBytes[] = {0, 1, 2, 4, 8, 9, 0x0c, 0x0d, 0x20, 0x7f, 0x80, 0xfe, 0xff};

std::string mutate(const std::string& base, const std::vector<Field>& fields, std::mt19937_64& rng) {
  std::string b = base;
  int n_mutations = 1 + static_cast<int>(rng() % 3);
  for (int m = 0; m < n_mutations && !b.empty(); ++m) {
    size_t pos = rng() % b.size();
    switch (rng() % 8) {
      case 0:  // bit flips
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
          b[rng() % b.size()] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // interesting byte
        b[pos] = static_cast<char>(kInterestingBytes[rng() % std::size(kInterestingBytes)]);
        break;
      case 2:
      case 3: {  // a real count/length/type/dim/offset field set to an interesting or random value
        if (fields.empty()) break;
        const Field& f = fields[rng() % fields.size()];
        uint64_t v = (rng() % 4 == 0) ? rng() : kInteresting[rng() % std::size(kInteresting)];
        if (rng() % 4 == 0) v = b.size() + (rng() % 64) - 32;  // near the file size
        if (f.pos + f.width <= b.size()) std::memcpy(&b[f.pos], &v, static_cast<size_t>(f.width));
        break;
      }
      case 4: {  // an interesting integer at any position
        uint64_t v = kInteresting[rng() % std::size(kInteresting)];
        int width = (rng() % 2) ? 8 : 4;
        if (pos + static_cast<size_t>(width) <= b.size()) std::memcpy(&b[pos], &v, static_cast<size_t>(width));
        break;
      }
      case 5:  // truncation
        b.resize(rng() % b.size());
        break;
      case 6: {  // insertion of random or copied bytes
        size_t n = 1 + rng() % 16;
        std::string ins;
        for (size_t k = 0; k < n; ++k) ins.push_back(static_cast<char>(rng()));
        b.insert(pos, ins);
        break;
      }
      case 7:  // deletion
        b.erase(pos, 1 + rng() % 16);
        break;
    }
  }
  return b;
}

Stats fuzz(const std::string& base, uint64_t seed, int iterations, double time_share) {
  test::TempDir dir;
  const std::string p = (dir / "fuzz.gguf").string();
  const std::vector<Field> fields = Walker(base).walk();
  std::mt19937_64 rng(seed);
  Stats s;
  for (int it = 0; it < iterations; ++it) {
    // At least 64 iterations whatever the clock says, so every base is always exercised.
    if (it >= 64 && it % 64 == 0 && out_of_time(time_share)) break;
    std::string b = mutate(base, fields, rng);
    write_plain(p, b);
    ++s.iterations;
    try {
      auto g = GgufFile::open(p);
      exercise(*g);
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "invariant broken at iteration " << it << " (seed " << seed << ")";
        return s;
      }
      ++s.parsed;
    } catch (const Error& e) {
      ++s.rejected;
      if (std::string(e.what()).find(p) == std::string::npos) {
        ADD_FAILURE() << "error does not name the file: " << e.what();
        return s;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << it << " (seed " << seed << "): not slm::Error: " << e.what();
      return s;
    }
  }
  std::printf("  %d iterations: %d parsed, %d rejected\n", s.iterations, s.parsed, s.rejected);
  return s;
}

TEST(GgufFuzz, WriterFile) {
  test::TempDir dir;
  const std::string base = writer_base(dir, 32);
  ASSERT_NO_THROW(GgufFile::open((dir / "base32.gguf").string()));
  Stats s = fuzz(base, 12345, 20000, 0.4);
  EXPECT_GT(s.iterations, 0);
  // Some mutations (in tensor data or padding) leave a valid file; most must be rejected.
  EXPECT_GT(s.parsed, 0);
  EXPECT_GT(s.rejected, 0);
}

TEST(GgufFuzz, WriterFileWideAlignment) {
  test::TempDir dir;
  const std::string base = writer_base(dir, 64);
  Stats s = fuzz(base, 777, 8000, 0.6);
  EXPECT_GT(s.rejected, 0);
}

TEST(GgufFuzz, RealFiles) {
  SLM_REQUIRE_SHARED_DATA(data);
  test::TempDir dir;
  // (a) the first 4 KB of a real model: header and the first metadata as llama.cpp's writer
  //     lays them out; (b) a valid small file built from its scalar metadata, shortened token
  //     arrays and its small tensors, so that mutations also reach real tensor infos.
  auto g = GgufFile::open((data / "models/t-llama-spm-gqa.gguf").string());
  const std::string full = read_file((data / "models/t-llama-spm-gqa.gguf").string());
  Stats a = fuzz(full.substr(0, 4096), 99, 4000, 0.8);
  EXPECT_GT(a.rejected, 0);

  GgufWriter w;
  for (const auto& [key, value] : g->metadata()) {
    GgufValue v = value;
    if (v.type == GgufType::ARRAY && v.items.size() > 40) v.items.resize(40);
    w.set(key, v);
  }
  int added = 0;
  for (const GgufTensorInfo& t : g->tensors()) {
    if (t.nbytes > 4096 || added == 6) continue;
    w.add_tensor(t.name, t.type, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes));
    ++added;
  }
  ASSERT_GT(added, 0);
  const std::string small = (dir / "small.gguf").string();
  w.write(small);
  Stats b = fuzz(read_file(small), 4242, 6000, 1.0);
  EXPECT_GT(b.rejected, 0);
}

}  // namespace
}  // namespace slm
