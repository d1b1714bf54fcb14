#include "train/train_config.h"

#include <charconv>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <toml++/toml.h>

#include "core/error.h"
#include "io/atomic_file.h"

namespace slm {
namespace {

using Setter = std::function<void(TrainConfig&, const std::string&)>;

int64_t parse_int(const std::string& key, const std::string& v) {
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size())
    throw Error("config key '" + key + "': expected an integer, got '" + v + "'");
  return out;
}

double parse_float(const std::string& key, const std::string& v) {
  try {
    size_t used = 0;
    const double out = std::stod(v, &used);
    if (used == v.size()) return out;
  } catch (const std::exception&) {
  }
  throw Error("config key '" + key + "': expected a number, got '" + v + "'");
}

bool parse_bool(const std::string& key, const std::string& v) {
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  throw Error("config key '" + key + "': expected true or false, got '" + v + "'");
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = [] {
    std::map<std::string, Setter> m;
#define SLM_STR(f) m[#f] = [](TrainConfig& c, const std::string& v) { c.f = v; };
#define SLM_INT(f) m[#f] = [](TrainConfig& c, const std::string& v) { c.f = parse_int(#f, v); };
#define SLM_FLT(f) m[#f] = [](TrainConfig& c, const std::string& v) { c.f = static_cast<float>(parse_float(#f, v)); };
#define SLM_BOOL(f) m[#f] = [](TrainConfig& c, const std::string& v) { c.f = parse_bool(#f, v); };
    SLM_STR(data) SLM_BOOL(random_data) SLM_STR(out_dir)
    SLM_INT(dim) SLM_INT(n_layers) SLM_INT(n_heads) SLM_INT(n_kv_heads) SLM_INT(ffn_dim)
    SLM_INT(vocab_size) SLM_INT(seq_len) SLM_BOOL(tie_embeddings) SLM_FLT(rope_base)
    SLM_FLT(norm_eps) SLM_FLT(init_std) SLM_STR(init_from)
    SLM_STR(teacher) SLM_FLT(distill_weight) SLM_FLT(distill_temperature)
    SLM_INT(batch_size) SLM_INT(grad_accum) SLM_INT(steps) SLM_FLT(lr) SLM_FLT(min_lr)
    SLM_INT(warmup_steps) SLM_FLT(decay_fraction) SLM_FLT(wsdc_constant_fraction)
    SLM_FLT(weight_decay) SLM_BOOL(decay_embeddings) SLM_FLT(beta1) SLM_FLT(beta2)
    SLM_FLT(adam_eps) SLM_FLT(grad_clip) SLM_INT(eval_every) SLM_INT(eval_batches)
    SLM_INT(checkpoint_every)
#undef SLM_STR
#undef SLM_INT
#undef SLM_FLT
#undef SLM_BOOL
    m["seed"] = [](TrainConfig& c, const std::string& v) { c.seed = static_cast<uint64_t>(parse_int("seed", v)); };
    m["threads"] = [](TrainConfig& c, const std::string& v) { c.threads = static_cast<int>(parse_int("threads", v)); };
    m["schedule"] = [](TrainConfig& c, const std::string& v) {
      if (v == "cosine") c.schedule = LrSchedule::Cosine;
      else if (v == "wsd") c.schedule = LrSchedule::Wsd;
      else if (v == "wsdc") c.schedule = LrSchedule::Wsdc;
      else if (v == "constant") c.schedule = LrSchedule::Constant;
      else throw Error("config key 'schedule': expected cosine, wsd, wsdc or constant, got '" + v + "'");
    };
    return m;
  }();
  return table;
}

std::string json_scalar_text(const std::string& key, const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    std::ostringstream s;
    s.precision(9);
    s << v.get<double>();
    return s.str();
  }
  throw Error("config key '" + key + "': expected a string, number or boolean");
}

}  // namespace

const char* lr_schedule_name(LrSchedule s) {
  switch (s) {
    case LrSchedule::Cosine: return "cosine";
    case LrSchedule::Wsd: return "wsd";
    case LrSchedule::Wsdc: return "wsdc";
    case LrSchedule::Constant: return "constant";
  }
  return "?";
}

TrainConfig TrainConfig::from_json(const std::string& text) {
  TrainConfig c;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error("the top level must be an object");
  for (const auto& [k, v] : j.items()) c.set(k, json_scalar_text(k, v));
  return c;
}

void TrainConfig::set(const std::string& key, const std::string& value) {
  auto it = setters().find(key);
  if (it == setters().end()) {
    std::string known;
    for (const auto& [k, _] : setters()) known += (known.empty() ? "" : ", ") + k;
    throw Error("unknown config key '" + key + "' (known keys: " + known + ")");
  }
  it->second(*this, value);
}

TrainConfig TrainConfig::load(const std::string& path) {
  TrainConfig c;
  const std::string text = read_file(path);
  const bool is_json = path.size() >= 5 && path.substr(path.size() - 5) == ".json";
  const bool is_toml = path.size() >= 5 && path.substr(path.size() - 5) == ".toml";
  if (!is_json && !is_toml) throw Error(path + ": config files must end in .toml or .json");
  try {
    if (is_json) {
      c = from_json(text);
    } else {
      const toml::table t = toml::parse(text, path);
      for (const auto& [k, node] : t) {
        const std::string key(k.str());
        std::string v;
        if (auto s = node.value<std::string>(); s && node.is_string()) v = *s;
        else if (node.is_boolean()) v = *node.value<bool>() ? "true" : "false";
        else if (node.is_integer()) v = std::to_string(*node.value<int64_t>());
        else if (node.is_floating_point()) {
          std::ostringstream s;
          s.precision(9);
          s << *node.value<double>();
          v = s.str();
        } else throw Error("config key '" + key + "': expected a string, number or boolean");
        c.set(key, v);
      }
    }
  } catch (const toml::parse_error& e) {
    std::ostringstream s;
    s << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    throw Error(s.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return c;
}

void TrainConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error("invalid training config: " + what);
  };
  need(random_data || !data.empty(), "'data' (a directory from `slm data prepare`) is required unless random_data");
  need(!random_data || vocab_size > 0, "random_data needs vocab_size > 0");
  need(dim > 0 && n_layers > 0 && n_heads > 0, "dim, n_layers and n_heads must be positive");
  need(dim % n_heads == 0, "dim (" + std::to_string(dim) + ") must be a multiple of n_heads (" + std::to_string(n_heads) + ")");
  need((dim / n_heads) % 2 == 0, "the head size dim / n_heads must be even (RoPE rotates pairs)");
  const int64_t kv = n_kv_heads == 0 ? n_heads : n_kv_heads;
  need(kv > 0 && n_heads % kv == 0, "n_heads must be a multiple of n_kv_heads");
  need(ffn_dim >= 0 && vocab_size >= 0, "ffn_dim and vocab_size must not be negative");
  need(seq_len >= 2 && seq_len <= 65536, "seq_len must be in [2, 65536]");
  need(batch_size >= 1 && grad_accum >= 1 && steps >= 1, "batch_size, grad_accum and steps must be >= 1");
  need(lr > 0 && min_lr >= 0 && min_lr <= lr, "need 0 <= min_lr <= lr and lr > 0");
  need(warmup_steps >= 0 && warmup_steps <= steps, "warmup_steps must be in [0, steps]");
  need(decay_fraction > 0 && decay_fraction <= 1, "decay_fraction must be in (0, 1]");
  need(wsdc_constant_fraction >= 0 && wsdc_constant_fraction + decay_fraction <= 1,
       "wsdc_constant_fraction must be >= 0 and decay_fraction + wsdc_constant_fraction <= 1");
  need(weight_decay >= 0 && beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && adam_eps > 0,
       "need weight_decay >= 0, 0 <= beta1, beta2 < 1, adam_eps > 0");
  need(grad_clip >= 0, "grad_clip must be >= 0 (0 = off)");
  need(eval_every >= 0 && eval_batches >= 1 && checkpoint_every >= 0, "eval_every, checkpoint_every >= 0, eval_batches >= 1");
  need(init_std > 0, "init_std must be positive");
  need(distill_weight >= 0 && distill_weight <= 1, "distill_weight must be in [0, 1]");
  need(distill_temperature > 0 && distill_temperature <= 100, "distill_temperature must be in (0, 100]");
  need(teacher.empty() || !random_data, "a teacher needs real data (its tokenizer must be the data's)");
  need(threads >= 0 && threads <= 1024, "threads must be in [0, 1024]");
}

std::string TrainConfig::to_json() const {
  nlohmann::json j;
  j["data"] = data; j["random_data"] = random_data; j["out_dir"] = out_dir;
  j["dim"] = dim; j["n_layers"] = n_layers; j["n_heads"] = n_heads; j["n_kv_heads"] = n_kv_heads;
  j["ffn_dim"] = ffn_dim; j["vocab_size"] = vocab_size; j["seq_len"] = seq_len;
  j["tie_embeddings"] = tie_embeddings; j["rope_base"] = rope_base; j["norm_eps"] = norm_eps;
  j["init_std"] = init_std; j["init_from"] = init_from;
  j["teacher"] = teacher; j["distill_weight"] = distill_weight; j["distill_temperature"] = distill_temperature;
  j["batch_size"] = batch_size; j["grad_accum"] = grad_accum;
  j["steps"] = steps; j["lr"] = lr; j["min_lr"] = min_lr; j["warmup_steps"] = warmup_steps;
  j["schedule"] = lr_schedule_name(schedule); j["decay_fraction"] = decay_fraction;
  j["wsdc_constant_fraction"] = wsdc_constant_fraction; j["weight_decay"] = weight_decay;
  j["decay_embeddings"] = decay_embeddings; j["beta1"] = beta1; j["beta2"] = beta2;
  j["adam_eps"] = adam_eps; j["grad_clip"] = grad_clip; j["eval_every"] = eval_every;
  j["eval_batches"] = eval_batches; j["checkpoint_every"] = checkpoint_every; j["seed"] = seed;
  j["threads"] = threads;
  return j.dump();
}

}  // namespace slm
