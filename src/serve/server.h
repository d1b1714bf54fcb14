// slm serve: the OpenAI-compatible HTTP API over cpp-httplib. Routes /v1/models,
// /v1/completions, /v1/chat/completions (stream: server-sent events ending in "data: [DONE]"),
// /v1/embeddings, /health and /metrics to the engines (one per served model name).
//
// Safety: binds where told (127.0.0.1 by default); with an API key every endpoint but /health
// needs "Authorization: Bearer KEY" (compared in constant time); bodies over max_body_bytes get
// 413; every error is a 4xx/5xx with OpenAI's JSON error body; a full queue is 429 with
// Retry-After; a streaming client that goes away cancels its generation.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "serve/engine.h"
#include "serve/metrics.h"
#include "tokenizer/chat_template.h"

namespace httplib { class Server; }

namespace slm {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (see Server::port())
  std::string api_key;                   // empty: no authentication
  size_t max_body_bytes = 8 << 20;
  double request_timeout_s = 600;        // per request: generation stops with "time_limit"
  int http_threads = 0;                  // 0: enough for every slot and queue entry
  std::string chat_template;             // a family name forcing the template of every model
};

struct ServedModel {
  std::string name;
  std::unique_ptr<Engine> engine;
  std::optional<ChatTemplate> chat;      // nullopt: the model has none (chat requests get 400)
  std::string chat_error;                // why there is none
};

class Server {
 public:
  // metrics: shared with the engines (they record tokens and latencies); must outlive the server.
  Server(ServerOptions options, std::vector<ServedModel> models, ServerMetrics& metrics);
  ~Server();

  // Binds the socket; throws slm::Error (address in use, bad host). Returns the port.
  int bind();
  int port() const { return port_; }
  // Serves until stop(); returns then.
  void listen();
  // Stops taking requests, lets running generations finish for up to `grace`, cancels the rest,
  // and makes listen() return. Safe from any thread; idempotent.
  void stop(std::chrono::milliseconds grace);

  ServerMetrics& metrics() { return metrics_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ServerOptions opt_;
  ServerMetrics& metrics_;
  int port_ = 0;
};

// Loads the chat template choice for a served model: `choice` (a family name) wins, else the
// model's own template; nullopt with the reason when neither gives one.
std::optional<ChatTemplate> serve_chat_template(const Model& model, const std::string& choice,
                                                std::string& why_not);

}  // namespace slm
