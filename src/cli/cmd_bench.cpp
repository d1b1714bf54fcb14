// slm bench: prefill and decode speed of a model, measured like llama-bench: a prefill of -p
// tokens into an empty cache, and a decode of -n tokens one at a time from an empty cache, each
// repeated -r times after one warm-up (decode feeds random tokens, as llama-bench does); medians and spread (min..max) over the repetitions, the
// load time and the process's peak resident memory.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/sampler.h"
#include "model/model.h"

namespace slm::cli {
namespace {

struct BenchFlags {
  std::string model;
  int prompt = 128, gen = 128, reps = 3;
  RuntimeFlags rt;
  bool json = false;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  s.max = v.back();
  return s;
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // ru_maxrss is in KiB on Linux
}

void run_bench(const BenchFlags& f) {
  if (f.prompt < 0 || f.gen < 0 || (f.prompt == 0 && f.gen == 0))
    throw Error("-p and -n must be >= 0 and not both 0");
  if (f.reps < 1) throw Error("-r must be at least 1");
  const auto t_load = Clock::now();
  auto model = load_model(f.model);
  const double load_s = seconds_since(t_load);
  const ModelConfig& c = model->config();
  const int threads = f.rt.resolved_threads();
  ThreadPool pool(threads);
  Transformer tr(*model, pool);
  const int64_t ctx = std::max<int64_t>(std::max(f.prompt, f.gen) + 1, f.rt.ctx);
  KvCache kv(c, ctx, f.rt.kv_dtype());

  // Prompt ids: random normal-range tokens, the same every run.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(f.prompt));
  for (auto& t : prompt) t = pick(rng);
  std::vector<float> logits(static_cast<size_t>(c.n_vocab));
  const int32_t first = model->tokenizer().bos() >= 0 ? model->tokenizer().bos() : 0;

  std::vector<double> pp, tg;
  for (int rep = 0; rep <= f.reps; ++rep) {  // rep 0 is the warm-up
    if (f.prompt > 0) {
      kv.clear();
      const auto t0 = Clock::now();
      tr.forward(prompt.data(), f.prompt, kv, logits.data());
      const double s = seconds_since(t0);
      if (rep > 0) pp.push_back(f.prompt / s);
    }
    if (f.gen > 0) {
      kv.clear();
      int32_t tok = first;
      const auto t0 = Clock::now();
      for (int i = 0; i < f.gen; ++i) {
        tr.forward(&tok, 1, kv, logits.data());
        tok = pick(rng);  // like llama-bench: the speed of the model, not of a sampler
      }
      const double s = seconds_since(t0);
      if (rep > 0) tg.push_back(f.gen / s);
    }
  }
  const Stats p = stats_of(pp), g = stats_of(tg);
  const double rss = peak_rss_mib();
  const double file_mib = static_cast<double>(model->gguf().file_size()) / (1024.0 * 1024.0);
  const double kv_mib = static_cast<double>(kv.bytes()) / (1024.0 * 1024.0);
  if (f.json) {
    nlohmann::json j = {
        {"model", f.model},      {"threads", threads},        {"n_prompt", f.prompt},
        {"n_gen", f.gen},        {"reps", f.reps},            {"load_s", load_s},
        {"prefill_tps", {{"median", p.median}, {"min", p.min}, {"max", p.max}}},
        {"decode_tps", {{"median", g.median}, {"min", g.min}, {"max", g.max}}},
        {"peak_rss_mib", rss},   {"file_mib", file_mib},      {"kv_cache_mib", kv_mib},
        {"kv_type", f.rt.kv_type}, {"params", model->parameter_count()},
    };
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model: %s (%s, %.2f M params, %.1f MiB)\n", f.model.c_str(), c.arch.c_str(),
              model->parameter_count() / 1e6, file_mib);
  std::printf("threads: %d, kv cache: %s %.1f MiB, load: %.3f s\n", threads, f.rt.kv_type.c_str(), kv_mib, load_s);
  if (f.prompt > 0)
    std::printf("prefill %4d tokens: %10.2f tok/s (min %.2f, max %.2f, %d reps)\n", f.prompt, p.median, p.min, p.max, f.reps);
  if (f.gen > 0)
    std::printf("decode  %4d tokens: %10.2f tok/s (min %.2f, max %.2f, %d reps)\n", f.gen, g.median, g.min, g.max, f.reps);
  std::printf("peak RSS: %.1f MiB\n", rss);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode tokens/s, load time and peak memory");
  cmd->add_option("-m,--model", f->model, "GGUF model")->required();
  cmd->add_option("-p,--prompt", f->prompt, "prefill length in tokens (0 = skip)")->capture_default_str();
  cmd->add_option("-n,--n-gen", f->gen, "decode length in tokens (0 = skip)")->capture_default_str();
  cmd->add_option("-r,--reps", f->reps, "repetitions (after one warm-up)")->capture_default_str();
  add_runtime_flags(cmd, f->rt);
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->callback([f] { run_bench(*f); });
}

}  // namespace slm::cli
