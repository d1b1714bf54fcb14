#include "train/router_trainer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "train/adamw.h"
#include "train/rng.h"
#include "train/train_model.h"

namespace slm {
namespace {

// Binary cross-entropy of a logit s against label y, without overflow: softplus(s) - y s.
double bce(double s, double y) { return std::max(s, 0.0) - s * y + std::log1p(std::exp(-std::fabs(s))); }

double sigmoid(double s) { return 1.0 / (1.0 + std::exp(-s)); }

// The router's tensors for AdamW: the weight matrices decay, biases do not.
ParamLayout router_layout(const TokenRouter& r) {
  const int64_t F = r.n_features(), H = r.config().hidden;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t;
  if (H > 0) {
    t.push_back({"router.fc1.weight", {F, H}});
    t.push_back({"router.fc1.bias", {H}});
  }
  t.push_back({"router.out.weight", {H > 0 ? H : F, 1}});
  t.push_back({"router.out.bias", {1}});
  return ParamLayout(t);
}

}  // namespace

double roc_auc(std::span<const float> scores, std::span<const uint8_t> labels) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney U: sum of the (tie-averaged) ranks of the positives.
  double rank_sum = 0.0;
  int64_t pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (labels[order[k]]) {
        rank_sum += avg_rank;
        ++pos;
      }
    i = j;
  }
  const int64_t neg = static_cast<int64_t>(n) - pos;
  if (pos == 0 || neg == 0) return 0.5;
  return (rank_sum - static_cast<double>(pos) * (pos + 1) / 2.0) / (static_cast<double>(pos) * neg);
}

double router_loss_and_grad(const TokenRouter& router, std::span<const float> params, std::span<const float> x,
                            std::span<const uint8_t> y, std::span<const float> w, std::span<float> grads) {
  const int64_t F = router.n_features(), H = router.config().hidden, n = static_cast<int64_t>(y.size());
  if (static_cast<int64_t>(params.size()) != router.n_params() || grads.size() != params.size())
    throw Error("router_loss_and_grad: params/grads must have " + std::to_string(router.n_params()) + " values");
  if (static_cast<int64_t>(x.size()) != n * F || (!w.empty() && static_cast<int64_t>(w.size()) != n))
    throw Error("router_loss_and_grad: x must be [n, F] and w [n] or empty");
  std::vector<double> g(params.size(), 0.0);
  std::vector<float> act(static_cast<size_t>(H));
  double loss = 0.0, wsum = 0.0;
  const float* p = params.data();
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x.data() + i * F;
    const double wi = w.empty() ? 1.0 : w[i];
    const double s = router.logit_standardized(params, std::span<const float>(xi, static_cast<size_t>(F)), act);
    loss += wi * bce(s, y[i]);
    wsum += wi;
    const double ds = wi * (sigmoid(s) - y[i]);  // d(w bce)/ds
    g[router.b2_offset()] += ds;
    if (H == 0) {
      for (int64_t f = 0; f < F; ++f) g[router.w2_offset() + f] += ds * xi[f];
      continue;
    }
    for (int64_t h = 0; h < H; ++h) {
      g[router.w2_offset() + h] += ds * act[h];
      // through tanh: d act / d z = 1 - act^2
      const double dz = ds * p[router.w2_offset() + h] * (1.0 - static_cast<double>(act[h]) * act[h]);
      g[router.b1_offset() + h] += dz;
      double* gw = g.data() + router.w1_offset() + h * F;
      for (int64_t f = 0; f < F; ++f) gw[f] += dz * xi[f];
    }
  }
  const double inv = wsum > 0 ? 1.0 / wsum : 0.0;
  for (size_t k = 0; k < g.size(); ++k) grads[k] = static_cast<float>(g[k] * inv);
  return loss * inv;
}

RouterMetrics evaluate_router(const TokenRouter& router, std::span<const float> x, std::span<const uint8_t> y) {
  const int64_t F = router.n_features(), n = static_cast<int64_t>(y.size());
  if (static_cast<int64_t>(x.size()) != n * F) throw Error("evaluate_router: x must be [n, F]");
  RouterMetrics m;
  m.n = n;
  std::vector<float> xs(static_cast<size_t>(F)), scores(static_cast<size_t>(n));
  int64_t correct = 0, escalated = 0, caught = 0;
  for (int64_t i = 0; i < n; ++i) {
    router.standardize(std::span<const float>(x.data() + i * F, static_cast<size_t>(F)), xs);
    const double s = router.logit_standardized(router.params(), xs);
    scores[i] = static_cast<float>(s);
    m.loss += bce(s, y[i]);
    m.positives += y[i];
    correct += ((s >= 0.0) == (y[i] == 1));  // p >= 0.5 <=> s >= 0
    escalated += s >= 0.0;
    caught += s >= 0.0 && y[i] == 1;
  }
  if (n > 0) {
    m.loss /= static_cast<double>(n);
    m.accuracy = static_cast<double>(correct) / static_cast<double>(n);
    m.escalated = static_cast<double>(escalated) / static_cast<double>(n);
  }
  if (m.positives > 0) m.recall = static_cast<double>(caught) / static_cast<double>(m.positives);
  m.auc = roc_auc(scores, y);
  return m;
}

void RouterTrainParams::validate() const {
  if (epochs < 0) throw Error("router training: epochs must be >= 0, got " + std::to_string(epochs));
  if (batch_size < 1) throw Error("router training: batch size must be >= 1, got " + std::to_string(batch_size));
  if (!(lr > 0.0f)) throw Error("router training: the learning rate must be > 0, got " + std::to_string(lr));
  if (!(weight_decay >= 0.0f)) throw Error("router training: weight decay must be >= 0");
  if (!(val_fraction >= 0.0f && val_fraction < 1.0f))
    throw Error("router training: the held-out share must be in [0, 1), got " + std::to_string(val_fraction));
}

RouterTrainReport train_router(TokenRouter& router, std::span<const float> x, std::span<const uint8_t> y,
                               const RouterTrainParams& hp, const RouterEpochCallback& on_epoch,
                               std::span<const int64_t> groups) {
  const int64_t F = router.n_features(), H = router.config().hidden, n = static_cast<int64_t>(y.size());
  if (static_cast<int64_t>(x.size()) != n * F)
    throw Error("train_router: " + std::to_string(x.size()) + " feature values for " + std::to_string(n) +
                " positions of " + std::to_string(F) + " features");
  if (n < 2) throw Error("train_router: need at least 2 labelled positions, got " + std::to_string(n));
  hp.validate();
  for (uint8_t v : y)
    if (v > 1) throw Error("train_router: labels must be 0 or 1");

  if (!groups.empty() && static_cast<int64_t>(groups.size()) != n)
    throw Error("train_router: " + std::to_string(groups.size()) + " group ids for " + std::to_string(n) + " positions");

  // Split: a seeded shuffle of the positions (or of the groups); the first ones, up to the
  // held-out share, are held out.
  Rng rng(hp.seed);
  std::vector<int64_t> val_idx, train_idx;
  auto shuffle = [&](std::vector<int64_t>& v) {
    for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i)
      std::swap(v[i], v[rng.below(static_cast<uint64_t>(i + 1))]);
  };
  if (groups.empty()) {
    std::vector<int64_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), int64_t{0});
    shuffle(idx);
    int64_t n_val = static_cast<int64_t>(std::llround(hp.val_fraction * static_cast<double>(n)));
    if (hp.val_fraction > 0.0f) n_val = std::clamp<int64_t>(n_val, 1, n - 1);
    val_idx.assign(idx.begin(), idx.begin() + n_val);
    train_idx.assign(idx.begin() + n_val, idx.end());
  } else {
    std::vector<int64_t> ids(groups.begin(), groups.end());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    const int64_t n_groups = static_cast<int64_t>(ids.size());
    int64_t g_val = static_cast<int64_t>(std::llround(hp.val_fraction * static_cast<double>(n_groups)));
    if (hp.val_fraction > 0.0f) {
      if (n_groups < 2) throw Error("train_router: holding out whole prompts needs at least 2 prompts");
      g_val = std::clamp<int64_t>(g_val, 1, n_groups - 1);
    }
    shuffle(ids);
    const std::vector<int64_t> held(ids.begin(), ids.begin() + g_val);
    for (int64_t i = 0; i < n; ++i)
      (std::find(held.begin(), held.end(), groups[i]) != held.end() ? val_idx : train_idx).push_back(i);
  }
  const int64_t n_train = static_cast<int64_t>(train_idx.size());

  auto gather = [&](const std::vector<int64_t>& ids, std::vector<float>& gx, std::vector<uint8_t>& gy) {
    gx.resize(ids.size() * static_cast<size_t>(F));
    gy.resize(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      std::copy_n(x.data() + ids[i] * F, F, gx.data() + i * static_cast<size_t>(F));
      gy[i] = y[ids[i]];
    }
  };
  std::vector<float> xtr, xval;
  std::vector<uint8_t> ytr, yval;
  gather(train_idx, xtr, ytr);
  gather(val_idx, xval, yval);

  // Standardisation from the training part (double sums; a constant feature keeps std 1).
  std::vector<float>& mean = router.feature_mean();
  std::vector<float>& sd = router.feature_std();
  for (int64_t f = 0; f < F; ++f) {
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n_train; ++i) s += xtr[i * F + f];
    const double mu = s / static_cast<double>(n_train);
    for (int64_t i = 0; i < n_train; ++i) ss += (xtr[i * F + f] - mu) * (xtr[i * F + f] - mu);
    const double var = ss / static_cast<double>(n_train);
    mean[f] = static_cast<float>(mu);
    sd[f] = var > 1e-12 ? static_cast<float>(std::sqrt(var)) : 1.0f;
  }
  std::vector<float> xs(xtr.size());
  for (int64_t i = 0; i < n_train; ++i)
    router.standardize(std::span<const float>(xtr.data() + i * F, static_cast<size_t>(F)),
                       std::span<float>(xs.data() + i * F, static_cast<size_t>(F)));

  // Class weights: each present class carries half the total weight.
  std::vector<float> wtr(static_cast<size_t>(n_train), 1.0f);
  const int64_t pos = std::count(ytr.begin(), ytr.end(), uint8_t{1}), neg = n_train - pos;
  if (hp.balance_classes && pos > 0 && neg > 0)
    for (int64_t i = 0; i < n_train; ++i)
      wtr[i] = static_cast<float>(static_cast<double>(n_train) / (2.0 * static_cast<double>(ytr[i] ? pos : neg)));

  // Initialisation: normal / sqrt(fan-in) for the hidden layer and its output; logistic
  // regression starts at zero (its loss is convex).
  std::vector<float>& p = router.params();
  std::fill(p.begin(), p.end(), 0.0f);
  if (H > 0) {
    for (int64_t k = 0; k < H * F; ++k) p[router.w1_offset() + k] = static_cast<float>(rng.normal() / std::sqrt(double(F)));
    for (int64_t h = 0; h < H; ++h) p[router.w2_offset() + h] = static_cast<float>(rng.normal() / std::sqrt(double(H)));
  }

  const ParamLayout layout = router_layout(router);
  AdamWParams ap;
  ap.beta2 = 0.999f;
  ap.weight_decay = hp.weight_decay;
  AdamW opt(layout, ap);
  ThreadPool pool(1);  // the update is tiny; one thread keeps it cheap and ordered
  std::vector<float> grads(p.size());
  std::vector<float> bx, bw;
  std::vector<uint8_t> by;
  std::vector<int64_t> order(static_cast<size_t>(n_train));
  std::iota(order.begin(), order.end(), int64_t{0});

  RouterTrainReport report;
  for (int epoch = 1; epoch <= hp.epochs; ++epoch) {
    for (int64_t i = n_train - 1; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
    double sum = 0.0;
    for (int64_t b0 = 0; b0 < n_train; b0 += hp.batch_size) {
      const int64_t b1 = std::min<int64_t>(n_train, b0 + hp.batch_size), nb = b1 - b0;
      bx.resize(static_cast<size_t>(nb * F));
      by.resize(static_cast<size_t>(nb));
      bw.resize(static_cast<size_t>(nb));
      for (int64_t i = 0; i < nb; ++i) {
        const int64_t r = order[b0 + i];
        std::copy_n(xs.data() + r * F, F, bx.data() + i * F);
        by[i] = ytr[r];
        bw[i] = wtr[r];
      }
      sum += router_loss_and_grad(router, p, bx, by, bw, grads) * static_cast<double>(nb);
      opt.update(pool, p, grads, hp.lr);
    }
    report.epoch_loss.push_back(sum / static_cast<double>(n_train));
    if (on_epoch) on_epoch(epoch, report.epoch_loss.back());
  }
  report.train = evaluate_router(router, xtr, ytr);
  report.val = evaluate_router(router, xval, yval);
  return report;
}

}  // namespace slm
