// slm serve end to end (serve/server.h over real engines and the bundled models), every answer
// checked against a referee computed here without the server:
// - greedy completions (text prompt and token-id prompt) equal generate() on a Transformer;
// - continuous batching: 6 concurrent requests on 3 slots with prompts split over prefill steps
//   each equal their own sequential generate();
// - streaming chat: the deltas concatenate to the non-streamed content, role first, finish reason
//   last, the usage chunk when asked for;
// - logprobs equal log_softmax of the raw logits of a referee forward pass;
// - embeddings equal the normalised mean of forward_batch's final hidden states (float, base64,
//   shortened with "dimensions");
// - limits: API key, body size, full queue (429 + Retry-After), time limit, context length,
//   unknown model;
// - a streaming client that disconnects frees its slot (cancelled);
// - a speculative pair's greedy output equals the large model's own greedy generate();
// - the real binary exits 0 on SIGTERM while streaming, the stream ending with [DONE].
#include "serve/server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/cascade.h"
#include "generate/generator.h"
#include "generate/uncertainty.h"
#include "generate/sampler.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "serve/api_request.h"
#include "serve/batch_engine.h"
#include "serve/pair_engine.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"

namespace slm {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string model_path(const std::string& file) {
  return (std::filesystem::path(SLM_SOURCE_DIR) / "models" / file).string();
}
const std::string kDefault = "slm-brown-6m.gguf";
const std::string kSmall = "slm-brown-small-1m.gguf";
const std::string kLarge = "slm-brown-large-10m.gguf";

// The test process must survive writes to sockets the server already closed.
const bool kIgnoreSigpipe = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

SamplerParams greedy() {
  SamplerParams p = openai_sampler_defaults();
  p.temperature = 0.0f;
  return p;
}

// ---- referees -----------------------------------------------------------------------------------

GenerateResult referee_generate(const Model& m, const std::vector<int32_t>& prompt, int max_tokens,
                                bool stop_at_eog = true, int64_t context = 0) {
  ThreadPool pool(1);
  Transformer tf(m, pool);
  KvCache kv(m.config(), context > 0 ? context : m.config().ctx_len);
  GenerateOptions o;
  o.max_tokens = max_tokens;
  o.sampler = greedy();
  o.stop_at_eog = stop_at_eog;
  return generate(tf, kv, prompt, o);
}

std::vector<int32_t> encode_prompt(const Model& m, const std::string& text) {
  const Tokenizer& tok = m.tokenizer();
  return tok.encode(text, tok.vocab().add_bos, false);
}

// ---- an in-process server ---------------------------------------------------------------------

// metrics: shared with the engines, as in the CLI; must outlive the TestServer.
struct TestServer {
  std::unique_ptr<Server> server;
  std::thread listener;
  int port = 0;

  TestServer(ServerOptions so, std::vector<ServedModel> models, ServerMetrics& metrics) {
    so.port = 0;
    server = std::make_unique<Server>(so, std::move(models), metrics);
    port = server->bind();
    listener = std::thread([this] { server->listen(); });
  }
  ~TestServer() {
    server->stop(0ms);
    listener.join();
    server.reset();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    c.set_write_timeout(10, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }
};

BatchEngineOptions engine_options(int slots = 2, int64_t queue = 64, int64_t prefill_chunk = 128) {
  BatchEngineOptions o;
  o.slots = slots;
  o.queue = queue;
  o.prefill_chunk = prefill_chunk;
  o.threads = 1;
  return o;
}

ServedModel single(const std::string& name, const std::string& file, const BatchEngineOptions& o,
                   ServerMetrics* metrics) {
  auto model = Model::load(model_path(file));
  ServedModel sm;
  sm.name = name;
  sm.chat = serve_chat_template(*model, "chatml", sm.chat_error);
  sm.engine = std::make_unique<BatchEngine>(name, std::move(model), o, metrics);
  return sm;
}

struct HttpResult {
  int status = -1;
  json body;
  std::string raw;
  httplib::Headers headers;
};

HttpResult post(httplib::Client& c, const std::string& path, const json& body,
                const httplib::Headers& headers = {}) {
  HttpResult r;
  auto res = c.Post(path.c_str(), headers, body.dump(), "application/json");
  if (!res) {
    r.raw = "transport error " + httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.raw = res->body;
  r.headers = res->headers;
  r.body = json::parse(res->body, nullptr, false);
  return r;
}

HttpResult get(httplib::Client& c, const std::string& path, const httplib::Headers& headers = {}) {
  HttpResult r;
  auto res = c.Get(path.c_str(), headers);
  if (!res) {
    r.raw = "transport error " + httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.raw = res->body;
  r.headers = res->headers;
  r.body = json::parse(res->body, nullptr, false);
  return r;
}

// The "data: " payloads of a server-sent event stream, in order (comment lines skipped).
std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string event = body.substr(pos, end - pos);
    pos = end + 2;
    size_t lp = 0;
    while (lp < event.size()) {
      size_t le = event.find('\n', lp);
      if (le == std::string::npos) le = event.size();
      const std::string line = event.substr(lp, le - lp);
      lp = le + 1;
      if (line.rfind("data: ", 0) == 0) out.push_back(line.substr(6));
    }
  }
  return out;
}

// A streamed POST whose body chunks go to `on_chunk`; returning false from it aborts the
// transfer (the client closes the connection).
httplib::Result post_stream(httplib::Client& c, const std::string& path, const json& body,
                            const std::function<bool(const char*, size_t)>& on_chunk) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [on_chunk](const char* data, size_t n, uint64_t, uint64_t) { return on_chunk(data, n); };
  return c.send(req);
}

// ---- fixture ------------------------------------------------------------------------------------

class Serve : public ::testing::Test {
 protected:
  void SetUp() override { ref = Model::load(model_path(kDefault)); }

  // One model named "m" (the default model, or `file`) with these options.
  void start(const BatchEngineOptions& o, ServerOptions so = {}, const std::string& file = kDefault) {
    metrics = std::make_unique<ServerMetrics>();
    std::vector<ServedModel> models;
    models.push_back(single("m", file, o, metrics.get()));
    server = std::make_unique<TestServer>(so, std::move(models), *metrics);
  }

  void TearDown() override {
    server.reset();  // stops the server and the engines before their metrics go
    metrics.reset();
  }

  std::unique_ptr<Model> ref;
  std::unique_ptr<ServerMetrics> metrics;  // the engines' and the server's, as in the CLI
  std::unique_ptr<TestServer> server;
};

// ---- 1. greedy completions ----------------------------------------------------------------------

TEST_F(Serve, GreedyCompletionEqualsGenerate) {
  start(engine_options());
  auto c = server->client();
  for (const std::string prompt : {"The jury said that", "It was a cold morning in"}) {
    const std::vector<int32_t> ids = encode_prompt(*ref, prompt);
    const GenerateResult want = referee_generate(*ref, ids, 24);
    ASSERT_FALSE(want.tokens.empty());

    for (bool as_tokens : {false, true}) {
      json body = {{"model", "m"}, {"max_tokens", 24}, {"temperature", 0}};
      if (as_tokens) body["prompt"] = ids;
      else body["prompt"] = prompt;
      const HttpResult r = post(c, "/v1/completions", body);
      ASSERT_EQ(r.status, 200) << r.raw;
      EXPECT_EQ(r.body["object"], "text_completion");
      EXPECT_EQ(r.body["model"], "m");
      EXPECT_EQ(r.body["choices"][0]["text"], want.text) << prompt << " tokens=" << as_tokens;
      EXPECT_EQ(r.body["choices"][0]["finish_reason"], want.stop_reason == "eog" ? "stop" : want.stop_reason);
      EXPECT_EQ(r.body["usage"]["prompt_tokens"], ids.size());
      EXPECT_EQ(r.body["usage"]["completion_tokens"], want.tokens.size());
      EXPECT_EQ(r.body["usage"]["total_tokens"], ids.size() + want.tokens.size());
    }
  }
}

// Prompt caching: a slot keeps its sequence's cache; a prompt sharing its start is prefilled only
// from where they differ, says so in usage.prompt_tokens_details.cached_tokens, and its text is
// still the referee's.
TEST_F(Serve, PromptCachingReusesTheSlotsPrefix) {
  start(engine_options(/*slots=*/1));
  auto c = server->client();
  const std::vector<int32_t> a = encode_prompt(*ref, "The jury said that the city");
  const GenerateResult want_a = referee_generate(*ref, a, 8);
  ASSERT_EQ(want_a.tokens.size(), 8u);
  const auto complete = [&](const std::vector<int32_t>& ids) {
    const HttpResult r = post(c, "/v1/completions", {{"model", "m"}, {"prompt", ids}, {"max_tokens", 8}, {"temperature", 0}});
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.body;
  };
  const auto cached = [](const json& body) -> int64_t {
    return body["usage"].contains("prompt_tokens_details") ? body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>() : 0;
  };

  json first = complete(a);
  EXPECT_EQ(first["choices"][0]["text"], want_a.text);
  EXPECT_EQ(cached(first), 0);
  // The same prompt again: everything but the last prompt token comes from the cache.
  json again = complete(a);
  EXPECT_EQ(again["choices"][0]["text"], want_a.text);
  EXPECT_EQ(cached(again), static_cast<int64_t>(a.size()) - 1);
  // The next turn: the prompt, the answer and more. The cache holds the prompt and every
  // generated token but the last (never fed).
  std::vector<int32_t> b = a;
  b.insert(b.end(), want_a.tokens.begin(), want_a.tokens.end());
  for (int32_t t : encode_prompt(*ref, " and then")) if (t != ref->tokenizer().bos()) b.push_back(t);
  json next = complete(b);
  EXPECT_EQ(next["choices"][0]["text"], referee_generate(*ref, b, 8).text);
  EXPECT_EQ(cached(next), static_cast<int64_t>(a.size() + want_a.tokens.size()) - 1);
  // A prompt that differs after BOS reuses only BOS.
  const std::vector<int32_t> d = encode_prompt(*ref, "Cold rain fell on the town");
  ASSERT_EQ(d[0], a[0]);
  json other = complete(d);
  EXPECT_EQ(other["choices"][0]["text"], referee_generate(*ref, d, 8).text);
  EXPECT_EQ(cached(other), 1);
}

// A second server on a port in use is refused (the library's default SO_REUSEPORT would let it
// bind and take half of the connections), and the listen backlog is raised above the library's 5.
TEST_F(Serve, PortInUseIsRefusedAndBacklogIsLarge) {
  start(engine_options(1));
  ServerOptions so;
  so.port = server->port;
  std::vector<ServedModel> models;
  models.push_back(single("m", kDefault, engine_options(1), metrics.get()));
  Server second(so, std::move(models), *metrics);
  EXPECT_THROW(second.bind(), slm::Error);
  // /proc/net/tcp lists the listening socket (state 0A); its backlog is not exposed there, so
  // check it through ss's view of the same kernel data when available.
  const std::string cmd = "ss -ltnH 'sport = :" + std::to_string(server->port) + "' 2>/dev/null";
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char line[512] = {0};
    const bool got = fgets(line, sizeof line, p) != nullptr;
    pclose(p);
    if (got) {
      std::istringstream in(line);
      std::string state;
      long recv_q = 0, send_q = 0;
      in >> state >> recv_q >> send_q;  // for a listening socket Send-Q is the backlog
      EXPECT_EQ(state, "LISTEN");
      EXPECT_GT(send_q, 5) << line;
    }
  }
}

// ---- 2. continuous batching ---------------------------------------------------------------------

TEST_F(Serve, ConcurrentRequestsOnThreeSlotsEqualSequentialGenerate) {
  start(engine_options(/*slots=*/3, /*queue=*/64, /*prefill_chunk=*/8));
  const std::vector<std::string> prompts = {
      "The jury further said in term end presentments that the City Executive Committee",
      "He said",
      "The old man walked slowly down the long road toward the village where he had been born",
      "In the morning",
      "She looked at the letter again and again, wondering what it could mean for",
      "Mr. Smith, the president of the company, announced on Tuesday that",
  };
  const std::vector<int> max_tokens = {6, 30, 12, 40, 9, 20};
  std::vector<std::vector<int32_t>> ids;
  std::vector<GenerateResult> want;
  int long_prompts = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ids.push_back(encode_prompt(*ref, prompts[i]));
    if (ids.back().size() > 8) ++long_prompts;
    want.push_back(referee_generate(*ref, ids.back(), max_tokens[i]));
  }
  ASSERT_GE(long_prompts, 3) << "prompts must be longer than the prefill chunk to be split";

  std::vector<HttpResult> got(prompts.size());
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      auto c = server->client();
      ++ready;
      while (ready.load() < static_cast<int>(prompts.size())) std::this_thread::yield();
      got[i] = post(c, "/v1/completions",
                    {{"model", "m"}, {"prompt", prompts[i]}, {"max_tokens", max_tokens[i]}, {"temperature", 0}});
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_EQ(got[i].status, 200) << got[i].raw;
    EXPECT_EQ(got[i].body["choices"][0]["text"], want[i].text) << "request " << i;
    EXPECT_EQ(got[i].body["usage"]["prompt_tokens"], ids[i].size()) << "request " << i;
    EXPECT_EQ(got[i].body["usage"]["completion_tokens"], want[i].tokens.size()) << "request " << i;
  }
}

// Two threads and more decoding streams than 2 per thread: the engine runs decode sessions (each
// thread its own group of slots, step after step), whose threads admit and prefill the requests
// that wait for a freed slot. Every answer still equals sequential greedy generation.
TEST_F(Serve, DecodeSessionsOnTwoThreadsEqualSequentialGenerate) {
  BatchEngineOptions o = engine_options(/*slots=*/6, /*queue=*/64, /*prefill_chunk=*/64);
  o.threads = 2;
  metrics = std::make_unique<ServerMetrics>();
  std::vector<ServedModel> models;
  models.push_back(single("m", kDefault, o, metrics.get()));
  const auto* engine = dynamic_cast<const BatchEngine*>(models.back().engine.get());
  ASSERT_NE(engine, nullptr);
  server = std::make_unique<TestServer>(ServerOptions{}, std::move(models), *metrics);

  const std::vector<std::string> starts = {"The jury said", "He walked into the room", "In the morning the",
                                           "She looked at the letter", "Mr. Smith announced that", "The old man",
                                           "After the war the city", "They had never seen", "It was late when"};
  std::vector<std::vector<int32_t>> ids;
  std::vector<GenerateResult> want;
  std::vector<int> max_tokens;
  for (size_t i = 0; i < starts.size(); ++i) {
    max_tokens.push_back(20 + static_cast<int>(i * 7 % 40));
    ids.push_back(encode_prompt(*ref, starts[i]));
    want.push_back(referee_generate(*ref, ids.back(), max_tokens.back(), /*stop_at_eog=*/false));
  }
  std::vector<HttpResult> got(starts.size());
  std::vector<std::string> streamed(starts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < starts.size(); ++i) {
    threads.emplace_back([&, i] {
      auto c = server->client();
      const json body = {{"model", "m"}, {"prompt", starts[i]}, {"max_tokens", max_tokens[i]},
                         {"temperature", 0}, {"ignore_eos", true}, {"stream", i % 2 == 1}};
      if (i % 2 == 0) {
        got[i] = post(c, "/v1/completions", body);
        return;
      }
      std::string raw;
      auto res = post_stream(c, "/v1/completions", body, [&](const char* d, size_t n) {
        raw.append(d, n);
        return true;
      });
      got[i].status = res ? res->status : -1;
      for (const std::string& p : sse_payloads(raw)) {
        if (p == "[DONE]") continue;
        const json j = json::parse(p, nullptr, false);
        if (j.is_object() && j.contains("choices") && !j["choices"].empty()) streamed[i] += j["choices"][0].value("text", "");
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < starts.size(); ++i) {
    ASSERT_EQ(got[i].status, 200) << "request " << i << ": " << got[i].raw;
    const std::string text = i % 2 == 0 ? got[i].body["choices"][0]["text"].get<std::string>() : streamed[i];
    EXPECT_EQ(text, want[i].text) << "request " << i;
  }
  EXPECT_GT(engine->decode_sessions(), 0u) << "no decode session ran: the test does not cover them";
  EXPECT_GT(engine->session_admissions(), 0u) << "no request was admitted within a session";
}

// Starts the default model on 2 threads (it splits batches by sequence, so 4 decoding slots
// run in decode sessions); returns the engine to read its session counters.
const BatchEngine* start_two_threads(std::unique_ptr<ServerMetrics>& metrics, std::unique_ptr<TestServer>& server,
                                     int slots, ServerOptions so = {}) {
  BatchEngineOptions o = engine_options(slots);
  o.threads = 2;
  metrics = std::make_unique<ServerMetrics>();
  std::vector<ServedModel> models;
  models.push_back(single("m", kDefault, o, metrics.get()));
  const auto* engine = dynamic_cast<const BatchEngine*>(models.back().engine.get());
  server = std::make_unique<TestServer>(so, std::move(models), *metrics);
  return engine;
}

// In a decode session: a client that disconnects frees its slot, the other streams go on to
// the referee's text, and the time limit still ends requests. Four streams stay to the end, so
// sessions (two decoding slots per thread) start however the requests' arrival is spread by a
// loaded machine, and the first client leaves only after 20 tokens, inside one.
TEST_F(Serve, DecodeSessionsCancelOnDisconnectAndKeepTheOthersExact) {
  const BatchEngine* engine = start_two_threads(metrics, server, 6);
  ASSERT_NE(engine, nullptr);
  const int n = 200;
  const std::vector<std::string> prompts = {"The", "He said", "In the", "She was", "It was"};
  std::vector<std::string> text(prompts.size());
  std::vector<char> ok(prompts.size(), 0);  // (not vector<bool>: each thread writes its own element)
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      auto c = server->client();
      int chunks = 0;
      std::string raw;
      const json req = {{"model", "m"}, {"prompt", prompts[i]}, {"max_tokens", n}, {"ignore_eos", true},
                        {"temperature", 0}, {"stream", true}};
      auto res = post_stream(c, "/v1/completions", req, [&](const char* d, size_t len) {
        raw.append(d, len);
        chunks = static_cast<int>(sse_payloads(raw).size());
        return i != 0 || chunks < 20;  // the first client leaves after 20 tokens
      });
      ok[i] = static_cast<bool>(res);
      for (const std::string& p : sse_payloads(raw)) {
        const json j = json::parse(p, nullptr, false);
        if (j.is_object() && j.contains("choices") && !j["choices"].empty()) text[i] += j["choices"][0].value("text", "");
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(ok[0]);
  for (size_t i = 1; i < prompts.size(); ++i) {
    ASSERT_TRUE(ok[i]) << "request " << i;
    EXPECT_EQ(text[i], referee_generate(*ref, encode_prompt(*ref, prompts[i]), n, false).text) << "request " << i;
  }
  auto c = server->client();
  bool idle = false;
  for (const Clock::time_point t0 = Clock::now(); !idle && Clock::now() - t0 < 5s; std::this_thread::sleep_for(10ms)) {
    const HttpResult h = get(c, "/health");
    idle = h.status == 200 && h.body["models"]["m"]["active"] == 0;
  }
  EXPECT_TRUE(idle);
  const std::string m = get(c, "/metrics").raw;
  EXPECT_NE(m.find("slm_rejected_requests_total{model=\"m\",reason=\"cancelled\"}"), std::string::npos) << m;
  EXPECT_GT(engine->decode_sessions(), 0u);
}

TEST_F(Serve, DecodeSessionsEndRequestsAtTheTimeLimit) {
  ServerOptions so;
  so.request_timeout_s = 0.05;  // 240 steps of 4 sequences take at least twice as long
  const BatchEngine* engine = start_two_threads(metrics, server, 4, so);
  ASSERT_NE(engine, nullptr);
  std::vector<HttpResult> got(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] {
      auto c = server->client();
      got[i] = post(c, "/v1/completions", {{"model", "m"}, {"prompt", "The"}, {"max_tokens", 240}, {"ignore_eos", true},
                                           {"temperature", 0}});
    });
  for (auto& t : threads) t.join();
  for (const HttpResult& r : got) {
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["choices"][0]["finish_reason"], "time_limit") << r.raw;
  }
  // (On this machine the limit falls inside a session; under a sanitizer, ten times slower, it
  // may fall in the first prefill step already, so the session count is not asserted.)
  (void)engine;
}

// ---- 3. streaming chat --------------------------------------------------------------------------

TEST_F(Serve, StreamedChatEqualsNonStreamedAndReferee) {
  start(engine_options());
  auto c = server->client();
  const json messages = {{{"role", "system"}, {"content", "You are terse."}},
                         {{"role", "user"}, {"content", "Tell me about the jury."}}};
  const json base = {{"model", "m"}, {"messages", messages}, {"max_tokens", 20}, {"temperature", 0}};

  const HttpResult plain = post(c, "/v1/chat/completions", base);
  ASSERT_EQ(plain.status, 200) << plain.raw;
  const std::string content = plain.body["choices"][0]["message"]["content"];
  EXPECT_EQ(plain.body["choices"][0]["message"]["role"], "assistant");

  // Referee: the ChatML prompt as the server renders it, generated without the server.
  {
    const Tokenizer& tok = ref->tokenizer();
    std::string why;
    const auto tmpl = serve_chat_template(*ref, "chatml", why);
    ASSERT_TRUE(tmpl.has_value()) << why;
    const std::string eos_text = tok.eos() >= 0 ? tok.vocab().tokens[static_cast<size_t>(tok.eos())] : "";
    const std::string bos_text = tok.bos() >= 0 ? tok.vocab().tokens[static_cast<size_t>(tok.bos())] : "";
    const bool renders_bos = chat_renders_bos(tmpl->family);
    const std::string text = render_chat(*tmpl, {{"system", "You are terse."}, {"user", "Tell me about the jury."}},
                                         true, renders_bos ? bos_text : "", eos_text);
    const std::vector<int32_t> ids = tok.encode(text, tok.vocab().add_bos && !renders_bos, true);
    const GenerateResult want = referee_generate(*ref, ids, 20);
    EXPECT_EQ(content, want.text);
    EXPECT_EQ(plain.body["usage"]["prompt_tokens"], ids.size());
    EXPECT_EQ(plain.body["usage"]["completion_tokens"], want.tokens.size());
  }

  json sbody = base;
  sbody["stream"] = true;
  sbody["stream_options"] = {{"include_usage", true}};
  auto res = c.Post("/v1/chat/completions", sbody.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  const std::vector<std::string> events = sse_payloads(res->body);
  ASSERT_GE(events.size(), 4u) << res->body;
  EXPECT_EQ(events.back(), "[DONE]");

  std::vector<json> chunks;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json j = json::parse(events[i], nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << events[i];
    EXPECT_EQ(j["object"], "chat.completion.chunk");
    chunks.push_back(j);
  }
  // First: the role. Last: the usage (no choices). The one before: the finish reason.
  EXPECT_EQ(chunks.front()["choices"][0]["delta"]["role"], "assistant");
  const json& usage_chunk = chunks.back();
  EXPECT_TRUE(usage_chunk["choices"].is_array() && usage_chunk["choices"].empty()) << usage_chunk.dump();
  // The same counts (the streamed request found the prompt cached: only the details differ).
  for (const char* k : {"prompt_tokens", "completion_tokens", "total_tokens"})
    EXPECT_EQ(usage_chunk["usage"][k], plain.body["usage"][k]) << k;
  const json& finish_chunk = chunks[chunks.size() - 2];
  EXPECT_EQ(finish_chunk["choices"][0]["finish_reason"], plain.body["choices"][0]["finish_reason"]);
  EXPECT_FALSE(finish_chunk["choices"][0]["finish_reason"].is_null());

  std::string streamed;
  for (size_t i = 0; i + 2 < chunks.size(); ++i) {
    const json& ch = chunks[i]["choices"][0];
    EXPECT_TRUE(ch["finish_reason"].is_null()) << "chunk " << i << " " << chunks[i].dump();
    if (ch["delta"].contains("content")) streamed += ch["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(streamed, content);
}

// ---- 4. logprobs --------------------------------------------------------------------------------

TEST_F(Serve, CompletionLogprobsEqualReferenceLogSoftmax) {
  start(engine_options());
  auto c = server->client();
  const std::string prompt = "The jury said that the city";
  const std::vector<int32_t> ids = encode_prompt(*ref, prompt);
  const GenerateResult want = referee_generate(*ref, ids, 12);
  ASSERT_FALSE(want.tokens.empty());

  const HttpResult r = post(c, "/v1/completions",
                            {{"model", "m"}, {"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}, {"logprobs", 3}});
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["choices"][0]["text"], want.text);
  const json& lp = r.body["choices"][0]["logprobs"];
  ASSERT_TRUE(lp.is_object()) << r.raw;
  ASSERT_EQ(lp["token_logprobs"].size(), want.tokens.size());
  ASSERT_EQ(lp["tokens"].size(), want.tokens.size());
  ASSERT_EQ(lp["top_logprobs"].size(), want.tokens.size());

  // Referee forward pass over prompt + generated tokens: row prompt.size()-1+i predicts token i.
  ThreadPool pool(1);
  Transformer tf(*ref, pool);
  KvCache kv(ref->config(), ref->config().ctx_len);
  std::vector<int32_t> all = ids;
  all.insert(all.end(), want.tokens.begin(), want.tokens.end());
  const std::vector<float> logits = tf.forward(all, kv, /*all_logits=*/true);
  const size_t nv = static_cast<size_t>(ref->config().n_vocab);
  const Tokenizer& tok = ref->tokenizer();
  int64_t offset = 0;
  for (size_t i = 0; i < want.tokens.size(); ++i) {
    const size_t row = ids.size() - 1 + i;
    const std::vector<float> lsm = log_softmax(std::span<const float>(logits.data() + row * nv, nv));
    const int32_t id = want.tokens[i];
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), lsm[static_cast<size_t>(id)], 1e-4) << "token " << i;
    EXPECT_EQ(lp["tokens"][i], tok.token_to_piece(id)) << "token " << i;
    EXPECT_EQ(lp["text_offset"][i], offset);
    offset += static_cast<int64_t>(tok.token_to_piece(id).size());

    // The three largest referee log-probabilities, and the chosen (greedy: the largest) among them.
    std::vector<float> sorted = lsm;
    std::partial_sort(sorted.begin(), sorted.begin() + 3, sorted.end(), std::greater<float>());
    const json& top = lp["top_logprobs"][i];
    ASSERT_EQ(top.size(), 3u) << top.dump();
    std::vector<double> got;
    for (const auto& [k, v] : top.items()) got.push_back(v.get<double>());
    std::sort(got.begin(), got.end(), std::greater<double>());
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(got[static_cast<size_t>(k)], sorted[static_cast<size_t>(k)], 1e-4) << "token " << i;
    ASSERT_TRUE(top.contains(tok.token_to_piece(id))) << top.dump();
    EXPECT_NEAR(top[tok.token_to_piece(id)].get<double>(), lp["token_logprobs"][i].get<double>(), 1e-6);
  }
}

// ---- 5. embeddings ------------------------------------------------------------------------------

std::vector<float> referee_embedding(const Model& m, const std::vector<int32_t>& ids) {
  ThreadPool pool(1);
  Transformer tf(m, pool);
  KvCache kv(m.config(), m.config().ctx_len);
  const size_t dim = static_cast<size_t>(m.config().dim);
  std::vector<float> hidden(ids.size() * dim);
  SequenceBatch b{ids.data(), static_cast<int64_t>(ids.size()), &kv, nullptr, false, hidden.data()};
  tf.forward_batch(std::span<const SequenceBatch>(&b, 1));
  std::vector<double> mean(dim, 0.0);
  for (size_t r = 0; r < ids.size(); ++r)
    for (size_t d = 0; d < dim; ++d) mean[d] += hidden[r * dim + d];
  double norm = 0;
  for (double& v : mean) {
    v /= static_cast<double>(ids.size());
    norm += v * v;
  }
  norm = std::sqrt(norm);
  std::vector<float> e(dim);
  for (size_t d = 0; d < dim; ++d) e[d] = static_cast<float>(mean[d] / norm);
  return e;
}

std::vector<float> decode_base64_floats(const std::string& s) {
  auto val = [](char ch) -> int {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
  };
  std::vector<unsigned char> bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : s) {
    if (ch == '=') break;
    const int v = val(ch);
    if (v < 0) return {};
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<unsigned char>((acc >> bits) & 0xFF));
    }
  }
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

double l2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

TEST_F(Serve, EmbeddingsEqualMeanOfFinalHiddenStates) {
  // A small prefill chunk: the engine sums the hidden states over several steps.
  start(engine_options(2, 64, 8));
  auto c = server->client();
  const std::string text = "The jury said that the city of Atlanta had conducted the election";
  const std::vector<int32_t> text_ids = encode_prompt(*ref, text);
  const std::vector<int32_t> other_ids = encode_prompt(*ref, "It rained all day");
  const std::vector<float> want_text = referee_embedding(*ref, text_ids);
  const std::vector<float> want_other = referee_embedding(*ref, other_ids);
  const size_t dim = static_cast<size_t>(ref->config().dim);

  // Two inputs as token ids, and the text itself.
  const HttpResult r = post(c, "/v1/embeddings", {{"model", "m"}, {"input", json::array({text_ids, other_ids})}});
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["data"].size(), 2u);
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], text_ids.size() + other_ids.size());
  const std::vector<std::vector<float>> wants = {want_text, want_other};
  std::vector<float> full;
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(r.body["data"][k]["index"], k);
    const std::vector<float> got = r.body["data"][k]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(got.size(), dim);
    EXPECT_NEAR(l2(got), 1.0, 1e-5);
    for (size_t d = 0; d < dim; ++d) ASSERT_NEAR(got[d], wants[k][d], 1e-4) << "input " << k << " dim " << d;
    if (k == 0) full = got;
  }
  const HttpResult rt = post(c, "/v1/embeddings", {{"model", "m"}, {"input", text}});
  ASSERT_EQ(rt.status, 200) << rt.raw;
  const std::vector<float> from_text = rt.body["data"][0]["embedding"].get<std::vector<float>>();
  ASSERT_EQ(from_text.size(), dim);
  for (size_t d = 0; d < dim; ++d) ASSERT_NEAR(from_text[d], want_text[d], 1e-4) << "dim " << d;

  // base64: little-endian float32 values, the same numbers.
  const HttpResult rb = post(c, "/v1/embeddings", {{"model", "m"}, {"input", text}, {"encoding_format", "base64"}});
  ASSERT_EQ(rb.status, 200) << rb.raw;
  ASSERT_TRUE(rb.body["data"][0]["embedding"].is_string());
  const std::vector<float> decoded = decode_base64_floats(rb.body["data"][0]["embedding"]);
  ASSERT_EQ(decoded.size(), dim);
  for (size_t d = 0; d < dim; ++d) EXPECT_FLOAT_EQ(decoded[d], from_text[d]) << "dim " << d;

  // dimensions 8: the first 8 values of the full embedding, normalised again.
  const HttpResult rd = post(c, "/v1/embeddings", {{"model", "m"}, {"input", text}, {"dimensions", 8}});
  ASSERT_EQ(rd.status, 200) << rd.raw;
  const std::vector<float> short8 = rd.body["data"][0]["embedding"].get<std::vector<float>>();
  ASSERT_EQ(short8.size(), 8u);
  const double n8 = l2(std::vector<float>(want_text.begin(), want_text.begin() + 8));
  for (size_t d = 0; d < 8; ++d) EXPECT_NEAR(short8[d], want_text[d] / n8, 1e-4) << "dim " << d;
  EXPECT_NEAR(l2(short8), 1.0, 1e-5);

  // Wider than the model: 400.
  const HttpResult rw = post(c, "/v1/embeddings", {{"model", "m"}, {"input", text}, {"dimensions", static_cast<int>(dim) + 1}});
  EXPECT_EQ(rw.status, 400) << rw.raw;
  EXPECT_EQ(rw.body["error"]["param"], "dimensions");
}

// One request may carry up to 2048 inputs (api_request.h); the engine's queue (64 by default)
// must not turn a single large batch into a 429 on an idle server.
TEST_F(Serve, EmbeddingsOfManyInputsInOneRequest) {
  start(engine_options(2, /*queue=*/64));
  auto c = server->client();
  json inputs = json::array();
  std::vector<std::vector<int32_t>> ids;
  for (int i = 0; i < 100; ++i) {
    const std::string text = "Line number " + std::to_string(i) + " of the list";
    ids.push_back(encode_prompt(*ref, text));
    inputs.push_back(text);
  }
  const HttpResult r = post(c, "/v1/embeddings", {{"model", "m"}, {"input", inputs}});
  ASSERT_EQ(r.status, 200) << r.raw.substr(0, 500);
  ASSERT_EQ(r.body["data"].size(), 100u);
  for (size_t k : {size_t{0}, size_t{57}, size_t{99}}) {
    EXPECT_EQ(r.body["data"][k]["index"], k);
    const std::vector<float> want = referee_embedding(*ref, ids[k]);
    const std::vector<float> got = r.body["data"][k]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t d = 0; d < want.size(); ++d) ASSERT_NEAR(got[d], want[d], 1e-4) << "input " << k << " dim " << d;
  }
}

// ---- 6. limits ----------------------------------------------------------------------------------

TEST_F(Serve, ApiKeyGuardsEverythingButHealth) {
  ServerOptions so;
  so.api_key = "s3cret-key";
  start(engine_options(1), so);
  auto c = server->client();
  const json chat = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}};

  HttpResult r = get(c, "/v1/models");
  EXPECT_EQ(r.status, 401) << r.raw;
  EXPECT_EQ(r.body["error"]["type"], "authentication_error");
  r = get(c, "/v1/models", {{"Authorization", "Bearer wrong-key"}});
  EXPECT_EQ(r.status, 401) << r.raw;
  r = get(c, "/v1/models", {{"Authorization", "Bearer s3cret-key-and-more"}});
  EXPECT_EQ(r.status, 401) << r.raw;
  r = get(c, "/v1/models", {{"Authorization", "s3cret-key"}});
  EXPECT_EQ(r.status, 401) << r.raw;
  r = post(c, "/v1/chat/completions", chat);
  EXPECT_EQ(r.status, 401) << r.raw;
  r = post(c, "/v1/chat/completions", chat, {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(r.status, 401) << r.raw;
  EXPECT_EQ(r.body["error"]["type"], "authentication_error");
  r = get(c, "/metrics");
  EXPECT_EQ(r.status, 401);

  r = get(c, "/health");
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["status"], "ok");

  const httplib::Headers ok = {{"Authorization", "Bearer s3cret-key"}};
  r = get(c, "/v1/models", ok);
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["data"].size(), 1u);
  EXPECT_EQ(r.body["data"][0]["id"], "m");
  EXPECT_EQ(r.body["data"][0]["meta"]["context"], ref->config().ctx_len);
  r = post(c, "/v1/chat/completions", chat, ok);
  EXPECT_EQ(r.status, 200) << r.raw;
}

TEST_F(Serve, OversizedBodyIs413WithJsonError) {
  ServerOptions so;
  so.max_body_bytes = 1024;
  start(engine_options(1), so);
  auto c = server->client();
  const json big = {{"model", "m"}, {"prompt", std::string(4096, 'a')}, {"max_tokens", 1}};
  const HttpResult r = post(c, "/v1/completions", big);
  ASSERT_EQ(r.status, 413) << r.raw;
  ASSERT_FALSE(r.body.is_discarded()) << r.raw;
  EXPECT_TRUE(r.body["error"]["message"].is_string()) << r.raw;
  // A body under the limit on a new connection is served.
  auto c2 = server->client();
  const HttpResult small = post(c2, "/v1/completions", {{"model", "m"}, {"prompt", "Hi"}, {"max_tokens", 1}});
  EXPECT_EQ(small.status, 200) << small.raw;
}

TEST_F(Serve, FullQueueIs429WithRetryAfter) {
  start(engine_options(/*slots=*/1, /*queue=*/0));
  // A long stream holds the only slot; while it runs (after its first chunk arrives) a second
  // request must be refused. If the stream happened to end before the refusal was tried (a very
  // fast machine), the attempt is repeated.
  bool checked = false;
  for (int attempt = 0; attempt < 3 && !checked; ++attempt) {
    auto c = server->client();
    HttpResult second;
    bool fired = false;
    std::string body;
    const json req = {{"model", "m"}, {"prompt", "The"}, {"max_tokens", 240}, {"ignore_eos", true},
                      {"temperature", 0}, {"stream", true}};
    auto res = post_stream(c, "/v1/completions", req, [&](const char* d, size_t n) {
      body.append(d, n);
      if (!fired && body.find("data: ") != std::string::npos) {
        fired = true;
        auto c2 = server->client();
        second = post(c2, "/v1/completions", {{"model", "m"}, {"prompt", "Hello"}, {"max_tokens", 2}});
      }
      return true;
    });
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    ASSERT_TRUE(fired);
    const std::vector<std::string> events = sse_payloads(body);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back(), "[DONE]");
    if (second.status == 200) continue;  // the stream had already finished: try again
    EXPECT_EQ(second.status, 429) << second.raw;
    EXPECT_EQ(second.body["error"]["type"], "rate_limit_error") << second.raw;
    bool has_retry_after = false;
    for (const auto& [k, v] : second.headers)
      if (k == "Retry-After") has_retry_after = !v.empty() && std::stoi(v) >= 1;
    EXPECT_TRUE(has_retry_after);
    checked = true;
  }
  ASSERT_TRUE(checked) << "the stream never held the slot long enough to test the queue";
  // The server counted the refusal.
  auto c = server->client();
  const HttpResult m = get(c, "/metrics");
  EXPECT_NE(m.raw.find("slm_rejected_requests_total{model=\"m\",reason=\"queue_full\"}"), std::string::npos) << m.raw;
  // The slot is free again afterwards (waiting for /health to say so: see
  // SlotIsFreeWhenTheResponseArrives for the race right after a response).
  const Clock::time_point t0 = Clock::now();
  while (Clock::now() - t0 < 2s && get(c, "/health").body["models"]["m"]["active"] != 0)
    std::this_thread::sleep_for(5ms);
  const HttpResult after = post(c, "/v1/completions", {{"model", "m"}, {"prompt", "Hello"}, {"max_tokens", 2}});
  EXPECT_EQ(after.status, 200) << after.raw;
}

// One slot, no queue: a client that sends its next request as soon as the previous response
// (non-streamed or streamed) has arrived must find the slot free, never a spurious 429.
TEST_F(Serve, SlotIsFreeWhenTheResponseArrives) {
  start(engine_options(/*slots=*/1, /*queue=*/0));
  auto c = server->client();
  int refused = 0;
  for (int i = 0; i < 60; ++i) {
    json body = {{"model", "m"}, {"prompt", "Hello there"}, {"max_tokens", 2}, {"temperature", 0}};
    if (i % 2) body["stream"] = true;
    const HttpResult r = post(c, "/v1/completions", body);
    if (r.status == 429) ++refused;
    else EXPECT_EQ(r.status, 200) << r.raw;
  }
  EXPECT_EQ(refused, 0) << "of 60 back-to-back requests";
}

TEST_F(Serve, RequestTimeoutEndsWithTimeLimit) {
  // 10 ms for 240 tokens of the large model (about 1 ms each here): the limit always hits first.
  ServerOptions so;
  so.request_timeout_s = 0.01;
  start(engine_options(1), so, kLarge);
  auto c = server->client();
  const HttpResult r = post(c, "/v1/completions", {{"model", "m"}, {"prompt", "The"}, {"max_tokens", 240},
                                                   {"ignore_eos", true}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], "time_limit") << r.raw;
  EXPECT_LT(r.body["usage"]["completion_tokens"].get<int>(), 240);
  const std::string m = get(c, "/metrics").raw;
  EXPECT_NE(m.find("slm_rejected_requests_total{model=\"m\",reason=\"time_limit\"}"), std::string::npos) << m;
}

TEST_F(Serve, ContextAndModelErrors) {
  start(engine_options(1));
  auto c = server->client();
  const int64_t ctx = ref->config().ctx_len;

  // A prompt as long as the context (nothing left to generate): 400 context_length_exceeded.
  const std::vector<int32_t> long_prompt(static_cast<size_t>(ctx), 5);
  HttpResult r = post(c, "/v1/completions", {{"model", "m"}, {"prompt", long_prompt}, {"max_tokens", 4}});
  EXPECT_EQ(r.status, 400) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "context_length_exceeded") << r.raw;
  EXPECT_EQ(r.body["error"]["param"], "prompt");
  // One shorter fits; max_tokens is capped at what is left (one token).
  const std::vector<int32_t> fits(static_cast<size_t>(ctx - 1), 5);
  r = post(c, "/v1/completions", {{"model", "m"}, {"prompt", fits}, {"max_tokens", 4}, {"ignore_eos", true}});
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 1) << r.raw;
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], "length") << r.raw;

  // A token id outside the vocabulary: 400.
  r = post(c, "/v1/completions", {{"model", "m"}, {"prompt", json::array({1, ref->config().n_vocab})}});
  EXPECT_EQ(r.status, 400) << r.raw;

  // An unknown model: 404 model_not_found, for every endpoint.
  r = post(c, "/v1/completions", {{"model", "nope"}, {"prompt", "hi"}});
  EXPECT_EQ(r.status, 404) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "model_not_found");
  r = post(c, "/v1/chat/completions", {{"model", "nope"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}});
  EXPECT_EQ(r.status, 404) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "model_not_found");
  r = post(c, "/v1/embeddings", {{"model", "nope"}, {"input", "hi"}});
  EXPECT_EQ(r.status, 404) << r.raw;
  r = get(c, "/v1/models/nope");
  EXPECT_EQ(r.status, 404) << r.raw;
  r = get(c, "/v1/models/m");
  EXPECT_EQ(r.status, 200) << r.raw;

  // Not JSON: 400 with OpenAI's error body.
  auto raw = c.Post("/v1/completions", "{not json", "application/json");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 400);
  EXPECT_TRUE(json::parse(raw->body)["error"]["message"].is_string());
}

// ---- 7. client disconnect -----------------------------------------------------------------------

TEST_F(Serve, ClientDisconnectCancelsAndFreesTheSlot) {
  // The large model on one slot: a 240-token generation takes long enough that the disconnect is
  // noticed while it still runs.
  start(engine_options(/*slots=*/1, /*queue=*/0), {}, kLarge);
  auto c = server->client();
  int chunks = 0;
  const json req = {{"model", "m"}, {"prompt", "The"}, {"max_tokens", 240}, {"ignore_eos", true},
                    {"temperature", 0}, {"stream", true}};
  auto res = post_stream(c, "/v1/completions", req, [&](const char* d, size_t n) {
    const std::string s(d, n);
    size_t p = 0;
    while ((p = s.find("data: ", p)) != std::string::npos) {
      ++chunks;
      p += 6;
    }
    return chunks < 2;  // abort after a couple of chunks
  });
  EXPECT_FALSE(res);  // cancelled by us
  const Clock::time_point aborted = Clock::now();

  // The slot frees up promptly: /health shows it idle, and a new request is served.
  auto c2 = server->client();
  bool idle = false;
  while (Clock::now() - aborted < 5s) {
    const HttpResult h = get(c2, "/health");
    if (h.status == 200 && h.body["models"]["m"]["active"] == 0 && h.body["models"]["m"]["queued"] == 0) {
      idle = true;
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(idle);
  const HttpResult next = post(c2, "/v1/completions", {{"model", "m"}, {"prompt", "Hello"}, {"max_tokens", 3}});
  EXPECT_EQ(next.status, 200) << next.raw;
  EXPECT_LT(Clock::now() - aborted, 5s);

  // The engine recorded the cancellation (it had not finished 240 tokens).
  const std::string m = get(c2, "/metrics").raw;
  EXPECT_NE(m.find("slm_rejected_requests_total{model=\"m\",reason=\"cancelled\"}"), std::string::npos) << m;
  // And fewer than 240 completion tokens were generated before it stopped.
  const std::regex completion_re("slm_completion_tokens_total\\{model=\"m\"\\} ([0-9]+)");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(m, match, completion_re)) << m;
  EXPECT_LT(std::stoll(match[1].str()), 240 + 3);
}

// The gauges describe the present: once every request has finished, slm_active_slots and
// slm_queue_depth read 0 (not the value of the last step that ran).
TEST_F(Serve, LoadGaugesReturnToZeroWhenIdle) {
  start(engine_options(2));
  auto c = server->client();
  const HttpResult r = post(c, "/v1/completions", {{"model", "m"}, {"prompt", "The"}, {"max_tokens", 8}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.raw;
  std::string m;
  bool idle = false;
  const Clock::time_point t0 = Clock::now();
  while (!idle && Clock::now() - t0 < 2s) {
    m = get(c, "/metrics").raw;
    idle = m.find("slm_active_slots{model=\"m\"} 0\n") != std::string::npos &&
           m.find("slm_queue_depth{model=\"m\"} 0\n") != std::string::npos;
    if (!idle) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(idle) << m;
  const HttpResult h = get(c, "/health");
  EXPECT_EQ(h.body["models"]["m"]["active"], 0) << h.raw;
}

// ---- 8. a pair of models ------------------------------------------------------------------------

TEST(ServePair, SpeculativeGreedyEqualsLargeModelGenerate) {
  auto large_ref = Model::load(model_path(kLarge));
  auto small = Model::load(model_path(kSmall));
  auto large = Model::load(model_path(kLarge));
  const int64_t context = std::min(small->config().ctx_len, large->config().ctx_len);
  ServerMetrics engine_metrics;
  PairEngineOptions po;
  po.strategy = PairStrategy::Speculative;
  po.threads = 1;
  po.speculative.draft_max = 4;
  std::vector<ServedModel> models;
  {
    ServedModel sm;
    sm.name = "pair";
    sm.chat = serve_chat_template(*large, "chatml", sm.chat_error);
    sm.engine = std::make_unique<PairEngine>("pair", std::move(small), std::move(large), po, &engine_metrics);
    models.push_back(std::move(sm));
  }
  {
    auto ts = std::make_unique<TestServer>(ServerOptions{}, std::move(models), engine_metrics);
    auto c = ts->client();
    for (const std::string prompt : {"The jury said that", "He walked into the room and"}) {
      const std::vector<int32_t> ids = encode_prompt(*large_ref, prompt);
      const GenerateResult want = referee_generate(*large_ref, ids, 24, true, context);
      const HttpResult r = post(c, "/v1/completions", {{"model", "pair"}, {"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}});
      ASSERT_EQ(r.status, 200) << r.raw;
      EXPECT_EQ(r.body["choices"][0]["text"], want.text) << prompt;
      const json& u = r.body["usage"];
      EXPECT_EQ(u["completion_tokens"], want.tokens.size());
      EXPECT_EQ(u["prompt_tokens"], ids.size());
      ASSERT_TRUE(u.contains("slm")) << u.dump();
      EXPECT_EQ(u["slm"]["strategy"], "speculative");
      EXPECT_EQ(u["slm"]["small_tokens"].get<int64_t>() + u["slm"]["large_tokens"].get<int64_t>(),
                u["completion_tokens"].get<int64_t>());
      EXPECT_GE(u["slm"]["large_tokens"].get<int64_t>(), 1);  // at least the first token of each round
    }
    // Embeddings are refused for pairs.
    const HttpResult e = post(c, "/v1/embeddings", {{"model", "pair"}, {"input", "hi"}});
    EXPECT_EQ(e.status, 400) << e.raw;
    const HttpResult models_r = get(c, "/v1/models");
    EXPECT_EQ(models_r.body["data"][0]["meta"]["kind"], "speculative");
    const std::string m = get(c, "/metrics").raw;
    EXPECT_NE(m.find("slm_pair_tokens_total{model=\"pair\",member=\"small\"}"), std::string::npos) << m;
    EXPECT_NE(m.find("slm_pair_tokens_total{model=\"pair\",member=\"large\"}"), std::string::npos) << m;
  }
}

// --horizon on a cascade pair: each decision is weighed by the share of the request's max_tokens
// still to come, exactly as CascadeDecodeModel::set_horizon does in `slm collab generate`.
TEST(ServePair, CascadeHorizonWeighsByTheRequestsMaxTokens) {
  auto small_ref = Model::load(model_path(kSmall));
  auto large_ref = Model::load(model_path(kLarge));
  const int64_t context = std::min(small_ref->config().ctx_len, large_ref->config().ctx_len);
  const std::string prompt = "The jury said that";
  const int max_tokens = 24;
  const std::vector<int32_t> ids = encode_prompt(*large_ref, prompt);
  // The referee: the library's cascade, with and without the weighing.
  const auto referee = [&](double threshold, bool horizon) {
    ThreadPool pool(1);
    Transformer st(*small_ref, pool), lt(*large_ref, pool);
    KvCache skv(small_ref->config(), context), lkv(large_ref->config(), context);
    UncertaintyPolicy policy(UncertaintyMetric::kEntropy, threshold, horizon);
    CascadeDecodeModel cascade(st, skv, lt, lkv, policy);
    if (horizon) cascade.set_horizon(max_tokens);
    GenerateOptions o;
    o.max_tokens = max_tokens;
    o.sampler = greedy();
    o.stop_at_eog = false;
    const GenerateResult g = generate(cascade, ids, o);
    return std::make_pair(g.text, cascade.stats().decided_large);
  };
  // A threshold at which the weighing changes how many tokens the large model decides.
  double threshold = 0;
  std::pair<std::string, int64_t> want;
  for (double t : {0.5, 1.0, 1.5, 2.0, 2.5, 3.0}) {
    want = referee(t, true);
    if (want.second != referee(t, false).second) {
      threshold = t;
      break;
    }
  }
  ASSERT_GT(threshold, 0) << "no threshold where --horizon changes the large model's share";

  ServerMetrics engine_metrics;
  PairEngineOptions po;
  po.strategy = PairStrategy::Cascade;
  po.threads = 1;
  po.threshold = threshold;
  po.horizon = true;
  std::vector<ServedModel> models;
  {
    ServedModel sm;
    sm.name = "pair";
    sm.chat = serve_chat_template(*large_ref, "chatml", sm.chat_error);
    sm.engine = std::make_unique<PairEngine>("pair", Model::load(model_path(kSmall)), Model::load(model_path(kLarge)),
                                             po, &engine_metrics);
    models.push_back(std::move(sm));
  }
  auto ts = std::make_unique<TestServer>(ServerOptions{}, std::move(models), engine_metrics);
  auto c = ts->client();
  const HttpResult r = post(c, "/v1/completions", {{"model", "pair"}, {"prompt", prompt}, {"max_tokens", max_tokens},
                                                   {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["choices"][0]["text"], want.first);
  EXPECT_EQ(r.body["usage"]["slm"]["strategy"], "cascade");
  EXPECT_EQ(r.body["usage"]["slm"]["large_tokens"], want.second) << "threshold " << threshold;
}

// ---- 9. SIGTERM on the real binary --------------------------------------------------------------

TEST(ServeBinary, SigtermWhileStreamingExitsZeroAndEndsTheStream) {
  int err_pipe[2];
  ASSERT_EQ(pipe(err_pipe), 0);
  const std::string binary = SLM_BINARY;
  const std::string model_arg = "m=" + model_path(kLarge);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    close(err_pipe[0]);
    close(err_pipe[1]);
    const char* argv[] = {binary.c_str(), "serve", "--model", model_arg.c_str(), "--port", "0",
                          "--threads", "1", "--parallel", "1", "--shutdown-grace", "0", nullptr};
    execv(binary.c_str(), const_cast<char* const*>(argv));
    _exit(127);
  }
  close(err_pipe[1]);

  // Read stderr until the port is announced (the rest is drained by a thread).
  std::string err;
  int port = 0;
  const std::regex port_re("listening on http://127\\.0\\.0\\.1:([0-9]+)");
  const Clock::time_point t0 = Clock::now();
  while (port == 0 && Clock::now() - t0 < 30s) {
    pollfd pfd{err_pipe[0], POLLIN, 0};
    if (poll(&pfd, 1, 200) <= 0) continue;
    char buf[512];
    const ssize_t n = read(err_pipe[0], buf, sizeof buf);
    if (n <= 0) break;
    err.append(buf, static_cast<size_t>(n));
    std::smatch m;
    if (std::regex_search(err, m, port_re)) port = std::stoi(m[1].str());
  }
  std::thread drain([fd = err_pipe[0], &err] {
    char buf[512];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) err.append(buf, static_cast<size_t>(n));
    close(fd);
  });
  if (port == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    drain.join();
    FAIL() << "no port announced; stderr: " << err;
  }

  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(30, 0);
  std::string body;
  bool signalled = false;
  const json req = {{"model", "m"}, {"prompt", "The"}, {"max_tokens", 240}, {"ignore_eos", true},
                    {"temperature", 0}, {"stream", true}};
  auto res = post_stream(c, "/v1/completions", req, [&](const char* d, size_t n) {
    body.append(d, n);
    if (!signalled && body.find("data: ") != std::string::npos) {
      signalled = true;
      kill(pid, SIGTERM);
    }
    return true;
  });
  EXPECT_TRUE(signalled);

  // The process exits by itself, with status 0, within 15 s.
  int status = 0;
  pid_t done = 0;
  const Clock::time_point sent = Clock::now();
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 && Clock::now() - sent < 15s)
    std::this_thread::sleep_for(20ms);
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    drain.join();
    FAIL() << "slm serve did not exit within 15 s of SIGTERM; stderr: " << err;
  }
  drain.join();
  ASSERT_TRUE(WIFEXITED(status)) << "stderr: " << err;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "stderr: " << err;

  ASSERT_TRUE(res) << httplib::to_string(res.error()) << " body so far: " << body;
  const std::vector<std::string> events = sse_payloads(body);
  ASSERT_GE(events.size(), 2u) << body;
  EXPECT_EQ(events.back(), "[DONE]") << body;
  const json last = json::parse(events[events.size() - 2], nullptr, false);
  ASSERT_FALSE(last.is_discarded()) << events[events.size() - 2];
  const json reason = last["choices"][0]["finish_reason"];
  EXPECT_TRUE(reason == "cancelled" || reason == "length") << last.dump();
  EXPECT_NE(err.find("SIGTERM received"), std::string::npos) << err;
}

}  // namespace
}  // namespace slm
