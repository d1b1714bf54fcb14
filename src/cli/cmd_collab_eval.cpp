// slm collab eval: runs held-out prompts through the large model alone (the reference and the
// time baseline), the small model alone, and each collaboration strategy at each threshold, and
// prints one table row per (strategy, setting): share of tokens (or requests) from the large
// model, speedup against the large model alone in the same run, agreement with the large model's
// greedy continuation, and mean log-likelihood of the output under the large model (the measures
// are defined in generate/collab_eval.h). Decoding is greedy and ignores end-of-generation tokens,
// so every output has exactly -n tokens and positions compare one to one.
// --plot draws agreement against the large model's share, one curve per thresholded strategy.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/collab_eval.h"
#include "generate/collab_models.h"
#include "generate/generator.h"
#include "generate/router_policy.h"
#include "generate/speculative.h"
#include "generate/vocab_check.h"
#include "io/atomic_file.h"
#include "model/token_router.h"
#include "train/loss_plot.h"

namespace slm::cli {
namespace {

using Clock = std::chrono::steady_clock;

const char* const kStrategies =
    "small, speculative, token-cascade, request-cascade, router, contrastive, proxy";

struct CollabEvalFlags {
  std::string small, large, tuned, router, prompts, metric = "entropy", request_metric = "nll";
  std::vector<std::string> strategies;
  std::vector<double> thresholds;
  std::string out, json_out, plot, text;
  int n_predict = 64, limit = 0;
  std::vector<int> draft_max;  // empty: {4}
  float draft_min_prob = 0.0f, alpha = 0.1f, beta = 1.0f, proxy_alpha = 1.0f;
  bool horizon = false;  // token-cascade, router: weigh by the remaining share of -n
  RuntimeFlags rt;
};

struct Loaded {
  std::string path;
  std::unique_ptr<Model> model;
  std::unique_ptr<Transformer> tr;
  std::unique_ptr<KvCache> kv;
};

std::vector<std::string> read_prompts(const std::string& path, int limit) {
  std::istringstream in(read_file(path));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    out.push_back(line);
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
  }
  if (out.empty()) throw Error(path + ": no prompts (expected one prompt per line)");
  return out;
}

// Default sweeps, in each measure's units (see uncertainty.h, request_cascade.h, token_router.h).
std::vector<double> default_thresholds(const std::string& strategy, const std::string& metric) {
  if (strategy == "router") return {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  if (metric == "maxprob") return {0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  if (metric == "margin") return {0.02, 0.05, 0.1, 0.2, 0.3, 0.5};
  // A 1 M model over a 4096-token vocabulary is unsure most of the time (median entropy ~4.7 nats),
  // so the entropy sweep reaches high; the request score (mean NLL of greedy tokens) is lower.
  if (metric == "entropy") return {3.0, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0};
  return {2.0, 2.2, 2.4, 2.6, 2.8, 3.0};  // nll
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

class Evaluator {
 public:
  Evaluator(const CollabEvalFlags& f, Loaded& small, Loaded& large, Loaded* tuned,
            std::vector<std::vector<int32_t>> prompts)
      : f_(f), small_(small), large_(large), tuned_(tuned), prompts_(std::move(prompts)) {
    opt_.max_tokens = f.n_predict;
    opt_.sampler.temperature = 0.0f;
    opt_.stop_at_eog = false;
    score_kv_ = std::make_unique<KvCache>(large.model->config(), large.kv->capacity(), DType::F32);
  }

  // The large model alone: the reference outputs and the time every speedup divides.
  void run_large() {
    // Untimed warm-up of every model (page faults of the mapped weights, first-touch of scratch).
    for (Loaded* m : {&small_, &large_, tuned_}) {
      if (!m) continue;
      m->kv->clear();
      generate(*m->tr, *m->kv, prompts_[0], opt_);
    }
    auto t0 = Clock::now();
    for (const auto& p : prompts_) {
      large_.kv->clear();
      refs_.push_back(generate(*large_.tr, *large_.kv, p, opt_).tokens);
    }
    large_s_ = seconds_since(t0);
    add_row("large", "", 1.0, "tokens", large_s_, refs_, "");
  }

  void run_small() {
    std::vector<std::vector<int32_t>> outs;
    auto t0 = Clock::now();
    for (const auto& p : prompts_) {
      small_.kv->clear();
      outs.push_back(generate(*small_.tr, *small_.kv, p, opt_).tokens);
    }
    add_row("small", "", 0.0, "tokens", seconds_since(t0), outs, "");
  }

  void run_speculative(int draft_max) {
    SpeculativeOptions so;
    so.draft_max = draft_max;
    so.draft_min_prob = f_.draft_min_prob;
    std::vector<std::vector<int32_t>> outs;
    int64_t drafted = 0, accepted = 0, verifications = 0;
    auto t0 = Clock::now();
    for (const auto& p : prompts_) {
      small_.kv->clear();
      large_.kv->clear();
      const SpeculativeResult r = generate_speculative(*large_.tr, *large_.kv, *small_.tr, *small_.kv, p, opt_, so);
      outs.push_back(r.gen.tokens);
      drafted += r.stats.drafted;
      accepted += r.stats.accepted;
      verifications += r.stats.verifications;
    }
    const double s = seconds_since(t0);
    const std::string extra =
        "acceptance " + fmt("%.3f", drafted ? static_cast<double>(accepted) / drafted : 0.0) +
        ", mean accepted per verification " + fmt("%.2f", verifications ? static_cast<double>(accepted) / verifications : 0.0);
    add_row("speculative", "k=" + std::to_string(draft_max) +
                               (f_.draft_min_prob > 0 ? ", min prob " + fmt("%g", f_.draft_min_prob) : ""),
            1.0, "tokens", s, outs, extra);
  }

  // A token-level cascade under any policy (uncertainty threshold or router).
  void run_cascade(const std::string& strategy, EscalationPolicy& policy) {
    std::vector<std::vector<int32_t>> outs;
    int64_t decided = 0, decided_large = 0, calls = 0;
    auto t0 = Clock::now();
    for (const auto& p : prompts_) {
      small_.kv->clear();
      large_.kv->clear();
      CascadeDecodeModel cascade(*small_.tr, *small_.kv, *large_.tr, *large_.kv, policy);
      cascade.set_horizon(opt_.max_tokens);
      outs.push_back(generate(cascade, p, opt_).tokens);
      decided += cascade.stats().decided;
      decided_large += cascade.stats().decided_large;
      calls += cascade.stats().large_calls;
    }
    const double s = seconds_since(t0);
    add_row(strategy, policy.describe(), decided ? static_cast<double>(decided_large) / decided : 0.0, "tokens", s,
            outs, std::to_string(calls) + " large calls");
  }

  void run_request_cascade(const RequestScore& score) {
    std::vector<std::vector<int32_t>> outs;
    int64_t to_large = 0;
    auto t0 = Clock::now();
    for (const auto& p : prompts_) {
      small_.kv->clear();
      large_.kv->clear();
      TransformerDecodeModel small(*small_.tr, *small_.kv), large(*large_.tr, *large_.kv);
      RequestCascadeResult r = request_cascade(small, large, p, opt_, score);
      to_large += r.large_answered;
      outs.push_back(std::move(r.result.tokens));
    }
    const double s = seconds_since(t0);
    add_row("request-cascade", score.describe(), static_cast<double>(to_large) / prompts_.size(), "requests", s, outs,
            "");
  }

  void run_contrastive() {
    ContrastiveParams cp;
    cp.alpha = f_.alpha;
    cp.beta = f_.beta;
    std::vector<std::vector<int32_t>> outs;
    auto t0 = Clock::now();
    for (const auto& p : prompts_) {
      small_.kv->clear();
      large_.kv->clear();
      TransformerDecodeModel small(*small_.tr, *small_.kv), large(*large_.tr, *large_.kv);
      ContrastiveDecodeModel cd(large, small, cp);
      outs.push_back(generate(cd, p, opt_).tokens);
    }
    add_row("contrastive", "alpha " + fmt("%g", cp.alpha) + ", beta " + fmt("%g", cp.beta), 1.0, "tokens",
            seconds_since(t0), outs, "both models run on every token");
  }

  void run_proxy() {
    std::vector<std::vector<int32_t>> outs;
    auto t0 = Clock::now();
    for (const auto& p : prompts_) {
      small_.kv->clear();
      large_.kv->clear();
      tuned_->kv->clear();
      TransformerDecodeModel base(*small_.tr, *small_.kv), large(*large_.tr, *large_.kv),
          tuned(*tuned_->tr, *tuned_->kv);
      ProxyDecodeModel pd(large, tuned, base, f_.proxy_alpha);
      outs.push_back(generate(pd, p, opt_).tokens);
    }
    add_row("proxy", "alpha " + fmt("%g", f_.proxy_alpha), 1.0, "tokens", seconds_since(t0), outs,
            "all three models run on every token");
  }

  const std::vector<CollabEvalRow>& rows() const { return rows_; }

 private:
  static double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

  void add_row(const std::string& strategy, const std::string& setting, double share, const std::string& unit,
               double seconds, const std::vector<std::vector<int32_t>>& outs, const std::string& extra) {
    CollabEvalRow r;
    r.strategy = strategy;
    r.setting = setting;
    r.large_share = share;
    r.share_unit = unit;
    r.seconds = seconds;
    r.speedup = seconds > 0 ? large_s_ / seconds : 0.0;
    r.extra = extra;
    for (size_t i = 0; i < outs.size(); ++i) {
      r.agreement += agreement(outs[i], refs_[i]);
      r.prefix += prefix_agreement(outs[i], refs_[i]);
      r.loglik += mean_loglik(*large_.tr, *score_kv_, prompts_[i], outs[i]);
      r.tokens += static_cast<int64_t>(outs[i].size());
    }
    const double n = static_cast<double>(outs.size());
    r.agreement /= n, r.prefix /= n, r.loglik /= n;
    std::fprintf(stderr, "  %-16s %-22s large %5.1f%% %-8s speedup %5.2fx agreement %.3f prefix %.3f loglik %.3f (%.1f s)\n",
                 strategy.c_str(), setting.c_str(), 100 * share, unit.c_str(), r.speedup, r.agreement, r.prefix,
                 r.loglik, seconds);
    rows_.push_back(std::move(r));
  }

  const CollabEvalFlags& f_;
  Loaded& small_;
  Loaded& large_;
  Loaded* tuned_;
  std::vector<std::vector<int32_t>> prompts_;
  GenerateOptions opt_;
  std::unique_ptr<KvCache> score_kv_;
  std::vector<std::vector<int32_t>> refs_;
  double large_s_ = 0;
  std::vector<CollabEvalRow> rows_;
};

// Agreement (y) against large share (x), in percent: a curve per thresholded strategy, plus the
// small and large models alone as single points.
void write_collab_plot(const std::vector<CollabEvalRow>& rows, const std::string& path) {
  std::vector<TrainingLog> series;
  auto series_for = [&](const std::string& name) -> TrainingLog& {
    for (auto& s : series)
      if (s.name == name) return s;
    series.push_back(TrainingLog{});
    series.back().name = name;
    return series.back();
  };
  for (const auto& r : rows) {
    if (r.strategy == "speculative" || r.strategy == "contrastive" || r.strategy == "proxy") continue;
    std::string name = r.strategy;
    if (r.strategy == "token-cascade") name += " (" + r.setting.substr(0, r.setting.find_first_of("<>")) + ")";
    if (r.strategy == "request-cascade") name += " (% of requests)";
    LogPoint p;
    p.step = 100.0 * r.large_share;
    p.has_step = true;
    p.value = 100.0 * r.agreement;
    series_for(name).val.push_back(p);
  }
  for (auto& s : series)
    std::sort(s.val.begin(), s.val.end(), [](const LogPoint& a, const LogPoint& b) { return a.step < b.step; });
  PlotOptions opt;
  opt.title = "small + large: agreement vs large-model share";
  opt.x_label = "large model share (% of tokens)";
  opt.y_label = "agreement (% of positions)";
  opt.require_train = false;
  opt.legend_left = true;
  opt.smooth = 0;
  write_plot(series, opt, path);
}

// Perplexity of a text under the large model, the small one, the tuned small one and proxy tuning
// (large + tuned - base): proxy tuning's effect is to move the large model towards the tuned one's
// domain without training it, which a held-out text of that domain shows.
std::string score_text(const CollabEvalFlags& f, Loaded& small, Loaded& large, Loaded* tuned, ThreadPool& pool) {
  const Tokenizer& tok = large.model->tokenizer();
  const std::vector<int32_t> tokens = tok.encode(read_file(f.text), tok.vocab().add_bos, false);
  int64_t window = 0;
  for (Loaded* m : {&small, &large, tuned})
    if (m && m->model->config().ctx_len > 0)
      window = window == 0 ? m->model->config().ctx_len : std::min(window, m->model->config().ctx_len);
  if (window == 0) window = 256;
  struct Runner {
    std::unique_ptr<Transformer> tr;
    std::unique_ptr<KvCache> kv;
    std::unique_ptr<TransformerDecodeModel> dm;
    TransformerDecodeModel& fresh() {
      kv->clear();
      return *dm;
    }
  };
  auto runner = [&](Loaded& m) {
    Runner r;
    r.tr = std::make_unique<Transformer>(*m.model, pool);
    r.kv = std::make_unique<KvCache>(m.model->config(), window, DType::F32);
    r.dm = std::make_unique<TransformerDecodeModel>(*r.tr, *r.kv);
    return r;
  };
  Runner rs = runner(small), rl = runner(large);
  std::string table = "| model | NLL (nats/token) | perplexity |\n|---|--:|--:|\n";
  auto row = [&](const std::string& name, double nll) {
    table += "| " + name + " | " + fmt("%.4f", nll) + " | " + fmt("%.2f", std::exp(nll)) + " |\n";
    std::fprintf(stderr, "  %-28s NLL %.4f, perplexity %.2f\n", name.c_str(), nll, std::exp(nll));
  };
  std::fprintf(stderr, "scoring %s: %zu tokens in windows of %lld\n", f.text.c_str(), tokens.size(),
               static_cast<long long>(window));
  row("large " + f.large, windowed_nll([&]() -> DecodeModel& { return rl.fresh(); }, tokens, window));
  row("small " + f.small, windowed_nll([&]() -> DecodeModel& { return rs.fresh(); }, tokens, window));
  if (tuned) {
    Runner rt = runner(*tuned);
    row("tuned small " + f.tuned, windowed_nll([&]() -> DecodeModel& { return rt.fresh(); }, tokens, window));
    std::unique_ptr<ProxyDecodeModel> proxy;
    auto fresh_proxy = [&]() -> DecodeModel& {
      rs.kv->clear(), rl.kv->clear(), rt.kv->clear();
      proxy = std::make_unique<ProxyDecodeModel>(*rl.dm, *rt.dm, *rs.dm, f.proxy_alpha);
      return *proxy;
    };
    row("proxy: large + alpha " + fmt("%g", f.proxy_alpha) + " (tuned - small)", windowed_nll(fresh_proxy, tokens, window));
  }
  return "Text: " + f.text + " (" + std::to_string(tokens.size()) + " tokens, consecutive windows of " +
         std::to_string(window) + ").\n\n" + table;
}

void run_collab_eval(const CollabEvalFlags& f) {
  if (f.n_predict < 1) throw Error("-n must be >= 1, got " + std::to_string(f.n_predict));
  if (f.limit < 0) throw Error("--limit must be >= 0");
  std::vector<std::string> strategies = f.strategies;
  if (strategies.empty()) {
    strategies = {"small", "speculative", "token-cascade", "request-cascade", "contrastive"};
    if (!f.router.empty()) strategies.push_back("router");
    if (!f.tuned.empty()) strategies.push_back("proxy");
  }
  for (const auto& s : strategies) {
    if (s == "none" && f.strategies.size() == 1 && !f.text.empty()) continue;
    static const char* const known[] = {"small", "speculative", "token-cascade", "request-cascade",
                                        "router", "contrastive", "proxy"};
    if (std::find(std::begin(known), std::end(known), s) == std::end(known))
      throw Error("unknown strategy '" + s + "' (known: " + kStrategies + ")");
    if (s == "router" && f.router.empty()) throw Error("--strategy router needs --router ROUTER.gguf");
    if (s == "proxy" && f.tuned.empty()) throw Error("--strategy proxy needs --tuned TUNED_SMALL.gguf");
  }
  if (f.horizon && std::find(strategies.begin(), strategies.end(), "token-cascade") == strategies.end() &&
      std::find(strategies.begin(), strategies.end(), "router") == strategies.end())
    throw Error("--horizon is only used by --strategy token-cascade and router, and neither is run");
  const auto prompt_texts = read_prompts(f.prompts, f.limit);

  Loaded small{f.small, {}, {}, {}}, large{f.large, {}, {}, {}}, tuned{f.tuned, {}, {}, {}};
  small.model = load_model(f.small);
  large.model = load_model(f.large);
  check_shared_vocab(small.model->tokenizer(), "small model " + f.small, large.model->tokenizer(),
                     "large model " + f.large);
  if (!f.tuned.empty()) {
    tuned.model = load_model(f.tuned);
    check_shared_vocab(small.model->tokenizer(), "small model " + f.small, tuned.model->tokenizer(),
                       "tuned model " + f.tuned);
  }
  std::unique_ptr<TokenRouter> router;
  if (!f.router.empty()) router = std::make_unique<TokenRouter>(TokenRouter::load(f.router, small.model->config()));

  const Tokenizer& tok = large.model->tokenizer();
  std::vector<std::vector<int32_t>> prompts;
  size_t longest = 0;
  for (const auto& text : prompt_texts) {
    prompts.push_back(tok.encode(text, tok.vocab().add_bos, false));
    longest = std::max(longest, prompts.back().size());
  }
  const int64_t ctx = static_cast<int64_t>(longest) + f.n_predict + 1;
  for (Loaded* m : {&small, &large, &tuned}) {
    if (!m->model) continue;
    const int64_t model_ctx = m->model->config().ctx_len;
    if (model_ctx > 0 && ctx > model_ctx)
      throw Error("the longest prompt (" + std::to_string(longest) + " tokens) plus -n " +
                  std::to_string(f.n_predict) + " exceeds " + m->path + "'s context of " + std::to_string(model_ctx));
  }
  ThreadPool pool(f.rt.resolved_threads());
  for (Loaded* m : {&small, &large, &tuned}) {
    if (!m->model) continue;
    m->tr = std::make_unique<Transformer>(*m->model, pool);
    m->kv = std::make_unique<KvCache>(m->model->config(), ctx, f.rt.kv_dtype());
  }

  std::string text_table;
  if (!f.text.empty()) {
    text_table = score_text(f, small, large, f.tuned.empty() ? nullptr : &tuned, pool);
    if (f.strategies.size() == 1 && f.strategies[0] == "none") {
      std::printf("%s", text_table.c_str());
      if (!f.out.empty()) write_file_atomic(f.out, text_table);
      return;
    }
  }
  std::fprintf(stderr, "collab eval: %zu prompts, %d tokens each, %d threads\n", prompts.size(), f.n_predict,
               pool.size());
  Evaluator ev(f, small, large, f.tuned.empty() ? nullptr : &tuned, prompts);
  ev.run_large();
  for (const auto& s : strategies) {
    if (s == "small") {
      ev.run_small();
    } else if (s == "speculative") {
      for (int k : f.draft_max.empty() ? std::vector<int>{4} : f.draft_max) ev.run_speculative(k);
    } else if (s == "token-cascade") {
      for (double t : f.thresholds.empty() ? default_thresholds(s, f.metric) : f.thresholds) {
        UncertaintyPolicy policy(parse_uncertainty_metric(f.metric), t, f.horizon);
        ev.run_cascade(s, policy);
      }
    } else if (s == "request-cascade") {
      const auto metric = RequestScore::parse(f.request_metric);
      for (double t : f.thresholds.empty() ? default_thresholds(s, f.request_metric) : f.thresholds)
        ev.run_request_cascade(RequestScore{metric, t});
    } else if (s == "router") {
      for (double t : f.thresholds.empty() ? default_thresholds(s, "") : f.thresholds) {
        RouterPolicy policy(*router, static_cast<float>(t), f.horizon);
        ev.run_cascade(s, policy);
      }
    } else if (s == "contrastive") {
      ev.run_contrastive();
    } else if (s == "proxy") {
      ev.run_proxy();
    }
  }

  const std::string table = format_collab_table(ev.rows()) + (text_table.empty() ? "" : "\n" + text_table);
  std::printf("%s", table.c_str());
  if (!f.out.empty()) {
    std::string doc = "Prompts: " + f.prompts + " (" + std::to_string(prompts.size()) + "), " +
                      std::to_string(f.n_predict) + " tokens each, greedy, end-of-generation ignored; small " +
                      f.small + ", large " + f.large + ", " + std::to_string(pool.size()) + " threads.\n\n" + table;
    write_file_atomic(f.out, doc);
  }
  if (!f.json_out.empty()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : ev.rows())
      j.push_back({{"strategy", r.strategy}, {"setting", r.setting}, {"large_share", r.large_share},
                   {"share_unit", r.share_unit}, {"seconds", r.seconds}, {"speedup", r.speedup},
                   {"agreement", r.agreement}, {"prefix", r.prefix}, {"loglik", r.loglik}, {"tokens", r.tokens},
                   {"notes", r.extra}});
    write_file_atomic(f.json_out, j.dump(1) + "\n");
  }
  if (!f.plot.empty()) write_collab_plot(ev.rows(), f.plot);
}

}  // namespace

void register_collab_eval(CLI::App& collab) {
  auto f = std::make_shared<CollabEvalFlags>();
  CLI::App* cmd = collab.add_subcommand(
      "eval", "Compare collaboration strategies on held-out prompts: large-model share, speedup, agreement, log-likelihood");
  cmd->add_option("--small", f->small, "small model (GGUF)")->required();
  cmd->add_option("--large", f->large, "large model (GGUF), same vocabulary")->required();
  cmd->add_option("--prompts", f->prompts, "prompt file, one prompt per line")->required();
  cmd->add_option("--strategy", f->strategies,
                  std::string("strategies to run (repeatable; default: all that the given models allow): ") + kStrategies);
  cmd->add_option("--threshold", f->thresholds,
                  "thresholds for token-cascade, request-cascade and router (repeatable; default: a sweep per strategy)");
  cmd->add_option("--metric", f->metric, "token-cascade uncertainty: maxprob | margin | entropy")->capture_default_str();
  cmd->add_flag("--horizon", f->horizon,
               "token-cascade, router: weigh the uncertainty (router: probability) by the share of the -n "
               "tokens still to come (escalate early, where a divergence changes more of the output)");
  cmd->add_option("--request-metric", f->request_metric, "request-cascade score: nll | maxprob | margin | entropy")
      ->capture_default_str();
  cmd->add_option("--router", f->router, "token router (from `slm collab router train`) for --strategy router");
  cmd->add_option("--tuned", f->tuned, "tuned small model for proxy tuning (--small is the base)");
  cmd->add_option("-n,--n-predict", f->n_predict, "tokens generated per prompt")->capture_default_str();
  cmd->add_option("--limit", f->limit, "use only the first N prompts (0: all)")->capture_default_str();
  cmd->add_option("--draft-max", f->draft_max, "speculative: tokens drafted per verification (repeatable; default 4)");
  cmd->add_option("--draft-min-prob", f->draft_min_prob,
                  "speculative: stop drafting when the small model's top probability falls below this (0: off)")
      ->capture_default_str();
  cmd->add_option("--alpha", f->alpha, "contrastive: plausibility cutoff")->capture_default_str();
  cmd->add_option("--beta", f->beta, "contrastive: weight of the small model")->capture_default_str();
  cmd->add_option("--proxy-alpha", f->proxy_alpha, "proxy: weight of (tuned - base)")->capture_default_str();
  cmd->add_option("--text", f->text,
                  "also score this text: perplexity of large, small, --tuned and proxy tuning (--strategy none: only this)");
  cmd->add_option("--out", f->out, "also write the table (markdown) to this file");
  cmd->add_option("--json", f->json_out, "also write the rows as JSON to this file");
  cmd->add_option("--plot", f->plot, "draw agreement vs large-model share (.png or .svg)");
  add_runtime_flags(cmd, f->rt);
  cmd->callback([f] { run_collab_eval(*f); });
}

}  // namespace slm::cli
