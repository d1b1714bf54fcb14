// Byte-level BPE training: count pre-token words, then merge pairs with incrementally maintained
// pair counts (pair -> count, pair -> words that contain it) and a max-heap with lazy
// invalidation, so that each merge touches only the words that contain the merged pair.
#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/pretokenizer.h"

namespace slm {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr size_t kPieceBytes = size_t{1} << 20;  // target size of a streamed corpus piece

// A pre-tokenizer split never joins "\n" with a following byte that is ASCII and not whitespace
// (the GPT-2-style regexes only carry whitespace runs across a newline), so a piece may end there.
bool safe_cut_before(const std::string& line) {
  if (line.empty()) return false;
  const auto c = static_cast<unsigned char>(line[0]);
  return c < 0x80 && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f';
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct TextHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using WordCounts = std::unordered_map<std::string, int64_t, TextHash, std::equal_to<>>;

// All special-token texts in id order (BOS, EOS, PAD, then the user's), validated.
std::vector<std::string> special_texts(const BpeTrainOptions& o) {
  std::vector<std::string> all = {o.bos_token, o.eos_token, o.pad_token};
  all.insert(all.end(), o.special_tokens.begin(), o.special_tokens.end());
  std::unordered_set<std::string> seen;
  for (const auto& s : all) {
    if (s.empty()) throw Error("tokenizer train: a special token is empty");
    if (!seen.insert(s).second)
      throw Error("tokenizer train: special token '" + s + "' is given twice (BOS, EOS and PAD are '" +
                  o.bos_token + "', '" + o.eos_token + "', '" + o.pad_token + "')");
    for (int b = 0; b < 256; ++b)
      if (s == byte_to_unicode(static_cast<uint8_t>(b)))
        throw Error("tokenizer train: special token '" + s + "' is the text of byte token " +
                    std::to_string(b));
  }
  const int64_t min_vocab = 256 + static_cast<int64_t>(all.size());
  if (o.vocab_size < min_vocab)
    throw Error("tokenizer train: vocab size " + std::to_string(o.vocab_size) +
                " is smaller than the 256 byte tokens + " + std::to_string(all.size()) +
                " special tokens (at least " + std::to_string(min_vocab) + ")");
  if (o.vocab_size > INT32_MAX) throw Error("tokenizer train: vocab size is too large");
  if (o.min_frequency < 1) throw Error("tokenizer train: min frequency must be at least 1");
  return all;
}

// Cuts special-token texts out of each document, pre-tokenizes the rest and counts the words.
class WordCounter {
 public:
  WordCounter(const std::vector<std::string>& specials, const PreTokenizerSpec& spec)
      : specials_(specials), splitter_(spec.regexes) {}

  void add(std::string_view text) {
    stats.bytes += static_cast<int64_t>(text.size());
    // next[i]: position of the next occurrence of special i at or after `pos` (npos: none).
    std::vector<size_t> next(specials_.size());
    for (size_t i = 0; i < specials_.size(); ++i) next[i] = text.find(specials_[i]);
    size_t pos = 0;
    for (;;) {
      size_t best = std::string_view::npos, len = 0;
      for (size_t i = 0; i < specials_.size(); ++i) {
        if (next[i] != std::string_view::npos && next[i] < pos) next[i] = text.find(specials_[i], pos);
        if (next[i] < best || (next[i] == best && next[i] != std::string_view::npos &&
                               specials_[i].size() > len))
          best = next[i], len = specials_[i].size();
      }
      if (best == std::string_view::npos) break;
      count_words(text.substr(pos, best - pos));
      pos = best + len;
    }
    count_words(text.substr(pos));
  }

  WordCounts counts;
  BpeTrainStats stats;

 private:
  void count_words(std::string_view text) {
    if (text.empty()) return;
    for (const auto& [b, e] : splitter_.split(text)) {
      const std::string_view w = text.substr(b, e - b);
      ++stats.words;
      if (auto it = counts.find(w); it != counts.end())
        ++it->second;
      else
        counts.emplace(std::string(w), 1);
    }
  }

  std::vector<std::string> specials_;
  RegexSplitter splitter_;
};

// --- merging -----------------------------------------------------------------------------------

uint64_t pair_key(int32_t l, int32_t r) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
}
int32_t key_left(uint64_t k) { return static_cast<int32_t>(k >> 32); }
int32_t key_right(uint64_t k) { return static_cast<int32_t>(k & 0xffffffffu); }

struct Word {
  std::vector<int32_t> sym;  // token ids, in order
  int64_t count;             // occurrences in the corpus
};

struct PairInfo {
  int64_t count = 0;
  std::vector<int32_t> words;  // indices of words that contain (or once contained) the pair
};

struct HeapEntry {
  int64_t count;
  uint64_t key;
};
struct HeapOrder {  // top: highest count, then smallest (left, right)
  bool operator()(const HeapEntry& a, const HeapEntry& b) const {
    return a.count < b.count || (a.count == b.count && a.key > b.key);
  }
};

class Merger {
 public:
  Merger(WordCounts counts, Vocab& vocab, const BpeTrainOptions& o)
      : vocab_(vocab), opt_(o) {
    // Sorted by bytes: word indices, hence everything after, do not depend on hash order.
    std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
    counts = {};
    std::sort(sorted.begin(), sorted.end());
    words_.reserve(sorted.size());
    for (auto& [text, n] : sorted) {
      Word w{{}, n};
      w.sym.reserve(text.size());
      for (unsigned char c : text) w.sym.push_back(c);  // byte b is token id b
      words_.push_back(std::move(w));
    }
    for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
      (vocab_.types[i] == TokenType::Normal ? normal_ids_ : special_ids_)
          .emplace(vocab_.tokens[i], static_cast<int32_t>(i));
    }
    for (size_t w = 0; w < words_.size(); ++w) {
      const auto& s = words_[w].sym;
      for (size_t j = 0; j + 1 < s.size(); ++j) {
        PairInfo& p = pairs_[pair_key(s[j], s[j + 1])];
        p.count += words_[w].count;
        p.words.push_back(static_cast<int32_t>(w));
      }
    }
    for (const auto& [k, p] : pairs_) heap_.push({p.count, k});
  }

  int64_t run(const BpeProgress& progress) {
    const size_t start = vocab_.tokens.size();
    const auto target = static_cast<size_t>(opt_.vocab_size);
    int64_t merges = 0;
    size_t reported = start;
    while (vocab_.tokens.size() < target && !heap_.empty()) {
      const HeapEntry top = heap_.top();
      heap_.pop();
      auto it = pairs_.find(top.key);
      const int64_t now = it == pairs_.end() ? 0 : it->second.count;
      if (now != top.count) {  // stale: the count changed since this entry was pushed
        if (now > 0 && now < top.count) heap_.push({now, top.key});
        continue;
      }
      if (now < opt_.min_frequency) break;  // the most frequent pair is too rare
      if (merge(top.key, it)) ++merges;
      if (progress && vocab_.tokens.size() - reported >= 64) {
        reported = vocab_.tokens.size();
        progress(0.5 + 0.5 * static_cast<double>(reported - start) /
                           static_cast<double>(std::max<size_t>(1, target - start)));
      }
    }
    return merges;
  }

 private:
  // Merges every occurrence of the pair in every word that holds it; returns false when the
  // merged text would be a special token's (the pair is dropped instead).
  bool merge(uint64_t key, std::unordered_map<uint64_t, PairInfo>::iterator it) {
    const int32_t a = key_left(key), b = key_right(key);
    std::string text = vocab_.tokens[a] + vocab_.tokens[b];
    if (special_ids_.count(text)) {
      pairs_.erase(it);
      return false;
    }
    int32_t z;
    if (auto found = normal_ids_.find(text); found != normal_ids_.end()) {
      z = found->second;  // the same text by another pair: reuse its id
    } else {
      z = static_cast<int32_t>(vocab_.tokens.size());
      vocab_.tokens.push_back(text);
      vocab_.types.push_back(TokenType::Normal);
      normal_ids_.emplace(std::move(text), z);
    }
    vocab_.merges.push_back(vocab_.tokens[a] + " " + vocab_.tokens[b]);

    std::vector<int32_t> affected = std::move(it->second.words);
    pairs_.erase(it);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());

    delta_.clear();
    added_.clear();
    for (int32_t w : affected) {
      auto& s = words_[w].sym;
      const int64_t c = words_[w].count;
      bool has = false;
      for (size_t j = 0; j + 1 < s.size() && !has; ++j) has = s[j] == a && s[j + 1] == b;
      if (!has) continue;  // a stale entry of the words list
      // Counting the whole word out and back in is simpler than patching neighbours, and just
      // as cheap: words are short.
      for (size_t j = 0; j + 1 < s.size(); ++j) delta_[pair_key(s[j], s[j + 1])] -= c;
      size_t k = 0;
      for (size_t j = 0; j < s.size();) {
        if (j + 1 < s.size() && s[j] == a && s[j + 1] == b) {
          s[k++] = z;
          j += 2;
        } else {
          s[k++] = s[j++];
        }
      }
      s.resize(k);
      for (size_t j = 0; j + 1 < s.size(); ++j) {
        const uint64_t p = pair_key(s[j], s[j + 1]);
        delta_[p] += c;
        if (s[j] == z || s[j + 1] == z) added_.emplace_back(p, w);
      }
    }
    for (const auto& [p, d] : delta_) {
      if (d == 0 || p == key) continue;
      auto pit = pairs_.find(p);
      if (pit == pairs_.end()) pit = pairs_.emplace(p, PairInfo{}).first;
      pit->second.count += d;
      if (d > 0) heap_.push({pit->second.count, p});
      if (pit->second.count <= 0) pairs_.erase(pit);
    }
    for (const auto& [p, w] : added_)
      if (auto pit = pairs_.find(p); pit != pairs_.end()) pit->second.words.push_back(w);
    return true;
  }

  Vocab& vocab_;
  const BpeTrainOptions& opt_;
  std::vector<Word> words_;
  std::unordered_map<uint64_t, PairInfo> pairs_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapOrder> heap_;
  std::unordered_map<std::string, int32_t> normal_ids_, special_ids_;
  std::unordered_map<uint64_t, int64_t> delta_;            // this merge's pair count changes
  std::vector<std::pair<uint64_t, int32_t>> added_;        // (new pair, word) of this merge
};

// The vocabulary before any merge: 256 byte tokens, then the special tokens.
Vocab base_vocab(const BpeTrainOptions& o, const std::vector<std::string>& specials) {
  Vocab v;
  v.model = "gpt2";
  v.pre = o.pre;
  v.name = o.name;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(byte_to_unicode(static_cast<uint8_t>(b)));
    v.types.push_back(TokenType::Normal);
  }
  for (const auto& s : specials) {
    v.tokens.push_back(s);
    v.types.push_back(TokenType::Control);
  }
  v.bos = 256;
  v.eos = 257;
  v.pad = 258;
  v.add_bos = true;
  v.add_eos = false;
  return v;
}

PreTokenizerSpec pre_spec(const BpeTrainOptions& o) {
  PreTokenizerSpec spec;
  if (!find_pretokenizer(o.pre, spec))
    throw Error("tokenizer train: pre-tokenizer '" + o.pre + "' is not known");
  return spec;
}

Vocab finish(WordCounter& counter, const BpeTrainOptions& o,
             const std::vector<std::string>& specials, const BpeProgress& progress,
             BpeTrainStats* stats, Clock::time_point t0) {
  BpeTrainStats st = counter.stats;
  st.unique_words = static_cast<int64_t>(counter.counts.size());
  if (st.words == 0) throw Error("tokenizer train: the training text is empty");
  st.count_seconds = seconds_since(t0);
  if (progress) progress(0.5);

  const auto t1 = Clock::now();
  Vocab v = base_vocab(o, specials);
  Merger merger(std::move(counter.counts), v, o);
  st.merges = merger.run(progress);
  st.merge_seconds = seconds_since(t1);
  if (progress) progress(1.0);
  if (stats) *stats = st;
  return v;
}

}  // namespace

void for_each_corpus_piece(const std::string& path,
                           const std::function<void(std::string_view)>& on_piece,
                           const std::function<void(uint64_t)>& on_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(path + ": no such file (expected a text or .jsonl corpus file)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading");
  const bool jsonl = ends_with(path, ".jsonl");
  std::string line, piece;
  uint64_t consumed = 0, reported = 0;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const bool had_newline = !in.eof();
    consumed += line.size() + (had_newline ? 1 : 0);
    if (jsonl) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(path + ":" + std::to_string(line_no) + ": not valid JSON (" + e.what() + ")");
      }
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        throw Error(path + ":" + std::to_string(line_no) +
                    ": expected a JSON object with a string field \"text\"");
      on_piece(j["text"].get_ref<const std::string&>());
    } else {
      if (piece.size() >= kPieceBytes && safe_cut_before(line)) {
        on_piece(piece);
        piece.clear();
      }
      piece += line;
      if (had_newline) piece += '\n';
    }
    if (on_bytes && consumed - reported >= kPieceBytes) on_bytes(reported = consumed);
  }
  if (in.bad()) throw Error(path + ": read error");
  if (!piece.empty()) on_piece(piece);
  if (on_bytes) on_bytes(consumed);
}

Vocab train_bpe(const std::vector<std::string>& input_files, const BpeTrainOptions& o,
                const BpeProgress& progress, BpeTrainStats* stats) {
  const auto t0 = Clock::now();
  const std::vector<std::string> specials = special_texts(o);
  if (input_files.empty()) throw Error("tokenizer train: no input files");
  uint64_t total = 0;
  for (const auto& f : input_files) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(f, ec))
      throw Error(f + ": no such file (expected a text or .jsonl corpus file)");
    total += std::filesystem::file_size(f, ec);
  }
  WordCounter counter(specials, pre_spec(o));
  uint64_t done = 0;
  for (const auto& f : input_files) {
    for_each_corpus_piece(
        f, [&](std::string_view piece) { counter.add(piece); },
        [&](uint64_t bytes) {
          if (progress && total > 0)
            progress(0.5 * static_cast<double>(done + bytes) / static_cast<double>(total));
        });
    done += std::filesystem::file_size(f);
  }
  return finish(counter, o, specials, progress, stats, t0);
}

Vocab train_bpe_texts(const std::vector<std::string>& texts, const BpeTrainOptions& o,
                      const BpeProgress& progress, BpeTrainStats* stats) {
  const auto t0 = Clock::now();
  const std::vector<std::string> specials = special_texts(o);
  WordCounter counter(specials, pre_spec(o));
  for (const auto& t : texts) counter.add(t);
  return finish(counter, o, specials, progress, stats, t0);
}

}  // namespace slm
