#include "cli/options.h"

#include <algorithm>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"

namespace slm::cli {

SamplerParams SamplingFlags::to_params() const {
  SamplerParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repeat_penalty = repeat_penalty;
  p.repeat_last_n = repeat_last_n;
  p.frequency_penalty = frequency_penalty;
  p.presence_penalty = presence_penalty;
  p.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}();
  return p;
}

void CompletionFlags::check() const {
  if (n_predict < 0) throw Error("-n must be >= 0, got " + std::to_string(n_predict));
  for (const auto& s : stop)
    if (s.empty()) throw Error("--stop strings must not be empty");
}

std::vector<int32_t> CompletionFlags::encode_prompt(const Tokenizer& tok) const {
  const std::string text = prompt_file.empty() ? prompt : read_file(prompt_file);
  return tok.encode(text, tok.vocab().add_bos && !no_bos, special);
}

void CompletionFlags::apply(GenerateOptions& opt) const {
  opt.max_tokens = n_predict;
  opt.stop = stop;
  opt.stop_at_eog = !ignore_eos;
}

CLI::Option* add_completion_flags(CLI::App* cmd, CompletionFlags& f) {
  auto* p = cmd->add_option("-p,--prompt", f.prompt, "prompt text");
  auto* pf = cmd->add_option("-f,--file", f.prompt_file, "read the prompt from a file");
  p->excludes(pf);
  cmd->add_option("-n,--n-predict", f.n_predict, "tokens to generate at most")->capture_default_str();
  cmd->add_option("--stop", f.stop, "stop when this text appears (repeatable); it is not printed");
  cmd->add_flag("--ignore-eos", f.ignore_eos, "do not stop at end-of-generation tokens");
  cmd->add_flag("--special", f.special, "parse special-token text in the prompt (<|im_start|> ...)");
  cmd->add_flag("--no-bos", f.no_bos, "do not add BOS even if the model asks for it");
  return p;
}

void add_sampling_flags(CLI::App* cmd, SamplingFlags& f) {
  cmd->add_option("--temp", f.temperature, "sampling temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", f.top_k, "keep the k most likely tokens; 0 = off")->capture_default_str();
  cmd->add_option("--top-p", f.top_p, "nucleus: keep the smallest set with this probability mass; 1 = off")->capture_default_str();
  cmd->add_option("--min-p", f.min_p, "drop tokens below min-p times the top probability; 0 = off")->capture_default_str();
  cmd->add_option("--repeat-penalty", f.repeat_penalty, "penalise tokens seen in the last --repeat-last-n; 1 = off")->capture_default_str();
  cmd->add_option("--repeat-last-n", f.repeat_last_n, "how many past tokens the repeat penalty looks at")->capture_default_str();
  cmd->add_option("--frequency-penalty", f.frequency_penalty, "subtract count * this from a seen token's logit")->capture_default_str();
  cmd->add_option("--presence-penalty", f.presence_penalty, "subtract this from any seen token's logit")->capture_default_str();
  cmd->add_option("--seed", f.seed, "random seed (same seed, same output); -1 = random")->capture_default_str();
}

int RuntimeFlags::resolved_threads() const {
  if (threads < 0) throw Error("--threads must be >= 0 (0 = all cores), got " + std::to_string(threads));
  return threads == 0 ? default_thread_count() : threads;
}

DType RuntimeFlags::kv_dtype() const {
  auto t = dtype_from_name(kv_type);
  if (!t || (*t != DType::F32 && *t != DType::F16))
    throw Error("--kv-type must be f32 or f16, got '" + kv_type + "'");
  return *t;
}

int64_t RuntimeFlags::resolved_ctx(const ModelConfig& c) const {
  if (ctx < 0) throw Error("--ctx must be positive, got " + std::to_string(ctx));
  if (ctx > 0) return ctx;
  // The model's training context, capped so that a 128k-context model does not reserve gigabytes.
  return std::clamp<int64_t>(c.ctx_len, 1, 4096);
}

void add_runtime_flags(CLI::App* cmd, RuntimeFlags& f) {
  cmd->add_option("-t,--threads", f.threads, "threads; 0 = all cores")->capture_default_str();
  cmd->add_option("--ctx", f.ctx, "context size in tokens (KV cache); 0 = the model's, at most 4096")->capture_default_str();
  cmd->add_option("--kv-type", f.kv_type, "KV cache type: f32 or f16")->capture_default_str();
}

std::unique_ptr<Model> load_model(const std::string& path) { return Model::load(path); }

std::vector<int32_t> parse_token_ids(const std::string& text, int64_t n_vocab) {
  std::string s = text;
  std::replace(s.begin(), s.end(), ',', ' ');
  std::istringstream in(s);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size()) throw Error("token id '" + word + "' is not an integer");
    if (v < 0 || v >= n_vocab)
      throw Error("token id " + word + " is out of range [0, " + std::to_string(n_vocab) + ")");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

std::string valid_utf8(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace slm::cli
