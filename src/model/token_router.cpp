#include "model/token_router.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"

namespace slm {
namespace {

constexpr const char* kArch = "slm-router";
constexpr const char* kActivation = "tanh";

// The layout string stored in the file: a router is only usable with features computed the way
// this code computes them, so load compares it literally.
std::string feature_layout(int64_t dim, int top_k) {
  return "small_hidden[" + std::to_string(dim) + "],top_probs[" + std::to_string(top_k) +
         "],entropy,margin";
}

std::vector<uint8_t> f32_bytes(const float* p, size_t n) {
  std::vector<uint8_t> b(n * sizeof(float));
  if (n) std::memcpy(b.data(), p, b.size());
  return b;
}

}  // namespace

int64_t router_feature_count(int64_t dim, int top_k) { return dim + top_k + 2; }

void router_features(std::span<const float> logits, std::span<const float> hidden, int top_k,
                     std::span<float> out) {
  const int64_t dim = static_cast<int64_t>(hidden.size());
  if (top_k < 1) throw Error("router features: top_k must be >= 1, got " + std::to_string(top_k));
  if (logits.empty()) throw Error("router features: the logits row is empty");
  if (static_cast<int64_t>(out.size()) != router_feature_count(dim, top_k))
    throw Error("router features: output has " + std::to_string(out.size()) + " values, expected " +
                std::to_string(router_feature_count(dim, top_k)));
  std::copy(hidden.begin(), hidden.end(), out.begin());

  // Softmax in double with the max subtracted; the entropy is log Z - sum p z (z = logit - max),
  // which needs no log of tiny probabilities.
  float mx = logits[0];
  for (float v : logits) mx = std::max(mx, v);
  double z = 0.0, pz = 0.0;
  for (float v : logits) {
    const double d = static_cast<double>(v) - mx;
    const double e = std::exp(d);
    z += e;
    pz += e * d;
  }
  const double entropy = std::log(z) - pz / z;

  // The k largest logits (partial sort of a copy: O(V log k)); probabilities follow their order.
  const size_t k = std::min<size_t>(static_cast<size_t>(top_k), logits.size());
  std::vector<float> top(logits.begin(), logits.end());
  std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(k), top.end(), std::greater<float>());
  float* probs = out.data() + dim;
  for (int i = 0; i < top_k; ++i)
    probs[i] = static_cast<size_t>(i) < k ? static_cast<float>(std::exp(static_cast<double>(top[i]) - mx) / z) : 0.0f;
  out[dim + top_k] = static_cast<float>(std::max(0.0, entropy));
  out[dim + top_k + 1] = probs[0] - (top_k > 1 ? probs[1] : 0.0f);
}

std::vector<float> router_features(std::span<const float> logits, std::span<const float> hidden,
                                   int top_k) {
  std::vector<float> out(static_cast<size_t>(router_feature_count(static_cast<int64_t>(hidden.size()), top_k)));
  router_features(logits, hidden, top_k, out);
  return out;
}

TokenRouter::TokenRouter(TokenRouterConfig config) : config_(std::move(config)) {
  if (config_.model_dim < 1) throw Error("token router: model dim must be >= 1");
  if (config_.model_vocab < 1) throw Error("token router: model vocabulary size must be >= 1");
  if (config_.top_k < 1) throw Error("token router: top_k must be >= 1, got " + std::to_string(config_.top_k));
  if (config_.hidden < 0) throw Error("token router: hidden size must be >= 0, got " + std::to_string(config_.hidden));
  n_features_ = router_feature_count(config_.model_dim, config_.top_k);
  const int64_t H = config_.hidden;
  params_.assign(static_cast<size_t>(H > 0 ? H * n_features_ + H + H + 1 : n_features_ + 1), 0.0f);
  mean_.assign(static_cast<size_t>(n_features_), 0.0f);
  std_.assign(static_cast<size_t>(n_features_), 1.0f);
}

void TokenRouter::standardize(std::span<const float> x, std::span<float> out) const {
  if (static_cast<int64_t>(x.size()) != n_features_ || out.size() != x.size())
    throw Error("token router: expected " + std::to_string(n_features_) + " features, got " +
                std::to_string(x.size()));
  for (size_t i = 0; i < x.size(); ++i) out[i] = (x[i] - mean_[i]) / std_[i];
}

float TokenRouter::logit_standardized(std::span<const float> params, std::span<const float> x,
                                      std::span<float> hidden_act) const {
  const int64_t F = n_features_, H = config_.hidden;
  const float* p = params.data();
  if (H == 0) {
    double s = p[b2_offset()];
    for (int64_t i = 0; i < F; ++i) s += static_cast<double>(p[w2_offset() + i]) * x[i];
    return static_cast<float>(s);
  }
  double s = p[b2_offset()];
  for (int64_t h = 0; h < H; ++h) {
    const float* row = p + w1_offset() + h * F;
    double a = p[b1_offset() + h];
    for (int64_t i = 0; i < F; ++i) a += static_cast<double>(row[i]) * x[i];
    const float act = std::tanh(static_cast<float>(a));
    if (!hidden_act.empty()) hidden_act[h] = act;
    s += static_cast<double>(p[w2_offset() + h]) * act;
  }
  return static_cast<float>(s);
}

float TokenRouter::probability(std::span<const float> features) const {
  std::vector<float> x(static_cast<size_t>(n_features_));
  standardize(features, x);
  const float s = logit_standardized(params_, x);
  return 1.0f / (1.0f + std::exp(-s));
}

float TokenRouter::probability(std::span<const float> logits, std::span<const float> hidden) const {
  if (static_cast<int64_t>(logits.size()) != config_.model_vocab || static_cast<int64_t>(hidden.size()) != config_.model_dim)
    throw Error("token router: trained for a small model with dim " + std::to_string(config_.model_dim) +
                " and " + std::to_string(config_.model_vocab) + " tokens, given a hidden state of " +
                std::to_string(hidden.size()) + " and " + std::to_string(logits.size()) + " logits");
  return probability(router_features(logits, hidden, config_.top_k));
}

void TokenRouter::check_model(int64_t dim, int64_t vocab, const std::string& model_name) const {
  if (dim != config_.model_dim || vocab != config_.model_vocab)
    throw Error("token router was trained for a small model with dim " + std::to_string(config_.model_dim) +
                " and " + std::to_string(config_.model_vocab) + " tokens, but " + model_name + " has dim " +
                std::to_string(dim) + " and " + std::to_string(vocab) +
                " tokens: train a router for this model (slm collab router train)");
}

void TokenRouter::save(const std::string& path) const {
  const int64_t F = n_features_, H = config_.hidden;
  GgufWriter w;
  w.set_string("general.architecture", kArch);
  w.set_string("general.name", "slm token router");
  w.set_u32("slm.router.version", kRouterFormatVersion);
  w.set_string("slm.router.features", feature_layout(config_.model_dim, config_.top_k));
  w.set_u32("slm.router.n_features", static_cast<uint32_t>(F));
  w.set_u32("slm.router.top_k", static_cast<uint32_t>(config_.top_k));
  w.set_u32("slm.router.hidden", static_cast<uint32_t>(H));
  w.set_string("slm.router.activation", kActivation);
  w.set_u32("slm.router.model_dim", static_cast<uint32_t>(config_.model_dim));
  w.set_u32("slm.router.model_vocab", static_cast<uint32_t>(config_.model_vocab));
  w.set_string("slm.router.label.rule", config_.labels.rule);
  w.set_u32("slm.router.label.tokens", static_cast<uint32_t>(config_.labels.tokens_per_prompt));
  w.set_u32("slm.router.label.horizon", static_cast<uint32_t>(config_.labels.horizon));
  w.set_string("slm.router.small_model", config_.labels.small_model);
  w.set_string("slm.router.large_model", config_.labels.large_model);

  w.add_tensor("router.feature_mean", DType::F32, {F}, f32_bytes(mean_.data(), mean_.size()));
  w.add_tensor("router.feature_std", DType::F32, {F}, f32_bytes(std_.data(), std_.size()));
  const float* p = params_.data();
  if (H > 0) {
    w.add_tensor("router.fc1.weight", DType::F32, {F, H}, f32_bytes(p + w1_offset(), static_cast<size_t>(H * F)));
    w.add_tensor("router.fc1.bias", DType::F32, {H}, f32_bytes(p + b1_offset(), static_cast<size_t>(H)));
  }
  const int64_t in = H > 0 ? H : F;
  w.add_tensor("router.out.weight", DType::F32, {in, 1}, f32_bytes(p + w2_offset(), static_cast<size_t>(in)));
  w.add_tensor("router.out.bias", DType::F32, {1}, f32_bytes(p + b2_offset(), 1));
  w.write(path);
}

TokenRouter TokenRouter::load(const std::string& path) {
  auto g = GgufFile::open(path);
  const std::string where = path + ": ";
  const std::string arch = g->get_string("general.architecture", "");
  if (arch != kArch)
    throw Error(where + "not a token router (general.architecture is '" + arch + "', expected '" + kArch + "')");
  const int64_t version = g->get_int("slm.router.version");
  if (version != kRouterFormatVersion)
    throw Error(where + "slm.router.version is " + std::to_string(version) + ", this build reads version " +
                std::to_string(kRouterFormatVersion));
  auto positive = [&](const char* key, int64_t lo, int64_t hi) {
    const int64_t v = g->get_int(key);
    if (v < lo || v > hi)
      throw Error(where + key + " is " + std::to_string(v) + ", expected " + std::to_string(lo) + ".." +
                  std::to_string(hi));
    return v;
  };
  TokenRouterConfig c;
  c.model_dim = positive("slm.router.model_dim", 1, 1 << 20);
  c.model_vocab = positive("slm.router.model_vocab", 1, 1 << 24);
  c.top_k = static_cast<int>(positive("slm.router.top_k", 1, 1024));
  c.hidden = static_cast<int>(positive("slm.router.hidden", 0, 1 << 16));
  const std::string act = g->get_string("slm.router.activation");
  if (act != kActivation) throw Error(where + "slm.router.activation is '" + act + "', expected 'tanh'");
  const std::string layout = g->get_string("slm.router.features");
  if (layout != feature_layout(c.model_dim, c.top_k))
    throw Error(where + "slm.router.features is '" + layout + "', expected '" +
                feature_layout(c.model_dim, c.top_k) + "'");
  const int64_t F = router_feature_count(c.model_dim, c.top_k);
  if (g->get_int("slm.router.n_features") != F)
    throw Error(where + "slm.router.n_features is " + std::to_string(g->get_int("slm.router.n_features")) +
                ", expected " + std::to_string(F) + " for dim " + std::to_string(c.model_dim) + " and top_k " +
                std::to_string(c.top_k));
  c.labels.rule = g->get_string("slm.router.label.rule", "");
  c.labels.tokens_per_prompt = g->get_int("slm.router.label.tokens", 0);
  c.labels.horizon = g->get_int("slm.router.label.horizon", 0);
  c.labels.small_model = g->get_string("slm.router.small_model", "");
  c.labels.large_model = g->get_string("slm.router.large_model", "");

  TokenRouter r(c);
  const int64_t H = c.hidden;
  auto read = [&](const char* name, std::vector<int64_t> shape, float* dst) {
    const GgufTensorInfo* t = g->find_tensor(name);
    if (!t) throw Error(where + "tensor " + name + " is missing");
    if (t->type != DType::F32) throw Error(where + "tensor " + name + " must be F32");
    if (t->shape != shape) {
      std::string want, got;
      for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      for (int64_t d : t->shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      throw Error(where + "tensor " + name + " has shape [" + got + "], expected [" + want + "]");
    }
    const size_t n = static_cast<size_t>(t->n_elements());
    std::memcpy(dst, t->data, n * sizeof(float));
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(dst[i])) throw Error(where + "tensor " + name + " holds a non-finite value");
  };
  read("router.feature_mean", {F}, r.mean_.data());
  read("router.feature_std", {F}, r.std_.data());
  for (float s : r.std_)
    if (!(s > 0.0f)) throw Error(where + "tensor router.feature_std holds a value <= 0");
  float* p = r.params_.data();
  if (H > 0) {
    read("router.fc1.weight", {F, H}, p + r.w1_offset());
    read("router.fc1.bias", {H}, p + r.b1_offset());
  }
  read("router.out.weight", {H > 0 ? H : F, 1}, p + r.w2_offset());
  read("router.out.bias", {1}, p + r.b2_offset());
  const size_t expected_tensors = H > 0 ? 6 : 4;
  if (g->tensors().size() != expected_tensors)
    throw Error(where + "holds " + std::to_string(g->tensors().size()) + " tensors, expected " +
                std::to_string(expected_tensors) + " for hidden size " + std::to_string(H));
  return r;
}

TokenRouter TokenRouter::load(const std::string& path, const ModelConfig& small_model) {
  TokenRouter r = load(path);
  try {
    r.check_model(small_model.dim, small_model.n_vocab,
                  "the small model" + (small_model.name.empty() ? std::string() : " (" + small_model.name + ")"));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return r;
}

}  // namespace slm
