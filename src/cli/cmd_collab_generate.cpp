// slm collab generate: complete one prompt with a small and a large model together.
//   token-cascade    the small model decodes, the large one produces the tokens where the small
//                    one is unsure (--metric, --threshold); prints the share of large tokens
//   request-cascade  the small model answers; if the answer's score (--metric nll|maxprob|margin|
//                    entropy, --threshold) says unsure, the large model answers instead
//   contrastive      log p_large - beta log p_small among the large model's plausible tokens (--alpha)
//   router           a token cascade whose policy is a trained token router (--router, from `slm
//                    collab router train`): the large model produces the tokens where the router's
//                    probability >= --threshold (default 0.5)
//   proxy            large + alpha (tuned small - base small): --small is the base, --tuned the tuned
// Every model loaded must share the vocabulary (check_shared_vocab). Text streams to stdout; the
// figures (share handled by the large model, tokens/s) go to stderr, or into one object (--json).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/collab_models.h"
#include "generate/generator.h"
#include "generate/router_policy.h"
#include "model/token_router.h"
#include "generate/vocab_check.h"
#include "io/atomic_file.h"

namespace slm::cli {
namespace {

const char* const kStrategies = "token-cascade, request-cascade, router, contrastive, proxy";

struct CollabGenerateFlags {
  std::string small, large, tuned, router, strategy, metric;
  double threshold = std::nan("");  // NaN: the metric's default
  float alpha = std::nanf("");      // NaN: the strategy's default
  float beta = 1.0f;
  bool horizon = false;
  CompletionFlags completion;
  SamplingFlags sampling;
  RuntimeFlags rt;
  bool json = false;
};

// Defaults chosen for a 4096-token vocabulary: entropy 2 nats is about "7 equally likely tokens".
double default_threshold(const std::string& metric) {
  if (metric == "maxprob") return 0.5;
  if (metric == "margin") return 0.2;
  if (metric == "entropy") return 2.0;
  return 3.0;  // nll: mean negative log-likelihood, nats per token
}

// One model with its runner and cache (the Transformer keeps a reference to the Model).
struct Loaded {
  Loaded(std::string r, std::string p) : role(std::move(r)), path(std::move(p)) {}
  std::string role, path;
  std::unique_ptr<Model> model;
  std::unique_ptr<Transformer> tr;
  std::unique_ptr<KvCache> kv;
  std::unique_ptr<TransformerDecodeModel> dm;
};

// What every strategy gives back for printing.
struct Outcome {
  GenerateResult r;
  nlohmann::json stats = nlohmann::json::object();
  std::string summary;  // the stderr line's strategy part
};

std::string percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * share);
  return buf;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

Outcome run_token_cascade(Loaded& small, Loaded& large, EscalationPolicy& policy,
                          std::span<const int32_t> prompt, const GenerateOptions& opt, const TextCallback& on_text) {
  CascadeDecodeModel cascade(*small.tr, *small.kv, *large.tr, *large.kv, policy);
  cascade.set_horizon(opt.max_tokens);  // the policy uses it only when weighing by the remaining share
  Outcome o;
  o.r = generate(cascade, prompt, opt, on_text);
  const CascadeStats& s = cascade.stats();
  o.stats = {{"policy", policy.describe()},     {"decided", s.decided},
             {"decided_large", s.decided_large}, {"large_share", s.large_share()},
             {"large_calls", s.large_calls},     {"large_fed", s.large_fed}};
  o.summary = "large model decided " + std::to_string(s.decided_large) + "/" + std::to_string(s.decided) +
              " tokens (" + percent(s.large_share()) + ") in " + std::to_string(s.large_calls) +
              " calls, policy " + policy.describe();
  return o;
}

Outcome run_request_cascade(Loaded& small, Loaded& large, const RequestScore& score,
                            std::span<const int32_t> prompt, const GenerateOptions& opt, const TextCallback& on_text) {
  Outcome o;
  RequestCascadeResult rc = request_cascade(*small.dm, *large.dm, prompt, opt, score, on_text);
  o.r = std::move(rc.result);
  o.stats = {{"policy", score.describe()},
             {"score", rc.score},
             {"answered_by", rc.large_answered ? "large" : "small"},
             {"large_share", rc.large_answered ? 1.0 : 0.0},
             {"small_tokens", rc.small.tokens.size()}};
  o.summary = std::string("request answered by the ") + (rc.large_answered ? "large" : "small") +
              " model (small answer's " + score.name() + " = " + num(rc.score) + ", escalate if " + score.describe() + ")";
  // The small run's time counts: it was paid whichever model answered.
  if (rc.large_answered) {
    o.r.prompt_eval_us += rc.small.prompt_eval_us;
    o.r.gen_eval_us += rc.small.gen_eval_us;
  }
  return o;
}

void run_collab_generate(const CollabGenerateFlags& f) {
  const std::string& st = f.strategy;
  if (st != "token-cascade" && st != "request-cascade" && st != "router" && st != "contrastive" && st != "proxy")
    throw Error("unknown strategy '" + st + "' (known: " + kStrategies + ")");
  f.completion.check();
  if (st == "router" && f.router.empty()) throw Error("--strategy router needs --router ROUTER.gguf");
  if (st != "router" && !f.router.empty()) throw Error("--router is only used by --strategy router");
  if (st == "router" && !f.metric.empty()) throw Error("--metric is not used by --strategy router");
  if (f.horizon && st != "token-cascade" && st != "router")
    throw Error("--horizon is only used by --strategy token-cascade and router");
  if (st == "proxy" && f.tuned.empty())
    throw Error("--strategy proxy needs --tuned TUNED_SMALL (and --small the base small model)");
  if (st != "proxy" && !f.tuned.empty()) throw Error("--tuned is only used by --strategy proxy");
  const std::string metric = !f.metric.empty() ? f.metric : st == "request-cascade" ? "nll" : "entropy";
  if (st == "token-cascade") parse_uncertainty_metric(metric);  // reject nll and typos early
  if (st == "request-cascade") RequestScore::parse(metric);
  const double threshold = std::isnan(f.threshold) ? (st == "router" ? 0.5 : default_threshold(metric)) : f.threshold;
  if (std::isinf(threshold)) throw Error("--threshold must be finite");

  std::vector<Loaded> models;
  models.emplace_back(st == "proxy" ? "base small model" : "small model", f.small);
  models.emplace_back("large model", f.large);
  if (st == "proxy") models.emplace_back("tuned small model", f.tuned);
  for (auto& m : models) m.model = load_model(m.path);
  for (size_t i = 1; i < models.size(); ++i)
    check_shared_vocab(models[0].model->tokenizer(), models[0].role + " " + models[0].path,
                       models[i].model->tokenizer(), models[i].role + " " + models[i].path);

  const Tokenizer& tok = models[1].model->tokenizer();
  const std::vector<int32_t> prompt = f.completion.encode_prompt(tok);
  if (prompt.empty()) throw Error("the prompt is empty (give -p TEXT or -f FILE)");

  // One context for all: what this run needs, within every model's training context.
  const int64_t needed = static_cast<int64_t>(prompt.size()) + f.completion.n_predict;
  int64_t ctx = f.rt.ctx;
  if (ctx < 0) throw Error("--ctx must be positive");
  if (ctx == 0) {
    ctx = needed;
    for (auto& m : models)
      if (m.model->config().ctx_len > 0) ctx = std::min(ctx, m.model->config().ctx_len);
  }
  if (static_cast<int64_t>(prompt.size()) > ctx)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the context of " +
                std::to_string(ctx) + " tokens (--ctx)");
  ThreadPool pool(f.rt.resolved_threads());
  for (auto& m : models) {
    m.tr = std::make_unique<Transformer>(*m.model, pool);
    m.kv = std::make_unique<KvCache>(m.model->config(), ctx, f.rt.kv_dtype());
    m.dm = std::make_unique<TransformerDecodeModel>(*m.tr, *m.kv);
  }

  GenerateOptions opt;
  f.completion.apply(opt);
  opt.sampler = f.sampling.to_params();
  opt.top_logits = 0;
  TextCallback on_text;
  if (!f.json)
    on_text = [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    };

  const auto t0 = std::chrono::steady_clock::now();
  Outcome o;
  if (st == "token-cascade") {
    UncertaintyPolicy policy(parse_uncertainty_metric(metric), threshold, f.horizon);
    o = run_token_cascade(models[0], models[1], policy, prompt, opt, on_text);
  } else if (st == "router") {
    RouterPolicy policy(TokenRouter::load(f.router, models[0].model->config()), static_cast<float>(threshold),
                        f.horizon);
    o = run_token_cascade(models[0], models[1], policy, prompt, opt, on_text);
  } else if (st == "request-cascade") {
    o = run_request_cascade(models[0], models[1], RequestScore{RequestScore::parse(metric), threshold},
                            prompt, opt, on_text);
  } else if (st == "contrastive") {
    ContrastiveParams p;
    if (!std::isnan(f.alpha)) p.alpha = f.alpha;
    p.beta = f.beta;
    ContrastiveDecodeModel cd(*models[1].dm, *models[0].dm, p);
    o.r = generate(cd, prompt, opt, on_text);
    o.stats = {{"alpha", p.alpha}, {"beta", p.beta}, {"large_share", 1.0}};
    o.summary = "contrastive decoding, alpha " + num(p.alpha) + ", beta " + num(p.beta) +
                " (both models run on every token)";
  } else {
    const float alpha = std::isnan(f.alpha) ? 1.0f : f.alpha;
    ProxyDecodeModel pd(*models[1].dm, *models[2].dm, *models[0].dm, alpha);
    o.r = generate(pd, prompt, opt, on_text);
    o.stats = {{"alpha", alpha}, {"large_share", 1.0}};
    o.summary = "proxy tuning, alpha " + num(alpha) + " (all three models run on every token)";
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const GenerateResult& r = o.r;
  const double pp_s = r.prompt_eval_us / 1e6, tg_s = r.gen_eval_us / 1e6;
  const size_t gen = r.tokens.size();
  // As slm generate reports it: the tokens after the first over the time after the prefill.
  const double gen_tps = tg_s > 0 && gen > 1 ? (gen - 1) / tg_s : 0.0;

  if (f.json) {
    nlohmann::json j = {{"strategy", st},
                        {"prompt_tokens", prompt},
                        {"tokens", r.tokens},
                        {"text", valid_utf8(r.text)},
                        {"stop_reason", r.stop_reason},
                        {"stats", o.stats},
                        {"timings", {{"prompt_s", pp_s}, {"generate_s", tg_s}, {"wall_s", wall_s},
                                     {"generate_tokens_per_s", gen_tps}}}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("\n");
  std::fflush(stdout);
  std::fprintf(stderr, "[%s]\n[prompt %zu tokens; generated %zu tokens, %.1f tok/s (%.1f tok/s end to end); stop: %s]\n",
               o.summary.c_str(), prompt.size(), gen, gen_tps, wall_s > 0 ? gen / wall_s : 0.0,
               r.stop_reason.c_str());
}

}  // namespace

void register_collab_generate(CLI::App& collab) {
  auto f = std::make_shared<CollabGenerateFlags>();
  CLI::App* cmd = collab.add_subcommand("generate", "Complete a prompt with a small and a large model together");
  cmd->add_option("--small", f->small, "small GGUF model (proxy: the base small model)")->required();
  cmd->add_option("--large", f->large, "large GGUF model")->required();
  cmd->add_option("--strategy", f->strategy, std::string("how the models combine: ") + kStrategies)->required();
  cmd->add_option("--tuned", f->tuned, "proxy: the tuned small model");
  cmd->add_option("--router", f->router, "router: the token router (GGUF from `slm collab router train`)");
  cmd->add_option("--metric", f->metric,
                  "uncertainty metric: maxprob|margin|entropy (token-cascade, default entropy); "
                  "nll|maxprob|margin|entropy (request-cascade, default nll)");
  cmd->add_option("--threshold", f->threshold,
                  "escalate when maxprob < T, margin < T, entropy > T or nll > T "
                  "(defaults: 0.5, 0.2, 2.0, 3.0); router: escalate when its probability >= T (default 0.5)");
  cmd->add_flag("--horizon", f->horizon,
               "token-cascade, router: weigh the uncertainty (router: probability) by the share of -n still "
               "to come, so the large model is spent early, where a divergence changes more of the output");
  cmd->add_option("--alpha", f->alpha, "contrastive: plausibility cutoff (default 0.1); proxy: steering weight (default 1.0)");
  cmd->add_option("--beta", f->beta, "contrastive: weight of the small model")->capture_default_str();
  add_completion_flags(cmd, f->completion);
  add_sampling_flags(cmd, f->sampling);
  add_runtime_flags(cmd, f->rt);
  cmd->add_flag("--json", f->json, "print one JSON object {strategy, tokens, text, stats, timings, ...}");
  cmd->callback([f] { run_collab_generate(*f); });
}

}  // namespace slm::cli
