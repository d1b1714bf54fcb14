#include "train/checkpoint.h"

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/hash.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/model_metadata.h"
#include "train/token_shards.h"

namespace slm {
namespace {

constexpr uint32_t kCheckpointVersion = 1;

std::vector<uint8_t> float_bytes(const float* p, int64_t n) {
  std::vector<uint8_t> out(static_cast<size_t>(n) * sizeof(float));
  std::memcpy(out.data(), p, out.size());
  return out;
}


uint64_t parse_hex64(const std::string& s, const std::string& what) {
  if (s.size() != 16) throw Error("bad " + what + " '" + s + "'");
  uint64_t v = 0;
  for (char ch : s) {
    int d = (ch >= '0' && ch <= '9') ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
    if (d < 0) throw Error("bad " + what + " '" + s + "'");
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

void copy_tensor(const GgufFile& f, const std::string& name, const std::vector<int64_t>& shape,
                 float* dst, int64_t n) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) throw Error("checkpoint has no tensor '" + name + "'");
  if (t->type != DType::F32 || t->shape != shape || t->nbytes != static_cast<size_t>(n) * sizeof(float))
    throw Error("checkpoint tensor '" + name + "' has the wrong type or shape");
  std::memcpy(dst, t->data, t->nbytes);
}

// FNV-1a 64 over the training state's metadata and every parameter and moment tensor, in layout
// order: a flipped byte anywhere that matters (or a tensor offset pointing at the wrong data)
// is caught when the checkpoint is opened.
uint64_t state_checksum(const std::string& config_json, int64_t step, uint64_t tokens_seen,
                        const std::string& rng, const std::string& fingerprint,
                        const std::vector<std::pair<const float*, int64_t>>& tensors) {
  uint64_t h = kFnvOffset;
  auto add = [&h](const void* p, size_t n) { h = fnv1a64(p, n, h); };
  add(config_json.data(), config_json.size());
  add(&step, sizeof step);
  add(&tokens_seen, sizeof tokens_seen);
  add(rng.data(), rng.size());
  add(fingerprint.data(), fingerprint.size());
  for (const auto& [p, n] : tensors) add(p, static_cast<size_t>(n) * sizeof(float));
  return h;
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainConfig& config, const TrainModel& model,
                     const AdamW& opt, const TrainState& state, const GgufFile* tokenizer) {
  GgufWriter w;
  ModelConfig mc = model.config();
  if (mc.name.empty()) mc.name = "slm-train";
  set_model_metadata(w, mc, DType::F32);
  w.set_u32("slm.checkpoint.version", kCheckpointVersion);
  w.set_string("slm.train.config", config.to_json());
  w.set("slm.train.step", GgufValue::of_uint(GgufType::UINT64, static_cast<uint64_t>(state.step)));
  w.set("slm.train.tokens_seen", GgufValue::of_uint(GgufType::UINT64, state.tokens_seen));
  w.set("slm.train.elapsed_s", GgufValue::of_float(GgufType::FLOAT64, state.elapsed_s));
  std::string rng;
  for (uint64_t word : state.rng) rng += (rng.empty() ? "" : ":") + hex64(word);
  w.set_string("slm.train.rng", rng);
  w.set_string("slm.train.tokenizer_fingerprint", hex64(state.tokenizer_fingerprint));
  std::vector<std::pair<const float*, int64_t>> tensors;
  for (const std::vector<float>* buf : {&model.params(), &opt.m(), &opt.v()})
    for (const ParamTensor& t : model.layout().tensors()) tensors.emplace_back(buf->data() + t.offset, t.size);
  w.set_string("slm.train.checksum",
               hex64(state_checksum(config.to_json(), state.step, state.tokens_seen, rng,
                                    hex64(state.tokenizer_fingerprint), tensors)));
  w.set("slm.train.adam_step", GgufValue::of_uint(GgufType::UINT64, static_cast<uint64_t>(opt.step())));
  if (tokenizer) w.copy_metadata(*tokenizer, "tokenizer.");
  const AdamW& o = opt;
  for (const ParamTensor& t : model.layout().tensors())
    w.add_tensor(t.name, DType::F32, t.shape, float_bytes(model.params().data() + t.offset, t.size));
  for (const ParamTensor& t : model.layout().tensors())
    w.add_tensor("adam.m." + t.name, DType::F32, t.shape, float_bytes(o.m().data() + t.offset, t.size));
  for (const ParamTensor& t : model.layout().tensors())
    w.add_tensor("adam.v." + t.name, DType::F32, t.shape, float_bytes(o.v().data() + t.offset, t.size));
  w.write(path);
}

Checkpoint open_checkpoint(const std::string& path) {
  Checkpoint c;
  c.file = GgufFile::open(path);
  const GgufFile& f = *c.file;
  try {
    if (!f.has("slm.checkpoint.version"))
      throw Error("not a training checkpoint (no slm.checkpoint.version key)");
    const int64_t version = f.get_int("slm.checkpoint.version");
    if (version != kCheckpointVersion)
      throw Error("checkpoint format version " + std::to_string(version) + " is not supported (expected " +
                  std::to_string(kCheckpointVersion) + ")");
    const std::string json = f.get_string("slm.train.config");
    c.config = TrainConfig::from_json(json);
    c.model = ModelConfig::from_gguf(f);
    c.state.step = f.get_int("slm.train.step");
    c.state.tokens_seen = static_cast<uint64_t>(f.get_int("slm.train.tokens_seen"));
    c.state.elapsed_s = f.get_float("slm.train.elapsed_s");
    const std::string rng = f.get_string("slm.train.rng");
    if (rng.size() != 4 * 16 + 3) throw Error("bad slm.train.rng '" + rng + "'");
    for (int i = 0; i < 4; ++i) c.state.rng[static_cast<size_t>(i)] = parse_hex64(rng.substr(static_cast<size_t>(i) * 17, 16), "slm.train.rng");
    c.state.tokenizer_fingerprint = parse_hex64(f.get_string("slm.train.tokenizer_fingerprint"), "slm.train.tokenizer_fingerprint");
    if (c.state.step < 0 || f.get_int("slm.train.adam_step") != c.state.step)
      throw Error("inconsistent step counters");
    const ParamLayout layout(c.model);
    for (const ParamTensor& t : layout.tensors())
      for (const std::string& prefix : {std::string(), std::string("adam.m."), std::string("adam.v.")}) {
        const GgufTensorInfo* info = f.find_tensor(prefix + t.name);
        if (!info) throw Error("missing tensor '" + prefix + t.name + "'");
        if (info->type != DType::F32 || info->shape != t.shape)
          throw Error("tensor '" + prefix + t.name + "' has the wrong type or shape");
      }
    std::vector<std::pair<const float*, int64_t>> tensors;
    for (const std::string& prefix : {std::string(), std::string("adam.m."), std::string("adam.v.")})
      for (const ParamTensor& t : layout.tensors())
        tensors.emplace_back(reinterpret_cast<const float*>(f.find_tensor(prefix + t.name)->data), t.size);
    const uint64_t sum = state_checksum(json, c.state.step, c.state.tokens_seen, rng,
                                        f.get_string("slm.train.tokenizer_fingerprint"), tensors);
    if (parse_hex64(f.get_string("slm.train.checksum"), "slm.train.checksum") != sum)
      throw Error("checksum mismatch: the file is corrupt (its weights, optimizer state or training "
                  "state changed after it was written)");
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return c;
}

void restore_checkpoint(const Checkpoint& ckpt, TrainModel& model, AdamW& opt) {
  const GgufFile& f = *ckpt.file;
  for (const ParamTensor& t : model.layout().tensors()) {
    copy_tensor(f, t.name, t.shape, model.params().data() + t.offset, t.size);
    copy_tensor(f, "adam.m." + t.name, t.shape, opt.m().data() + t.offset, t.size);
    copy_tensor(f, "adam.v." + t.name, t.shape, opt.v().data() + t.offset, t.size);
  }
  opt.set_step(ckpt.state.step);
}

}  // namespace slm
