// Byte-level BPE training (GPT-2 style), producing a Vocab that Tokenizer::from_vocab builds and
// that tokenizer/vocab_writer.h writes as GGUF metadata.
//
// The trained vocabulary is laid out as:
//   ids 0..255                 one token per byte value b, text byte_to_unicode(b), type Normal
//                              (so byte b is id b and every byte string is representable);
//   ids 256, 257, 258          BOS "<|bos|>", EOS "<|eos|>", PAD "<|pad|>" (type Control);
//   ids 259 .. 259+k-1         the k user special tokens, in the order given (type Control: they
//                              are matched only with parse_special and hidden when decoding);
//   ids 259+k ..               merged tokens, in merge order (type Normal).
// Merges are learned on words cut by the "gpt-2" pre-tokenizer; special-token texts in the corpus
// are cut out first, so no merge ever spans or forms them. At each step the most frequent adjacent
// pair is merged; ties go to the pair with the smaller (left id, right id). Training stops at
// vocab_size tokens or when no pair occurs min_frequency times. Nothing depends on hash order or
// timing: the same input gives the same vocabulary. (Rarely two merges spell the same text, e.g.
// "ab"+"c" and "a"+"bc"; the second reuses the first one's id, as Hugging Face's trainer does, so
// there can be more merges than merged tokens.)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace slm {

struct BpeTrainOptions {
  int64_t vocab_size = 4096;                 // total tokens: 256 bytes + specials + merges
  std::vector<std::string> special_tokens;   // user specials, after BOS/EOS/PAD
  int64_t min_frequency = 2;                 // a pair must occur this often to be merged
  std::string bos_token = "<|bos|>";
  std::string eos_token = "<|eos|>";
  std::string pad_token = "<|pad|>";
  std::string pre = "gpt-2";                 // tokenizer.ggml.pre of the result
  std::string name;                          // general.name of the result ("" : none)
};

struct BpeTrainStats {
  int64_t bytes = 0;          // corpus bytes read (text only, JSONL: the "text" values)
  int64_t words = 0;          // pre-token occurrences
  int64_t unique_words = 0;   // distinct pre-tokens
  int64_t merges = 0;         // merges learned
  double count_seconds = 0;   // reading + pre-tokenizing + counting
  double merge_seconds = 0;   // the merge loop
};

// Progress in [0, 1]: reading and counting take [0, 0.5], merging (0.5, 1].
using BpeProgress = std::function<void(double)>;

// Trains on files: plain text, or JSONL (name ends in ".jsonl") with a string "text" field per
// line. Files are streamed; only the word counts are held in memory. Throws slm::Error for a
// missing/unreadable file, a malformed JSONL line (file:line), an empty corpus, a vocab_size
// smaller than 256 + specials, or a duplicate/empty/colliding special token.
Vocab train_bpe(const std::vector<std::string>& input_files, const BpeTrainOptions& options,
                const BpeProgress& progress = {}, BpeTrainStats* stats = nullptr);

// The same over in-memory documents (each pre-tokenized on its own).
Vocab train_bpe_texts(const std::vector<std::string>& texts, const BpeTrainOptions& options,
                      const BpeProgress& progress = {}, BpeTrainStats* stats = nullptr);

// Streams the text of a corpus file in pieces of about 1 MiB, each cut at a line start whose first
// byte is not whitespace (where GPT-2-style pre-tokenizers never join across), so pre-tokenizing
// the pieces one by one gives the same words as the whole file. JSONL files (".jsonl") give each
// line's "text" value as a piece of its own. `on_bytes` (optional) gets the file bytes consumed so
// far, for progress. Throws slm::Error naming the file (and line) on failure.
void for_each_corpus_piece(const std::string& path,
                           const std::function<void(std::string_view)>& on_piece,
                           const std::function<void(uint64_t)>& on_bytes = {});

}  // namespace slm
