// A small and a large model served under one name: speculative decoding (the large model's
// output, faster), a token cascade (the small model generates, the large one takes the tokens
// where the small one is unsure) or the token router. Requests run one after another on one
// worker: the collaboration decoders are single-sequence (batching them is future work), so a
// pair serves one stream at a time and queues the rest.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "generate/speculative.h"
#include "generate/uncertainty.h"
#include "serve/engine.h"

namespace slm {

class ServerMetrics;

enum class PairStrategy { Speculative, Cascade, Router };
// "speculative" | "cascade" | "router"; throws slm::Error listing them otherwise.
PairStrategy parse_pair_strategy(const std::string& name);
const char* pair_strategy_name(PairStrategy s);

struct PairEngineOptions {
  PairStrategy strategy = PairStrategy::Speculative;
  int64_t context = 0;           // 0: the smaller of both models' context lengths
  DType kv_type = DType::F32;
  int64_t queue = 64;
  int threads = 1;
  SpeculativeOptions speculative;
  UncertaintyMetric metric = UncertaintyMetric::kEntropy;  // cascade
  double threshold = 2.0;                                 // cascade: escalate past this
  std::string router_path;                                // router: the router GGUF
  float router_threshold = 0.5f;                          // router: escalate at or above
  // cascade, router: weigh the uncertainty (router: score) by the share of the request's
  // max_tokens still to come, so the large model is spent early (collab eval --horizon).
  bool horizon = false;
};

class PairEngine : public Engine {
 public:
  // Checks that both models share the vocabulary (vocab_check.h) and, for the router strategy,
  // loads the router; throws slm::Error naming what is wrong. Starts the worker.
  PairEngine(std::string name, std::unique_ptr<Model> small, std::unique_ptr<Model> large,
             const PairEngineOptions& options, ServerMetrics* metrics);
  ~PairEngine() override;

  std::shared_ptr<RequestState> submit(GenerationJob job) override;
  void shutdown(std::chrono::milliseconds grace) override;
  EngineLoad load() const override;
  const Model& model() const override { return *large_; }
  int64_t context() const override { return context_; }
  bool supports_embeddings() const override { return false; }
  std::string kind() const override { return pair_strategy_name(opt_.strategy); }

 private:
  struct Pending {
    GenerationJob job;
    std::shared_ptr<RequestState> state;
  };
  struct Runner;

  void run();
  void serve_one(Pending& p);

  std::string name_;
  std::unique_ptr<Model> small_, large_;
  PairEngineOptions opt_;
  int64_t context_;
  ServerMetrics* metrics_;
  std::unique_ptr<Runner> runner_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool busy_ = false;
  bool accepting_ = true;
  bool stop_ = false;
  std::shared_ptr<RequestState> current_;
  std::thread worker_;
};

}  // namespace slm
