// Tokenizer::from_gguf: reads the tokenizer.ggml.* metadata into a Vocab, with llama.cpp's
// defaults for absent keys, then validates and builds through Tokenizer::from_vocab.
#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace slm {

namespace {

const GgufValue& array_of(const GgufFile& f, const char* key, GgufType item) {
  const GgufValue* v = f.find(key);
  if (!v) throw Error(std::string(key) + " is missing");
  bool ok = v->type == GgufType::ARRAY;
  if (ok && item == GgufType::FLOAT32)
    ok = v->item_type == GgufType::FLOAT32 || v->item_type == GgufType::FLOAT64 ||
         v->item_type == GgufType::INT32;
  else if (ok && item == GgufType::INT32)
    ok = v->item_type != GgufType::STRING && v->item_type != GgufType::ARRAY &&
         v->item_type != GgufType::FLOAT32 && v->item_type != GgufType::FLOAT64 &&
         v->item_type != GgufType::BOOL;
  else if (ok)
    ok = v->item_type == item;
  if (!ok)
    throw Error(std::string(key) + " has type " + v->type_string() + ", expected array of " +
                std::string(gguf_type_name(item)));
  return *v;
}

int32_t read_id(const GgufFile& f, const char* key, int32_t def) {
  const GgufValue* v = f.find(key);
  if (!v) return def;
  const int64_t id = v->as_int(key);
  if (id < 0 || id > INT32_MAX)
    throw Error(std::string(key) + " = " + std::to_string(id) + " is not a valid token id");
  return static_cast<int32_t>(id);
}

bool read_bool(const GgufFile& f, const char* key, bool def) {
  const GgufValue* v = f.find(key);
  if (!v) return def;
  if (v->type == GgufType::BOOL) return v->u != 0;
  if (v->is_integer()) return v->as_int(key) != 0;
  throw Error(std::string(key) + " has type " + v->type_string() + ", expected bool");
}

Vocab read_vocab(const GgufFile& f) {
  Vocab v;
  const GgufValue* model = f.find("tokenizer.ggml.model");
  if (!model) throw Error("tokenizer.ggml.model is missing: the file carries no tokenizer");
  if (model->type != GgufType::STRING)
    throw Error("tokenizer.ggml.model has type " + model->type_string() + ", expected string");
  v.model = model->s;
  if (const GgufValue* pre = f.find("tokenizer.ggml.pre")) {
    if (pre->type != GgufType::STRING)
      throw Error("tokenizer.ggml.pre has type " + pre->type_string() + ", expected string");
    v.pre = pre->s;
  }
  if (const GgufValue* name = f.find("general.name"); name && name->type == GgufType::STRING)
    v.name = name->s;

  const GgufValue& tokens = array_of(f, "tokenizer.ggml.tokens", GgufType::STRING);
  v.tokens.reserve(tokens.items.size());
  for (const auto& t : tokens.items) v.tokens.push_back(t.s);
  const size_t n = v.tokens.size();

  if (f.has("tokenizer.ggml.scores")) {
    const GgufValue& scores = array_of(f, "tokenizer.ggml.scores", GgufType::FLOAT32);
    v.scores.reserve(scores.items.size());
    for (const auto& s : scores.items)
      v.scores.push_back(static_cast<float>(s.as_double("tokenizer.ggml.scores")));
  }
  if (f.has("tokenizer.ggml.token_type")) {
    const GgufValue& types = array_of(f, "tokenizer.ggml.token_type", GgufType::INT32);
    v.types.reserve(types.items.size());
    for (const auto& t : types.items) {
      const int64_t x = t.as_int("tokenizer.ggml.token_type");
      // Values outside the enum are "undefined", as llama.cpp reads them.
      v.types.push_back(x >= 0 && x <= 6 ? static_cast<TokenType>(x) : TokenType::Undefined);
    }
  }

  const bool spm = v.model == "llama";
  PreTokenizerSpec spec;
  if (v.model == "gpt2") {
    if (!f.has("tokenizer.ggml.merges"))
      throw Error("tokenizer.ggml.merges is missing: a gpt2 (byte-level BPE) tokenizer needs it");
    const GgufValue& merges = array_of(f, "tokenizer.ggml.merges", GgufType::STRING);
    v.merges.reserve(merges.items.size());
    for (const auto& m : merges.items) v.merges.push_back(m.s);
    find_pretokenizer(v.pre, spec);  // an unknown name is reported by from_vocab
  }

  // llama.cpp's defaults for SentencePiece vocabularies: <unk>=0, <s>=1, </s>=2.
  auto def = [&](int32_t id) { return spm && static_cast<size_t>(id) < n ? id : -1; };
  v.bos = read_id(f, "tokenizer.ggml.bos_token_id", def(1));
  v.eos = read_id(f, "tokenizer.ggml.eos_token_id", def(2));
  v.unk = read_id(f, "tokenizer.ggml.unknown_token_id", def(0));
  v.eot = read_id(f, "tokenizer.ggml.eot_token_id", -1);
  v.eom = read_id(f, "tokenizer.ggml.eom_token_id", -1);
  v.pad = read_id(f, "tokenizer.ggml.padding_token_id", -1);
  v.add_bos = read_bool(f, "tokenizer.ggml.add_bos_token", spm ? true : spec.add_bos);
  v.add_eos = read_bool(f, "tokenizer.ggml.add_eos_token", false);
  v.add_space_prefix = read_bool(f, "tokenizer.ggml.add_space_prefix", spm);
  return v;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  try {
    return from_vocab(read_vocab(file));
  } catch (const Error& e) {
    throw Error(file.path() + ": " + e.what());
  }
}

}  // namespace slm
