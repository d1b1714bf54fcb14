// slm data prepare -i FILE... -t TOKENIZER -o DIR [--val-fraction F] [--seed S]
//                  [--split blank|line|file] [--threads N]
// Text or JSONL corpora -> token shards (train/data_prepare.h). A progress bar on stderr when it
// is a terminal; one summary line on stderr always.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "train/data_prepare.h"

namespace slm::cli {
namespace {

struct PrepareFlags {
  std::vector<std::string> inputs;
  std::string tokenizer, out_dir, split = "blank";
  double val_fraction = 0.05;
  uint64_t seed = 0;
  int threads = 0;
};

// Redraws one line on stderr at most ten times a second.
class ProgressBar {
 public:
  void update(const PrepareProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    drawn_ = true;
    const double frac = p.bytes_total ? static_cast<double>(p.bytes_read) / p.bytes_total : 1.0;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(frac * kWidth + 0.5);
    std::string bar(filled, '#');
    bar.resize(kWidth, ' ');
    const double mb = p.bytes_read / 1e6;
    std::fprintf(stderr, "\r\033[K%3d%% [%s] %.1f/%.1f MB  %.2f MB/s  %.2fM tokens  %llu docs",
                 static_cast<int>(frac * 100), bar.c_str(), mb, p.bytes_total / 1e6,
                 p.seconds > 0 ? mb / p.seconds : 0.0, p.tokens / 1e6,
                 static_cast<unsigned long long>(p.documents));
    std::fflush(stderr);
  }
  void clear() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  std::chrono::steady_clock::time_point last_;
  bool drawn_ = false;
};

void run_prepare(const PrepareFlags& f) {
  PrepareOptions o;
  o.inputs = f.inputs;
  o.tokenizer = f.tokenizer;
  o.out_dir = f.out_dir;
  o.val_fraction = f.val_fraction;
  o.seed = f.seed;
  o.split = parse_doc_split(f.split);
  o.threads = f.threads;
  auto bar = std::make_shared<ProgressBar>();
  if (::isatty(STDERR_FILENO)) o.progress = [bar](const PrepareProgress& p) { bar->update(p); };
  PrepareResult r;
  try {
    r = prepare_data(o);
  } catch (...) {
    bar->clear();
    throw;
  }
  bar->clear();
  std::fprintf(stderr,
               "data prepare: %llu documents (train %llu, val %llu), tokens train %llu, val %llu, "
               "%.1f MB in %.2f s (%.2f MB/s) -> %s\n",
               static_cast<unsigned long long>(r.train_documents + r.val_documents),
               static_cast<unsigned long long>(r.train_documents),
               static_cast<unsigned long long>(r.val_documents),
               static_cast<unsigned long long>(r.train_tokens),
               static_cast<unsigned long long>(r.val_tokens), r.bytes_read / 1e6, r.seconds,
               r.seconds > 0 ? r.bytes_read / 1e6 / r.seconds : 0.0, f.out_dir.c_str());
}

}  // namespace

void register_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Prepare training data (token shards)");
  data->require_subcommand(1);

  auto f = std::make_shared<PrepareFlags>();
  CLI::App* prep = data->add_subcommand(
      "prepare",
      "Tokenize text or JSONL files into DIR/train.bin, DIR/val.bin, DIR/tokenizer.gguf and "
      "DIR/meta.json. Plain text is cut into documents by --split; a .jsonl file gives one "
      "document per line (its string \"text\" field). Each document is stored as [BOS] tokens EOS "
      "and goes to train or val as a whole.");
  prep->add_option("-i,--input", f->inputs, "input files (.jsonl: JSON lines with a \"text\" field; "
                                            "anything else: plain text)")
      ->required()
      ->expected(1, -1);
  prep->add_option("-t,--tokenizer", f->tokenizer,
                   "GGUF file with tokenizer metadata (vocabulary-only or a whole model)")
      ->required();
  prep->add_option("-o,--out", f->out_dir, "output directory (created if missing)")->required();
  prep->add_option("--val-fraction", f->val_fraction,
                   "share of documents held out for validation, 0..1; at least one document when "
                   "> 0 and there are two or more")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  prep->add_option("--seed", f->seed, "seed of the train/validation split")->capture_default_str();
  prep->add_option("--split", f->split,
                   "documents in plain text: blank (separated by blank lines), line (one per "
                   "line), file (one per file)")
      ->capture_default_str()
      ->check(CLI::IsMember({"blank", "line", "file"}));
  prep->add_option("--threads", f->threads, "tokenizer threads (0: all cores)")->capture_default_str();
  prep->callback([f] { run_prepare(*f); });
}

}  // namespace slm::cli
