// Token shards: reading (mapped, validated at open) and streaming writing (temporary file, header
// patched at the end, fsync, rename). Format in token_shards.h.
#include "train/token_shards.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "io/mapped_file.h"

namespace slm {

namespace {

uint32_t load_u32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t load_u64(const unsigned char* p) {
  return uint64_t(load_u32(p)) | uint64_t(load_u32(p + 4)) << 32;
}
void store_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void store_u64(unsigned char* p, uint64_t v) {
  store_u32(p, static_cast<uint32_t>(v));
  store_u32(p + 4, static_cast<uint32_t>(v >> 32));
}


// The 64-byte header as it goes on disk.
void encode_header(const ShardHeader& h, unsigned char* out) {
  std::memset(out, 0, kShardHeaderBytes);
  std::memcpy(out, kShardMagic, 8);
  store_u32(out + 8, h.version);
  store_u32(out + 12, h.token_bytes);
  store_u32(out + 16, h.vocab_size);
  store_u64(out + 24, h.tokenizer_fingerprint);
  store_u64(out + 32, h.n_tokens);
  store_u64(out + 40, h.n_documents);
  store_u64(out + 48, h.checksum);
}

}  // namespace


uint32_t shard_token_bytes(uint32_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

// --- TokenShard --------------------------------------------------------------------------------

TokenShard::~TokenShard() = default;

std::unique_ptr<TokenShard> TokenShard::open(const std::string& path) {
  std::unique_ptr<TokenShard> s(new TokenShard());
  s->file_ = std::make_unique<MappedFile>(path);
  const unsigned char* p = s->file_->data();
  const size_t size = s->file_->size();
  if (size < kShardHeaderBytes)
    throw Error(path + ": truncated token shard: " + std::to_string(size) +
                " bytes, smaller than the " + std::to_string(kShardHeaderBytes) + "-byte header");
  if (std::memcmp(p, kShardMagic, 8) != 0)
    throw Error(path + ": not a token shard (bad magic; expected \"SLMTOKS\", the file "
                "`slm data prepare` writes)");
  ShardHeader& h = s->header_;
  h.version = load_u32(p + 8);
  h.token_bytes = load_u32(p + 12);
  h.vocab_size = load_u32(p + 16);
  h.tokenizer_fingerprint = load_u64(p + 24);
  h.n_tokens = load_u64(p + 32);
  h.n_documents = load_u64(p + 40);
  h.checksum = load_u64(p + 48);
  if (h.version != kShardVersion)
    throw Error(path + ": token shard version " + std::to_string(h.version) +
                " is not supported (expected " + std::to_string(kShardVersion) + ")");
  if (h.token_bytes != 2 && h.token_bytes != 4)
    throw Error(path + ": bytes per token is " + std::to_string(h.token_bytes) +
                " (expected 2 or 4)");
  if (h.vocab_size == 0) throw Error(path + ": vocabulary size is 0");
  if (h.token_bytes == 2 && h.vocab_size > 65536)
    throw Error(path + ": vocabulary size " + std::to_string(h.vocab_size) +
                " does not fit 2-byte tokens");
  if (h.n_documents > h.n_tokens)
    throw Error(path + ": " + std::to_string(h.n_documents) + " documents but only " +
                std::to_string(h.n_tokens) + " tokens (every document has at least one)");
  const uint64_t payload = size - kShardHeaderBytes;
  if (h.n_tokens > payload / h.token_bytes || h.n_tokens * h.token_bytes != payload) {
    if (h.n_tokens > payload / h.token_bytes)
      throw Error(path + ": truncated token shard: the header promises " +
                  std::to_string(h.n_tokens) + " tokens (" +
                  std::to_string(h.n_tokens * uint64_t{h.token_bytes}) + " bytes) but only " +
                  std::to_string(payload) + " bytes follow the header");
    throw Error(path + ": " + std::to_string(payload - h.n_tokens * h.token_bytes) +
                " unexpected bytes after the " + std::to_string(h.n_tokens) + " tokens");
  }
  s->tokens_ = p + kShardHeaderBytes;
  // One pass: checksum and id range (so read() never hands out an id outside the vocabulary).
  const uint64_t sum = fnv1a64(s->tokens_, payload);
  if (sum != h.checksum)
    throw Error(path + ": checksum mismatch (header " + hex64(h.checksum) + ", data " + hex64(sum) +
                "): the file is corrupt; run `slm data prepare` again");
  uint32_t max_id = 0;
  uint64_t max_at = 0;
  for (uint64_t i = 0; i < h.n_tokens; ++i) {
    const unsigned char* t = s->tokens_ + i * h.token_bytes;
    uint32_t id = h.token_bytes == 2 ? uint32_t(t[0]) | uint32_t(t[1]) << 8 : load_u32(t);
    if (id > max_id) {
      max_id = id;
      max_at = i;
    }
  }
  if (h.n_tokens > 0 && max_id >= h.vocab_size)
    throw Error(path + ": token " + std::to_string(max_at) + " has id " + std::to_string(max_id) +
                ", outside the vocabulary of " + std::to_string(h.vocab_size));
  return s;
}

void TokenShard::read(int64_t start, int64_t n, int32_t* out) const {
  if (start < 0 || n < 0 || start > size() || n > size() - start)
    throw Error("token shard: range [" + std::to_string(start) + ", " + std::to_string(start + n) +
                ") is outside the shard's " + std::to_string(size()) + " tokens");
  const unsigned char* p = tokens_ + static_cast<uint64_t>(start) * header_.token_bytes;
  if (header_.token_bytes == 2) {
    for (int64_t i = 0; i < n; ++i, p += 2) out[i] = int32_t(uint32_t(p[0]) | uint32_t(p[1]) << 8);
  } else {
    for (int64_t i = 0; i < n; ++i, p += 4) out[i] = static_cast<int32_t>(load_u32(p));
  }
}

void check_shard_tokenizer(const TokenShard& shard, const std::string& path, uint64_t fingerprint,
                           uint32_t vocab_size) {
  const ShardHeader& h = shard.header();
  if (h.tokenizer_fingerprint != fingerprint)
    throw Error(path + ": made with a different tokenizer (shard's tokenizer fingerprint " +
                hex64(h.tokenizer_fingerprint) + ", this tokenizer's " + hex64(fingerprint) +
                "); prepare the data again with this tokenizer (slm data prepare -t ...)");
  if (h.vocab_size != vocab_size)
    throw Error(path + ": vocabulary size " + std::to_string(h.vocab_size) +
                " differs from the tokenizer's " + std::to_string(vocab_size));
}

// --- ShardWriter -------------------------------------------------------------------------------

ShardWriter::ShardWriter(std::string path, uint32_t vocab_size, uint64_t tokenizer_fingerprint)
    : path_(std::move(path)) {
  if (vocab_size == 0) throw Error(path_ + ": cannot write a token shard for an empty vocabulary");
  header_.version = kShardVersion;
  header_.token_bytes = shard_token_bytes(vocab_size);
  header_.vocab_size = vocab_size;
  header_.tokenizer_fingerprint = tokenizer_fingerprint;
  header_.checksum = kFnvOffset;  // running value until finish()

  out_ = std::make_unique<AtomicFileWriter>(path_);
  // Placeholder header; the real one is written by finish().
  unsigned char head[kShardHeaderBytes];
  encode_header(header_, head);
  if (std::fwrite(head, 1, sizeof head, out_->file()) != sizeof head) out_->fail("write failed", errno);
}

ShardWriter::~ShardWriter() = default;
void ShardWriter::add_document(const int32_t* ids, size_t n) {
  if (!out_) throw Error(path_ + ": shard writer already finished");
  if (n == 0) return;  // an empty document has nothing to store
  const uint32_t tb = header_.token_bytes;
  buf_.resize(n * tb);
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || static_cast<uint32_t>(ids[i]) >= header_.vocab_size)
      throw Error(path_ + ": token id " + std::to_string(ids[i]) + " is outside the vocabulary of " +
                  std::to_string(header_.vocab_size));
    const uint32_t id = static_cast<uint32_t>(ids[i]);
    if (tb == 2) {
      buf_[2 * i] = static_cast<unsigned char>(id);
      buf_[2 * i + 1] = static_cast<unsigned char>(id >> 8);
    } else {
      store_u32(&buf_[4 * i], id);
    }
  }
  if (std::fwrite(buf_.data(), 1, buf_.size(), out_->file()) != buf_.size()) out_->fail("write failed", errno);
  header_.checksum = fnv1a64(buf_.data(), buf_.size(), header_.checksum);
  header_.n_tokens += n;
  header_.n_documents += 1;
}

void ShardWriter::finish() {
  if (!out_) throw Error(path_ + ": shard writer already finished");
  unsigned char head[kShardHeaderBytes];
  encode_header(header_, head);
  std::FILE* f = out_->file();
  if (std::fseek(f, 0, SEEK_SET) != 0) out_->fail("seek failed", errno);
  if (std::fwrite(head, 1, sizeof head, f) != sizeof head) out_->fail("write failed", errno);
  out_->commit();
  out_.reset();
}

}  // namespace slm
