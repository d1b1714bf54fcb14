// slm generate: complete a prompt, streaming the text; --json prints one object instead so that
// a golden check is a comparison of two JSON files; --logits-out writes the raw logits of every
// step for reference checks against PyTorch. --draft SMALL runs speculative decoding
// (generate/speculative.h): the small model drafts, the -m model verifies; the text follows the
// -m model's distribution, and the acceptance figures are printed on stderr (and in --json).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/generator.h"
#include "generate/speculative.h"
#include "generate/vocab_check.h"
#include "io/atomic_file.h"

namespace slm::cli {
namespace {

struct GenerateFlags {
  std::string model, prompt_ids, logits_out;
  std::string draft;  // speculative decoding's draft model; empty: off
  int draft_max = 4;
  float draft_min_prob = 0.0f;
  CompletionFlags completion;
  SamplingFlags sampling;
  RuntimeFlags rt;
  bool json = false;
  int top_logits = 20;
};

void run_generate(const GenerateFlags& f) {
  f.completion.check();
  if (f.top_logits < 0) throw Error("--top-logits must be >= 0");
  if (!f.draft.empty() && !f.logits_out.empty())
    throw Error("--logits-out cannot be combined with --draft (speculative decoding scores drafts in "
                "batches, not one step at a time); run without --draft to dump logits");
  SpeculativeOptions spec;
  spec.draft_max = f.draft_max;
  spec.draft_min_prob = f.draft_min_prob;
  spec.validate();
  auto model = load_model(f.model);
  std::unique_ptr<Model> draft_model;
  if (!f.draft.empty()) {
    draft_model = load_model(f.draft);
    check_shared_vocab(model->tokenizer(), "model " + f.model, draft_model->tokenizer(),
                       "draft model " + f.draft);
  }
  const Tokenizer& tok = model->tokenizer();
  std::vector<int32_t> prompt;
  if (!f.prompt_ids.empty()) {
    prompt = parse_token_ids(f.prompt_ids, model->config().n_vocab);
  } else {
    prompt = f.completion.encode_prompt(tok);
  }
  if (prompt.empty()) throw Error("the prompt is empty (give -p TEXT, -f FILE or --prompt-ids)");

  ThreadPool pool(f.rt.resolved_threads());
  Transformer tr(*model, pool);
  // Default context: what this run needs (prompt + n), within the model's training context.
  const int64_t needed = static_cast<int64_t>(prompt.size()) + f.completion.n_predict;
  const int64_t model_ctx = model->config().ctx_len > 0 ? model->config().ctx_len : needed;
  const int64_t ctx = f.rt.ctx > 0 ? f.rt.ctx : std::min(needed, model_ctx);
  if (f.rt.ctx < 0) throw Error("--ctx must be positive");
  if (static_cast<int64_t>(prompt.size()) > ctx)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the context of " +
                std::to_string(ctx) + " tokens (--ctx)");
  KvCache kv(model->config(), ctx, f.rt.kv_dtype());

  GenerateOptions opt;
  f.completion.apply(opt);
  opt.sampler = f.sampling.to_params();
  opt.top_logits = f.top_logits;

  std::vector<float> logit_rows;
  LogitsCallback on_logits;
  if (!f.logits_out.empty())
    on_logits = [&](std::span<const float> row) { logit_rows.insert(logit_rows.end(), row.begin(), row.end()); };
  TextCallback on_text;
  if (!f.json)
    on_text = [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    };

  GenerateResult r;
  SpeculativeStats sst;
  if (draft_model) {
    // The draft gets a cache of the same length: it never has to hold more than the target.
    Transformer draft_tr(*draft_model, pool);
    KvCache draft_kv(draft_model->config(), ctx, f.rt.kv_dtype());
    SpeculativeResult sr = generate_speculative(tr, kv, draft_tr, draft_kv, prompt, opt, spec, on_text);
    r = std::move(sr.gen);
    sst = sr.stats;
  } else {
    r = generate(tr, kv, prompt, opt, on_text, on_logits);
  }

  if (!f.logits_out.empty())
    write_file_atomic(f.logits_out, std::string_view(reinterpret_cast<const char*>(logit_rows.data()),
                                                     logit_rows.size() * sizeof(float)));
  const double pp_s = r.prompt_eval_us / 1e6, tg_s = r.gen_eval_us / 1e6;
  if (f.json) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [id, v] : r.last_prompt_top) top.push_back({id, v});
    nlohmann::json j = {
        {"prompt_tokens", prompt},
        {"tokens", r.tokens},
        {"text", valid_utf8(r.text)},
        {"stop_reason", r.stop_reason},
        {"last_prompt_top", top},
        {"timings", {{"prompt_s", pp_s}, {"generate_s", tg_s}}},
    };
    if (draft_model)
      j["speculative"] = {{"draft_model", f.draft},
                          {"draft_max", spec.draft_max},
                          {"draft_min_prob", spec.draft_min_prob},
                          {"drafted", sst.drafted},
                          {"accepted", sst.accepted},
                          {"acceptance_rate", sst.acceptance_rate()},
                          {"mean_accepted", sst.mean_accepted()},
                          {"verifications", sst.verifications},
                          {"target_calls", sst.target_calls},
                          {"draft_calls", sst.draft_calls},
                          {"tokens_per_s", sst.tokens_per_s}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("\n");
  std::fflush(stdout);
  {
    const size_t gen = r.tokens.size();
    std::fprintf(stderr, "[prompt %zu tokens, %.1f tok/s; generated %zu tokens, %.1f tok/s; stop: %s]\n",
                 prompt.size(), pp_s > 0 ? prompt.size() / pp_s : 0.0, gen,
                 tg_s > 0 && gen > 1 ? (gen - 1) / tg_s : 0.0, r.stop_reason.c_str());
  }
  if (draft_model)
    std::fprintf(stderr,
                 "[speculative: drafted %lld, accepted %lld (acceptance %.1f%%), mean accepted %.2f "
                 "per verification, %lld verifications, %.1f tok/s]\n",
                 static_cast<long long>(sst.drafted), static_cast<long long>(sst.accepted),
                 100.0 * sst.acceptance_rate(), sst.mean_accepted(),
                 static_cast<long long>(sst.verifications), sst.tokens_per_s);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Complete a prompt, streaming the text to stdout");
  cmd->add_option("-m,--model", f->model, "GGUF model")->required();
  CLI::Option* p = add_completion_flags(cmd, f->completion);
  auto* pi = cmd->add_option("--prompt-ids", f->prompt_ids, "prompt as token ids (\"1 15 27\"), no tokenization");
  p->excludes(pi);
  cmd->get_option("--file")->excludes(pi);
  add_sampling_flags(cmd, f->sampling);
  add_runtime_flags(cmd, f->rt);
  cmd->add_flag("--json", f->json, "print one JSON object {prompt_tokens, tokens, text, last_prompt_top, ...}");
  cmd->add_option("--top-logits", f->top_logits, "entries in last_prompt_top (--json)")->capture_default_str();
  cmd->add_option("--logits-out", f->logits_out,
                  "write the raw logits of every step (float32, n_vocab per generated token) to this file");
  auto* draft = cmd->add_option("--draft", f->draft,
                                 "speculative decoding: GGUF draft model sharing -m's vocabulary (output follows -m)");
  cmd->add_option("--draft-max", f->draft_max, "tokens drafted per verification (--draft)")
      ->capture_default_str()
      ->needs(draft);
  cmd->add_option("--draft-min-prob", f->draft_min_prob,
                  "stop drafting when the draft's top probability falls below this (--draft; 0 = off)")
      ->capture_default_str()
      ->needs(draft);
  cmd->callback([f] { run_generate(*f); });
}

}  // namespace slm::cli
