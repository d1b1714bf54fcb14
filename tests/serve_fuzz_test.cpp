// A fuzz test of slm serve over real sockets: one in-process server (2 slots, a queue of 4, a
// 64 KiB body limit, an API key) takes thousands of random and malformed requests from 4 client
// threads: random methods, paths and headers; valid completions/chat/embeddings bodies with their
// fields dropped, retyped or pushed out of range; broken JSON; and raw garbage on the socket
// (invalid request lines, requests cut off, lying Content-Length, malformed chunked bodies).
//
// What must hold: no answer is a 5xx (or anything outside the statuses the API uses); every 4xx
// on /v1/* carries OpenAI's JSON error body; a well-formed request gets 200 (or 429 when the
// queue is full) and a response of the right shape; nothing hangs past a 5 s client timeout; and
// afterwards the server is healthy, idle, still generates the same greedy text as before the
// fuzz, and stops when asked.
//
// Requests are reproducible one by one: request i is drawn from its own generator seeded with
// (SLM_SERVE_FUZZ_SEED, i); SLM_SERVE_FUZZ_ONLY=i sends just that one. SLM_SERVE_FUZZ_REQUESTS
// sets how many (default 3000).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "serve/batch_engine.h"
#include "serve/metrics.h"
#include "serve/server.h"

namespace slm {
namespace {

using json = nlohmann::json;
using Rng = std::mt19937_64;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kModelName = "brown";
constexpr const char* kApiKey = "fuzz-key-0123456789";
constexpr size_t kMaxBody = 64 * 1024;
constexpr double kClientTimeoutS = 5.0;
constexpr int64_t kContext = 256;  // the model's context: positions per request

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::strtoull(v, nullptr, 10);
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client over a plain socket, so that every byte on the wire is ours.

enum class SendMode {
  kHold,       // send, keep the write side open, read until a whole response or EOF
  kHalfClose,  // send, shut the write side, read to EOF. cpp-httplib then takes the client for
               // gone (its liveness check peeks and sees EOF) and may not answer at all; for
               // garbage whose framing lies, so that the server sees EOF instead of waiting
  kClose,      // send, close at once without reading (a client that goes away)
  kReset,      // send, close with SO_LINGER 0 (an RST instead of a FIN)
};

struct Exchange {
  bool connected = false;
  bool send_failed = false;  // the server closed before taking every byte (allowed for some)
  bool timed_out = false;    // no EOF / whole response within the timeout
  std::string data;          // everything received
  double seconds = 0;
};

struct HttpResponse {
  int status = 0;                            // 0: no status line
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                          // de-chunked
  bool complete = false;                     // framing says the whole body is here
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Parses the first final (non-1xx) response in `data`. Returns false if there is no status line.
bool parse_response(const std::string& data, bool head_request, HttpResponse& r) {
  size_t pos = 0;
  for (;;) {
    const size_t eol = data.find("\r\n", pos);
    if (eol == std::string::npos || data.compare(pos, 5, "HTTP/") != 0) return false;
    const size_t sp = data.find(' ', pos);
    if (sp == std::string::npos || sp > eol) return false;
    r.status = std::atoi(data.c_str() + sp + 1);
    const size_t end = data.find("\r\n\r\n", pos);
    if (end == std::string::npos) return r.status != 0;
    r.headers.clear();
    for (size_t line = eol + 2; line < end;) {
      const size_t le = data.find("\r\n", line);
      const std::string h = data.substr(line, le - line);
      const size_t colon = h.find(':');
      if (colon != std::string::npos) {
        size_t v = colon + 1;
        while (v < h.size() && h[v] == ' ') ++v;
        r.headers[lower(h.substr(0, colon))] = h.substr(v);
      }
      line = le + 2;
    }
    pos = end + 4;
    if (r.status >= 100 && r.status < 200) continue;  // "100 Continue": the real answer follows
    break;
  }
  r.body.clear();
  if (head_request || r.status == 204 || r.status == 304) {
    r.complete = true;
    return true;
  }
  const auto te = r.headers.find("transfer-encoding");
  if (te != r.headers.end() && lower(te->second).find("chunked") != std::string::npos) {
    while (pos < data.size()) {
      const size_t eol = data.find("\r\n", pos);
      if (eol == std::string::npos) return true;
      const size_t n = std::strtoull(data.c_str() + pos, nullptr, 16);
      if (n == 0) {
        r.complete = true;
        return true;
      }
      if (eol + 2 + n > data.size()) {
        r.body += data.substr(eol + 2);
        return true;
      }
      r.body += data.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    return true;
  }
  const auto cl = r.headers.find("content-length");
  if (cl != r.headers.end()) {
    const size_t n = std::strtoull(cl->second.c_str(), nullptr, 10);
    r.body = data.substr(pos, n);
    r.complete = r.body.size() == n;
    return true;
  }
  r.body = data.substr(pos);
  return true;
}

Exchange exchange(int port, const std::string& bytes, SendMode mode, double timeout_s, bool head_request = false) {
  Exchange ex;
  const auto t0 = SteadyClock::now();
  const auto deadline = t0 + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(timeout_s));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ex;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{0, 200 * 1000};  // short socket timeouts; the loops below watch the deadline
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return ex;
  }
  ex.connected = true;
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && SteadyClock::now() < deadline) continue;
    ex.send_failed = true;
    break;
  }
  if (mode == SendMode::kClose || mode == SendMode::kReset) {
    if (mode == SendMode::kReset) {
      linger lg{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    ::close(fd);
    ex.seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    return ex;
  }
  if (mode == SendMode::kHalfClose) ::shutdown(fd, SHUT_WR);
  std::array<char, 16384> buf{};
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      ex.data.append(buf.data(), static_cast<size_t>(n));
      if (mode == SendMode::kHold) {
        HttpResponse r;
        if (parse_response(ex.data, head_request, r) && r.complete) break;
      }
    } else if (n == 0) {
      break;  // EOF
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      break;  // reset: what arrived before it is kept
    }
    if (SteadyClock::now() >= deadline) {
      ex.timed_out = true;
      break;
    }
  }
  ::close(fd);
  ex.seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  return ex;
}

std::string dump_json_safe(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ---------------------------------------------------------------------------------------------
// Random values.

template <class T>
const T& pick(Rng& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}
int64_t uniform(Rng& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
bool chance(Rng& rng, double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

const std::vector<std::string> kWords = {"the", "a", "man", "said", "of", "house", "in", "was", "Mr.", "jury",
                                         "city", "and", "to", "that", "it", "he", "for", "on", "new", "year"};

// Plain text the tokenizer and chat templates see: mostly words, sometimes unicode, control
// characters, NUL, chat-template markup.
std::string random_text(Rng& rng, size_t max_words) {
  static const std::vector<std::string> odd = {
      "\xC3\xA9t\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87", "\xF0\x9F\x98\x80", "e\xCC\x81", "\t", "\n", "\r\n",
      std::string("\0", 1), "\x7F", "<|im_start|>", "<|im_end|>", "</s>", "<s>", "\\", "\"", "{{", "}}",
      "\xEF\xBB\xBF", "\xE2\x80\xAE", "  ", "%s%n", "\xF4\x8F\xBF\xBF"};
  std::string s;
  const size_t n = static_cast<size_t>(uniform(rng, 1, static_cast<int64_t>(max_words)));
  for (size_t i = 0; i < n; ++i) {
    if (!s.empty()) s += ' ';
    s += chance(rng, 0.1) ? pick(rng, odd) : pick(rng, kWords);
  }
  return s;
}

json random_number(Rng& rng) {
  switch (uniform(rng, 0, 13)) {
    case 0: return 0;
    case 1: return -1;
    case 2: return 1;
    case 3: return 2147483647;
    case 4: return int64_t{2147483648};
    case 5: return std::numeric_limits<int64_t>::max();
    case 6: return std::numeric_limits<int64_t>::min();
    case 7: return std::numeric_limits<uint64_t>::max();
    case 8: return 1e308;
    case 9: return -1e308;
    case 10: return 0.5;
    case 11: return 2.0;
    case 12: return -0.0;
    default: return uniform(rng, -100, 100);
  }
}

json random_value(Rng& rng, int depth) {
  switch (uniform(rng, 0, depth > 2 ? 5 : 8)) {
    case 0: return nullptr;
    case 1: return chance(rng, 0.5);
    case 2:
    case 3: return random_number(rng);
    case 4: return random_text(rng, 4);
    case 5: return "";
    case 6: {
      json a = json::array();
      for (int64_t i = uniform(rng, 0, 4); i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    case 7: {
      json o = json::object();
      for (int64_t i = uniform(rng, 0, 3); i > 0; --i) o[pick(rng, kWords)] = random_value(rng, depth + 1);
      return o;
    }
    default: return json::array({uniform(rng, -5, 5000)});
  }
}

// A value nested `depth` levels deep: [[[...]]] or {"a":{"a":...}}.
std::string deep_nesting(Rng& rng, size_t depth) {
  const bool arrays = chance(rng, 0.5);
  std::string s;
  s.reserve(depth * 6);
  for (size_t i = 0; i < depth; ++i) s += arrays ? "[" : "{\"a\":";
  s += "1";
  for (size_t i = 0; i < depth; ++i) s += arrays ? "]" : "}";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Requests.

struct Request {
  std::string kind;      // what generated it (for the tallies and for failure messages)
  std::string method;
  std::string target;    // path as sent (may be %-escaped)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool has_body = false;
  bool authorised = true;
  bool raw = false;      // bytes below are sent as they are; framing may be broken on purpose
  std::string raw_bytes;
  SendMode mode = SendMode::kHold;
  bool expect_no_answer = false;  // kClose / kReset: nothing is read
  double timeout_s = kClientTimeoutS;
  bool may_wait = false;          // raw: the server may rightly wait for bytes that never come
  bool header_too_long = false;   // a header line over 8192 bytes: 400 before any routing
  // Known-good requests: exactly what must come back.
  bool well_formed = false;       // a valid API request: 200 (or 429 when the queue is full)
  bool stream = false;
  bool chat = false;
  bool embeddings = false;
  int max_tokens = 0;             // of a well-formed generation request
  std::optional<int> expect_status;  // exactly this status (e.g. 401, 404, 413)
};

std::string printable(const std::string& s, size_t limit) {
  std::string out;
  for (size_t i = 0; i < s.size() && out.size() < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02X", c);
      out += b;
    }
  }
  if (s.size() > limit) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string wire_bytes(const Request& r) {
  if (r.raw) return r.raw_bytes;
  std::string s = r.method + " " + r.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& [k, v] : r.headers) s += k + ": " + v + "\r\n";
  if (r.has_body) s += "Content-Type: application/json\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  // Without a length cpp-httplib reads the body of these methods until the client closes (RFC 9112
  // says: no body); clients send "Content-Length: 0". The raw cases send none on purpose.
  else if (r.method.find("POST") != std::string::npos || r.method == "PUT" || r.method == "PATCH" || r.method == "PRI")
    s += "Content-Length: 0\r\n";
  s += "\r\n";
  if (r.has_body) s += r.body;
  return s;
}

std::string describe(const Request& r) {
  return "[" + r.kind + "] " + printable(wire_bytes(r), 600);
}

void add_auth(Rng& rng, Request& r) {
  // 1 in 8 requests is not authorised, in one of several ways.
  if (!chance(rng, 0.125)) {
    r.headers.push_back({"Authorization", std::string("Bearer ") + kApiKey});
    return;
  }
  r.authorised = false;
  switch (uniform(rng, 0, 6)) {
    case 0: break;  // no header at all
    case 1: r.headers.push_back({"Authorization", "Bearer wrong-key"}); break;
    case 2: r.headers.push_back({"Authorization", "Bearer "}); break;
    case 3: r.headers.push_back({"Authorization", std::string("bearer ") + kApiKey}); break;
    case 4: r.headers.push_back({"Authorization", std::string("Bearer ") + kApiKey + "x"}); break;
    case 5: r.headers.push_back({"Authorization", std::string("Basic ") + kApiKey}); break;
    default: r.headers.push_back({"Authorization", std::string("Bearer ") + std::string(kApiKey).substr(1)}); break;
  }
}

// Random extra headers; never the ones that frame the message (those belong to the raw cases) or
// Range (cpp-httplib answers 206/416 and slices even error bodies).
void add_random_headers(Rng& rng, Request& r) {
  static const std::vector<std::string> names = {"Accept", "User-Agent", "X-Request-Id", "Accept-Encoding", "Cookie",
                                                 "X-Forwarded-For", "OpenAI-Organization", "Expect", "Origin", "Referer"};
  static const std::vector<std::string> values = {"*/*", "text/event-stream", "gzip, br", "100-continue", "",
                                                  "\xC3\xA9\xFF", "a=b; c=d", "null", "(){ :; }; echo"};
  for (int64_t i = uniform(rng, 0, 3); i > 0; --i) {
    std::string name = chance(rng, 0.8) ? pick(rng, names) : "X-" + std::to_string(uniform(rng, 0, 1 << 20));
    // Long values: well under or well over cpp-httplib's 8192-byte header line limit (over: 400).
    std::string value = pick(rng, values);
    if (chance(rng, 0.1)) value = std::string(static_cast<size_t>(chance(rng, 0.5) ? uniform(rng, 100, 4000) : uniform(rng, 9000, 12000)), 'v');
    if (value.size() > 8192) r.header_too_long = true;
    r.headers.push_back({name, value});
  }
}

json valid_completion(Rng& rng, Request& r) {
  json b = {{"model", kModelName}, {"prompt", random_text(rng, 12)}, {"max_tokens", uniform(rng, 1, 4)}};
  if (chance(rng, 0.5)) b["temperature"] = chance(rng, 0.5) ? 0.0 : 0.8;
  if (chance(rng, 0.5)) b["seed"] = uniform(rng, -1000, 1000000);
  if (chance(rng, 0.3)) b["stream"] = true;
  if (chance(rng, 0.3)) b["logprobs"] = uniform(rng, 0, 5);
  if (chance(rng, 0.2)) b["stop"] = chance(rng, 0.5) ? json(pick(rng, kWords)) : json::array({"\n", pick(rng, kWords)});
  if (chance(rng, 0.1)) b["top_k"] = uniform(rng, 0, 50);
  if (chance(rng, 0.1)) b["top_p"] = 0.9;
  if (chance(rng, 0.1)) b["frequency_penalty"] = 0.5;
  if (chance(rng, 0.1) && b.value("stream", false)) b["stream_options"] = {{"include_usage", true}};
  if (chance(rng, 0.05)) b["prompt"] = json::array({uniform(rng, 0, 4095), uniform(rng, 0, 4095)});
  if (chance(rng, 0.02)) b["prompt"] = json::array({uniform(rng, 256, 258), uniform(rng, 256, 258)});  // bos/eos/pad ids
  r.chat = false;
  return b;
}

json valid_chat(Rng& rng, Request& r) {
  json msgs = json::array();
  if (chance(rng, 0.3)) msgs.push_back({{"role", "system"}, {"content", random_text(rng, 6)}});
  msgs.push_back({{"role", "user"}, {"content", random_text(rng, 10)}});
  if (chance(rng, 0.2)) {
    msgs.push_back({{"role", "assistant"}, {"content", random_text(rng, 4)}});
    msgs.push_back({{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", random_text(rng, 4)}}})}});
  }
  json b = {{"model", kModelName}, {"messages", msgs}};
  b[chance(rng, 0.5) ? "max_tokens" : "max_completion_tokens"] = uniform(rng, 1, 4);
  if (chance(rng, 0.5)) b["temperature"] = chance(rng, 0.5) ? 0.0 : 1.2;
  if (chance(rng, 0.5)) b["seed"] = uniform(rng, 0, 1000000);
  if (chance(rng, 0.3)) b["stream"] = true;
  if (chance(rng, 0.3)) {
    b["logprobs"] = true;
    if (chance(rng, 0.5)) b["top_logprobs"] = uniform(rng, 0, 20);
  }
  if (chance(rng, 0.2)) b["stop"] = json::array({pick(rng, kWords)});
  if (chance(rng, 0.1) && b.value("stream", false)) b["stream_options"] = {{"include_usage", true}};
  r.chat = true;
  return b;
}

json valid_embeddings(Rng& rng, Request& r) {
  json b = {{"model", kModelName}};
  switch (uniform(rng, 0, 3)) {
    case 0: b["input"] = random_text(rng, 8); break;
    case 1: b["input"] = json::array({random_text(rng, 4), random_text(rng, 4)}); break;
    case 2: b["input"] = json::array({uniform(rng, 0, 4095), uniform(rng, 0, 4095), uniform(rng, 0, 4095)}); break;
    default: b["input"] = json::array({json::array({uniform(rng, 0, 4095)})}); break;
  }
  if (chance(rng, 0.3)) b["encoding_format"] = chance(rng, 0.5) ? "base64" : "float";
  if (chance(rng, 0.2)) b["dimensions"] = uniform(rng, 1, 256);
  r.embeddings = true;
  return b;
}

// The fields each endpoint knows, plus a few it does not: the mutations set them to anything.
const std::vector<std::string>& fields_of(bool chat, bool embeddings) {
  static const std::vector<std::string> completion = {
      "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty",
      "frequency_penalty", "presence_penalty", "seed", "stop", "stream", "stream_options", "logprobs", "n",
      "best_of", "echo", "suffix", "logit_bias", "ignore_eos", "user", "unknown_field"};
  static const std::vector<std::string> chat_fields = {
      "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p",
      "frequency_penalty", "presence_penalty", "seed", "stop", "stream", "stream_options", "logprobs",
      "top_logprobs", "n", "tools", "tool_choice", "response_format", "functions", "ignore_eos", "user", "x"};
  static const std::vector<std::string> emb = {"model", "input", "encoding_format", "dimensions", "user", "x"};
  return embeddings ? emb : chat ? chat_fields : completion;
}

// Values that are the right JSON type but out of range, or near the edges.
json edge_value_for(Rng& rng, const std::string& field) {
  if (field == "max_tokens" || field == "max_completion_tokens")
    return pick(rng, std::vector<json>{0, -1, 1, 2147483647, int64_t{1} << 40, 1.0, 3.5, 255, 256, 10000});
  if (field == "temperature" || field == "top_p" || field == "min_p" || field == "repeat_penalty" ||
      field == "frequency_penalty" || field == "presence_penalty")
    return pick(rng, std::vector<json>{-0.0, 0, 1e-300, 2, 2.0000001, -2, -2.5, 1e308, -1e308, 100});
  if (field == "top_k" || field == "n" || field == "best_of" || field == "top_logprobs" || field == "dimensions")
    return pick(rng, std::vector<json>{-1, 0, 1, 2, 20, 21, 256, 257, 2147483647, int64_t{1} << 33});
  if (field == "logprobs") return pick(rng, std::vector<json>{true, false, 0, 5, 6, -1, 1.5});
  if (field == "seed")
    return pick(rng, std::vector<json>{std::numeric_limits<int64_t>::min(), std::numeric_limits<uint64_t>::max(), -1, 0.5});
  if (field == "stop") {
    json long_stop = std::string(static_cast<size_t>(uniform(rng, 100, 5000)), 'x');
    return pick(rng, std::vector<json>{json::array(), json::array({""}), "", json::array({"a", "b", "c", "d", "e"}),
                                       json::array({1}), long_stop, json::array({"\n", "the", "\xF0\x9F\x98\x80"})});
  }
  if (field == "stream_options")
    return pick(rng, std::vector<json>{json::object(), json({{"include_usage", "yes"}}), json({{"include_usage", true}})});
  if (field == "prompt")
    return pick(rng, std::vector<json>{json::array(), json::array({""}), json::array({"a", "b"}), json::array({-1}),
                                       json::array({4096}), json::array({2147483647}), json::array({json::array({1, 2})}),
                                       json::array({json::array()}), json::array({1.5}), ""});
  if (field == "messages")
    return pick(rng, std::vector<json>{json::array(), json::array({json::object()}),
                                       json::array({{{"role", "tool"}, {"content", "x"}}}),
                                       json::array({{{"role", "user"}, {"content", nullptr}}}),
                                       json::array({{{"role", "user"}, {"content", json::array({{{"type", "image_url"}}})}}}),
                                       json::array({{{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", 5}}})}}}),
                                       json::array({{{"role", 7}, {"content", "x"}}}),
                                       json::array({{{"role", "assistant"}, {"content", "only"}}}),
                                       json::array({"user"})});
  if (field == "input" && chance(rng, 0.3)) {
    // More inputs than slots plus queue: some are refused with 429.
    json many = json::array();
    for (int64_t i = uniform(rng, 5, 40); i > 0; --i) many.push_back(pick(rng, kWords));
    return many;
  }
  if (field == "input")
    return pick(rng, std::vector<json>{json::array(), "", json::array({""}), json::array({json::array()}),
                                       json::array({-1}), json::array({4096}), json::array({"a", 1}),
                                       json::array({json::array({1}), "a"})});
  if (field == "encoding_format") return pick(rng, std::vector<json>{"base64", "float", "binary", "", "BASE64"});
  if (field == "model")
    return pick(rng, std::vector<json>{"", "nope", "brown ", "BROWN", std::string("brown\0x", 7), "\xC3\xA9"});
  return random_value(rng, 0);
}

// Changes a valid body. Returns how many changes (0: the body is still well-formed).
int mutate(Rng& rng, json& b, bool chat, bool embeddings) {
  const auto& fields = fields_of(chat, embeddings);
  const int n = static_cast<int>(uniform(rng, 1, 3));
  for (int i = 0; i < n; ++i) {
    std::string f = pick(rng, fields);
    switch (uniform(rng, 0, 3)) {
      case 0:  // drop it; dropping max_tokens lets the server generate to the end of the context, so rarely
        if ((f == "max_tokens" || f == "max_completion_tokens") && !chance(rng, 0.1)) f = "model";
        b.erase(f);
        break;
      case 1: b[f] = random_value(rng, 0); break;  // usually the wrong type
      default: b[f] = edge_value_for(rng, f); break;
    }
    // A huge max_tokens means a long generation: keep the cost bounded by a stop most of the time.
    for (const char* mt : {"max_tokens", "max_completion_tokens"})
      if (b.contains(mt) && b[mt].is_number_integer() && b[mt].get<int64_t>() > 8 && !chance(rng, 0.2)) b[mt] = 4;
  }
  if (!b.contains("max_tokens") && !b.contains("max_completion_tokens") && !embeddings && chance(rng, 0.8))
    b["max_tokens"] = 3;
  return n;
}

// Raw JSON-text damage on a body.
std::string damage_text(Rng& rng, std::string s) {
  switch (uniform(rng, 0, 11)) {
    case 0: return s.substr(0, static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(s.size()))));  // truncated
    case 1:  // flipped bytes
      for (int64_t i = uniform(rng, 1, 4); i > 0 && !s.empty(); --i)
        s[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(s.size()) - 1))] = static_cast<char>(uniform(rng, 0, 255));
      return s;
    case 2: return s + pick(rng, std::vector<std::string>{"}", ",", " garbage", "\0", "{}", "\n\n"});
    case 3: return "\xEF\xBB\xBF" + s;  // BOM
    case 4: return pick(rng, std::vector<std::string>{"", "null", "[]", "\"str\"", "1e999", "NaN", "{", "}", "{\"model\":}",
                                                      "{\"model\":\"brown\",\"model\":1}", "true", "-", "\xFF\xFE"});
    case 5: {  // a number JSON has no spelling for, or one nlohmann may refuse
      const size_t p = s.find("\"max_tokens\":");
      const std::string v = pick(rng, std::vector<std::string>{"NaN", "Infinity", "-Infinity", "1e999", "-1e999", "0x10",
                                                               "01", "+1", "1.", ".5", "1e", "--1", "99999999999999999999999"});
      if (p != std::string::npos) {
        const size_t start = p + 13, end = s.find_first_of(",}", start);
        return s.substr(0, start) + v + s.substr(end);
      }
      return s.substr(0, s.size() - 1) + ",\"temperature\":" + v + "}";
    }
    case 6: {  // invalid UTF-8 / bad escapes inside a string value
      const size_t q = s.find(":\"");
      const std::string bad = pick(rng, std::vector<std::string>{"\xC3(", "\xFF", "\xED\xA0\x80", "\\ud800", "\\udc00x",
                                                                 "\\u00", "\\x41", "\x01", "\\u0000", "\xF8\x88\x80\x80\x80"});
      if (q != std::string::npos) return s.substr(0, q + 2) + bad + s.substr(q + 2);
      return s + bad;
    }
    case 7: return deep_nesting(rng, static_cast<size_t>(uniform(rng, 100, 12000)));  // the whole body
    case 8: {  // a deep value inside a valid object
      const std::string deep = deep_nesting(rng, static_cast<size_t>(uniform(rng, 100, 9000)));
      return s.substr(0, s.size() - 1) + ",\"" + pick(rng, std::vector<std::string>{"prompt", "stop", "messages", "input", "x"}) + "\":" + deep + "}";
    }
    case 9: {  // duplicate keys
      return s.substr(0, s.size() - 1) + ",\"model\":" + pick(rng, std::vector<std::string>{"1", "null", "\"brown\"", "\"x\""}) + "}";
    }
    case 10: {  // whitespace and comments
      return pick(rng, std::vector<std::string>{" \t\r\n", "/* c */", "// c\n"}) + s;
    }
    default: return std::string(static_cast<size_t>(uniform(rng, 1, 300)), static_cast<char>(uniform(rng, 0, 255)));
  }
}

// A body near or over the 64 KiB limit.
std::string huge_body(Rng& rng, const std::string& endpoint, size_t target) {
  std::string filler;
  filler.reserve(target);
  while (filler.size() + 16 < target) filler += chance(rng, 0.9) ? pick(rng, kWords) + " " : "\xE4\xB8\xAD ";
  if (endpoint == "chat") {
    if (chance(rng, 0.5)) {
      // Many small messages instead of one big one.
      std::string s = "{\"model\":\"brown\",\"max_tokens\":2,\"messages\":[";
      bool first = true;
      while (s.size() + 40 < target) {
        s += std::string(first ? "" : ",") + "{\"role\":\"user\",\"content\":\"hi\"}";
        first = false;
      }
      return s + "]}";
    }
    return dump_json_safe({{"model", kModelName}, {"max_tokens", 2}, {"messages", {{{"role", "user"}, {"content", filler}}}}});
  }
  if (endpoint == "embeddings") return dump_json_safe({{"model", kModelName}, {"input", filler}});
  return dump_json_safe({{"model", kModelName}, {"max_tokens", 2}, {"prompt", filler}});
}

const std::vector<std::string> kMethods = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE",
                                           "CONNECT", "PRI", "get", "FOO", "POST ", ""};

std::string random_path(Rng& rng) {
  static const std::vector<std::string> paths = {
      "/", "/v1", "/v1/", "/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/health",
      "/metrics", "/v2/completions", "/v1/completions/", "/v1//completions", "/V1/completions", "/v1/%63ompletions",
      "/v1/chat/completions%00", "/%00", "/v1/models/%00%ff", "/v1/models/%", "/v1/models/%zz", "/v1/models/%62rown",
      "/v1/models/brown/", "/v1/models/" + std::string("\xC3\xA9"), "/..%2f..%2fetc/passwd", "/v1/../health", "*",
      "http://127.0.0.1/v1/models", "/v1/models?x=1&y&=&%", "/v1/models#frag", "/health?%ff=%00", "",
      "/v1/completions?stream=true", "/v1/embeddings\xFF", "/v1/models/" + std::string(300, '%'),
      std::string("/v1/mo\0dels", 11), "/v1/models/a b", "/v1/models/\t", "/v1/embeddings;x"};
  if (chance(rng, 0.15)) {
    // A very long path: up to well past cpp-httplib's 8192-byte request-line limit.
    const size_t n = static_cast<size_t>(uniform(rng, 100, 20000));
    std::string p = chance(rng, 0.5) ? "/v1/models/" : "/v1/";
    while (p.size() < n) p += chance(rng, 0.7) ? "a" : chance(rng, 0.5) ? "%41" : "%ff";
    return p;
  }
  return pick(rng, paths);
}

// A well-formed request to a generation/embedding endpoint, mutated or not.
void api_request(Rng& rng, Request& r, const std::string& endpoint) {
  r.method = "POST";
  r.target = endpoint == "chat" ? "/v1/chat/completions" : endpoint == "embeddings" ? "/v1/embeddings" : "/v1/completions";
  r.has_body = true;
  json b = endpoint == "chat" ? valid_chat(rng, r) : endpoint == "embeddings" ? valid_embeddings(rng, r) : valid_completion(rng, r);
  const int64_t roll = uniform(rng, 0, 99);
  if (roll < 35) {
    r.kind = endpoint + "/valid";
    r.well_formed = true;
    r.stream = b.value("stream", false);
    if (!r.embeddings) r.max_tokens = b.contains("max_tokens") ? b["max_tokens"].get<int>() : b["max_completion_tokens"].get<int>();
    r.body = dump_json_safe(b);
  } else if (roll < 40 && endpoint != "chat") {
    // Prompts of token ids right at the context (256): < 256 fits (embeddings: < 256 too, as the
    // server counts context - 1 usable positions), more is a 400.
    r.kind = endpoint + "/context-edge";
    const int64_t limit = 255;
    const int64_t n = uniform(rng, limit - 5, limit + 2);
    json ids = json::array();
    for (int64_t i = 0; i < n; ++i) ids.push_back(uniform(rng, 0, 4095));
    if (r.embeddings) {
      b["input"] = ids;
    } else {
      b["prompt"] = ids;
      b.erase("stop");
      if (chance(rng, 0.5)) b.erase("max_tokens");  // the server then fills the context
      r.max_tokens = b.contains("max_tokens") ? b["max_tokens"].get<int>() : static_cast<int>(kContext - n);
      r.stream = b.value("stream", false);
    }
    r.body = dump_json_safe(b);
    if (n <= limit) r.well_formed = true;
    else r.expect_status = 400;
  } else if (roll < 42 && endpoint != "embeddings") {
    // A client that gives up early: streaming ones must be cancelled (the idle check at the end
    // finds leaked slots), others run to their end unobserved.
    r.kind = endpoint + "/abandoned";
    b[b.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens"] = uniform(rng, 30, 200);
    r.well_formed = true;
    r.stream = b.value("stream", false);
    r.max_tokens = b.contains("max_tokens") ? b["max_tokens"].get<int>() : b["max_completion_tokens"].get<int>();
    r.body = dump_json_safe(b);
    r.timeout_s = std::uniform_real_distribution<double>(0.02, 0.3)(rng);
    r.may_wait = true;
  } else if (roll < 80) {
    r.kind = endpoint + "/mutated";
    mutate(rng, b, r.chat, r.embeddings);
    r.body = dump_json_safe(b);
  } else if (roll < 94) {
    r.kind = endpoint + "/damaged";
    r.body = damage_text(rng, dump_json_safe(b));
  } else {
    r.kind = endpoint + "/huge";
    const size_t target = pick(rng, std::vector<size_t>{kMaxBody - 200, kMaxBody - 1, kMaxBody + 1, 2 * kMaxBody, 200000});
    r.body = huge_body(rng, endpoint, target);
    if (r.body.size() > kMaxBody) r.expect_status = 413;
  }
  add_auth(rng, r);
  if (chance(rng, 0.2)) add_random_headers(rng, r);
  if (!r.authorised) r.expect_status = 401;
}

void get_request(Rng& rng, Request& r) {
  static const std::vector<std::string> targets = {"/health", "/metrics", "/v1/models", "/v1/models/brown",
                                                   "/v1/models/nope", "/v1/models/%62rown", "/v1/models/" + std::string(50, 'x')};
  r.kind = "get";
  r.method = chance(rng, 0.85) ? "GET" : "HEAD";
  r.target = pick(rng, targets);
  add_auth(rng, r);
  if (chance(rng, 0.3)) add_random_headers(rng, r);
  if (r.target == "/health") r.expect_status = 200;
  else if (!r.authorised) r.expect_status = 401;
  else if (r.target == "/v1/models/nope" || r.target.size() > 60) r.expect_status = 404;
  else r.expect_status = 200;
}

void random_request(Rng& rng, Request& r) {
  r.kind = "random";
  r.method = pick(rng, kMethods);
  r.target = random_path(rng);
  add_auth(rng, r);
  add_random_headers(rng, r);
  if (chance(rng, 0.4)) {
    r.has_body = true;
    r.body = chance(rng, 0.5) ? dump_json_safe(random_value(rng, 0)) : damage_text(rng, "{\"model\":\"brown\",\"prompt\":\"hi\",\"max_tokens\":2}");
    // Rarely valid and routed: keep it cheap.
  }
}

// Bytes nobody should send: broken request lines, cut-off requests, lying framing.
void raw_request(Rng& rng, Request& r) {
  r.raw = true;
  r.mode = SendMode::kHalfClose;
  const std::string auth = std::string("Authorization: Bearer ") + kApiKey + "\r\n";
  const std::string body = "{\"model\":\"brown\",\"prompt\":\"the jury\",\"max_tokens\":2,\"temperature\":0}";
  const std::string post = "POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Type: application/json\r\n";
  const std::string valid = post + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  switch (uniform(rng, 0, 18)) {
    case 0: {
      r.kind = "raw/bytes";
      std::string s(static_cast<size_t>(uniform(rng, 1, 2000)), '\0');
      for (char& c : s) c = static_cast<char>(uniform(rng, 0, 255));
      r.raw_bytes = s + (chance(rng, 0.5) ? "\r\n\r\n" : "");
      break;
    }
    case 1:
      r.kind = "raw/request-line";
      r.raw_bytes = pick(rng, std::vector<std::string>{
                                  "GET\r\n\r\n", "GET /health\r\n\r\n", "GET /health HTTP/9.9\r\n\r\n",
                                  "GET /health HTTP/1.1 extra\r\n\r\n", "get /health http/1.1\r\n\r\n",
                                  "GET /health HTTP/1.1\n\n", "GET  /health HTTP/1.1\r\n\r\n", "\r\n\r\n",
                                  " GET /health HTTP/1.1\r\n\r\n", "GET /health HTTP/1.1\r\r\n\r\n",
                                  std::string("GET /he\0alth HTTP/1.1\r\n\r\n", 25), "GET /health HTTP/1.1\r\n",
                                  "BREW /pot HTCPCP/1.0\r\n\r\n", "GET http://[::1/ HTTP/1.1\r\n\r\n"});
      break;
    case 2:
      r.kind = "raw/long-line";
      r.raw_bytes = chance(rng, 0.5) ? "GET /" + std::string(static_cast<size_t>(uniform(rng, 8000, 70000)), 'a') + " HTTP/1.1\r\n\r\n"
                                     : "GET /health HTTP/1.1\r\nX-Long: " + std::string(static_cast<size_t>(uniform(rng, 8000, 70000)), 'b') + "\r\n\r\n";
      break;
    case 3:
    case 4:
      r.kind = "raw/cut-off";
      r.raw_bytes = valid.substr(0, static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(valid.size()) - 1)));
      r.mode = chance(rng, 0.5) ? SendMode::kClose : SendMode::kReset;
      r.expect_no_answer = true;
      if (chance(rng, 0.3)) {  // or cut off, then half-closed: the server sees EOF mid-request
        r.mode = SendMode::kHalfClose;
        r.expect_no_answer = false;
      }
      break;
    case 5:
      r.kind = "raw/length-too-long";
      r.raw_bytes = post + "Content-Length: " + std::to_string(body.size() + static_cast<size_t>(uniform(rng, 1, 5000))) + "\r\n\r\n" + body;
      break;
    case 6:
      r.kind = "raw/length-too-short";
      r.raw_bytes = post + "Content-Length: " + std::to_string(uniform(rng, 0, static_cast<int64_t>(body.size()) - 1)) + "\r\n\r\n" + body;
      break;
    case 7:
      r.kind = "raw/length-garbage";
      r.raw_bytes = post + "Content-Length: " +
                    pick(rng, std::vector<std::string>{"-5", "abc", "99999999999999999999999", "18446744073709551615", "",
                                                       " 10", "0x10", "1e3", "70", "5, 5"}) +
                    "\r\n" + (chance(rng, 0.3) ? "Content-Length: 3\r\n" : "") + "\r\n" + body;
      break;
    case 8: {
      r.kind = "raw/chunked-bad";
      const std::string te = post + "Transfer-Encoding: chunked\r\n\r\n";
      r.raw_bytes = te + pick(rng, std::vector<std::string>{
                                 "zz\r\n" + body + "\r\n0\r\n\r\n", "5\r\n{\"mod\r\n",  // no terminator
                                 "FFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n", "20000\r\n" + body + "\r\n0\r\n\r\n",
                                 "-1\r\nx\r\n0\r\n\r\n", "3;ext=1\r\nabc\r\n0\r\n\r\n", "3\r\nabcdef\r\n0\r\n\r\n",
                                 "\r\n\r\n", "0\r\n", "1\r\n" + std::string(1, '{')});
      break;
    }
    case 9: {
      r.kind = "raw/chunked-valid";
      r.mode = SendMode::kHold;
      // A valid chunked body of a valid request: must be served.
      std::string chunks;
      for (size_t i = 0; i < body.size(); i += 17) {
        const std::string piece = body.substr(i, 17);
        char hex[16];
        std::snprintf(hex, sizeof hex, "%zx", piece.size());
        chunks += std::string(hex) + "\r\n" + piece + "\r\n";
      }
      r.raw_bytes = post + "Transfer-Encoding: chunked\r\n\r\n" + chunks + "0\r\n\r\n";
      r.expect_status = 200;
      break;
    }
    case 10: {
      r.kind = "raw/chunked-huge";
      // Chunks that add up past the body limit.
      std::string chunks;
      const std::string piece(8000, 'x');
      for (int i = 0; i < 10; ++i) chunks += "1f40\r\n" + piece + "\r\n";
      r.raw_bytes = post + "Transfer-Encoding: chunked\r\n\r\n" + chunks + "0\r\n\r\n";
      break;
    }
    case 11:
      r.kind = "raw/headers-bad";
      r.raw_bytes = "GET /v1/models HTTP/1.1\r\n" + auth +
                    pick(rng, std::vector<std::string>{"NoColon\r\n", std::string("X-Nul: a\0b\r\n", 12), " folded: x\r\n",
                                                       "X: y\r\n continued\r\n", ": empty-name\r\n", "X-A:\r\n",
                                                       "X-\xFF: \xC3(\r\n", "Host: a\r\nHost: b\r\n"}) +
                    "\r\n";
      break;
    case 12:
      r.kind = "raw/pipelined";
      r.mode = SendMode::kHold;
      r.raw_bytes = "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\n" + auth + "\r\n" + valid;
      r.expect_status = 200;
      break;
    case 13:
      r.kind = "raw/keep-alive";
      r.raw_bytes = valid;  // no Connection: close: the server keeps the connection for the next one
      r.mode = SendMode::kHold;
      r.expect_status = 200;
      break;
    case 14:
      r.kind = "raw/http10";
      r.mode = SendMode::kHold;
      r.raw_bytes = "GET /health HTTP/1.0\r\n\r\n";
      r.expect_status = 200;
      break;
    case 15:
      r.kind = "raw/content-encoding";
      r.raw_bytes = post + "Content-Encoding: " + pick(rng, std::vector<std::string>{"gzip", "deflate", "br", "zstd"}) +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      break;
    case 16:
      r.kind = "raw/range";
      r.raw_bytes = "GET /health HTTP/1.1\r\nRange: " +
                    pick(rng, std::vector<std::string>{"bytes=0-3", "bytes=5-1", "bytes=abc", "bytes=0-1,2-3", "bytes=-99999999999999999999"}) +
                    "\r\n\r\n";
      break;
    case 17:
      r.kind = "raw/no-length";  // read to EOF by cpp-httplib; half-closed, so it sees one
      r.raw_bytes = post + "\r\n" + (chance(rng, 0.5) ? body : "");
      break;
    default:
      r.kind = "raw/expect-continue";
      r.mode = SendMode::kHold;
      r.raw_bytes = post + "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      r.expect_status = 200;
      break;
  }
}

Request make_request(uint64_t seed, uint64_t index) {
  Rng rng(seed * 0x9E3779B97F4A7C15ull + index);
  Request r;
  const int64_t roll = uniform(rng, 0, 99);
  if (roll < 28) api_request(rng, r, "completions");
  else if (roll < 52) api_request(rng, r, "chat");
  else if (roll < 62) api_request(rng, r, "embeddings");
  else if (roll < 70) get_request(rng, r);
  else if (roll < 84) random_request(rng, r);
  else raw_request(rng, r);
  if (r.raw && !r.expect_status && r.mode == SendMode::kHalfClose && chance(rng, 0.5)) {
    // Half of the garbage keeps the connection open instead: then the answer is read (the server
    // answers a half-closed client rarely), and waiting for bytes that never come is allowed.
    r.mode = SendMode::kHold;
    r.timeout_s = 0.5;
    r.may_wait = true;
  }
  // A header line over the limit is a 400 unless the request line is over its limit first (414).
  if (r.header_too_long) r.expect_status = r.method.size() + r.target.size() + 11 > 8192 ? std::nullopt : std::optional<int>(400);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Checks.

bool is_api_status(int s) {
  static const std::set<int> ok = {200, 400, 401, 404, 405, 413, 429, 503};
  return ok.count(s) > 0;
}

// OpenAI's error body: {"error": {"message": string, "type": string, ...}}.
std::string error_body_problem(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return "the error body is not JSON: " + printable(body, 200);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "no error object: " + printable(body, 200);
  if (!j["error"].contains("message") || !j["error"]["message"].is_string()) return "error.message is not a string";
  if (!j["error"].contains("type") || !j["error"]["type"].is_string()) return "error.type is not a string";
  return "";
}

// A 200 to a well-formed request has the response's shape, and usage adds up.
std::string success_problem(const Request& rq, const HttpResponse& rs) {
  if (rq.stream) {
    if (rs.headers.count("content-type") == 0 || rs.headers.at("content-type").find("text/event-stream") == std::string::npos)
      return "a stream without Content-Type text/event-stream";
    if (!rs.complete) return "the stream was cut off";
    size_t pos = 0;
    bool done = false, finished = false;
    while (pos < rs.body.size()) {
      size_t end = rs.body.find("\n\n", pos);
      if (end == std::string::npos) return "an event without its blank line: " + printable(rs.body.substr(pos), 200);
      const std::string ev = rs.body.substr(pos, end - pos);
      pos = end + 2;
      if (ev.rfind(":", 0) == 0) continue;  // a comment (keep-alive)
      if (ev.rfind("data: ", 0) != 0) return "an event that is not data: " + printable(ev, 200);
      if (done) return "data after [DONE]";
      const std::string payload = ev.substr(6);
      if (payload == "[DONE]") {
        done = true;
        continue;
      }
      const json j = json::parse(payload, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return "an event that is not a JSON object: " + printable(payload, 200);
      if (j.contains("error")) return "a stream that failed: " + printable(payload, 300);
      if (!j.contains("choices") || !j["choices"].is_array()) return "a chunk without choices";
      if (!j["choices"].empty() && !j["choices"][0]["finish_reason"].is_null()) finished = true;
    }
    if (!done) return "the stream did not end with data: [DONE]";
    if (!finished) return "no chunk carried a finish_reason";
    return "";
  }
  const json j = json::parse(rs.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "the body is not a JSON object: " + printable(rs.body, 200);
  if (rq.embeddings) {
    if (!j.contains("data") || !j["data"].is_array() || j["data"].empty()) return "embeddings without data";
    for (const json& d : j["data"])
      if (!d.contains("embedding") || !(d["embedding"].is_array() || d["embedding"].is_string())) return "an entry without an embedding";
    return "";
  }
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() != 1) return "not exactly one choice";
  const json& c = j["choices"][0];
  if (rq.chat ? !c["message"]["content"].is_string() : !c["text"].is_string()) return "no text in the choice";
  const json reason = c.value("finish_reason", json(nullptr));
  if (!reason.is_string() || (reason != "stop" && reason != "length")) return "finish_reason " + reason.dump();
  const json& u = j["usage"];
  if (!u.is_object() || !u["prompt_tokens"].is_number_integer() || !u["completion_tokens"].is_number_integer())
    return "no usage";
  if (u["total_tokens"] != u["prompt_tokens"].get<int64_t>() + u["completion_tokens"].get<int64_t>()) return "usage does not add up";
  if (u["completion_tokens"].get<int64_t>() > rq.max_tokens)
    return "completion_tokens " + u["completion_tokens"].dump() + " > max_tokens " + std::to_string(rq.max_tokens);
  // The server clips max_tokens to the room the context (256) leaves after the prompt.
  const int64_t limit = std::min<int64_t>(rq.max_tokens, kContext - u["prompt_tokens"].get<int64_t>());
  if (reason == "length" && u["completion_tokens"].get<int64_t>() != limit)
    return "finish_reason length after " + u["completion_tokens"].dump() + " tokens, want " + std::to_string(limit);
  return "";
}

struct Tally {
  std::mutex mu;
  std::map<std::string, std::map<std::string, int>> by_kind;  // kind -> status ("closed" etc.) -> count
  std::vector<std::string> failures;
  double slowest_s = 0;
  std::string slowest;

  void count(const std::string& kind, const std::string& outcome, double seconds, const std::string& what) {
    std::lock_guard lock(mu);
    ++by_kind[kind][outcome];
    if (seconds > slowest_s) {
      slowest_s = seconds;
      slowest = what;
    }
  }
  void fail(uint64_t index, const Request& r, const std::string& why) {
    std::lock_guard lock(mu);
    failures.push_back("request " + std::to_string(index) + ": " + why + "\n    " + describe(r));
  }
};

void check_one(int port, uint64_t index, const Request& rq, Tally& tally) {
  const bool head = !rq.raw && rq.method == "HEAD";
  const Exchange ex = exchange(port, wire_bytes(rq), rq.mode, rq.timeout_s, head);
  if (!ex.connected) {
    tally.fail(index, rq, "could not connect (is the server down?)");
    return;
  }
  if (rq.expect_no_answer) {
    tally.count(rq.kind, "sent", ex.seconds, "");
    return;
  }
  HttpResponse rs;
  const bool answered = parse_response(ex.data, head, rs) && rs.status != 0;
  const std::string short_desc = describe(rq).substr(0, 200);
  if (ex.timed_out && rq.may_wait) {
    tally.count(rq.kind, answered ? "waiting-" + std::to_string(rs.status) : "waiting", ex.seconds, "");
    if (answered && rs.status >= 500 && rs.status != 503)
      tally.fail(index, rq, "status " + std::to_string(rs.status) + ": " + printable(rs.body, 300));
    return;
  }
  if (ex.timed_out) {
    tally.count(rq.kind, "timeout", ex.seconds, short_desc);
    tally.fail(index, rq, "no complete answer within " + std::to_string(kClientTimeoutS) + " s (hang?); got " + printable(ex.data, 200));
    return;
  }
  tally.count(rq.kind, answered ? std::to_string(rs.status) : "closed", ex.seconds, short_desc);
  if (rq.raw) {
    // Garbage may be refused with any 4xx cpp-httplib uses (400, 413, 414, 415, 416, ...) or get
    // the connection closed; a 5xx other than 503 is a bug.
    if (answered && rs.status >= 500 && rs.status != 503)
      tally.fail(index, rq, "status " + std::to_string(rs.status) + ": " + printable(rs.body, 300));
    if (rq.expect_status && (!answered || rs.status != *rq.expect_status) && !(answered && rs.status == 429))
      tally.fail(index, rq, "want status " + std::to_string(*rq.expect_status) + ", got " +
                                (answered ? std::to_string(rs.status) + " " + printable(rs.body, 300) : "no answer"));
    return;
  }
  // A request line over cpp-httplib's 8192-byte limit is refused with 414 before any routing.
  const bool long_line = rq.method.size() + rq.target.size() + 10 > 8192;
  if (!answered) {
    // The server may close before reading a body it refuses unread (401, 413): the client then
    // sees a reset instead of the answer. Anything else must be answered.
    if (!(ex.send_failed || (rq.body.size() > 16384 && (!rq.authorised || rq.expect_status == 413))))
      tally.fail(index, rq, "no answer (connection closed); received " + printable(ex.data, 200));
    return;
  }
  if (!is_api_status(rs.status) && !(long_line && rs.status == 414))
    tally.fail(index, rq, "status " + std::to_string(rs.status) + " is not one the API uses: " + printable(rs.body, 300));
  if (rq.expect_status && rs.status != *rq.expect_status)
    tally.fail(index, rq, "want status " + std::to_string(*rq.expect_status) + ", got " + std::to_string(rs.status) + " " +
                              printable(rs.body, 300));
  if (rq.well_formed && rq.authorised && !rq.header_too_long && rs.status != 200 && rs.status != 429)
    tally.fail(index, rq, "a well-formed request got " + std::to_string(rs.status) + " " + printable(rs.body, 300));
  if (rs.status == 429 && rs.headers.count("retry-after") == 0) tally.fail(index, rq, "a 429 without Retry-After");
  if (rs.status == 401 && rs.headers.count("www-authenticate") == 0) tally.fail(index, rq, "a 401 without WWW-Authenticate");
  // A client that sent Accept-Encoding gets JSON compressed (cpp-httplib does it; never for
  // text/event-stream): its body is not checked here.
  const bool compressed = rs.headers.count("content-encoding") > 0;
  if (compressed) tally.count(rq.kind, "compressed", 0, "");
  if (rs.status >= 400 && rs.status < 500 && !head && !compressed && rq.target.rfind("/v1/", 0) == 0) {
    const std::string p = error_body_problem(rs.body);
    if (!p.empty()) tally.fail(index, rq, "status " + std::to_string(rs.status) + ": " + p);
  }
  if (rs.status == 200 && rq.well_formed && rq.authorised && !compressed) {
    const std::string p = success_problem(rq, rs);
    if (!p.empty()) tally.fail(index, rq, "200 but " + p);
  }
}

// ---------------------------------------------------------------------------------------------
// The server under test.

struct ServerUnderTest {
  ServerMetrics metrics;
  std::unique_ptr<Server> server;
  std::thread listener;
  std::promise<void> listen_returned;
  int port = 0;

  ServerUnderTest() {
    auto model = Model::load(SLM_SOURCE_DIR "/models/slm-brown-6m.gguf");
    BatchEngineOptions bo;
    bo.slots = 2;
    bo.queue = 4;
    bo.threads = 1;
    ServedModel sm;
    sm.name = kModelName;
    sm.chat = serve_chat_template(*model, "chatml", sm.chat_error);
    sm.engine = std::make_unique<BatchEngine>(kModelName, std::move(model), bo, &metrics);
    std::vector<ServedModel> models;
    models.push_back(std::move(sm));
    ServerOptions so;
    so.port = 0;
    so.api_key = kApiKey;
    so.max_body_bytes = kMaxBody;
    so.request_timeout_s = 4;  // below the client's 5 s: a slow generation ends as "time_limit", not a hang
    server = std::make_unique<Server>(so, std::move(models), metrics);
    port = server->bind();
    listener = std::thread([this] {
      server->listen();
      listen_returned.set_value();
    });
  }
  // Only when a test ends early: the normal path stops and joins with a watchdog.
  ~ServerUnderTest() {
    if (listener.joinable()) {
      server->stop(std::chrono::milliseconds(0));
      listener.join();
    }
  }
};

std::string post_json(int port, const std::string& path, const json& body, HttpResponse& rs) {
  const std::string b = body.dump();
  const std::string req = "POST " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " +
                          std::string(kApiKey) + "\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(b.size()) + "\r\n\r\n" + b;
  const Exchange ex = exchange(port, req, SendMode::kHold, 20);
  if (!parse_response(ex.data, false, rs)) return "no answer";
  return "";
}

int get_status(int port, const std::string& path, HttpResponse& rs) {
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " +
                          std::string(kApiKey) + "\r\n\r\n";
  const Exchange ex = exchange(port, req, SendMode::kHold, 10);
  if (!parse_response(ex.data, false, rs)) return 0;
  return rs.status;
}

// Greedy text of a fixed prompt: the same before and after the fuzz, or the fuzz corrupted state.
std::string greedy_text(int port) {
  HttpResponse rs;
  const json body = {{"model", kModelName}, {"prompt", "The jury said that the city"}, {"max_tokens", 8}, {"temperature", 0}};
  EXPECT_EQ(post_json(port, "/v1/completions", body, rs), "");
  EXPECT_EQ(rs.status, 200) << rs.body;
  const json j = json::parse(rs.body, nullptr, false);
  if (j.is_discarded() || !j.contains("choices")) {
    ADD_FAILURE() << "greedy completion: " << rs.body;
    return "";
  }
  EXPECT_GE(j["usage"]["completion_tokens"].get<int64_t>(), 1);
  EXPECT_LE(j["usage"]["completion_tokens"].get<int64_t>(), 8);
  return j["choices"][0]["text"].get<std::string>();
}

TEST(ServeFuzz, RandomAndMalformedRequestsNeverBreakTheServer) {
  const uint64_t n_requests = env_u64("SLM_SERVE_FUZZ_REQUESTS", 3000);
  const uint64_t seed = env_u64("SLM_SERVE_FUZZ_SEED", 20240521);
  const char* only = std::getenv("SLM_SERVE_FUZZ_ONLY");
  const auto t0 = SteadyClock::now();

  ServerUnderTest sut;
  const int port = sut.port;
  const std::string greedy_before = greedy_text(port);

  Tally tally;
  std::atomic<uint64_t> next{0};
  const auto client = [&] {
    for (;;) {
      const uint64_t i = next.fetch_add(1);
      if (only ? i > 0 : i >= n_requests) return;
      const uint64_t index = only ? std::strtoull(only, nullptr, 10) : i;
      check_one(port, index, make_request(seed, index), tally);
    }
  };
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) clients.emplace_back(client);
  for (std::thread& t : clients) t.join();
  const double fuzz_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();

  // What came back, per kind of request.
  std::string summary;
  for (const auto& [kind, outcomes] : tally.by_kind) {
    summary += "  " + kind + ":";
    for (const auto& [o, c] : outcomes) summary += " " + o + "x" + std::to_string(c);
    summary += "\n";
  }
  std::printf("serve fuzz: %llu requests in %.1f s (seed %llu); slowest %.2f s: %s\n%s",
              static_cast<unsigned long long>(only ? 1 : n_requests), fuzz_s, static_cast<unsigned long long>(seed),
              tally.slowest_s, printable(tally.slowest, 160).c_str(), summary.c_str());
  for (size_t i = 0; i < tally.failures.size() && i < 25; ++i) ADD_FAILURE() << tally.failures[i];
  EXPECT_EQ(tally.failures.size(), 0u) << "failures in all (first 25 shown)";

  // Afterwards: healthy, idle (no slot or queue entry leaked), same greedy text.
  HttpResponse health;
  EXPECT_EQ(get_status(port, "/health", health), 200) << health.body;
  bool idle = false;
  for (int tries = 0; tries < 100 && !idle; ++tries) {
    HttpResponse h;
    if (get_status(port, "/health", h) == 200) {
      const json j = json::parse(h.body, nullptr, false);
      idle = !j.is_discarded() && j["status"] == "ok" && j["models"][kModelName]["active"] == 0 &&
             j["models"][kModelName]["queued"] == 0;
    }
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(idle) << "the engine still has active or queued requests 10 s after the fuzz";
  HttpResponse metrics;
  EXPECT_EQ(get_status(port, "/metrics", metrics), 200);
  EXPECT_EQ(greedy_text(port), greedy_before);

  // stop() returns and listen() with it; a hang here would hang the test, so watch it.
  auto stopped = std::async(std::launch::async, [&] { sut.server->stop(std::chrono::milliseconds(2000)); });
  if (stopped.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    std::fprintf(stderr, "serve fuzz: Server::stop() did not return within 30 s\n");
    std::_Exit(3);
  }
  if (sut.listen_returned.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    std::fprintf(stderr, "serve fuzz: Server::listen() did not return within 10 s of stop()\n");
    std::_Exit(3);
  }
  sut.listener.join();
  std::printf("serve fuzz: whole test %.1f s\n", std::chrono::duration<double>(SteadyClock::now() - t0).count());
}

}  // namespace
}  // namespace slm
