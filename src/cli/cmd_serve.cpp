// slm serve: the OpenAI-compatible server (serve/server.h) over models and pairs of models.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "serve/batch_engine.h"
#include "serve/pair_engine.h"
#include "serve/server.h"

namespace slm::cli {
namespace {

struct ServeFlags {
  std::vector<std::string> models, pairs;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key, api_key_file;
  int parallel = 4;
  int64_t queue = 64;
  int64_t prefill_chunk = 128;
  double timeout_s = 600;
  size_t max_body = 8 << 20;
  std::string chat_template;
  double grace_s = 5;
  bool no_prompt_cache = false;
  RuntimeFlags rt;
  // Pairs.
  std::string strategy = "speculative";
  int draft_max = 4;
  float draft_min_prob = 0.0f;
  std::string metric = "entropy";
  double threshold = 2.0;
  std::string router;
  float router_threshold = 0.5f;
  bool horizon = false;
};

std::pair<std::string, std::string> split_name(const std::string& spec, const char* flag) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw Error(std::string(flag) + " expects NAME=PATH, got '" + spec + "'");
  return {spec.substr(0, eq), spec.substr(eq + 1)};
}

std::string read_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("--api-key-file: cannot read '" + path + "'");
  std::string key;
  std::getline(in, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) key.pop_back();
  if (key.empty()) throw Error("--api-key-file: '" + path + "' holds no key on its first line");
  return key;
}

void run_serve(const ServeFlags& f) {
  if (f.models.empty() && f.pairs.empty()) throw Error("serve: give at least one --model NAME=PATH or --pair NAME=SMALL,LARGE");
  if (!f.api_key.empty() && !f.api_key_file.empty()) throw Error("give --api-key or --api-key-file, not both");
  if (f.port < 0 || f.port > 65535) throw Error("--port must be in [0, 65535]");
  if (f.timeout_s <= 0) throw Error("--timeout must be > 0 seconds");
  if (f.grace_s < 0) throw Error("--shutdown-grace must be >= 0 seconds");
  // Checked before any model loads (the engines check these too; the parsers name the known
  // values).
  if (f.parallel < 1) throw Error("serve: --parallel must be >= 1");
  if (f.prefill_chunk < 1) throw Error("serve: --prefill-chunk must be >= 1");
  if (f.queue < 0) throw Error("serve: --queue must be >= 0");
  (void)parse_pair_strategy(f.strategy);
  (void)parse_uncertainty_metric(f.metric);
  if (f.horizon && parse_pair_strategy(f.strategy) == PairStrategy::Speculative)
    throw Error("serve: --horizon applies to --strategy cascade and router, not speculative");

  // Signals are taken by one thread (sigwait) rather than a handler: blocked here, before any
  // thread starts, so every thread inherits the mask. A vanished client must not kill us (SIGPIPE).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ServerOptions so;
  so.host = f.host;
  so.port = f.port;
  so.api_key = f.api_key_file.empty() ? f.api_key : read_key_file(f.api_key_file);
  so.max_body_bytes = f.max_body;
  so.request_timeout_s = f.timeout_s;
  so.chat_template = f.chat_template;
  const int threads = f.rt.resolved_threads();

  Server* server_ptr = nullptr;
  ServerMetrics metrics;
  std::vector<ServedModel> served;
  for (const std::string& spec : f.models) {
    auto [name, path] = split_name(spec, "--model");
    auto model = load_model(path);
    BatchEngineOptions bo;
    bo.slots = f.parallel;
    bo.context = f.rt.resolved_ctx(model->config());
    bo.kv_type = f.rt.kv_dtype();
    bo.queue = f.queue;
    bo.prefill_chunk = f.prefill_chunk;
    bo.threads = threads;
    bo.prompt_cache = !f.no_prompt_cache;
    ServedModel sm;
    sm.name = name;
    sm.chat = serve_chat_template(*model, f.chat_template, sm.chat_error);
    served.push_back(std::move(sm));
    served.back().engine = std::make_unique<BatchEngine>(name, std::move(model), bo, &metrics);
  }
  for (const std::string& spec : f.pairs) {
    auto [name, paths] = split_name(spec, "--pair");
    const size_t comma = paths.find(',');
    if (comma == std::string::npos || comma == 0 || comma + 1 == paths.size())
      throw Error("--pair expects NAME=SMALL,LARGE, got '" + spec + "'");
    auto small = load_model(paths.substr(0, comma));
    auto large = load_model(paths.substr(comma + 1));
    PairEngineOptions po;
    po.strategy = parse_pair_strategy(f.strategy);
    po.context = std::min(f.rt.resolved_ctx(small->config()), f.rt.resolved_ctx(large->config()));
    po.kv_type = f.rt.kv_dtype();
    po.queue = f.queue;
    po.threads = threads;
    po.speculative.draft_max = f.draft_max;
    po.speculative.draft_min_prob = f.draft_min_prob;
    po.metric = parse_uncertainty_metric(f.metric);
    po.threshold = f.threshold;
    po.router_path = f.router;
    po.router_threshold = f.router_threshold;
    po.horizon = f.horizon;
    ServedModel sm;
    sm.name = name;
    sm.chat = serve_chat_template(*large, f.chat_template, sm.chat_error);
    served.push_back(std::move(sm));
    served.back().engine = std::make_unique<PairEngine>(name, std::move(small), std::move(large), po, &metrics);
  }
  Server server(so, std::move(served), metrics);
  server_ptr = &server;
  const int port = server.bind();
  std::string names;
  for (const std::string& spec : f.models) names += (names.empty() ? "" : ", ") + split_name(spec, "--model").first;
  for (const std::string& spec : f.pairs) names += (names.empty() ? "" : ", ") + split_name(spec, "--pair").first + " (pair, " + f.strategy + ")";
  std::fprintf(stderr, "slm serve: listening on http://%s:%d — models: %s; %d slot(s) each, %d thread(s)%s\n",
               f.host.c_str(), port, names.c_str(), f.parallel, threads, so.api_key.empty() ? "" : ", API key required");

  std::promise<void> stopped;
  std::future<void> stopped_future = stopped.get_future();
  const auto grace = std::chrono::milliseconds(static_cast<int64_t>(f.grace_s * 1000));
  std::thread signal_thread([&stop_signals, server_ptr, grace, &stopped] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "slm serve: %s received: finishing running requests (up to %.0f s), then exiting\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT", grace.count() / 1000.0);
    server_ptr->stop(grace);
    stopped.set_value();
  });
  server.listen();
  stopped_future.wait();
  signal_thread.join();
  std::fprintf(stderr, "slm serve: stopped\n");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, embeddings, metrics)");
  cmd->add_option("--model", f->models, "serve a model: NAME=PATH (repeatable)");
  cmd->add_option("--pair", f->pairs, "serve a small + large pair under one name: NAME=SMALL,LARGE (repeatable)");
  cmd->add_option("--strategy", f->strategy, "how pairs work: speculative, cascade or router")->capture_default_str();
  cmd->add_option("--host", f->host, "address to bind (0.0.0.0 exposes the server to the network)")->capture_default_str();
  cmd->add_option("--port", f->port, "port; 0 picks a free one")->capture_default_str();
  cmd->add_option("--api-key", f->api_key, "require 'Authorization: Bearer KEY' on every endpoint but /health");
  cmd->add_option("--api-key-file", f->api_key_file, "read the API key from the first line of a file");
  cmd->add_option("--parallel", f->parallel, "slots per model: requests decoded together in one batch")->capture_default_str();
  cmd->add_option("--queue", f->queue, "requests that may wait for a slot per model; beyond: 429")->capture_default_str();
  cmd->add_option("--prefill-chunk", f->prefill_chunk, "prompt tokens fed per decoding step (bounds how long new prompts delay running streams)")->capture_default_str();
  cmd->add_option("--timeout", f->timeout_s, "per-request time limit in seconds (finish_reason \"time_limit\")")->capture_default_str();
  cmd->add_option("--max-body", f->max_body, "largest request body in bytes (413 beyond)")->capture_default_str();
  cmd->add_flag("--no-prompt-cache", f->no_prompt_cache, "prefill every prompt in full (by default a slot's cached prefix is reused)");
  cmd->add_option("--chat-template", f->chat_template, "chat template family for every model (overrides the models' own)");
  cmd->add_option("--shutdown-grace", f->grace_s, "on SIGTERM, seconds running requests may finish before they are cancelled")->capture_default_str();
  cmd->add_option("--draft-max", f->draft_max, "speculative pairs: tokens drafted per round")->capture_default_str();
  cmd->add_option("--draft-min-prob", f->draft_min_prob, "speculative pairs: stop drafting below this draft probability")->capture_default_str();
  cmd->add_option("--metric", f->metric, "cascade pairs: maxprob, margin or entropy")->capture_default_str();
  cmd->add_option("--threshold", f->threshold, "cascade pairs: escalate to the large model past this uncertainty")->capture_default_str();
  cmd->add_option("--router", f->router, "router pairs: the router GGUF (slm collab router train)");
  cmd->add_option("--router-threshold", f->router_threshold, "router pairs: escalate at or above this router score")->capture_default_str();
  cmd->add_flag("--horizon", f->horizon,
                "cascade and router pairs: weigh the uncertainty (router: score) by the share of the request's "
                "max_tokens still to come, so the large model is spent early");
  add_runtime_flags(cmd, f->rt);
  cmd->callback([f, cmd] {
    // Pair settings without a pair would be silently ignored: say so instead.
    if (f->pairs.empty())
      for (const char* flag : {"--strategy", "--draft-max", "--draft-min-prob", "--metric", "--threshold", "--router",
                               "--router-threshold", "--horizon"})
        if (cmd->count(flag) > 0) throw Error(std::string("serve: ") + flag + " applies to --pair models only");
    run_serve(*f);
  });
}

}  // namespace slm::cli
