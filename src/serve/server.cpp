#include "serve/server.h"

#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <ctime>
#include <random>

#include "core/error.h"
#include "serve/api_request.h"
#include "serve/api_response.h"

namespace slm {

using nlohmann::json;

namespace {

// Equal-length comparison whose time does not depend on where the first difference is, so the
// key cannot be guessed byte by byte from response times.
bool constant_time_equal(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump_json(api_error_body(e)), "application/json");
}

std::string error_type_for(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "server_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string random_hex(size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string s(n, '0');
  for (char& c : s) c = kHex[rng() & 15];
  return s;
}

uint64_t random_seed() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// cpp-httplib 0.11 listens with a backlog of 5, compiled into Debian's library: a burst of
// clients connecting at once (each streaming request opens one) overflows it, and the kernel
// then drops handshakes, which clients see as a 1-3 s connect delay or a reset. Calling listen()
// again on the bound socket raises the backlog; the socket is found by its port.
void raise_listen_backlog(int port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (fd <= 2) continue;
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int bound = -1;
    if (addr.ss_family == AF_INET) bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (bound == port) ::listen(fd, SOMAXCONN);
  }
  closedir(dir);
}

}  // namespace

std::optional<ChatTemplate> serve_chat_template(const Model& model, const std::string& choice, std::string& why_not) {
  try {
    return resolve_chat_template(model.gguf().get_string("tokenizer.chat_template", ""), choice);
  } catch (const Error& e) {
    why_not = std::string("this model has no usable chat template (") + e.what() +
              "); start slm serve with --chat-template NAME, or use /v1/completions";
    return std::nullopt;
  }
}

struct Server::Impl {
  Impl(Server& owner, std::vector<ServedModel> m) : self(owner), models(std::move(m)) {}

  Server& self;
  httplib::Server http;
  std::vector<ServedModel> models;
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  bool stopped = false;

  ServedModel& find(const std::string& name) {
    for (ServedModel& m : models)
      if (m.name == name) return m;
    std::string names;
    for (const ServedModel& m : models) names += (names.empty() ? "'" : ", '") + m.name + "'";
    throw ApiError(404, "the model '" + name + "' does not exist; this server serves " + names, "model",
                   "invalid_request_error", "model_not_found");
  }

  static json parse_body(const httplib::Request& req) {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) throw ApiError(400, "the request body is not valid JSON", "", "invalid_request_error");
    return body;
  }

  void finished(const std::string& model, const char* endpoint, int status, Clock::time_point t0) {
    self.metrics_.request_finished(model.empty() ? "-" : model, endpoint, status, seconds_since(t0));
  }

  std::shared_ptr<RequestState> submit(Engine& e, GenerationJob job) {
    try {
      return e.submit(std::move(job));
    } catch (const EngineBusy& b) {
      ApiError err(b.status, b.message, "", error_type_for(b.status), b.status == 429 ? "queue_full" : "shutting_down");
      throw err;
    }
  }

  void completion(const httplib::Request& req, httplib::Response& res, bool chat) {
    const Clock::time_point t0 = Clock::now();
    const char* endpoint = chat ? "chat_completions" : "completions";
    std::string model_name;
    try {
      const CompletionRequest cr = parse_completion_request(parse_body(req), chat);
      ServedModel& sm = find(cr.model);
      model_name = sm.name;
      Engine& engine = *sm.engine;
      const Tokenizer& tok = engine.model().tokenizer();
      std::vector<int32_t> prompt;
      if (chat) {
        if (!sm.chat) throw ApiError(400, sm.chat_error, "messages");
        const std::string bos_text = tok.bos() >= 0 ? tok.vocab().tokens[static_cast<size_t>(tok.bos())] : "";
        const std::string eos_text = tok.eos() >= 0 ? tok.vocab().tokens[static_cast<size_t>(tok.eos())] : "";
        const bool renders_bos = chat_renders_bos(sm.chat->family);
        std::string text;
        try {
          text = render_chat(*sm.chat, cr.messages, true, renders_bos ? bos_text : "", eos_text);
        } catch (const Error& e) {
          throw ApiError(400, e.what(), "messages");
        }
        prompt = tok.encode(text, tok.vocab().add_bos && !renders_bos, true);
      } else if (cr.prompt_is_tokens) {
        for (size_t i = 0; i < cr.prompt_tokens.size(); ++i)
          if (cr.prompt_tokens[i] >= tok.vocab_size())
            throw ApiError(400, "token id " + std::to_string(cr.prompt_tokens[i]) + " is outside the vocabulary (" +
                                    std::to_string(tok.vocab_size()) + " tokens)", "prompt[" + std::to_string(i) + "]");
        prompt = cr.prompt_tokens;
      } else {
        prompt = tok.encode(cr.prompt, tok.vocab().add_bos, false);
      }
      const char* prompt_param = chat ? "messages" : "prompt";
      if (prompt.empty()) throw ApiError(400, "the prompt is empty", prompt_param);
      if (static_cast<int64_t>(prompt.size()) >= engine.context())
        throw ApiError(400, "this model's context holds " + std::to_string(engine.context()) +
                                " tokens per request; the prompt has " + std::to_string(prompt.size()) +
                                " (and at least one must be generated)",
                       prompt_param, "invalid_request_error", "context_length_exceeded");

      GenerationJob job;
      job.submitted = t0;
      job.deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(self.opt_.request_timeout_s));
      const int64_t room = engine.context() - static_cast<int64_t>(prompt.size());
      job.options.max_tokens = static_cast<int>(std::min<int64_t>(cr.max_tokens.value_or(static_cast<int>(room)), room));
      job.options.sampler = cr.sampler;
      if (!cr.seed_given) job.options.sampler.seed = random_seed();
      job.options.stop = cr.stop;
      job.options.stop_at_eog = !cr.ignore_eos;
      job.options.logprobs = cr.logprobs;
      job.options.top_logits = cr.top_logprobs;
      job.prompt = std::move(prompt);
      std::shared_ptr<RequestState> state = submit(engine, std::move(job));

      CompletionMeta meta{(chat ? "chatcmpl-" : "cmpl-") + random_hex(24), static_cast<int64_t>(std::time(nullptr)),
                          sm.name, engine.kind() == "single" ? "" : engine.kind()};
      if (!cr.stream) {
        // Wait a while for a quick answer, sent whole with its real status. A longer one goes out
        // chunked, preceded by a space every second (JSON allows leading whitespace): writing is
        // the only way to notice a client that has gone away, whose generation is then cancelled.
        auto u = std::make_shared<RequestState::Update>();
        const Clock::time_point quick = Clock::now() + std::chrono::seconds(1);
        while (!u->finished && Clock::now() < quick) state->wait(*u, quick);
        const bool want_logprobs = cr.logprobs;
        const Tokenizer* tk = &tok;
        const auto body_of = [meta, chat, want_logprobs, tk](RequestState& st, const RequestState::Update& up) {
          if (st.error_status()) return api_error_body(ApiError(st.error_status(), st.error_message(), "", error_type_for(st.error_status())));
          json lp = nullptr;
          if (want_logprobs) lp = chat ? chat_logprobs_json(up.logprobs, *tk) : completion_logprobs_json(up.logprobs, *tk);
          return chat ? chat_completion_json(meta, up.text, st.finish_reason(), st.counts(), lp)
                      : text_completion_json(meta, up.text, st.finish_reason(), st.counts(), lp);
        };
        if (u->finished) {
          if (state->error_status()) throw ApiError(state->error_status(), state->error_message(), "", error_type_for(state->error_status()));
          res.set_content(dump_json(body_of(*state, *u)), "application/json");
          finished(model_name, endpoint, 200, t0);
          return;
        }
        res.set_chunked_content_provider(
            "application/json",
            [this, state, u, body_of, model_name, endpoint, t0](size_t, httplib::DataSink& sink) {
              Clock::time_point next_space = Clock::now() + std::chrono::seconds(1);
              while (!u->finished) {
                state->wait(*u, next_space);
                if (u->finished || Clock::now() < next_space) continue;
                next_space = Clock::now() + std::chrono::seconds(1);
                if (!sink.write(" ", 1)) {
                  state->cancel();
                  finished(model_name, endpoint, 499, t0);
                  return false;
                }
              }
              const std::string body = dump_json(body_of(*state, *u));
              sink.write(body.data(), body.size());
              sink.done();
              finished(model_name, endpoint, state->error_status() ? state->error_status() : 200, t0);
              return true;
            },
            [state](bool) { state->cancel(); });
        return;
      }
      stream(res, state, meta, chat, cr.include_usage, cr.logprobs, tok, endpoint, t0);
    } catch (const ApiError& e) {
      if (e.status == 429 || e.status == 503) {
        res.set_header("Retry-After", e.status == 429 ? "1" : "5");
        self.metrics_.rejected(model_name.empty() ? "-" : model_name, e.status == 429 ? "queue_full" : "shutting_down");
      }
      send_error(res, e);
      finished(model_name, endpoint, e.status, t0);
    }
  }

  void stream(httplib::Response& res, std::shared_ptr<RequestState> state, CompletionMeta meta, bool chat,
              bool include_usage, bool logprobs, const Tokenizer& tok, const char* endpoint, Clock::time_point t0) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    const Tokenizer* tk = &tok;
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, state, meta, chat, include_usage, logprobs, tk, endpoint, t0](size_t, httplib::DataSink& sink) {
          const auto send = [&](const std::string& payload) {
            const std::string s = "data: " + payload + "\n\n";
            return sink.write(s.data(), s.size());
          };
          const TextChunkEvent text_event(meta, chat);
          std::string event;  // reused for every token
          bool ok = true;
          if (chat) ok = send(dump_json(chat_chunk_json(meta, {{"role", "assistant"}, {"content", ""}}, "", nullptr)));
          int64_t offset = 0;
          Clock::time_point last_write = Clock::now();
          bool done = false;
          while (ok && !done) {
            RequestState::Update u;
            const bool any = state->wait(u, Clock::now() + std::chrono::milliseconds(500));
            done = u.finished;
            if (!u.text.empty() && u.logprobs.empty()) {
              offset += static_cast<int64_t>(u.text.size());
              text_event.render(u.text, event);
              ok = sink.write(event.data(), event.size());
              last_write = Clock::now();
            } else if (!u.text.empty() || !u.logprobs.empty()) {
              json lp = nullptr;
              if (logprobs && !u.logprobs.empty())
                lp = chat ? chat_logprobs_json(u.logprobs, *tk) : completion_logprobs_json(u.logprobs, *tk, offset);
              offset += static_cast<int64_t>(u.text.size());
              ok = send(dump_json(chat ? chat_chunk_json(meta, {{"content", u.text}}, "", lp)
                                       : text_chunk_json(meta, u.text, "", lp)));
              last_write = Clock::now();
            } else if (!any && Clock::now() - last_write > std::chrono::seconds(2)) {
              // A comment line: keeps proxies from timing out and tells us when a client that is
              // still waiting in the queue has gone away.
              static const char kPing[] = ": waiting\n\n";
              ok = sink.write(kPing, sizeof kPing - 1);
              last_write = Clock::now();
            }
          }
          if (!ok) {
            state->cancel();
            finished(meta.model, endpoint, 499, t0);
            return false;
          }
          if (state->error_status()) {
            const int st = state->error_status();
            send(dump_json(api_error_body(ApiError(st, state->error_message(), "", error_type_for(st)))));
            send("[DONE]");
            sink.done();
            finished(meta.model, endpoint, st, t0);
            return true;
          }
          const std::string reason = state->finish_reason();
          send(dump_json(chat ? chat_chunk_json(meta, json::object(), reason, nullptr)
                              : text_chunk_json(meta, "", reason, nullptr)));
          if (include_usage) send(dump_json(usage_chunk_json(meta, chat, state->counts())));
          send("[DONE]");
          sink.done();
          finished(meta.model, endpoint, 200, t0);
          return true;
        },
        [state](bool) { state->cancel(); });  // the connection ended: stop generating if not done
  }

  void embeddings(const httplib::Request& req, httplib::Response& res) {
    const Clock::time_point t0 = Clock::now();
    std::string model_name;
    try {
      const EmbeddingRequest er = parse_embedding_request(parse_body(req));
      ServedModel& sm = find(er.model);
      model_name = sm.name;
      Engine& engine = *sm.engine;
      if (!engine.supports_embeddings())
        throw ApiError(400, "model '" + sm.name + "' is a pair of models (" + engine.kind() +
                                "); embeddings are served by single models", "model");
      const Tokenizer& tok = engine.model().tokenizer();
      const int64_t dim = engine.model().config().dim;
      if (er.dimensions && *er.dimensions > dim)
        throw ApiError(400, "'dimensions' must be at most " + std::to_string(dim) + " for this model", "dimensions");
      std::vector<std::vector<int32_t>> inputs = er.token_inputs;
      for (const std::string& t : er.texts) inputs.push_back(tok.encode(t, tok.vocab().add_bos, false));
      for (size_t i = 0; i < inputs.size(); ++i) {
        const std::string param = "input[" + std::to_string(i) + "]";
        if (inputs[i].empty()) throw ApiError(400, "input " + std::to_string(i) + " has no tokens", param);
        for (int32_t id : inputs[i])
          if (id >= tok.vocab_size()) throw ApiError(400, "token id " + std::to_string(id) + " is outside the vocabulary", param);
        if (static_cast<int64_t>(inputs[i].size()) > engine.context() - 1)
          throw ApiError(400, "input " + std::to_string(i) + " has " + std::to_string(inputs[i].size()) +
                                  " tokens; this model's context holds " + std::to_string(engine.context() - 1),
                         param, "invalid_request_error", "context_length_exceeded");
      }
      // Inputs go to the engine a window at a time (as many as it has slots), so that a request
      // with many inputs does not fill the queue and refuse itself.
      std::vector<std::shared_ptr<RequestState>> states;
      const size_t window = static_cast<size_t>(std::max<int64_t>(1, engine.load().slots));
      for (size_t begin = 0; begin < inputs.size(); begin += window) {
        const size_t end = std::min(inputs.size(), begin + window);
        try {
          for (size_t i = begin; i < end; ++i) {
            GenerationJob job;
            job.embedding = true;
            job.submitted = t0;
            job.deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(self.opt_.request_timeout_s));
            job.prompt = std::move(inputs[i]);
            states.push_back(submit(engine, std::move(job)));
          }
        } catch (...) {
          for (auto& s : states) s->cancel();
          throw;
        }
        for (size_t i = begin; i < states.size(); ++i) states[i]->wait_finished();
      }
      json data = json::array();
      int64_t tokens = 0;
      for (size_t i = 0; i < states.size(); ++i) {
        states[i]->wait_finished();
        if (states[i]->error_status())
          throw ApiError(states[i]->error_status(), states[i]->error_message(), "input", error_type_for(states[i]->error_status()));
        std::vector<float> e = states[i]->embedding();
        if (e.empty()) throw ApiError(503, "the embedding was cancelled (the server is stopping)", "", "server_unavailable");
        if (er.dimensions && *er.dimensions < static_cast<int>(e.size())) {
          // OpenAI's shortened embeddings: the first d values, normalised again.
          e.resize(static_cast<size_t>(*er.dimensions));
          double norm = 0;
          for (float v : e) norm += static_cast<double>(v) * v;
          norm = std::sqrt(norm);
          if (norm > 0)
            for (float& v : e) v = static_cast<float>(v / norm);
        }
        tokens += states[i]->counts().prompt;
        data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", embedding_value_json(e, er.base64)}});
      }
      const json body = {{"object", "list"}, {"data", data}, {"model", sm.name},
                         {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
      res.set_content(dump_json(body), "application/json");
      finished(model_name, "embeddings", 200, t0);
    } catch (const ApiError& e) {
      if (e.status == 429 || e.status == 503) res.set_header("Retry-After", e.status == 429 ? "1" : "5");
      send_error(res, e);
      finished(model_name, "embeddings", e.status, t0);
    }
  }

  json model_json(const ServedModel& m) const {
    json j = {{"id", m.name}, {"object", "model"}, {"created", 0}, {"owned_by", "slm"}};
    const ModelConfig& c = m.engine->model().config();
    j["meta"] = {{"kind", m.engine->kind()}, {"context", m.engine->context()}, {"n_vocab", c.n_vocab},
                 {"parameters", m.engine->model().parameter_count()}, {"embeddings", m.engine->supports_embeddings()}};
    return j;
  }

  void routes() {
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      json slots = json::object();
      for (const ServedModel& m : models) {
        const EngineLoad l = m.engine->load();
        slots[m.name] = {{"slots", l.slots}, {"active", l.active}, {"queued", l.queued}};
      }
      if (stopping.load()) res.status = 503;
      res.set_content(dump_json({{"status", stopping.load() ? "stopping" : "ok"}, {"models", slots}}), "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(self.metrics_.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json data = json::array();
      for (const ServedModel& m : models) data.push_back(model_json(m));
      res.set_content(dump_json({{"object", "list"}, {"data", data}}), "application/json");
    });
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      try {
        res.set_content(dump_json(model_json(find(req.matches[1].str()))), "application/json");
      } catch (const ApiError& e) {
        send_error(res, e);
      }
    });
    http.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, false); });
    http.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, true); });
    http.Post("/v1/embeddings", [this](const httplib::Request& q, httplib::Response& r) { embeddings(q, r); });
  }
};

Server::Server(ServerOptions options, std::vector<ServedModel> models, ServerMetrics& metrics)
    : opt_(std::move(options)), metrics_(metrics) {
  if (models.empty()) throw Error("serve: no model to serve (use --model NAME=PATH or --pair NAME=SMALL,LARGE)");
  for (size_t i = 0; i < models.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (models[i].name == models[j].name) throw Error("serve: the model name '" + models[i].name + "' is given twice");
  impl_ = std::make_unique<Impl>(*this, std::move(models));
  httplib::Server& http = impl_->http;
  Impl* impl = impl_.get();

  int64_t capacity = 0;
  for (const ServedModel& m : impl->models) {
    const EngineLoad l = m.engine->load();
    capacity += l.slots;
  }
  const int threads = opt_.http_threads > 0 ? opt_.http_threads
                                            : static_cast<int>(std::min<int64_t>(1024, 16 + capacity * 8));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(opt_.max_body_bytes);
  // SO_REUSEADDR only: the library's default adds SO_REUSEPORT, with which a second server
  // started on the same port binds silently and takes half of the connections.
  http.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http.set_tcp_nodelay(true);  // streamed tokens go out at once, not after Nagle's delay
  http.set_keep_alive_max_count(100000);
  http.set_keep_alive_timeout(30);
  http.set_read_timeout(10);  // per read: a client that stops sending mid-request frees its thread
  http.set_write_timeout(30);

  const std::string key = opt_.api_key;
  http.set_pre_routing_handler([impl, key](const httplib::Request& req, httplib::Response& res) {
    if (key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    const bool ok = auth.size() > prefix.size() && auth.compare(0, prefix.size(), prefix) == 0 &&
                    constant_time_equal(auth.substr(prefix.size()), key);
    if (ok) return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, ApiError(401, auth.empty() ? "missing API key: send 'Authorization: Bearer KEY'" : "invalid API key",
                             "", "authentication_error", "invalid_api_key"));
    (void)impl;
    return httplib::Server::HandlerResponse::Handled;
  });
  const size_t max_body = opt_.max_body_bytes;
  http.set_error_handler(httplib::Server::HandlerWithResponse([max_body](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg;
    if (res.status == 404) msg = "no route for " + req.method + " " + req.path;
    else if (res.status == 413) msg = "the request body is larger than " + std::to_string(max_body) + " bytes";
    else msg = "the request was refused (HTTP " + std::to_string(res.status) + ")";
    send_error(res, ApiError(res.status, msg, "", error_type_for(res.status)));
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = std::string("internal error: ") + e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, msg, "", "server_error"));
  });
  impl->routes();
}

Server::~Server() { stop(std::chrono::milliseconds(0)); }

int Server::bind() {
  httplib::Server& http = impl_->http;
  if (opt_.port == 0) {
    port_ = http.bind_to_any_port(opt_.host);
    if (port_ <= 0) throw Error("serve: cannot bind to " + opt_.host + " (any port)");
  } else {
    if (!http.bind_to_port(opt_.host, opt_.port))
      throw Error("serve: cannot bind to " + opt_.host + ":" + std::to_string(opt_.port) +
                  " (address in use, or not an address of this machine)");
    port_ = opt_.port;
  }
  raise_listen_backlog(port_);
  return port_;
}

void Server::listen() { impl_->http.listen_after_bind(); }

void Server::stop(std::chrono::milliseconds grace) {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->stop_mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  impl_->stopping = true;
  // Engines first: their requests finish (or are cancelled), so the handler threads streaming
  // them end; then the listener stops and joins its threads.
  std::vector<std::thread> stoppers;
  for (ServedModel& m : impl_->models)
    stoppers.emplace_back([&m, grace] { m.engine->shutdown(grace); });
  for (std::thread& t : stoppers) t.join();
  impl_->http.stop();
}

}  // namespace slm
