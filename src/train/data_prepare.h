// `slm data prepare`: text corpora -> a data directory of token shards (train/token_shards.h).
//
// Documents:
//   - A file whose name ends in ".jsonl": every non-blank line is a JSON object whose string
//     "text" field is one document (other fields are ignored); anything else is an error naming
//     file:line.
//   - Other files are plain UTF-8 text, cut into documents by DocSplit:
//       Blank  documents are separated by one or more blank lines (only spaces/tabs), their lines
//              joined with "\n" (the default);
//       Line   every non-blank line is a document;
//       File   the whole file is one document (trailing newlines dropped).
//     A "\r" at the end of a line is dropped (CRLF files).
//   Documents whose text is empty are skipped and not counted.
// Each document is stored as [BOS if vocab().add_bos and bos >= 0] + encode(text) + [EOS if
// eos >= 0]; special-token text inside documents is tokenized as plain text.
//
// Split: document i (0-based, in input order, over all files) goes to validation when
// is_validation_document(seed, i, fraction). If that picked none while fraction > 0 and there are
// at least 2 documents, the last document goes to validation instead of training. Fraction 0
// gives an empty (but valid) val.bin.
//
// Input is read line by line; documents are tokenized in parallel batches and written in input
// order as they come, so memory holds one batch, not the corpus.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace slm {

enum class DocSplit { Blank, Line, File };
// "blank" | "line" | "file"; throws slm::Error otherwise.
DocSplit parse_doc_split(const std::string& name);
const char* doc_split_name(DocSplit s);

struct PrepareProgress {
  uint64_t bytes_read = 0, bytes_total = 0;  // input bytes consumed / sum of input file sizes
  uint64_t documents = 0;
  uint64_t tokens = 0;  // written so far, train + val
  double seconds = 0;
};

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string tokenizer;  // any GGUF with tokenizer.* metadata (vocabulary-only or a model)
  std::string out_dir;
  double val_fraction = 0.05;  // [0, 1]
  uint64_t seed = 0;
  DocSplit split = DocSplit::Blank;
  int threads = 0;  // 0: default_thread_count()
  // Called after every batch and once at the end (from the calling thread).
  std::function<void(const PrepareProgress&)> progress;
};

struct PrepareResult {
  uint64_t train_documents = 0, val_documents = 0;
  uint64_t train_tokens = 0, val_tokens = 0;
  uint64_t bytes_read = 0;
  uint64_t tokenizer_fingerprint = 0;
  uint32_t vocab_size = 0;
  double seconds = 0;
};

// Writes out_dir/{train.bin, val.bin, tokenizer.gguf, meta.json} (creating out_dir). Throws
// slm::Error on bad input (naming the file and line) and leaves no partial shard behind.
PrepareResult prepare_data(const PrepareOptions& opts);

// The split rule: a hash of (seed, index) mapped to [0, 1) compared with `fraction`.
bool is_validation_document(uint64_t seed, uint64_t index, double fraction);

}  // namespace slm
