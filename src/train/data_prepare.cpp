// `slm data prepare`: read documents line by line, tokenize them in parallel batches, route each
// to train.bin or val.bin by the seeded hash rule, then write tokenizer.gguf and meta.json.
// Contract in data_prepare.h.
#include "train/data_prepare.h"

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/hash.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "tokenizer/tokenizer.h"
#include "train/token_shards.h"

namespace slm {

namespace {

using Clock = std::chrono::steady_clock;

// A batch is tokenized once it holds this much text (bytes) or this many documents: big enough to
// keep every thread busy, small enough that memory stays flat and progress moves.
constexpr size_t kBatchBytes = 1 << 20;
constexpr size_t kBatchDocs = 4096;

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}


bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_blank(const std::string& line) {
  for (char c : line)
    if (c != ' ' && c != '\t') return false;
  return true;
}

// Reads a file line by line with POSIX getline (no newline in `line`; a final "\r" dropped).
class LineReader {
 public:
  explicit LineReader(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr) throw Error(path + ": cannot open: " + std::strerror(errno));
  }
  ~LineReader() {
    std::free(buf_);
    if (file_ != nullptr) std::fclose(file_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // False at end of file. `bytes` grows by the bytes consumed (newline included).
  bool next(std::string& line, uint64_t& bytes) {
    errno = 0;
    ssize_t n = ::getline(&buf_, &cap_, file_);
    if (n < 0) {
      if (std::ferror(file_)) throw Error(path_ + ": read failed: " + std::strerror(errno));
      return false;
    }
    bytes += static_cast<uint64_t>(n);
    ++line_no_;
    size_t len = static_cast<size_t>(n);
    if (len > 0 && buf_[len - 1] == '\n') --len;
    if (len > 0 && buf_[len - 1] == '\r') --len;
    size_t start = 0;
    if (line_no_ == 1 && len >= 3 && std::memcmp(buf_, "\xEF\xBB\xBF", 3) == 0) start = 3;  // BOM
    line.assign(buf_ + start, len - start);
    return true;
  }
  uint64_t line_no() const { return line_no_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  char* buf_ = nullptr;
  size_t cap_ = 0;
  uint64_t line_no_ = 0;
};

// Routes tokenized documents, in input order, to the two shards. The most recent training
// document is held back, so that if no document hashed to validation the last one can go there.
class Router {
 public:
  Router(const std::string& dir, const Tokenizer& tok, double fraction, uint64_t seed)
      : fraction_(fraction),
        seed_(seed),
        train_(dir + "/train.bin", static_cast<uint32_t>(tok.vocab_size()), tok.fingerprint()),
        val_(dir + "/val.bin", static_cast<uint32_t>(tok.vocab_size()), tok.fingerprint()) {}

  void add(std::vector<int32_t>&& ids) {
    const uint64_t index = n_docs_++;
    if (is_validation_document(seed_, index, fraction_)) {
      val_.add_document(ids);
      return;
    }
    if (has_held_) train_.add_document(held_);
    held_ = std::move(ids);
    has_held_ = true;
  }

  void finish() {
    if (has_held_) {
      const bool force_val = fraction_ > 0 && n_docs_ >= 2 && val_.header().n_documents == 0;
      (force_val ? val_ : train_).add_document(held_);
      has_held_ = false;
    }
    train_.finish();
    val_.finish();
  }

  uint64_t documents() const { return n_docs_; }
  uint64_t tokens() const {
    return train_.header().n_tokens + val_.header().n_tokens + (has_held_ ? held_.size() : 0);
  }
  const ShardHeader& train() const { return train_.header(); }
  const ShardHeader& val() const { return val_.header(); }

 private:
  double fraction_;
  uint64_t seed_;
  ShardWriter train_, val_;
  uint64_t n_docs_ = 0;
  std::vector<int32_t> held_;
  bool has_held_ = false;
};

// Collects document texts and tokenizes them in parallel when the batch is full.
class Pipeline {
 public:
  Pipeline(const Tokenizer& tok, ThreadPool& pool, Router& router)
      : tok_(tok), pool_(pool), router_(router) {}

  // Takes one document's text (empty texts are skipped).
  void add(std::string&& text) {
    if (text.empty()) return;
    bytes_ += text.size();
    texts_.push_back(std::move(text));
    if (bytes_ >= kBatchBytes || texts_.size() >= kBatchDocs) flush();
  }

  void flush() {
    const size_t n = texts_.size();
    if (n == 0) return;
    ids_.resize(n);
    const Vocab& v = tok_.vocab();
    const bool bos = v.add_bos && v.bos >= 0;
    // Dynamic claiming from a counter: document lengths vary a lot.
    std::atomic<size_t> next{0};
    pool_.run([&](int) {
      for (size_t i; (i = next.fetch_add(1)) < n;) {
        std::vector<int32_t> body = tok_.encode(texts_[i], false, false);
        std::vector<int32_t>& out = ids_[i];
        out.clear();
        out.reserve(body.size() + 2);
        if (bos) out.push_back(v.bos);
        out.insert(out.end(), body.begin(), body.end());
        if (v.eos >= 0) out.push_back(v.eos);
      }
    });
    for (size_t i = 0; i < n; ++i) router_.add(std::move(ids_[i]));
    texts_.clear();
    ids_.clear();
    bytes_ = 0;
  }

 private:
  const Tokenizer& tok_;
  ThreadPool& pool_;
  Router& router_;
  std::vector<std::string> texts_;
  std::vector<std::vector<int32_t>> ids_;
  size_t bytes_ = 0;
};

// Reads one input file's documents into the pipeline; `bytes` counts input consumed.
// `on_progress` is called now and then (between lines) so the caller can report.
void read_documents(const std::string& path, DocSplit split, Pipeline& pipe, uint64_t& bytes,
                    const std::function<void()>& on_progress) {
  if (ends_with(path, ".jsonl")) {
    LineReader in(path);
    std::string line;
    while (in.next(line, bytes)) {
      if (is_blank(line)) continue;
      const std::string where = path + ":" + std::to_string(in.line_no());
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(where + ": invalid JSON: " + e.what());
      }
      if (!j.is_object()) throw Error(where + ": expected a JSON object with a string \"text\" field");
      auto it = j.find("text");
      if (it == j.end() || !it->is_string())
        throw Error(where + ": expected a string \"text\" field" +
                    (it == j.end() ? std::string(" (none found)")
                                   : std::string(" (found ") + it->type_name() + ")"));
      pipe.add(it->get<std::string>());
      if ((in.line_no() & 255) == 0) on_progress();
    }
    on_progress();
    return;
  }
  if (split == DocSplit::File) {
    std::string text = read_file(path);
    bytes += text.size();
    if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    pipe.add(std::move(text));
    on_progress();
    return;
  }
  LineReader in(path);
  std::string line, doc;
  while (in.next(line, bytes)) {
    if (split == DocSplit::Line) {
      if (!is_blank(line)) pipe.add(std::move(line));
    } else if (is_blank(line)) {
      if (!doc.empty()) pipe.add(std::move(doc));
      doc.clear();
    } else {
      if (!doc.empty()) doc += '\n';
      doc += line;
    }
    if ((in.line_no() & 255) == 0) on_progress();
  }
  if (!doc.empty()) pipe.add(std::move(doc));
  on_progress();
}

// tokenizer.gguf: the tokenizer.* keys of the source, plus general.name (the tokenizer keys a
// Phi-3 quirk on it) and general.architecture (GGUF readers expect it). Re-read and compared by
// fingerprint, so a copy that would tokenize differently is never left behind silently.
void write_tokenizer_copy(const GgufFile& src, const Tokenizer& tok, const std::string& path) {
  GgufWriter w;
  for (const char* key : {"general.architecture", "general.name"})
    if (const GgufValue* v = src.find(key)) w.set(key, *v);
  w.copy_metadata(src, "tokenizer.");
  w.write(path);
  auto copy = Tokenizer::from_gguf(*GgufFile::open(path));
  if (copy->fingerprint() != tok.fingerprint())
    throw Error(path + ": the copied tokenizer's fingerprint " + hex64(copy->fingerprint()) +
                " differs from the source's " + hex64(tok.fingerprint()));
}

}  // namespace

DocSplit parse_doc_split(const std::string& name) {
  if (name == "blank") return DocSplit::Blank;
  if (name == "line") return DocSplit::Line;
  if (name == "file") return DocSplit::File;
  throw Error("--split: '" + name + "' is not a document split (expected blank, line or file)");
}

const char* doc_split_name(DocSplit s) {
  switch (s) {
    case DocSplit::Blank: return "blank";
    case DocSplit::Line: return "line";
    case DocSplit::File: return "file";
  }
  return "?";
}

bool is_validation_document(uint64_t seed, uint64_t index, double fraction) {
  if (fraction <= 0) return false;
  if (fraction >= 1) return true;
  const uint64_t h = splitmix64(splitmix64(seed) ^ index);
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  return u < fraction;
}

PrepareResult prepare_data(const PrepareOptions& opts) {
  const Clock::time_point t0 = Clock::now();
  if (opts.inputs.empty()) throw Error("data prepare: no input files (-i FILE...)");
  if (opts.out_dir.empty()) throw Error("data prepare: no output directory (-o DIR)");
  if (!(opts.val_fraction >= 0 && opts.val_fraction <= 1))
    throw Error("--val-fraction " + std::to_string(opts.val_fraction) + " is outside [0, 1]");

  // Check every input before creating anything, and learn the total for the progress bar.
  PrepareProgress progress;
  for (const std::string& in : opts.inputs) {
    struct stat st {};
    if (::stat(in.c_str(), &st) != 0) throw Error(in + ": cannot open: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw Error(in + ": not a regular file");
    progress.bytes_total += static_cast<uint64_t>(st.st_size);
  }

  auto gguf = GgufFile::open(opts.tokenizer);
  auto tok = Tokenizer::from_gguf(*gguf);

  std::error_code ec;
  std::filesystem::create_directories(opts.out_dir, ec);
  if (ec || !std::filesystem::is_directory(opts.out_dir))
    throw Error(opts.out_dir + ": cannot create the output directory" +
                (ec ? ": " + ec.message() : std::string()));

  ThreadPool pool(opts.threads > 0 ? opts.threads : default_thread_count());
  Router router(opts.out_dir, *tok, opts.val_fraction, opts.seed);
  Pipeline pipe(*tok, pool, router);
  auto report = [&] {
    if (!opts.progress) return;
    progress.documents = router.documents();
    progress.tokens = router.tokens();
    progress.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    opts.progress(progress);
  };
  // Called every few hundred lines; the CLI throttles what it draws.
  auto on_progress = [&] { report(); };
  for (const std::string& in : opts.inputs)
    read_documents(in, opts.split, pipe, progress.bytes_read, on_progress);
  pipe.flush();
  router.finish();

  PrepareResult r;
  r.train_documents = router.train().n_documents;
  r.val_documents = router.val().n_documents;
  r.train_tokens = router.train().n_tokens;
  r.val_tokens = router.val().n_tokens;
  r.bytes_read = progress.bytes_read;
  r.tokenizer_fingerprint = tok->fingerprint();
  r.vocab_size = static_cast<uint32_t>(tok->vocab_size());

  write_tokenizer_copy(*gguf, *tok, opts.out_dir + "/tokenizer.gguf");

  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  report();

  nlohmann::json inputs = nlohmann::json::array();
  for (const std::string& in : opts.inputs)
    inputs.push_back({{"path", in},
                      {"format", ends_with(in, ".jsonl") ? "jsonl" : "text"},
                      {"bytes", std::filesystem::file_size(in, ec)}});
  nlohmann::json meta = {
      {"format", "slm token shards"},
      {"version", kShardVersion},
      {"inputs", inputs},
      {"tokenizer",
       {{"source", opts.tokenizer},
        {"fingerprint", hex64(r.tokenizer_fingerprint)},
        {"vocab_size", r.vocab_size},
        {"model", tok->vocab().model},
        {"bos", tok->vocab().add_bos ? tok->bos() : -1},
        {"eos", tok->eos()}}},
      {"settings",
       {{"split", doc_split_name(opts.split)},
        {"val_fraction", opts.val_fraction},
        {"seed", opts.seed}}},
      {"token_bytes", shard_token_bytes(r.vocab_size)},
      {"train", {{"documents", r.train_documents}, {"tokens", r.train_tokens}}},
      {"val", {{"documents", r.val_documents}, {"tokens", r.val_tokens}}},
      {"bytes_read", r.bytes_read},
      {"seconds", r.seconds},
  };
  write_file_atomic(opts.out_dir + "/meta.json", meta.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  return r;
}

}  // namespace slm
