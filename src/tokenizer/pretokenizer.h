// Regex pre-tokenizers of byte-level BPE vocabularies, chosen by GGUF `tokenizer.ggml.pre`, with
// the same regex lists that llama.cpp uses for each name. A list is applied in order: each regex
// splits every current fragment into its matches and the gaps between them, both kept.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace slm {

struct PreTokenizerSpec {
  std::vector<std::string> regexes;  // PCRE2 syntax (UTF + UCP mode)
  bool ignore_merges = false;        // a whole word that is a token is emitted as it is
  bool add_bos = false;              // llama.cpp's default for add_bos when the file omits it
};

// The spec for a `tokenizer.ggml.pre` name ("" means absent: llama.cpp's "default").
// Returns false when the name is unknown.
bool find_pretokenizer(std::string_view name, PreTokenizerSpec& spec);

// Names find_pretokenizer knows (for error messages and tests).
std::vector<std::string> pretokenizer_names();

// A compiled regex list. Immutable after construction; split() is safe to call concurrently.
class RegexSplitter {
 public:
  // Throws slm::Error naming the pattern if one does not compile.
  explicit RegexSplitter(const std::vector<std::string>& patterns);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Byte ranges [begin, end) of the words of `text`, in order, covering all of it. Invalid UTF-8
  // bytes never reach the regexes: each becomes a word of its own.
  std::vector<std::pair<size_t, size_t>> split(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
