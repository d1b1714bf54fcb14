// slm eval: perplexity and mean loss of a GGUF model on a text file over sliding windows (the
// method is stated in generate/perplexity.h), so that models can be compared on held-out text.
// Prints a table, or one JSON object with --json; progress goes to stderr when it is a terminal.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/perplexity.h"
#include "io/atomic_file.h"

namespace slm::cli {
namespace {

struct EvalFlags {
  std::string model, file;
  int64_t ctx = 0, stride = 0, batch = 0;
  int threads = 0;
  std::string kv_type = "f32";
  bool json = false, no_bos = false;
};

void run_eval(const EvalFlags& f) {
  if (!std::filesystem::is_regular_file(f.file)) throw Error(f.file + ": no such file (-f)");
  const std::string text = read_file(f.file);
  auto model = load_model(f.model);
  const Tokenizer& tok = model->tokenizer();
  const std::vector<int32_t> tokens = tok.encode(text, tok.vocab().add_bos && !f.no_bos);
  if (tokens.size() < 2)
    throw Error(f.file + ": the text gives " + std::to_string(tokens.size()) +
                " token(s); perplexity needs at least 2");

  RuntimeFlags rt;
  rt.threads = f.threads;
  rt.kv_type = f.kv_type;
  PerplexityOptions opt;
  const int64_t model_ctx = model->config().ctx_len;
  if (f.ctx < 0) throw Error("--ctx must be at least 2 tokens, got " + std::to_string(f.ctx));
  opt.ctx = f.ctx > 0 ? f.ctx : (model_ctx > 0 ? std::min<int64_t>(model_ctx, 512) : 512);
  opt.stride = f.stride;
  if (f.stride < 0) throw Error("--stride must be between 1 and --ctx, got " + std::to_string(f.stride));
  opt.batch = f.batch;
  opt.kv_type = rt.kv_dtype();

  ThreadPool pool(rt.resolved_threads());
  Transformer tf(*model, pool);
  const bool tty = isatty(fileno(stderr));
  PerplexityProgress progress;
  if (tty)
    progress = [](const PerplexityResult& r, int64_t done) {
      std::fprintf(stderr, "\r[window %lld/%lld] %lld tokens scored, perplexity so far %.4f   ",
                   static_cast<long long>(done), static_cast<long long>(r.windows),
                   static_cast<long long>(r.scored), r.scored ? std::exp(r.total_nll / r.scored) : 0.0);
      std::fflush(stderr);
    };
  const PerplexityResult r = evaluate_perplexity(tf, tokens, opt, progress);
  if (tty) std::fprintf(stderr, "\n");

  const int64_t stride = opt.stride == 0 ? std::max<int64_t>(1, opt.ctx / 2) : opt.stride;
  const double bytes = static_cast<double>(text.size());
  const double bpb = bytes > 0 ? r.total_nll / std::log(2.0) / bytes : 0.0;
  const double tps = r.seconds > 0 ? r.scored / r.seconds : 0.0;
  if (f.json) {
    const nlohmann::json j = {
        {"model", valid_utf8(f.model)},
        {"file", valid_utf8(f.file)},
        {"bytes", text.size()},
        {"tokens", r.tokens},
        {"tokens_scored", r.scored},
        {"ctx", opt.ctx},
        {"stride", stride},
        {"windows", r.windows},
        {"total_nll", r.total_nll},
        {"mean_nll", r.mean_nll},
        {"perplexity", r.perplexity},
        {"bits_per_byte", bpb},
        {"seconds", r.seconds},
        {"tokens_per_s", tps},
    };
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model        %s\n", f.model.c_str());
  std::printf("file         %s (%zu bytes, %lld tokens)\n", f.file.c_str(), text.size(),
              static_cast<long long>(r.tokens));
  std::printf("windows      %lld of %lld tokens, stride %lld\n", static_cast<long long>(r.windows),
              static_cast<long long>(opt.ctx), static_cast<long long>(stride));
  std::printf("scored       %lld tokens\n", static_cast<long long>(r.scored));
  std::printf("mean NLL     %.6f nats/token\n", r.mean_nll);
  std::printf("perplexity   %.4f\n", r.perplexity);
  std::printf("bits/byte    %.6f\n", bpb);
  std::printf("time         %.2f s (%.1f tokens scored/s)\n", r.seconds, tps);
}

}  // namespace

void register_eval(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Perplexity and mean loss of a model on a text file (sliding windows, every token scored once)");
  cmd->add_option("-m,--model", f->model, "GGUF model")->required();
  cmd->add_option("-f,--file", f->file, "text file to evaluate on (held-out text)")->required();
  cmd->add_option("--ctx", f->ctx, "window length in tokens; 0 = min(model context, 512)")->capture_default_str();
  cmd->add_option("--stride", f->stride, "tokens between window starts, 1..ctx; 0 = ctx/2")->capture_default_str();
  cmd->add_option("--batch", f->batch, "positions per forward call (bounds logits memory); 0 = min(ctx, 512)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", f->threads, "threads; 0 = all cores")->capture_default_str();
  cmd->add_option("--kv-type", f->kv_type, "KV cache type: f32 or f16")->capture_default_str();
  cmd->add_flag("--no-bos", f->no_bos, "do not add BOS even if the model asks for it");
  cmd->add_flag("--json", f->json,
                "print one JSON object {tokens, tokens_scored, mean_nll, perplexity, bits_per_byte, ...}");
  cmd->callback([f] { run_eval(*f); });
}

}  // namespace slm::cli
