// GgufFile lookups and typed getters. Errors name the file and the key:
//   "model.gguf: metadata key 'llama.block_count': expected an integer, got string"
#include "core/error.h"
#include "io/gguf.h"

namespace slm {

namespace {

std::string what(const GgufFile& f, std::string_view key) {
  return f.path() + ": metadata key '" + std::string(key) + "'";
}

const GgufValue& require(const GgufFile& f, std::string_view key) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) throw Error(what(f, key) + " is missing");
  return *v;
}

const GgufValue& require_array(const GgufFile& f, std::string_view key, const char* expected) {
  const GgufValue& v = require(f, key);
  if (v.type != GgufType::ARRAY)
    throw Error(what(f, key) + ": expected " + expected + ", got " + v.type_string());
  return v;
}

}  // namespace

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufType::STRING)
    throw Error(what(*this, key) + ": expected a string, got " + v.type_string());
  return v.s;
}

std::string GgufFile::get_string(std::string_view key, std::string_view def) const {
  return has(key) ? get_string(key) : std::string(def);
}

int64_t GgufFile::get_int(std::string_view key) const {
  return require(*this, key).as_int(what(*this, key));
}

int64_t GgufFile::get_int(std::string_view key, int64_t def) const {
  return has(key) ? get_int(key) : def;
}

double GgufFile::get_float(std::string_view key) const {
  return require(*this, key).as_double(what(*this, key));
}

double GgufFile::get_float(std::string_view key, double def) const {
  return has(key) ? get_float(key) : def;
}

bool GgufFile::get_bool(std::string_view key, bool def) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return def;
  if (v->type != GgufType::BOOL)
    throw Error(what(*this, key) + ": expected a bool, got " + v->type_string());
  return v->u != 0;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = require_array(*this, key, "an array of string");
  if (v.item_type != GgufType::STRING)
    throw Error(what(*this, key) + ": expected an array of string, got " + v.type_string());
  std::vector<std::string> out;
  out.reserve(v.items.size());
  for (const GgufValue& item : v.items) out.push_back(item.s);
  return out;
}

std::vector<double> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue& v = require_array(*this, key, "an array of numbers");
  GgufValue probe;
  probe.type = v.item_type;
  if (!probe.is_number())
    throw Error(what(*this, key) + ": expected an array of numbers, got " + v.type_string());
  std::vector<double> out;
  out.reserve(v.items.size());
  const std::string w = what(*this, key);
  for (const GgufValue& item : v.items) out.push_back(item.as_double(w));
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue& v = require_array(*this, key, "an array of integers");
  GgufValue probe;
  probe.type = v.item_type;
  if (!probe.is_integer())
    throw Error(what(*this, key) + ": expected an array of integers, got " + v.type_string());
  std::vector<int64_t> out;
  out.reserve(v.items.size());
  const std::string w = what(*this, key);
  for (const GgufValue& item : v.items) out.push_back(item.as_int(w));
  return out;
}

}  // namespace slm
