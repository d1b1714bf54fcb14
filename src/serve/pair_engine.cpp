#include "serve/pair_engine.h"

#include <algorithm>

#include "core/error.h"
#include "generate/cascade.h"
#include "generate/router_policy.h"
#include "generate/vocab_check.h"
#include "model/token_router.h"
#include "serve/metrics.h"

namespace slm {

PairStrategy parse_pair_strategy(const std::string& name) {
  if (name == "speculative") return PairStrategy::Speculative;
  if (name == "cascade") return PairStrategy::Cascade;
  if (name == "router") return PairStrategy::Router;
  throw Error("unknown pair strategy '" + name + "' (expected speculative, cascade or router)");
}

const char* pair_strategy_name(PairStrategy s) {
  switch (s) {
    case PairStrategy::Speculative: return "speculative";
    case PairStrategy::Cascade: return "cascade";
    case PairStrategy::Router: return "router";
  }
  return "?";
}

// Everything one request needs, reused across requests: both models' transformers and caches
// and the cascade's escalation policy.
struct PairEngine::Runner {
  Runner(const Model& small, const Model& large, const PairEngineOptions& o, int64_t context)
      : pool(std::max(1, o.threads)), small_tf(small, pool), large_tf(large, pool),
        small_kv(small.config(), context, o.kv_type), large_kv(large.config(), context, o.kv_type) {
    if (o.strategy == PairStrategy::Cascade) policy = std::make_unique<UncertaintyPolicy>(o.metric, o.threshold, o.horizon);
    if (o.strategy == PairStrategy::Router)
      policy = std::make_unique<RouterPolicy>(TokenRouter::load(o.router_path, small.config()), o.router_threshold, o.horizon);
  }
  ThreadPool pool;
  Transformer small_tf, large_tf;
  KvCache small_kv, large_kv;
  std::unique_ptr<EscalationPolicy> policy;
};

PairEngine::PairEngine(std::string name, std::unique_ptr<Model> small, std::unique_ptr<Model> large,
                       const PairEngineOptions& options, ServerMetrics* metrics)
    : name_(std::move(name)), small_(std::move(small)), large_(std::move(large)), opt_(options),
      metrics_(metrics) {
  check_shared_vocab(small_->tokenizer(), "small model", large_->tokenizer(), "large model");
  if (opt_.queue < 0) throw Error("serve: --queue must be >= 0");
  opt_.speculative.validate();
  if (opt_.strategy == PairStrategy::Router && opt_.router_path.empty())
    throw Error("serve: the router strategy needs --router FILE (a router trained with slm collab router train)");
  context_ = opt_.context > 0 ? opt_.context
                              : std::min(small_->config().ctx_len, large_->config().ctx_len);
  if (context_ < 2) throw Error("serve: the context must hold at least 2 positions");
  runner_ = std::make_unique<Runner>(*small_, *large_, opt_, context_);
  worker_ = std::thread([this] { run(); });
}

PairEngine::~PairEngine() { shutdown(std::chrono::milliseconds(0)); }

std::shared_ptr<RequestState> PairEngine::submit(GenerationJob job) {
  if (auto refused = refuse_prompt(job, context_)) return refused;
  auto state = std::make_shared<RequestState>();
  {
    std::lock_guard lock(mu_);
    if (!accepting_) throw EngineBusy{503, "the server is shutting down", 1};
    if (static_cast<int64_t>(queue_.size()) >= opt_.queue + (busy_ ? 0 : 1))
      throw EngineBusy{429, "model '" + name_ + "' (a pair, one stream at a time) has " +
                                std::to_string(queue_.size()) + " requests waiting; retry later", 2};
    queue_.push_back({std::move(job), state});
  }
  cv_.notify_all();
  if (metrics_) metrics_->set_queue_depth(name_, load().queued);
  return state;
}

EngineLoad PairEngine::load() const {
  std::lock_guard lock(mu_);
  return {static_cast<int64_t>(queue_.size()), busy_ ? 1 : 0, 1};
}

void PairEngine::shutdown(std::chrono::milliseconds grace) {
  std::deque<Pending> dropped;
  {
    std::lock_guard lock(mu_);
    if (!worker_.joinable()) return;
    accepting_ = false;
    dropped.swap(queue_);
  }
  for (Pending& p : dropped) p.state->fail(503, "the server is shutting down");
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, grace, [&] { return !busy_; });
    stop_ = true;
    if (current_) current_->cancel();
  }
  cv_.notify_all();
  worker_.join();
}

void PairEngine::run() {
  for (;;) {
    Pending p;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) break;
      p = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      current_ = p.state;
    }
    if (metrics_) {
      metrics_->set_active_slots(name_, 1);
      metrics_->set_queue_depth(name_, load().queued);
    }
    try {
      serve_one(p);
    } catch (const std::exception& e) {
      p.state->fail(500, std::string("generation failed: ") + e.what());
    }
    {
      std::lock_guard lock(mu_);
      busy_ = false;
      current_.reset();
    }
    if (metrics_) metrics_->set_active_slots(name_, 0);
    cv_.notify_all();
  }
}

void PairEngine::serve_one(Pending& p) {
  Runner& r = *runner_;
  r.small_kv.clear();
  r.large_kv.clear();
  RequestState& state = *p.state;
  const GenerationJob& job = p.job;
  bool first = true;
  Clock::time_point last = Clock::now();
  bool timed_out = false;
  const TextCallback on_text = [&](std::string_view piece) {
    const Clock::time_point now = Clock::now();
    if (metrics_) {
      if (first) metrics_->time_to_first_token(name_, std::chrono::duration<double>(now - job.submitted).count());
      else metrics_->inter_token_latency(name_, std::chrono::duration<double>(now - last).count());
    }
    first = false;
    last = now;
    state.emit(piece, nullptr, 0);
    if (now > job.deadline) timed_out = true;
    return !state.cancelled() && !timed_out;
  };

  GenerateResult gen;
  TokenCounts counts;
  counts.prompt = static_cast<int64_t>(job.prompt.size());
  if (opt_.strategy == PairStrategy::Speculative) {
    SpeculativeResult res = generate_speculative(r.large_tf, r.large_kv, r.small_tf, r.small_kv, job.prompt,
                                                 job.options, opt_.speculative, on_text);
    gen = std::move(res.gen);
    counts.completion = static_cast<int64_t>(gen.tokens.size());
    // Accepted drafts are the small model's tokens; every other token is the large model's own.
    counts.small = std::min(res.stats.accepted, counts.completion);
    counts.large = counts.completion - counts.small;
  } else {
    CascadeDecodeModel cascade(r.small_tf, r.small_kv, r.large_tf, r.large_kv, *r.policy);
    if (opt_.horizon) cascade.set_horizon(job.options.max_tokens);
    gen = generate(cascade, job.prompt, job.options, on_text);
    counts.completion = static_cast<int64_t>(gen.tokens.size());
    counts.large = std::min(cascade.stats().decided_large, counts.completion);
    counts.small = counts.completion - counts.large;
  }
  for (const TokenLogprob& lp : gen.logprobs) state.emit("", &lp, 0);
  state.emit("", nullptr, counts.completion);
  if (metrics_) {
    metrics_->tokens(name_, counts.prompt, counts.completion);
    metrics_->tokens_by_member(name_, "small", counts.small);
    metrics_->tokens_by_member(name_, "large", counts.large);
  }
  std::string reason = gen.stop_reason == "eog" ? "stop" : gen.stop_reason;
  if (reason == "cancelled" && timed_out) reason = "time_limit";
  if (metrics_ && (reason == "cancelled" || reason == "time_limit")) metrics_->rejected(name_, reason);
  state.finish(reason, counts);
}

}  // namespace slm
