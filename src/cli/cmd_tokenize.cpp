// slm tokenize -m MODEL (-p TEXT | -f FILE) [--bos]: token ids, space-separated, on one line.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace slm::cli {
namespace {

struct TokenizeFlags {
  std::string model, prompt, file;
  bool bos = false;
  bool special = false;
  bool pieces = false;
};

void run_tokenize(const TokenizeFlags& f) {
  // Only the tokenizer is needed: vocabulary-only GGUF files work as well as full models.
  auto gguf = GgufFile::open(f.model);
  auto tok = Tokenizer::from_gguf(*gguf);
  const std::string text = f.file.empty() ? f.prompt : read_file(f.file);
  const std::vector<int32_t> ids = tok->encode(text, f.bos, f.special);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
    if (f.pieces) line += ":" + tok->vocab().tokens[ids[i]];
  }
  std::printf("%s\n", line.c_str());
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto flags = std::make_shared<TokenizeFlags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text, space-separated, on one line");
  cmd->add_option("-m,--model", flags->model, "GGUF model or vocabulary file")->required();
  auto* p = cmd->add_option("-p,--prompt", flags->prompt, "text to tokenize");
  auto* fo = cmd->add_option("-f,--file", flags->file, "file whose contents to tokenize");
  p->excludes(fo);
  fo->excludes(p);
  cmd->add_flag("--bos", flags->bos, "prepend the BOS token");
  cmd->add_flag("--special", flags->special, "parse special-token text such as <|im_start|> into its token");
  cmd->add_flag("--pieces", flags->pieces, "print id:piece pairs instead of bare ids");
  cmd->callback([flags, p, fo] {
    if (p->count() == 0 && fo->count() == 0) throw Error("tokenize needs -p TEXT or -f FILE");
    run_tokenize(*flags);
  });
}

}  // namespace slm::cli
