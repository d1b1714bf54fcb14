// Token shards: the tokenized training data that `slm data prepare` writes and `slm train` reads.
//
// A data directory holds
//   train.bin, val.bin  token shards (format below), documents split between them
//   tokenizer.gguf      the tokenizer metadata the shards were made with (GGUF, tokenizer.* keys)
//   meta.json           inputs, counts and split settings, for people
//
// Shard file, little-endian:
//   offset 0   char[8]  magic "SLMTOKS\0"
//   offset 8   u32      version (1)
//   offset 12  u32      bytes per token: 2 (vocab <= 65536) or 4
//   offset 16  u32      vocab size
//   offset 20  u32      reserved (0)
//   offset 24  u64      tokenizer fingerprint (Tokenizer::fingerprint())
//   offset 32  u64      token count
//   offset 40  u64      document count
//   offset 48  u64      FNV-1a 64 of the token bytes (detects truncation and corruption)
//   offset 56  u64      reserved (0)
//   offset 64  tokens   count * bytes-per-token, each document as [BOS] tokens... EOS
// Files are written atomically (temporary file + fsync + rename).
//
// Validation happens at open: magic, version, token width, sizes, the checksum and the range of
// every token id (< vocab size) are checked in one sequential pass, so read() never returns an id
// outside the vocabulary. Opening costs one read of the file (about 1 s per GB).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>

#include "core/hash.h"
#include "io/atomic_file.h"
#include <string>
#include <vector>

namespace slm {

class MappedFile;

struct ShardHeader {
  uint32_t version = 1;
  uint32_t token_bytes = 2;
  uint32_t vocab_size = 0;
  uint64_t tokenizer_fingerprint = 0;
  uint64_t n_tokens = 0;
  uint64_t n_documents = 0;
  uint64_t checksum = 0;
};

// A memory-mapped shard. open() validates magic, version, sizes and the checksum and throws
// slm::Error naming the file and what is wrong.
class TokenShard {
 public:
  static std::unique_ptr<TokenShard> open(const std::string& path);
  ~TokenShard();

  const ShardHeader& header() const { return header_; }
  int64_t size() const { return static_cast<int64_t>(header_.n_tokens); }
  // Copies tokens [start, start + n) to out; throws slm::Error if the range is outside the shard.
  void read(int64_t start, int64_t n, int32_t* out) const;

 private:
  TokenShard() = default;
  std::unique_ptr<MappedFile> file_;
  ShardHeader header_;
  const unsigned char* tokens_ = nullptr;
};

// Throws slm::Error unless the shard was made with the tokenizer whose fingerprint and vocabulary
// size are given; the message names the file and both fingerprints.
void check_shard_tokenizer(const TokenShard& shard, const std::string& path, uint64_t fingerprint,
                           uint32_t vocab_size);

inline constexpr char kShardMagic[8] = {'S', 'L', 'M', 'T', 'O', 'K', 'S', '\0'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;
// Bytes per token for a vocabulary: 2 when every id fits in 16 bits, else 4.
uint32_t shard_token_bytes(uint32_t vocab_size);

// Writes one shard as a stream: documents are appended to a temporary file beside `path`
// (".NAME.tmp-XXXXXX"), the checksum is kept as the bytes go out, and finish() patches the header,
// fsyncs and renames the file over `path`. Destroying a writer that was not finished removes the
// temporary file, so a failed run leaves no partial shard behind.
class ShardWriter {
 public:
  ShardWriter(std::string path, uint32_t vocab_size, uint64_t tokenizer_fingerprint);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends one document (ids already including BOS/EOS). Throws slm::Error if an id is outside
  // [0, vocab size) or the write fails.
  void add_document(const int32_t* ids, size_t n);
  void add_document(const std::vector<int32_t>& ids) { add_document(ids.data(), ids.size()); }
  // Patches the header, fsyncs and renames; the writer accepts nothing afterwards.
  void finish();

  const ShardHeader& header() const { return header_; }

 private:
  std::string path_;
  std::unique_ptr<AtomicFileWriter> out_;  // null once finished
  ShardHeader header_;
  std::vector<unsigned char> buf_;  // encoded tokens of the current document
};


}  // namespace slm
