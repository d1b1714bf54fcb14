// Pre-tokenizer regex table and the PCRE2-based splitter.
//
// The regex lists are those llama.cpp (src/llama-vocab.cpp) associates with each pre-tokenizer
// name; where llama.cpp rewrote a case-insensitive group as explicit classes, so do we. PCRE2 runs
// in UTF + UCP mode, so \p{L}, \p{N}, \s follow Unicode, and with DOLLAR_ENDONLY so that `$` means
// the end of the fragment as in ECMAScript. Each regex sees one fragment at a time, so lookaheads
// and `$` stop at the fragment's end, as in llama.cpp.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/byte_unicode.h"

namespace slm {

namespace {

// --- regexes, by family --------------------------------------------------------------------

const char* const kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

const char* const kContractions = R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))";

std::string llama3() {
  return std::string(kContractions) +
         R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}
std::string qwen2() {
  return std::string(kContractions) +
         R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

// Cased letters (Lu, Ll, Lt) as the DeepSeek LLM tokenizer lists them, written as code points.
const char* const kDeepseekCased =
    R"(\x{41}-\x{5A}\x{61}-\x{7A}\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF})"
    R"(\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386})"
    R"(\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F})"
    R"(\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA})"
    R"(\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15})"
    R"(\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
    R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4})"
    R"(\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124})"
    R"(\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F})"
    R"(\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
    R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})"
    R"(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})"
    R"(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF})"
    R"(\x{1E900}-\x{1E943})";

// CJK ideographs U+4E00..U+9FA5, U+0800..U+4E00 and Hangul U+AC00..U+D7FF.
const char* const kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

// Letters of the Tekken / GPT-4o patterns: upper-then-lower runs, as llama.cpp spells them
// with lookaheads (PCRE2 would also accept the \p{Lu}... original; we keep llama.cpp's form).
const char* const kTekken =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string gpt4o() {
  const std::string c = std::string(kContractions) + "?";
  return R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+)" + c +
         R"(|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*)" + c +
         R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

const char* const kPoro = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)";

// Han, Hiragana and Katakana runs (DeepSeek V3 family).
const char* const kHanKana = R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)";

struct Entry {
  std::vector<std::string> names;
  PreTokenizerSpec spec;
};

const std::vector<Entry>& table() {
  static const std::vector<Entry> t = [] {
    std::vector<Entry> e;
    // "default" (and an absent key): llama.cpp's fallback list.
    e.push_back({{"", "default"},
                 {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false, false}});
    e.push_back({{"gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4",
                  "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
                  "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe"},
                 {{kGpt2}, false, false}});
    e.push_back({{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                  "lfm2"},
                 {{llama3()}, true, true}});
    e.push_back({{"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"}, {{llama3()}, false, false}});
    e.push_back({{"qwen2", "deepseek-r1-qwen", "kormo", "megrez", "stablelm2", "hunyuan",
                  "solar-open"},
                 {{qwen2()}, false, false}});
    e.push_back({{"qwen35"},
                 {{std::string(kContractions) +
                   R"(|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
                  false, false}});
    e.push_back({{"deepseek-llm"},
                 {{"[\r\n]", std::string(R"(\s?[)") + kDeepseekCased + "]+",
                   R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
                   R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"},
                  false, false}});
    e.push_back({{"deepseek-coder"},
                 {{"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}, false, false}});
    e.push_back({{"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"},
                 {{R"(\p{N}{1,3})", kHanKana,
                   R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
                  false, false}});
    e.push_back({{"falcon"},
                 {{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}, false, false}});
    e.push_back({{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
                  "mellum2"},
                 {{R"(\p{N})", kGpt2}, false, false}});
    e.push_back({{"poro-chat", "bloom", "gpt3-finnish"}, {{kPoro}, false, false}});
    e.push_back({{"viking"}, {{kPoro, R"(\p{N})"}, false, false}});
    e.push_back({{"tekken"}, {{kTekken}, true, true}});
    e.push_back({{"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, {{gpt4o()}, false, false}});
    e.push_back({{"chameleon"},
                 {{"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )",
                   R"(\p{N})", R"([\p{P}!-/:-@\[-`{-~])", kGpt2},
                  false, true}});
    e.push_back({{"bailingmoe", "bailingmoe2", "llada-moe"},
                 {{R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)"},
                  false, false}});
    e.push_back({{"seed-coder"},
                 {{std::string(kContractions) +
                   R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)"},
                  false, false}});
    e.push_back({{"grok-2"}, {{qwen2()}, false, false}});
    return e;
  }();
  return t;
}

}  // namespace

bool find_pretokenizer(std::string_view name, PreTokenizerSpec& spec) {
  for (const auto& entry : table())
    for (const auto& n : entry.names)
      if (n == name) {
        spec = entry.spec;
        return true;
      }
  return false;
}

std::vector<std::string> pretokenizer_names() {
  std::vector<std::string> out;
  for (const auto& entry : table())
    for (const auto& n : entry.names)
      if (!n.empty()) out.push_back(n);
  return out;
}

// --- splitter ----------------------------------------------------------------------------------

struct RegexSplitter::Impl {
  std::vector<pcre2_code*> codes;
  ~Impl() {
    for (auto* c : codes) pcre2_code_free(c);
  }
};

RegexSplitter::RegexSplitter(const std::vector<std::string>& patterns) : impl_(new Impl) {
  for (const auto& p : patterns) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off,
                                     nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw Error("pre-tokenizer regex does not compile at offset " + std::to_string(err_off) +
                  " (" + reinterpret_cast<const char*>(msg) + "): " + p);
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; interpreter otherwise
    impl_->codes.push_back(code);
  }
}

RegexSplitter::~RegexSplitter() = default;

std::vector<std::pair<size_t, size_t>> RegexSplitter::split(std::string_view text) const {
  using Range = std::pair<size_t, size_t>;
  std::vector<Range> frags;     // current fragments
  std::vector<bool> opaque;     // fragment is an invalid byte: regexes skip it
  // Maximal valid UTF-8 runs, and each invalid byte alone.
  {
    size_t i = 0, run = 0;
    while (i < text.size()) {
      const size_t at = i;
      if (utf8_decode(text, i) < 0) {
        if (run < at) frags.push_back({run, at}), opaque.push_back(false);
        frags.push_back({at, at + 1}), opaque.push_back(true);
        run = at + 1;
      }
    }
    if (run < text.size()) frags.push_back({run, text.size()}), opaque.push_back(false);
  }

  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  if (!md) throw Error("pre-tokenizer: out of memory");
  std::vector<Range> next;
  std::vector<bool> next_opaque;
  for (pcre2_code* code : impl_->codes) {
    next.clear();
    next_opaque.clear();
    for (size_t f = 0; f < frags.size(); ++f) {
      const auto [fb, fe] = frags[f];
      if (opaque[f]) {
        next.push_back(frags[f]), next_opaque.push_back(true);
        continue;
      }
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + fb);
      const size_t len = fe - fb;
      size_t pos = 0, gap = 0;  // search start; start of the pending gap
      while (pos < len) {
        const int rc = pcre2_match(code, subject, len, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          pcre2_match_data_free(md);
          throw Error("pre-tokenizer: regex match failed (PCRE2 error " + std::to_string(rc) + ")");
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t ms = ov[0], me = ov[1];
        if (me == ms) {  // empty match: no split here, try from the next character
          pos = ms + utf8_len(static_cast<unsigned char>(text[fb + ms]));
          continue;
        }
        if (ms > gap) next.push_back({fb + gap, fb + ms}), next_opaque.push_back(false);
        next.push_back({fb + ms, fb + me}), next_opaque.push_back(false);
        gap = pos = me;
      }
      if (gap < len) next.push_back({fb + gap, fe}), next_opaque.push_back(false);
    }
    frags.swap(next);
    opaque.swap(next_opaque);
  }
  pcre2_match_data_free(md);
  return frags;
}

}  // namespace slm
