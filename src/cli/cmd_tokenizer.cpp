// slm tokenizer train -i FILE... --vocab N -o TOKENIZER.gguf [--special TOKEN ...]
//   trains a byte-level BPE tokenizer (tokenizer/bpe_trainer.h) and writes it as a
//   vocabulary-only GGUF file (tokenizer/vocab_writer.h).
// slm tokenizer eval -m TOKENIZER_OR_MODEL.gguf -i FILE... [--json]
//   encodes corpus files and reports characters, bytes and words per token, so that tokenizers
//   can be compared on the same text.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_writer.h"

namespace slm::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct TrainFlags {
  std::vector<std::string> inputs;
  int64_t vocab = 0;
  std::string output;
  std::vector<std::string> specials;
  int64_t min_frequency = 2;
  std::string name;
};

struct EvalFlags {
  std::string model;
  std::vector<std::string> inputs;
  bool json = false;
};

void run_train(const TrainFlags& f) {
  BpeTrainOptions o;
  o.vocab_size = f.vocab;
  o.special_tokens = f.specials;
  o.min_frequency = f.min_frequency;
  o.name = f.name;
  // A progress line only on a terminal: logs and pipes get the summary line alone.
  const bool tty = isatty(fileno(stderr)) != 0;
  int shown = -1;
  BpeProgress progress;
  if (tty)
    progress = [&shown](double p) {
      const int pct = static_cast<int>(p * 100.0);
      if (pct == shown) return;
      shown = pct;
      std::fprintf(stderr, "\rtokenizer train: %s %3d%%", p <= 0.5 ? "counting words" : "merging",
                   pct);
      std::fflush(stderr);
    };
  const auto t0 = Clock::now();
  BpeTrainStats st;
  const Vocab v = train_bpe(f.inputs, o, progress, &st);
  write_tokenizer_gguf(f.output, v);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (tty) std::fprintf(stderr, "\r%*s\r", 40, "");
  std::fprintf(stderr,
               "tokenizer train: vocab %zu (%lld merges, %zu special) from %.1f MB, %lld words "
               "(%lld distinct) in %.2f s (counting %.2f s, merging %.2f s) -> %s\n",
               v.tokens.size(), static_cast<long long>(st.merges), 3 + f.specials.size(),
               static_cast<double>(st.bytes) / 1e6, static_cast<long long>(st.words),
               static_cast<long long>(st.unique_words), secs, st.count_seconds, st.merge_seconds,
               f.output.c_str());
  if (static_cast<int64_t>(v.tokens.size()) < f.vocab)
    std::fprintf(stderr,
                 "tokenizer train: stopped at %zu of %lld tokens: no pair of tokens occurs %lld "
                 "times or more\n",
                 v.tokens.size(), static_cast<long long>(f.vocab),
                 static_cast<long long>(f.min_frequency));
}

struct EvalCounts {
  int64_t bytes = 0, chars = 0, words = 0, tokens = 0;
  double seconds = 0;  // encoding only
};

// Code points (an invalid byte counts as one) and whitespace-separated words of a piece. Pieces
// are cut at line starts, so no word spans two pieces.
void count_text(std::string_view s, EvalCounts& c) {
  c.bytes += static_cast<int64_t>(s.size());
  for (size_t i = 0; i < s.size();) {
    utf8_decode(s, i);
    ++c.chars;
  }
  bool in_word = false;
  for (unsigned char ch : s) {
    const bool space = ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
    if (!space && !in_word) ++c.words;
    in_word = !space;
  }
}

void run_eval(const EvalFlags& f) {
  auto gguf = GgufFile::open(f.model);
  auto tok = Tokenizer::from_gguf(*gguf);
  EvalCounts total;
  std::vector<std::pair<std::string, EvalCounts>> per_file;
  for (const auto& path : f.inputs) {
    EvalCounts c;
    for_each_corpus_piece(path, [&](std::string_view piece) {
      count_text(piece, c);
      const auto t0 = Clock::now();
      // No BOS and no special-token parsing: only the text's own tokens are counted.
      c.tokens += static_cast<int64_t>(tok->encode(piece, false, false).size());
      c.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    });
    total.bytes += c.bytes;
    total.chars += c.chars;
    total.words += c.words;
    total.tokens += c.tokens;
    total.seconds += c.seconds;
    per_file.emplace_back(path, c);
  }
  if (total.tokens == 0) throw Error("tokenizer eval: the input files hold no text");
  auto ratio = [](int64_t a, int64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  const Vocab& v = tok->vocab();

  if (f.json) {
    auto stats = [&](const EvalCounts& c) {
      return nlohmann::json{{"bytes", c.bytes},
                            {"chars", c.chars},
                            {"words", c.words},
                            {"tokens", c.tokens},
                            {"chars_per_token", ratio(c.chars, c.tokens)},
                            {"bytes_per_token", ratio(c.bytes, c.tokens)},
                            {"tokens_per_word", ratio(c.tokens, c.words)},
                            {"seconds", c.seconds},
                            {"tokens_per_second", c.seconds > 0 ? c.tokens / c.seconds : 0.0}};
    };
    nlohmann::json j = stats(total);
    j["tokenizer"] = f.model;
    j["model"] = v.model;
    j["pre"] = v.pre;
    j["vocab_size"] = tok->vocab_size();
    j["files"] = nlohmann::json::array();
    for (const auto& [path, c] : per_file) {
      nlohmann::json fj = stats(c);
      fj["path"] = path;
      j["files"].push_back(fj);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("tokenizer   %s (%s%s%s, %d tokens)\n", f.model.c_str(), v.model.c_str(),
              v.pre.empty() ? "" : ", pre ", v.pre.c_str(), tok->vocab_size());
  std::printf("%-40s %12s %12s %12s %12s %11s %11s %11s %9s\n", "file", "bytes", "chars", "words",
              "tokens", "chars/token", "bytes/token", "tokens/word", "seconds");
  auto row = [&](const std::string& name, const EvalCounts& c) {
    std::printf("%-40s %12lld %12lld %12lld %12lld %11.3f %11.3f %11.3f %9.3f\n", name.c_str(),
                static_cast<long long>(c.bytes), static_cast<long long>(c.chars),
                static_cast<long long>(c.words), static_cast<long long>(c.tokens),
                ratio(c.chars, c.tokens), ratio(c.bytes, c.tokens), ratio(c.tokens, c.words),
                c.seconds);
  };
  for (const auto& [path, c] : per_file) row(path, c);
  if (per_file.size() > 1) row("total", total);
  std::printf("encoding speed: %.0f tokens/s\n", total.seconds > 0 ? total.tokens / total.seconds : 0.0);
}

}  // namespace

void register_tokenizer(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("tokenizer", "Train a byte-level BPE tokenizer, or measure how a tokenizer compresses text");
  cmd->require_subcommand(1);

  auto tf = std::make_shared<TrainFlags>();
  CLI::App* train = cmd->add_subcommand(
      "train", "Train a byte-level BPE tokenizer and write it as a vocabulary-only GGUF file");
  train->footer(
      "GPT-2 pre-tokenizer (tokenizer.ggml.pre = gpt-2). Token ids: 0-255 the bytes, 256 <|bos|>, "
      "257 <|eos|>, 258 <|pad|>, then each --special token in order (all control tokens: matched "
      "only when special-token parsing is on), then the merged tokens. Special-token text in the "
      "corpus is cut out before counting. Deterministic: ties between equally frequent pairs go "
      "to the smaller token ids. BOS is added when encoding (add_bos_token = true), EOS is not.");
  train->add_option("-i,--input", tf->inputs,
                    "corpus files: plain text, or JSONL with a \"text\" field per line (*.jsonl)")
      ->required()
      ->expected(1, -1);
  train->add_option("--vocab", tf->vocab,
                    "vocabulary size: 256 byte tokens + special tokens + merged tokens")
      ->required();
  train->add_option("-o,--output", tf->output, "tokenizer GGUF file to write")->required();
  train->add_option("--special", tf->specials,
                    "extra special (control) tokens, e.g. <|im_start|>; ids from 259 in order")
      ->expected(1, -1);
  train->add_option("--min-frequency", tf->min_frequency,
                    "merge only pairs that occur at least this often")
      ->capture_default_str();
  train->add_option("--name", tf->name, "general.name to record in the file");
  train->callback([tf] { run_train(*tf); });

  auto ef = std::make_shared<EvalFlags>();
  CLI::App* eval = cmd->add_subcommand(
      "eval", "Report characters, bytes and words per token of a tokenizer on corpus files");
  eval->footer(
      "Works on any GGUF with tokenizer metadata (tokenizer or model). Characters are UTF-8 code "
      "points (an invalid byte counts as one), words are whitespace-separated; no BOS is added "
      "and special-token text is encoded as plain text. Time is encoding time only.");
  eval->add_option("-m,--model", ef->model, "tokenizer or model GGUF file")->required();
  eval->add_option("-i,--input", ef->inputs, "corpus files: plain text, or JSONL (*.jsonl)")
      ->required()
      ->expected(1, -1);
  eval->add_flag("--json", ef->json, "print the figures as JSON");
  eval->callback([ef] { run_eval(*ef); });
}

}  // namespace slm::cli
