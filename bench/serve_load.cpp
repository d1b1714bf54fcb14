// serve_load: closed-loop streaming load generator for an OpenAI-compatible chat server
// (`slm serve`, llama-server), measuring the columns of the "Serving" table of docs/ANCHORS.md.
//
// Each of --clients threads loops: POST /v1/chat/completions with "stream": true,
// "ignore_eos": true, "max_tokens": --max-tokens, reads the server-sent events to the end, and
// immediately sends the next request (closed loop: no think time). New requests start only
// inside the window [t0, t0 + --seconds); requests still in flight at the end are awaited.
// Each request opens its own connection (with TCP_NODELAY) unless --keep-alive is given.
//
// Definitions (all times are client-side, std::chrono::steady_clock, taken when the bytes of an
// event reach the receive callback):
//   content chunk      an SSE event whose choices[0].delta.content is a non-empty string.
//   request tokens     usage.completion_tokens of the final usage event (asked for with
//                      "stream_options": {"include_usage": true}); the number of content chunks
//                      when the server sends no usage.
//   error              transport failure (connect, read timeout, connection closed mid-stream),
//                      HTTP status other than 200, an "error" object or unparsable JSON in the
//                      stream, or a stream that ends without "data: [DONE]". Errored requests
//                      count only in the errors column.
//   total tok/s        tokens of successful requests that arrived inside the window / window
//                      length. A request that ends after the window contributes
//                      request tokens * (its content chunks inside the window / its content chunks).
//   per-stream tok/s   median over successful requests with >= 2 content chunks of
//                      (request tokens - 1) / (last content chunk - first content chunk).
//   TTFT               first content chunk - request start (request start = just before connect
//                      or send), over successful requests with >= 1 content chunk.
//   per-token latency  gaps between consecutive content chunks of a request, pooled over all
//                      successful requests.
//   p50 / p99          percentiles with linear interpolation between closest ranks
//                      (numpy's default): value at rank p * (n - 1) of the sorted sample.
//   peak RSS MiB       the larger of VmHWM of /proc/PID/status read after the run (the server's
//                      peak resident set since it started, model load included) and the largest
//                      VmRSS sampled every 50 ms during the run (VmHWM is updated lazily and can
//                      trail it by a few hundred kB; if the server died, only the samples remain).
//                      Both go to --json.
//
// Output: one markdown table row on stdout,
//   | model | clients | total tok/s | per-stream tok/s | TTFT p50/p99 ms | per-token p50/p99 ms | errors | peak RSS MiB |
// a summary on stderr, and with --json FILE one JSON object appended as a line to FILE.
//
// Build: Debian's libcpp-httplib is a compiled library built with OpenSSL, zlib and brotli, and
// its class layouts depend on those macros, so compile with its pkg-config flags:
//   g++ -std=c++20 -O2 bench/serve_load.cpp $(pkg-config --cflags --libs cpp-httplib) -pthread

#include <httplib.h>
#include <nlohmann/json.hpp>

#if !defined(CPPHTTPLIB_OPENSSL_SUPPORT)
#error "libcpp-httplib is built with OpenSSL: compile with $(pkg-config --cflags --libs cpp-httplib)"
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

struct Options {
  std::string url = "http://127.0.0.1:8080";
  std::string model;
  std::string label;  // the table's model column; defaults to model
  int clients = 1;
  double seconds = 20.0;
  int max_tokens = 64;
  double temperature = 0.0;
  std::string prompts_file;
  std::string api_key;
  long pid = 0;  // server process to watch for RSS; 0 = none
  std::string json_out;
  bool keep_alive = false;  // reuse each client's connection between requests
};

// About 40 words each: with a chat template around them, roughly 52 prompt tokens.
const std::vector<std::string> kBuiltinPrompts = {
    "Describe how a small village prepares for the first heavy snowfall of winter, including what "
    "the farmers, the baker and the children each do during the long cold week.",
    "Explain in simple words why the sky looks blue during the day and turns orange and red near "
    "sunset, as if you were talking to a curious ten year old child.",
    "Write a short story about an old lighthouse keeper who finds a mysterious letter washed up "
    "on the rocks one stormy evening and decides to answer it.",
    "List the main steps a careful cook follows to bake a loaf of bread at home, from mixing the "
    "flour and water to letting the finished loaf cool.",
    "Summarize the reasons why many cities are planting more trees along their streets, and what "
    "benefits the people living there can expect over the next twenty years.",
    "Tell me about a day in the life of a river otter, from waking up in its den to hunting for "
    "fish and playing with the other otters in the water.",
    "Give some practical advice to a student who is moving away from home for the first time and "
    "needs to learn how to manage money, cooking and a busy schedule.",
    "Describe the sounds, smells and colors of a busy market on a Saturday morning in a large "
    "town, where farmers sell fruit, cheese, bread and fresh flowers.",
    "Explain how a bicycle stays upright while it is moving, and why it is so much harder to "
    "balance on one when it is standing still or going very slowly.",
    "Write a friendly letter to a neighbor thanking them for looking after your garden and "
    "feeding your cat while you were away visiting family for two weeks.",
    "Imagine you are a sailor on a wooden ship two hundred years ago, and describe what you see, "
    "hear and feel during the first night of a long voyage across the ocean.",
    "Compare living in a quiet house in the countryside with living in a small apartment in the "
    "center of a big city, looking at both the good and the bad sides.",
    "Explain why people in many countries drink tea or coffee in the morning, and how these "
    "habits spread around the world over the last few hundred years.",
    "Describe a long walk through an autumn forest after the rain, with the wet leaves on the "
    "ground, the cool air and the birds calling high in the trees.",
    "Tell a short fable about a proud fox and a patient tortoise who both want to cross a wide "
    "river, and end it with a simple lesson that children can remember.",
    "Explain what a library offers to the people of a town besides books, such as quiet rooms, "
    "classes, newspapers and help from the librarians who work there.",
    "Write the opening of a mystery novel in which a detective arrives at a country house where "
    "a valuable painting disappeared during a dinner party the night before.",
    "Describe how bees collect nectar from flowers, make honey in the hive, and why farmers and "
    "gardeners care so much about keeping the bees healthy and safe.",
    "Give a short history of how people kept time before clocks were common, from watching the "
    "sun and stars to using candles, water and sand to measure hours.",
    "Describe the first morning of summer holidays from the point of view of a child who wakes "
    "up early, looks out of the window and plans the whole long day.",
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "serve_load: " << msg << "\n"
            << "usage: serve_load --model NAME [--url http://127.0.0.1:PORT] [--clients N]\n"
               "         [--seconds S] [--max-tokens N] [--temperature T] [--prompts FILE]\n"
               "         [--api-key KEY] [--pid PID] [--json OUT] [--label TEXT] [--keep-alive]\n";
  std::exit(2);
}

double parse_number(const std::string& name, const std::string& text) {
  try {
    size_t used = 0;
    double value = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    return value;
  } catch (const std::exception&) {
    usage_error(name + " expects a number, got '" + text + "'");
  }
}

long parse_integer(const std::string& name, const std::string& text, long min_value) {
  double value = parse_number(name, text);
  if (value != std::floor(value) || value < static_cast<double>(min_value))
    usage_error(name + " expects an integer >= " + std::to_string(min_value) + ", got '" + text + "'");
  return static_cast<long>(value);
}

Options parse_options(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") usage_error("help");
    if (arg == "--keep-alive") {
      opt.keep_alive = true;
      continue;
    }
    std::string value;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      value = argv[++i];
    }
    if (arg == "--url") opt.url = value;
    else if (arg == "--model") opt.model = value;
    else if (arg == "--label") opt.label = value;
    else if (arg == "--clients") opt.clients = static_cast<int>(parse_integer(arg, value, 1));
    else if (arg == "--seconds") opt.seconds = parse_number(arg, value);
    else if (arg == "--max-tokens") opt.max_tokens = static_cast<int>(parse_integer(arg, value, 1));
    else if (arg == "--temperature") opt.temperature = parse_number(arg, value);
    else if (arg == "--prompts") opt.prompts_file = value;
    else if (arg == "--api-key") opt.api_key = value;
    else if (arg == "--pid") opt.pid = parse_integer(arg, value, 0);
    else if (arg == "--json") opt.json_out = value;
    else usage_error("unknown option " + arg);
  }
  if (opt.model.empty()) usage_error("--model is required");
  if (!(opt.seconds > 0)) usage_error("--seconds must be > 0");
  if (opt.label.empty()) opt.label = opt.model;
  while (!opt.url.empty() && opt.url.back() == '/') opt.url.pop_back();
  return opt;
}

std::vector<std::string> load_prompts(const std::string& path) {
  if (path.empty()) return kBuiltinPrompts;
  std::ifstream in(path);
  if (!in) usage_error("cannot open prompts file " + path);
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) usage_error("prompts file " + path + " has no non-empty line");
  return prompts;
}

// What one request produced.
struct RequestRecord {
  Clock::time_point start;
  std::vector<Clock::time_point> content_times;  // arrival of each content chunk
  long usage_tokens = -1;                        // usage.completion_tokens; -1 = not sent
  std::string error;                             // empty = success

  double tokens() const {
    return usage_tokens >= 0 ? static_cast<double>(usage_tokens) : static_cast<double>(content_times.size());
  }
};

// Incremental parser of a "text/event-stream" body of OpenAI chat-completion chunks.
class SseStream {
 public:
  explicit SseStream(RequestRecord& record) : record_(record) {}

  // Consumes bytes as they arrive; `now` stamps every event completed by them.
  // Returns false to abort the transfer (the stream carried an error).
  bool feed(const char* data, size_t size, Clock::time_point now) {
    pending_.append(data, size);
    size_t line_start = 0;
    for (size_t nl; (nl = pending_.find('\n', line_start)) != std::string::npos; line_start = nl + 1) {
      size_t line_end = nl;
      if (line_end > line_start && pending_[line_end - 1] == '\r') --line_end;
      if (!handle_line(std::string_view(pending_).substr(line_start, line_end - line_start), now))
        return false;
    }
    pending_.erase(0, line_start);
    return true;
  }

  bool saw_done() const { return saw_done_; }

 private:
  bool handle_line(std::string_view line, Clock::time_point now) {
    // Blank lines end events; ":" lines are comments; "event:", "id:" carry nothing we use.
    if (line.rfind("data:", 0) != 0 || saw_done_) return true;
    std::string_view payload = line.substr(5);
    if (!payload.empty() && payload.front() == ' ') payload.remove_prefix(1);
    if (payload == "[DONE]") {
      saw_done_ = true;
      return true;
    }
    Json chunk = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (chunk.is_discarded()) return fail("unparsable JSON in stream: " + std::string(payload.substr(0, 120)));
    if (chunk.contains("error")) return fail("error event: " + chunk["error"].dump().substr(0, 200));
    if (auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
      if (auto ct = usage->find("completion_tokens"); ct != usage->end() && ct->is_number_integer())
        record_.usage_tokens = ct->get<long>();
    }
    if (auto choices = chunk.find("choices"); choices != chunk.end() && choices->is_array() && !choices->empty()) {
      const Json& choice = choices->front();
      if (auto delta = choice.find("delta"); delta != choice.end() && delta->is_object()) {
        if (auto content = delta->find("content"); content != delta->end() && content->is_string() &&
                                                   !content->get_ref<const std::string&>().empty())
          record_.content_times.push_back(now);
      }
    }
    return true;
  }

  bool fail(std::string message) {
    record_.error = std::move(message);
    return false;
  }

  RequestRecord& record_;
  std::string pending_;  // bytes after the last complete line
  bool saw_done_ = false;
};

std::string request_body(const Options& opt, const std::string& prompt) {
  Json body = {
      {"model", opt.model},
      {"messages", Json::array({{{"role", "user"}, {"content", prompt}}})},
      {"max_tokens", opt.max_tokens},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
      {"ignore_eos", true},
      {"temperature", opt.temperature},
  };
  return body.dump();
}

// One streamed chat completion on `client` (kept alive between calls of the same thread).
RequestRecord run_request(httplib::Client& client, const Options& opt, const std::string& body) {
  RequestRecord record;
  SseStream stream(record);
  int status = -1;
  std::string error_body;  // first bytes of a non-200 answer, for the message

  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  if (!opt.api_key.empty()) req.set_header("Authorization", "Bearer " + opt.api_key);
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    Clock::time_point now = Clock::now();
    if (status != 200) {
      if (error_body.size() < 300) error_body.append(data, std::min<size_t>(size, 300 - error_body.size()));
      return true;
    }
    return stream.feed(data, size, now);
  };

  record.start = Clock::now();
  httplib::Result result = client.send(req);
  if (!record.error.empty()) return record;  // the stream itself reported the error
  if (!result) {
    record.error = "transport: " + httplib::to_string(result.error());
  } else if (status != 200) {
    record.error = "HTTP " + std::to_string(status) + ": " + error_body;
  } else if (!stream.saw_done()) {
    record.error = "stream ended without data: [DONE]";
  }
  return record;
}

// Peak resident set of another process, sampled from /proc/PID/status.
class RssSampler {
 public:
  explicit RssSampler(long pid) : pid_(pid) {
    if (pid_ > 0) thread_ = std::thread([this] { loop(); });
  }
  ~RssSampler() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // Field of /proc/PID/status in kB ("VmRSS", "VmHWM"); nullopt when unreadable.
  static std::optional<long> read_kb(long pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(field + ":", 0) == 0) return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    }
    return std::nullopt;
  }

  long peak_kb() const { return peak_kb_; }

 private:
  void loop() {
    while (!stop_) {
      if (auto kb = read_kb(pid_, "VmRSS")) peak_kb_ = std::max<long>(peak_kb_, *kb);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  long pid_;
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_kb_{0};
  std::thread thread_;
};

// Value at rank p * (n - 1) of the sorted sample, interpolated; NaN for an empty sample.
double percentile(std::vector<double> values, double p) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  double rank = p * static_cast<double>(values.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (rank - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Results {
  long requests = 0, succeeded = 0, errors = 0;
  double tokens_in_window = 0, total_tok_s = 0, per_stream_tok_s = NAN;
  double ttft_p50 = NAN, ttft_p99 = NAN, token_p50 = NAN, token_p99 = NAN;
  long usage_missing = 0;  // successful requests without a usage event
};

Results summarize(const std::vector<RequestRecord>& records, Clock::time_point window_end, double seconds) {
  Results r;
  std::vector<double> ttft, gaps, stream_rates;
  for (const RequestRecord& rec : records) {
    ++r.requests;
    if (!rec.error.empty()) {
      ++r.errors;
      continue;
    }
    ++r.succeeded;
    if (rec.usage_tokens < 0) ++r.usage_missing;
    const auto& times = rec.content_times;
    if (times.empty()) continue;
    size_t inside = static_cast<size_t>(std::count_if(times.begin(), times.end(),
                                                      [&](Clock::time_point t) { return t <= window_end; }));
    r.tokens_in_window += rec.tokens() * static_cast<double>(inside) / static_cast<double>(times.size());
    ttft.push_back(ms(times.front() - rec.start));
    for (size_t i = 1; i < times.size(); ++i) gaps.push_back(ms(times[i] - times[i - 1]));
    double span_s = std::chrono::duration<double>(times.back() - times.front()).count();
    if (times.size() >= 2 && span_s > 0) stream_rates.push_back((rec.tokens() - 1) / span_s);
  }
  r.total_tok_s = r.tokens_in_window / seconds;
  r.per_stream_tok_s = percentile(stream_rates, 0.5);
  r.ttft_p50 = percentile(ttft, 0.5);
  r.ttft_p99 = percentile(ttft, 0.99);
  r.token_p50 = percentile(gaps, 0.5);
  r.token_p99 = percentile(gaps, 0.99);
  return r;
}

// About three significant figures: "141", "42.3", "6.70", "0.125".
std::string fmt(double v) {
  if (std::isnan(v)) return "-";
  if (v == 0) return "0";
  char buf[64];
  double a = std::fabs(v);
  int decimals = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

Json nan_to_null(double v) { return std::isnan(v) ? Json(nullptr) : Json(v); }

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_options(argc, argv);
  const std::vector<std::string> prompts = load_prompts(opt.prompts_file);

  std::mutex records_mutex;
  std::vector<RequestRecord> records;
  std::vector<std::string> first_errors;  // a few messages for stderr
  std::atomic<size_t> next_prompt{0};

  RssSampler rss(opt.pid);
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point window_end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.seconds));

  std::vector<std::thread> clients;
  for (int c = 0; c < opt.clients; ++c) {
    clients.emplace_back([&] {
      httplib::Client client(opt.url);
      // One connection per request by default: a server that closes a streamed connection
      // without saying so would make the next request on it fail (llama-server does this).
      client.set_keep_alive(opt.keep_alive);
      // Headers and body go out in two writes: without TCP_NODELAY, Nagle holds the body
      // until the server's delayed ACK (~40 ms) on a reused connection.
      client.set_tcp_nodelay(true);
      client.set_connection_timeout(std::chrono::seconds(10));
      client.set_read_timeout(std::chrono::seconds(120));
      client.set_write_timeout(std::chrono::seconds(120));
      while (Clock::now() < window_end) {
        const std::string& prompt = prompts[next_prompt.fetch_add(1) % prompts.size()];
        RequestRecord rec = run_request(client, opt, request_body(opt, prompt));
        bool failed = !rec.error.empty();
        {
          std::lock_guard lock(records_mutex);
          if (failed && first_errors.size() < 5) first_errors.push_back(rec.error);
          records.push_back(std::move(rec));
        }
        // A dead server refuses at once: do not spin on it.
        if (failed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const double drain_s = std::chrono::duration<double>(Clock::now() - window_end).count();
  rss.stop();

  const Results r = summarize(records, window_end, opt.seconds);
  std::optional<long> hwm_kb = opt.pid > 0 ? RssSampler::read_kb(opt.pid, "VmHWM") : std::nullopt;
  double sampled_mib = opt.pid > 0 && rss.peak_kb() > 0 ? rss.peak_kb() / 1024.0 : NAN;
  double hwm_mib = hwm_kb ? *hwm_kb / 1024.0 : NAN;
  // VmHWM is the true peak but the kernel updates it lazily, so it can trail a sampled VmRSS.
  double peak_mib = std::isnan(hwm_mib)       ? sampled_mib
                    : std::isnan(sampled_mib) ? hwm_mib
                                              : std::max(hwm_mib, sampled_mib);

  std::cout << "| " << opt.label << " | " << opt.clients << " | " << fmt(r.total_tok_s) << " | "
            << fmt(r.per_stream_tok_s) << " | " << fmt(r.ttft_p50) << "/" << fmt(r.ttft_p99) << " | "
            << fmt(r.token_p50) << "/" << fmt(r.token_p99) << " | " << r.errors << " | " << fmt(peak_mib)
            << " |" << std::endl;

  std::cerr << "serve_load: " << opt.label << ", " << opt.clients << " clients, " << opt.seconds
            << " s: " << r.requests << " requests, " << r.succeeded << " ok, " << r.errors << " errors, "
            << fmt(r.tokens_in_window) << " tokens in window, drain " << fmt(drain_s) << " s";
  if (r.usage_missing > 0) std::cerr << ", " << r.usage_missing << " without usage (chunks counted)";
  std::cerr << "\n";
  for (const std::string& e : first_errors) std::cerr << "serve_load: error: " << e << "\n";

  if (!opt.json_out.empty()) {
    Json line = {
        {"model", opt.model},
        {"label", opt.label},
        {"url", opt.url},
        {"clients", opt.clients},
        {"seconds", opt.seconds},
        {"max_tokens", opt.max_tokens},
        {"temperature", opt.temperature},
        {"keep_alive", opt.keep_alive},
        {"requests", r.requests},
        {"succeeded", r.succeeded},
        {"errors", r.errors},
        {"tokens_in_window", r.tokens_in_window},
        {"total_tok_s", r.total_tok_s},
        {"per_stream_tok_s", nan_to_null(r.per_stream_tok_s)},
        {"ttft_ms_p50", nan_to_null(r.ttft_p50)},
        {"ttft_ms_p99", nan_to_null(r.ttft_p99)},
        {"token_ms_p50", nan_to_null(r.token_p50)},
        {"token_ms_p99", nan_to_null(r.token_p99)},
        {"peak_rss_mib", nan_to_null(peak_mib)},
        {"vm_hwm_mib", nan_to_null(hwm_mib)},
        {"sampled_rss_peak_mib", nan_to_null(sampled_mib)},
        {"drain_s", drain_s},
    };
    std::ofstream out(opt.json_out, std::ios::app);
    if (!out) {
      std::cerr << "serve_load: cannot append to " << opt.json_out << "\n";
      return 1;
    }
    out << line.dump() << "\n";
  }
  return 0;
}
