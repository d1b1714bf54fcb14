// slm chat: an interactive conversation. Each line on stdin is a user turn (a line ending in a
// backslash continues on the next line); the whole conversation is rendered with the model's chat
// template and only the tokens after the part already in the KV cache are fed again.
// Commands: /reset starts over (keeping --system), /exit or end of input quits.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "generate/generator.h"
#include "tokenizer/chat_template.h"

namespace slm::cli {
namespace {

struct ChatFlags {
  std::string model, system, chat_template;
  int n_predict = 512;
  SamplingFlags sampling;
  RuntimeFlags rt;
};

// Reads one user turn; false at end of input.
bool read_turn(std::string& out, bool interactive) {
  out.clear();
  if (interactive) std::fprintf(stderr, "> ");
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\\') {
      out += line.substr(0, line.size() - 1) + "\n";
      if (interactive) std::fprintf(stderr, ". ");
      continue;
    }
    out += line;
    return true;
  }
  return !out.empty();
}

void run_chat(const ChatFlags& f) {
  if (f.n_predict < 1) throw Error("-n must be >= 1");
  auto model = load_model(f.model);
  const Tokenizer& tok = model->tokenizer();
  const ChatTemplate tmpl =
      resolve_chat_template(model->gguf().get_string("tokenizer.chat_template", ""), f.chat_template);
  const bool template_bos = chat_renders_bos(tmpl.family);
  const std::string bos_text = tok.bos() >= 0 ? tok.vocab().tokens[tok.bos()] : "";
  const std::string eos_text = tok.eos() >= 0 ? tok.vocab().tokens[tok.eos()] : "";

  ThreadPool pool(f.rt.resolved_threads());
  Transformer tr(*model, pool);
  KvCache kv(model->config(), f.rt.resolved_ctx(model->config()), f.rt.kv_dtype());
  std::vector<int32_t> cached;  // the tokens whose keys/values kv holds, in order

  const bool interactive = isatty(STDIN_FILENO);
  std::vector<ChatMessage> messages;
  if (!f.system.empty()) messages.push_back({"system", f.system});
  if (interactive)
    std::fprintf(stderr, "chat with %s (template: %s). /reset starts over, /exit or Ctrl-D quits.\n",
                 f.model.c_str(), std::string(chat_family_name(tmpl.family)).c_str());

  GenerateOptions opt;
  opt.max_tokens = f.n_predict;
  opt.sampler = f.sampling.to_params();
  std::string turn;
  while (read_turn(turn, interactive)) {
    if (turn == "/exit" || turn == "/quit") break;
    if (turn == "/reset") {
      messages.resize(f.system.empty() ? 0 : 1);
      continue;
    }
    if (turn.empty()) continue;
    messages.push_back({"user", turn});
    const std::string text = render_chat(tmpl, messages, true, template_bos ? bos_text : "", eos_text);
    const std::vector<int32_t> tokens = tok.encode(text, tok.vocab().add_bos && !template_bos, true);
    if (static_cast<int64_t>(tokens.size()) >= kv.capacity()) {
      std::fprintf(stderr, "error: the conversation (%zu tokens) no longer fits in the context of %lld tokens; "
                   "starting over (raise --ctx for longer chats)\n", tokens.size(), (long long)kv.capacity());
      messages.resize(f.system.empty() ? 0 : 1);
      continue;
    }
    // Reuse the cached prefix; at least one token must be fed to get logits.
    size_t common = 0;
    while (common < cached.size() && common < tokens.size() && cached[common] == tokens[common]) ++common;
    if (common == tokens.size()) --common;
    kv.truncate(static_cast<int64_t>(common));
    cached.assign(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(common));

    const std::span<const int32_t> fresh(tokens.data() + common, tokens.size() - common);
    const GenerateResult r = generate(tr, kv, fresh, opt, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    std::printf("\n");
    std::fflush(stdout);
    cached.insert(cached.end(), fresh.begin(), fresh.end());
    if (!r.tokens.empty()) cached.insert(cached.end(), r.tokens.begin(), r.tokens.end() - 1);
    messages.push_back({"assistant", r.text});
  }
}

}  // namespace

void register_chat(CLI::App& app) {
  auto f = std::make_shared<ChatFlags>();
  CLI::App* cmd = app.add_subcommand("chat", "Chat interactively, using the model's chat template");
  cmd->add_option("-m,--model", f->model, "GGUF model")->required();
  cmd->add_option("--system", f->system, "system message");
  cmd->add_option("--chat-template", f->chat_template,
                  "template family instead of the model's (" + chat_family_names() + ")");
  cmd->add_option("-n,--n-predict", f->n_predict, "tokens per reply at most")->capture_default_str();
  add_sampling_flags(cmd, f->sampling);
  add_runtime_flags(cmd, f->rt);
  cmd->callback([f] { run_chat(*f); });
}

}  // namespace slm::cli
