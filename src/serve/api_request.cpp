#include "serve/api_request.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace slm {

using json = nlohmann::json;

ApiError::ApiError(int status_, std::string message_, std::string param_, std::string type_,
                   std::string code_)
    : status(status_),
      type(std::move(type_)),
      message(std::move(message_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

const char* ApiError::what() const noexcept { return message.c_str(); }

json api_error_body(const ApiError& e) {
  json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return {{"error", std::move(err)}};
}

namespace {

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
constexpr size_t kMaxStops = 4;
constexpr size_t kMaxMessages = 4096;
constexpr size_t kMaxEmbeddingInputs = 2048;

ApiError bad(const std::string& param, const std::string& message) {
  return ApiError(400, message, param);
}
ApiError type_error(const std::string& param, const std::string& expected) {
  return bad(param, "'" + param + "' must be " + expected);
}
// For features slm does not implement; `detail` says what is accepted instead.
ApiError unsupported(const std::string& param, const std::string& detail) {
  return bad(param, "'" + param + "' is not supported by this server" + detail);
}

// A bound as people write it: "2", "0.5", "-2".
std::string bound(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The value of `key` in `obj`, or nullptr when absent or null (null means absent).
const json* field(const json& obj, const std::string& key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// ---- one JSON value of a known type ------------------------------------------------------------

double number_at(const json& v, const std::string& param) {
  if (!v.is_number()) throw type_error(param, "a number");  // false for booleans
  return v.get<double>();
}

// A JSON integer in [lo, hi] (unsigned values beyond int64 are compared without wrapping).
int64_t integer_at(const json& v, const std::string& param, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) throw type_error(param, "an integer");
  const bool above = v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(hi)
                                            : v.get<int64_t>() > hi;
  const bool below = !v.is_number_unsigned() && v.get<int64_t>() < lo;
  if (above || below) {
    const std::string range = hi == kIntMax ? ">= " + std::to_string(lo)
                                            : "in [" + std::to_string(lo) + ", " +
                                                  std::to_string(hi) + "]";
    throw bad(param, "'" + param + "' must be " + range + ", got " + v.dump());
  }
  return v.get<int64_t>();
}

bool bool_at(const json& v, const std::string& param) {
  if (!v.is_boolean()) throw type_error(param, "a boolean");
  return v.get<bool>();
}

const std::string& string_at(const json& v, const std::string& param) {
  if (!v.is_string()) throw type_error(param, "a string");
  return v.get_ref<const std::string&>();
}

std::string nonempty_string_at(const json& v, const std::string& param) {
  const std::string& s = string_at(v, param);
  if (s.empty()) throw bad(param, "'" + param + "' must not be empty");
  return s;
}

const json& array_at(const json& v, const std::string& param) {
  if (!v.is_array()) throw type_error(param, "an array");
  return v;
}

// Token ids from an array of integers, each in [0, 2^31); empty arrays are refused.
std::vector<int32_t> token_ids_at(const json& arr, const std::string& param) {
  if (arr.empty()) throw bad(param, "'" + param + "' must not be an empty array");
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string p = param + "[" + std::to_string(i) + "]";
    if (!arr[i].is_number_integer()) throw type_error(p, "a token id (an integer)");
    ids.push_back(static_cast<int32_t>(integer_at(arr[i], p, 0, kIntMax)));
  }
  return ids;
}

// ---- optional top-level fields -----------------------------------------------------------------

// A number in [lo, hi], or (lo, hi] when lo_open.
std::optional<double> get_number(const json& obj, const std::string& key, double lo, double hi,
                                 bool lo_open = false) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  const double x = number_at(*v, key);
  const bool ok = (lo_open ? x > lo : x >= lo) && x <= hi;  // false for NaN
  if (!ok)
    throw bad(key, "'" + key + "' must be in " + (lo_open ? "(" : "[") + bound(lo) + ", " +
                       bound(hi) + "], got " + v->dump());
  return x;
}

std::optional<int64_t> get_integer(const json& obj, const std::string& key, int64_t lo,
                                   int64_t hi) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  return integer_at(*v, key, lo, hi);
}

std::optional<bool> get_bool(const json& obj, const std::string& key) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  return bool_at(*v, key);
}

std::optional<std::string> get_string(const json& obj, const std::string& key) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  return string_at(*v, key);
}

void require_object(const json& body) {
  if (!body.is_object()) throw bad("", "request body must be a JSON object");
}

std::string parse_model(const json& body) {
  const json* v = field(body, "model");
  if (!v) throw bad("model", "'model' is required");
  return nonempty_string_at(*v, "model");
}

// ---- fields slm does not implement: accepted only at their default -----------------------------

void refuse_unsupported(const json& body) {
  for (const char* key : {"n", "best_of"}) {
    const json* v = field(body, key);
    if (!v) continue;
    if (!v->is_number_integer()) throw type_error(key, "an integer");
    if (*v != 1) throw unsupported(key, " with a value other than 1, got " + v->dump());
  }
  if (get_bool(body, "echo").value_or(false)) throw unsupported("echo", "; only false");
  if (get_string(body, "suffix")) throw unsupported("suffix", "; only null");
  if (const json* v = field(body, "logit_bias")) {
    if (!v->is_object()) throw type_error("logit_bias", "an object");
    if (!v->empty()) throw unsupported("logit_bias", "; only an empty object");
  }
  for (const char* key : {"tools", "functions"}) {
    if (const json* v = field(body, key); v && !array_at(*v, key).empty())
      throw unsupported(key, " (no tool calling); only an empty array");
  }
  for (const char* key : {"tool_choice", "function_call"}) {
    const json* v = field(body, key);
    if (!v) continue;
    if (!v->is_string() && !v->is_object()) throw type_error(key, "a string or an object");
    if (*v != "none") throw unsupported(key, " (no tool calling); only \"none\"");
  }
  if (const json* v = field(body, "response_format")) {
    if (!v->is_object()) throw type_error("response_format", "an object");
    const json* t = field(*v, "type");
    if (!t) throw bad("response_format.type", "'response_format.type' is required");
    const std::string& type = string_at(*t, "response_format.type");
    if (type != "text")
      throw unsupported("response_format", " with type '" + type + "'; only 'text'");
  }
}

// ---- prompt and messages -----------------------------------------------------------------------

void parse_prompt(const json& body, CompletionRequest& r) {
  const json* v = field(body, "prompt");
  if (!v) throw bad("prompt", "'prompt' is required");
  if (v->is_string()) {
    r.prompt = v->get<std::string>();
    return;
  }
  const json& arr = array_at(*v, "prompt");
  if (arr.empty()) throw bad("prompt", "'prompt' must not be an empty array");
  if (arr[0].is_number_integer()) {
    r.prompt_tokens = token_ids_at(arr, "prompt");
  } else if (arr.size() > 1 && (arr[0].is_string() || arr[0].is_array())) {
    throw bad("prompt", "batched prompts (an array of " + std::to_string(arr.size()) +
                            " prompts) are not supported; send one prompt per request");
  } else if (arr[0].is_string()) {
    r.prompt = arr[0].get<std::string>();
    return;
  } else if (arr[0].is_array()) {
    r.prompt_tokens = token_ids_at(arr[0], "prompt[0]");
  } else {
    throw type_error("prompt", "a string, an array of token ids, or an array holding one of them");
  }
  r.prompt_is_tokens = true;
}

// A message's content: a string, or text parts concatenated.
std::string parse_content(const json& msg, const std::string& param) {
  const json* v = field(msg, "content");
  if (!v) throw bad(param, "'" + param + "' is required");
  if (v->is_string()) return v->get<std::string>();
  if (!v->is_array()) throw type_error(param, "a string or an array of content parts");
  if (v->empty()) throw bad(param, "'" + param + "' must not be an empty array");
  std::string text;
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string p = param + "[" + std::to_string(i) + "]";
    const json& part = (*v)[i];
    if (!part.is_object()) throw type_error(p, "an object");
    const json* type = field(part, "type");
    if (!type) throw bad(p + ".type", "'" + p + ".type' is required");
    const std::string& t = string_at(*type, p + ".type");
    if (t != "text")
      throw bad(p + ".type",
                "content parts of type '" + t + "' are not supported by this server; only 'text'");
    const json* part_text = field(part, "text");
    if (!part_text) throw bad(p + ".text", "'" + p + ".text' is required");
    text += string_at(*part_text, p + ".text");
  }
  return text;
}

ChatMessage parse_message(const json& msg, const std::string& param) {
  if (!msg.is_object()) throw type_error(param, "an object");
  const json* role = field(msg, "role");
  if (!role) throw bad(param + ".role", "'" + param + ".role' is required");
  std::string r = string_at(*role, param + ".role");
  if (r == "tool" || r == "function")
    throw bad(param + ".role",
              "messages with role '" + r + "' are not supported by this server (no tool calling)");
  if (r == "developer") r = "system";
  if (r != "system" && r != "user" && r != "assistant")
    throw bad(param + ".role", "'" + param + ".role' must be one of 'system', 'developer', " +
                                   "'user', 'assistant', got " + role->dump());
  if (const json* calls = field(msg, "tool_calls");
      calls && !array_at(*calls, param + ".tool_calls").empty())
    throw unsupported(param + ".tool_calls", " (no tool calling)");
  if (field(msg, "function_call"))
    throw unsupported(param + ".function_call", " (no tool calling)");
  return {r, parse_content(msg, param + ".content")};
}

void parse_messages(const json& body, CompletionRequest& r) {
  const json* v = field(body, "messages");
  if (!v) throw bad("messages", "'messages' is required");
  const json& arr = array_at(*v, "messages");
  if (arr.empty()) throw bad("messages", "'messages' must hold at least one message");
  if (arr.size() > kMaxMessages)
    throw bad("messages", "'messages' may hold at most " + std::to_string(kMaxMessages) +
                              " messages, got " + std::to_string(arr.size()));
  r.messages.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i)
    r.messages.push_back(parse_message(arr[i], "messages[" + std::to_string(i) + "]"));
}

// ---- generation options ------------------------------------------------------------------------

void parse_sampler(const json& body, CompletionRequest& r) {
  SamplerParams& s = r.sampler;
  if (auto x = get_number(body, "temperature", 0, 2)) s.temperature = static_cast<float>(*x);
  if (auto x = get_number(body, "top_p", 0, 1, /*lo_open=*/true)) s.top_p = static_cast<float>(*x);
  if (auto x = get_integer(body, "top_k", 0, kIntMax)) s.top_k = static_cast<int>(*x);
  if (auto x = get_number(body, "min_p", 0, 1)) s.min_p = static_cast<float>(*x);
  if (const json* v = field(body, "repeat_penalty")) {
    const double x = number_at(*v, "repeat_penalty");
    if (!(x > 0 && std::isfinite(x)))
      throw bad("repeat_penalty", "'repeat_penalty' must be > 0, got " + v->dump());
    s.repeat_penalty = static_cast<float>(x);
  }
  if (auto x = get_number(body, "frequency_penalty", -2, 2))
    s.frequency_penalty = static_cast<float>(*x);
  if (auto x = get_number(body, "presence_penalty", -2, 2))
    s.presence_penalty = static_cast<float>(*x);
  if (const json* v = field(body, "seed")) {
    if (!v->is_number_integer()) throw type_error("seed", "an integer");
    s.seed = v->is_number_unsigned() ? v->get<uint64_t>()
                                     : static_cast<uint64_t>(v->get<int64_t>());
    r.seed_given = true;
  }
}

void parse_max_tokens(const json& body, CompletionRequest& r) {
  if (auto n = get_integer(body, "max_tokens", 1, kIntMax)) r.max_tokens = static_cast<int>(*n);
  if (!r.chat) return;
  if (auto n = get_integer(body, "max_completion_tokens", 1, kIntMax))
    r.max_tokens = static_cast<int>(*n);
}

void parse_stop(const json& body, CompletionRequest& r) {
  const json* v = field(body, "stop");
  if (!v) return;
  if (v->is_string()) {
    r.stop.push_back(nonempty_string_at(*v, "stop"));
    return;
  }
  if (!v->is_array()) throw type_error("stop", "a string or an array of strings");
  if (v->size() > kMaxStops)
    throw bad("stop", "'stop' may hold at most " + std::to_string(kMaxStops) + " strings, got " +
                          std::to_string(v->size()));
  for (size_t i = 0; i < v->size(); ++i)
    r.stop.push_back(nonempty_string_at((*v)[i], "stop[" + std::to_string(i) + "]"));
}

void parse_stream(const json& body, CompletionRequest& r) {
  r.stream = get_bool(body, "stream").value_or(false);
  const json* opts = field(body, "stream_options");
  if (!opts) return;
  if (!opts->is_object()) throw type_error("stream_options", "an object");
  if (!r.stream)
    throw bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
  if (const json* u = field(*opts, "include_usage"))
    r.include_usage = bool_at(*u, "stream_options.include_usage");
}

void parse_logprobs(const json& body, CompletionRequest& r) {
  if (!r.chat) {
    if (auto n = get_integer(body, "logprobs", 0, 5)) {
      r.logprobs = true;
      r.top_logprobs = static_cast<int>(*n);
    }
    return;
  }
  r.logprobs = get_bool(body, "logprobs").value_or(false);
  if (auto n = get_integer(body, "top_logprobs", 0, 20)) {
    if (!r.logprobs)
      throw bad("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
    r.top_logprobs = static_cast<int>(*n);
  }
}

// ---- embedding input ---------------------------------------------------------------------------

void parse_embedding_input(const json& body, EmbeddingRequest& r) {
  const json* v = field(body, "input");
  if (!v) throw bad("input", "'input' is required");
  if (v->is_string()) {
    r.texts.push_back(nonempty_string_at(*v, "input"));
    return;
  }
  const json& arr = array_at(*v, "input");
  if (arr.empty()) throw bad("input", "'input' must not be an empty array");
  if (arr[0].is_number_integer()) {  // one input given as token ids
    r.token_inputs.push_back(token_ids_at(arr, "input"));
    return;
  }
  if (arr.size() > kMaxEmbeddingInputs)
    throw bad("input", "'input' may hold at most " + std::to_string(kMaxEmbeddingInputs) +
                           " inputs, got " + std::to_string(arr.size()));
  const bool tokens = arr[0].is_array();
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string p = "input[" + std::to_string(i) + "]";
    if (tokens) {
      r.token_inputs.push_back(token_ids_at(array_at(arr[i], p), p));
    } else {
      if (!arr[i].is_string() && i == 0)
        throw type_error("input", "a string, an array of strings, or token ids");
      r.texts.push_back(nonempty_string_at(arr[i], p));
    }
  }
}

}  // namespace

CompletionRequest parse_completion_request(const json& body, bool chat) {
  require_object(body);
  CompletionRequest r;
  r.chat = chat;
  r.model = parse_model(body);
  if (chat)
    parse_messages(body, r);
  else
    parse_prompt(body, r);
  parse_max_tokens(body, r);
  parse_sampler(body, r);
  parse_stop(body, r);
  parse_stream(body, r);
  parse_logprobs(body, r);
  r.ignore_eos = get_bool(body, "ignore_eos").value_or(false);
  r.user = get_string(body, "user").value_or("");
  refuse_unsupported(body);
  return r;
}

EmbeddingRequest parse_embedding_request(const json& body) {
  require_object(body);
  EmbeddingRequest r;
  r.model = parse_model(body);
  parse_embedding_input(body, r);
  if (auto f = get_string(body, "encoding_format")) {
    if (*f != "float" && *f != "base64")
      throw bad("encoding_format",
                "'encoding_format' must be 'float' or 'base64', got '" + *f + "'");
    r.base64 = *f == "base64";
  }
  if (auto d = get_integer(body, "dimensions", 1, kIntMax)) r.dimensions = static_cast<int>(*d);
  get_string(body, "user");  // only its type is checked; embeddings do not use it
  return r;
}

}  // namespace slm
