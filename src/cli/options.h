// Option groups shared by several subcommands (prompt and stopping, threads, sampling, model
// loading), so that each flag is defined once and its help text is the same everywhere.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "generate/generator.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace slm::cli {

struct SamplingFlags {
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int repeat_last_n = 64;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int64_t seed = -1;  // -1: random
  SamplerParams to_params() const;
};
void add_sampling_flags(CLI::App* cmd, SamplingFlags& f);

// The prompt and stopping flags of the commands that complete text (generate, collab generate):
// -p / -f, -n, --stop, --ignore-eos, --special, --no-bos.
struct CompletionFlags {
  std::string prompt, prompt_file;
  int n_predict = 128;
  std::vector<std::string> stop;
  bool ignore_eos = false, special = false, no_bos = false;
  // Refuses a negative -n and empty --stop strings (slm::Error).
  void check() const;
  // The prompt tokens: -p's text or -f's file content, BOS as the model asks unless --no-bos,
  // special-token text parsed only with --special.
  std::vector<int32_t> encode_prompt(const Tokenizer& tok) const;
  // max_tokens, stop and stop_at_eog of the generation options.
  void apply(GenerateOptions& opt) const;
};
// Returns the -p option, so that a command can make its own prompt sources exclude it.
CLI::Option* add_completion_flags(CLI::App* cmd, CompletionFlags& f);

struct RuntimeFlags {
  int threads = 0;          // 0: all hardware threads
  int64_t ctx = 0;          // 0: the model's context length (capped)
  std::string kv_type = "f32";
  int resolved_threads() const;
  DType kv_dtype() const;
  int64_t resolved_ctx(const ModelConfig& c) const;
};
void add_runtime_flags(CLI::App* cmd, RuntimeFlags& f);

// Loads a model, printing nothing; the error names the file on failure.
std::unique_ptr<Model> load_model(const std::string& path);

// Parses "1 2 3" or "1,2,3" into token ids, checking the range [0, n_vocab).
std::vector<int32_t> parse_token_ids(const std::string& text, int64_t n_vocab);

// A JSON-safe UTF-8 string (invalid bytes replaced by U+FFFD) for nlohmann::json output.
std::string valid_utf8(const std::string& s);

}  // namespace slm::cli
