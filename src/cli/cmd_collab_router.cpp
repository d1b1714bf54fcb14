// slm collab router train: labels positions of prompts with the R2R rule (train/router_labels.h),
// trains the token router on them (train/router_trainer.h) and saves it (model/token_router.h),
// printing the label statistics and the router's quality on the training and held-out parts.
// slm collab router score: the router's probability at every position of a text, as JSON (to
// inspect a router, and for the PyTorch reference check tests/reference/token_router_test.py).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/vocab_check.h"
#include "io/atomic_file.h"
#include "model/token_router.h"
#include "train/router_labels.h"
#include "train/router_trainer.h"

namespace slm::cli {
namespace {

struct RouterTrainFlags {
  std::string small, large, prompts, out, labels_out, rule = "bigram-rejoin";
  int64_t tokens = 64, horizon = 8;
  int hidden = 32;
  RouterTrainParams train;
  bool no_balance = false;
  RuntimeFlags rt;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One prompt per non-empty line (a trailing '\r' is dropped).
std::vector<std::string> read_prompts(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) out.push_back(line);
  }
  if (out.empty()) throw Error(path + ": no prompts (expected one prompt per line)");
  return out;
}

void write_labels(const std::string& path, const RouterLabelSet& set, const Tokenizer& tok) {
  std::string text;
  auto pieces = [&](const std::vector<int32_t>& ids) { return valid_utf8(tok.decode(ids)); };
  for (const RouterPosition& p : set.positions) {
    nlohmann::json j = {{"prompt", p.prompt},   {"pos", p.pos},
                        {"large", p.large_token}, {"small", p.small_token},
                        {"large_text", valid_utf8(tok.token_to_piece(p.large_token))},
                        {"small_text", valid_utf8(tok.token_to_piece(p.small_token))},
                        {"disagree", p.disagree}, {"label", p.label}};
    if (p.disagree) {
      j["reference"] = pieces(p.reference);
      j["alternative"] = pieces(p.alternative);
    }
    text += j.dump() + "\n";
  }
  write_file_atomic(path, text);
}

void print_metrics(const char* name, const RouterMetrics& m) {
  std::printf("%-5s positions %lld (labelled 1: %lld): loss %.4f  accuracy %.3f  AUC %.3f; at p >= 0.5: "
              "escalates %.1f%%, catches %.1f%% of those labelled 1\n",
              name, static_cast<long long>(m.n), static_cast<long long>(m.positives), m.loss, m.accuracy, m.auc,
              100.0 * m.escalated, 100.0 * m.recall);
}

void run_router_train(const RouterTrainFlags& f) {
  if (f.tokens < 1) throw Error("-n must be >= 1, got " + std::to_string(f.tokens));
  if (f.horizon < 2) throw Error("--horizon must be >= 2 (the rule compares bigrams), got " + std::to_string(f.horizon));
  if (f.hidden < 0) throw Error("--hidden must be >= 0, got " + std::to_string(f.hidden));
  f.train.validate();  // before the labels, which take minutes
  const RouterLabelRule rule = parse_router_label_rule(f.rule);
  auto small = load_model(f.small);
  auto large = load_model(f.large);
  check_shared_vocab(small->tokenizer(), "small model " + f.small, large->tokenizer(), "large model " + f.large);
  const std::vector<std::string> texts = read_prompts(f.prompts);
  const Tokenizer& tok = small->tokenizer();
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < texts.size(); ++i) {
    prompts.push_back(tok.encode(texts[i], tok.vocab().add_bos, false));
    if (prompts.back().empty()) throw Error(f.prompts + ": prompt " + std::to_string(i + 1) + " gives no tokens");
  }

  ThreadPool pool(f.rt.resolved_threads());
  Transformer ts(*small, pool), tl(*large, pool);
  RouterLabelParams lp;
  lp.rule = rule;
  lp.tokens = f.tokens;
  lp.horizon = f.horizon;
  lp.top_k = kRouterDefaultTopK;
  RouterLabelSet set;
  const auto t0 = std::chrono::steady_clock::now();
  const bool tty = isatty(2);  // a progress line rewritten in place only makes sense on a terminal
  label_positions(ts, tl, prompts, lp, set, [&](int64_t done, int64_t all) {
    if (!tty) return;
    std::fprintf(stderr, "\r[labels: prompt %lld/%lld, %.1f s]", static_cast<long long>(done),
                 static_cast<long long>(all), seconds_since(t0));
    std::fflush(stderr);
  });
  const double label_s = seconds_since(t0);
  if (tty) std::fprintf(stderr, "\n");
  if (!f.labels_out.empty()) write_labels(f.labels_out, set, tok);

  const int64_t n = set.size(), dis = set.disagreements(), div = set.divergent();
  auto pct = [](int64_t a, int64_t b) { return b > 0 ? 100.0 * static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  if (rule == RouterLabelRule::kBigramRejoin)
    std::printf("labels (bigram-rejoin): %zu prompts, %lld positions in %.1f s; small != large at %lld (%.1f%%); "
                "divergent %lld (%.1f%% of positions, %.1f%% of disagreements), neutral disagreements %lld\n",
                prompts.size(), static_cast<long long>(n), label_s, static_cast<long long>(dis), pct(dis, n),
                static_cast<long long>(div), pct(div, n), pct(div, dis), static_cast<long long>(dis - div));
  else
    std::printf("labels (disagree): %zu prompts, %lld positions in %.1f s; small != large at %lld (%.1f%%), "
                "all labelled 1\n",
                prompts.size(), static_cast<long long>(n), label_s, static_cast<long long>(dis), pct(dis, n));

  TokenRouterConfig rc;
  rc.model_dim = small->config().dim;
  rc.model_vocab = small->config().n_vocab;
  rc.top_k = lp.top_k;
  rc.hidden = f.hidden;
  rc.labels.rule = router_label_rule_name(rule);
  rc.labels.tokens_per_prompt = f.tokens;
  rc.labels.horizon = f.horizon;
  rc.labels.small_model = f.small;
  rc.labels.large_model = f.large;
  TokenRouter router(rc);
  RouterTrainParams tp = f.train;
  tp.balance_classes = !f.no_balance;
  const auto t1 = std::chrono::steady_clock::now();
  const std::vector<uint8_t> y = set.labels();
  // Whole prompts are held out: positions of one prompt resemble each other.
  std::vector<int64_t> groups;
  for (const RouterPosition& p : set.positions) groups.push_back(p.prompt);
  const RouterTrainReport rep = train_router(
      router, set.features, y, tp,
      [&](int epoch, double loss) {
        if (epoch == 1 || epoch == tp.epochs || epoch % 10 == 0)
          std::fprintf(stderr, "[epoch %d/%d: weighted train loss %.4f]\n", epoch, tp.epochs, loss);
      },
      tp.val_fraction > 0.0f && prompts.size() >= 2 ? std::span<const int64_t>(groups) : std::span<const int64_t>());
  std::printf("router: %d hidden units (%s), %lld features, trained %d epochs in %.2f s\n", f.hidden,
              f.hidden > 0 ? "tanh MLP" : "logistic regression", static_cast<long long>(router.n_features()),
              tp.epochs, seconds_since(t1));
  print_metrics("train", rep.train);
  print_metrics("val", rep.val);
  router.save(f.out);
  std::printf("saved %s\n", f.out.c_str());
}

struct RouterScoreFlags {
  std::string router, small, prompt, prompt_ids;
  RuntimeFlags rt;
};

// The router's probability at every position of a text, teacher-forced: row i reads the small
// model after tokens[0..i] (what the router would say before the token i+1 is produced).
void run_router_score(const RouterScoreFlags& f) {
  auto small = load_model(f.small);
  const TokenRouter router = TokenRouter::load(f.router, small->config());
  const Tokenizer& tok = small->tokenizer();
  const std::vector<int32_t> ids = f.prompt_ids.empty() ? tok.encode(f.prompt, tok.vocab().add_bos, false)
                                                        : parse_token_ids(f.prompt_ids, small->config().n_vocab);
  if (ids.empty()) throw Error("the text is empty (give -p TEXT or --prompt-ids)");
  if (small->config().ctx_len > 0 && static_cast<int64_t>(ids.size()) > small->config().ctx_len)
    throw Error("the text has " + std::to_string(ids.size()) + " tokens, more than the small model's context of " +
                std::to_string(small->config().ctx_len));
  ThreadPool pool(f.rt.resolved_threads());
  Transformer ts(*small, pool);
  KvCache kv(small->config(), static_cast<int64_t>(ids.size()));
  nlohmann::json probs = nlohmann::json::array(), pieces = nlohmann::json::array();
  for (int32_t id : ids) {
    const std::vector<float> row = ts.forward({id}, kv);
    probs.push_back(router.probability(row, ts.last_hidden()));
    pieces.push_back(valid_utf8(tok.token_to_piece(id)));
  }
  std::printf("%s\n", nlohmann::json{{"tokens", ids}, {"pieces", pieces}, {"probabilities", probs}}.dump().c_str());
}

}  // namespace

void register_collab_router(CLI::App& collab) {
  CLI::App* router = collab.add_subcommand("router", "The token router (R2R): train it, score a text with it");
  {
    auto f = std::make_shared<RouterScoreFlags>();
    CLI::App* cmd = router->add_subcommand(
        "score", "Print, as JSON, the router's probability after each token of a text (teacher-forced)");
    cmd->add_option("--router", f->router, "router (from slm collab router train)")->required();
    cmd->add_option("--small", f->small, "the small model it was trained for")->required();
    auto* p = cmd->add_option("-p,--prompt", f->prompt, "text");
    auto* pi = cmd->add_option("--prompt-ids", f->prompt_ids, "text as token ids (\"1 15 27\"), no tokenization");
    p->excludes(pi);
    cmd->add_option("-t,--threads", f->rt.threads, "threads; 0 = all cores")->capture_default_str();
    cmd->callback([f] { run_router_score(*f); });
  }
  router->require_subcommand(1);
  auto f = std::make_shared<RouterTrainFlags>();
  CLI::App* cmd = router->add_subcommand(
      "train", "Label where the small model's choice leads elsewhere than the large model's, and train the router");
  cmd->add_option("--small", f->small, "small model (GGUF)")->required();
  cmd->add_option("--large", f->large, "large model (GGUF), same vocabulary")->required();
  cmd->add_option("--prompts", f->prompts, "prompts, one per line")->required();
  cmd->add_option("-o,--output", f->out, "router file to write (GGUF)")->required();
  cmd->add_option("-n,--tokens", f->tokens, "reference tokens (labelled positions) per prompt")->capture_default_str();
  cmd->add_option("--horizon", f->horizon, "tokens compared after a disagreement")->capture_default_str();
  cmd->add_option("--label-rule", f->rule,
                  "which positions the large model should produce: bigram-rejoin (disagreements whose "
                  "continuation never re-joins the large model's) or disagree (every disagreement)")
      ->capture_default_str();
  cmd->add_option("--hidden", f->hidden, "hidden units of the router MLP; 0 = logistic regression")->capture_default_str();
  cmd->add_option("--epochs", f->train.epochs, "training epochs")->capture_default_str();
  cmd->add_option("--lr", f->train.lr, "AdamW learning rate")->capture_default_str();
  cmd->add_option("--batch", f->train.batch_size, "mini-batch size (positions)")->capture_default_str();
  cmd->add_option("--weight-decay", f->train.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--val", f->train.val_fraction, "share of prompts held out for validation")->capture_default_str();
  cmd->add_flag("--no-balance", f->no_balance, "do not weight the classes equally in the loss");
  cmd->add_option("--seed", f->train.seed, "seed (split, initialisation, shuffles)")->capture_default_str();
  cmd->add_option("--labels-out", f->labels_out, "also write the labelled positions as JSON lines");
  cmd->add_option("-t,--threads", f->rt.threads, "threads; 0 = all cores")->capture_default_str();
  cmd->callback([f] { run_router_train(*f); });
}

}  // namespace slm::cli
