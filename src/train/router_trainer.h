// Training of the token router (model/token_router.h) on labelled positions
// (train/router_labels.h): binary cross-entropy, optionally class-weighted (divergent positions
// are the minority), mini-batches in a seeded shuffle, a fixed number of epochs, AdamW
// (train/adamw.h). The MLP's backward pass is written out here (router_loss_and_grad); the tests
// check it against finite differences.
//
// A held-out share of the positions (chosen by the seed) is never trained on: the report gives
// loss, accuracy at p >= 0.5 and ROC AUC on both parts. The feature standardisation (mean/std)
// is computed on the training part only.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/token_router.h"

namespace slm {

struct RouterTrainParams {
  int epochs = 30;
  int batch_size = 64;
  float lr = 3e-3f;
  float weight_decay = 0.01f;    // AdamW, on the weight matrices only
  float val_fraction = 0.2f;     // share of positions held out (0: none)
  bool balance_classes = true;   // weight each class by n / (2 n_class) in the loss
  uint64_t seed = 1;

  // Throws slm::Error naming the field and its range (epochs >= 0, batch >= 1, lr > 0,
  // weight decay >= 0, held-out share in [0, 1)).
  void validate() const;
};

// Quality of the router on a set of positions.
struct RouterMetrics {
  int64_t n = 0, positives = 0;
  double loss = 0;      // mean binary cross-entropy (nats), unweighted
  double accuracy = 0;  // share of positions where (p >= 0.5) == label
  double auc = 0;       // ROC AUC (0.5 when one class is absent)
  double escalated = 0; // share of positions with p >= 0.5 (sent to the large model)
  double recall = 0;    // share of divergent positions with p >= 0.5 (0 when there are none)
};

struct RouterTrainReport {
  RouterMetrics train, val;
  std::vector<double> epoch_loss;  // [epochs] mean weighted training loss over each epoch
};

// ROC AUC: the probability that a random positive scores above a random negative (ties count
// half), from a sort of the scores. 0.5 when either class is empty.
double roc_auc(std::span<const float> scores, std::span<const uint8_t> labels);

// Weighted BCE over a batch of standardised inputs and its gradient.
//   x: [n, F] standardised features; y: [n] labels 0/1; w: [n] weights (empty: all 1);
//   params: [router.n_params()]; grads: [router.n_params()], OVERWRITTEN with
//   d loss / d params where loss = sum_i w_i bce_i / sum_i w_i. Returns that loss.
double router_loss_and_grad(const TokenRouter& router, std::span<const float> params, std::span<const float> x,
                            std::span<const uint8_t> y, std::span<const float> w, std::span<float> grads);

// Evaluates raw (unstandardised) features x: [n, F] with labels y: [n].
RouterMetrics evaluate_router(const TokenRouter& router, std::span<const float> x, std::span<const uint8_t> y);

// Called after each epoch with (epoch from 1, mean training loss).
using RouterEpochCallback = std::function<void(int, double)>;

// Sets the router's standardisation from the training part, initialises its parameters (seeded
// normal, scaled by 1/sqrt(fan-in)), trains, and reports. x: [n, F] raw features, y: [n].
// groups: empty, or [n] a group id per position (the prompt it came from): whole groups are then
// held out, so that validation measures prompts never seen (positions of one prompt are alike).
// Throws slm::Error on bad parameters, a feature-count mismatch or fewer than 2 positions (or
// groups, when given and a held-out share is asked for).
RouterTrainReport train_router(TokenRouter& router, std::span<const float> x, std::span<const uint8_t> y,
                               const RouterTrainParams& params, const RouterEpochCallback& on_epoch = {},
                               std::span<const int64_t> groups = {});

}  // namespace slm
