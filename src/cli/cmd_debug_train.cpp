// slm debug-train grads | adamw: the trainer's pieces on a given model and batch, for referee
// tests (tests/reference/train_test.py compares them with PyTorch autograd and torch.optim.AdamW).
//   grads: loss and the gradient of every parameter tensor, written as a GGUF ("loss" + one
//          tensor per parameter, same names and shapes).
//   adamw: N AdamW steps on the same batch; the loss before each update, as JSON.
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/config.h"
#include "train/adamw.h"
#include "train/train_model.h"

namespace slm::cli {
namespace {

struct DebugFlags {
  std::string model, tokens, out;
  int micro_batches = 1;
  int threads = 1;
  int steps = 10;
  float lr = 1e-3f, weight_decay = 0.0f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, grad_clip = 0.0f;
};

struct Batch {
  std::vector<int32_t> tokens;  // [rows, t + 1]
  int64_t rows = 0, t = 0;
};

Batch read_batch(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  if (!j.contains("tokens") || !j["tokens"].is_array() || j["tokens"].empty())
    throw Error(path + ": expected {\"tokens\": [[ids...], ...]}");
  Batch b;
  for (const auto& row : j["tokens"]) {
    if (!row.is_array() || row.size() < 2) throw Error(path + ": each row needs at least 2 token ids");
    if (b.rows == 0) b.t = static_cast<int64_t>(row.size()) - 1;
    if (static_cast<int64_t>(row.size()) != b.t + 1) throw Error(path + ": rows differ in length");
    for (const auto& id : row) b.tokens.push_back(id.get<int32_t>());
    ++b.rows;
  }
  return b;
}

std::unique_ptr<TrainModel> load(const std::string& path) {
  auto file = GgufFile::open(path);
  auto model = std::make_unique<TrainModel>(ModelConfig::from_gguf(*file));
  model->load_params(*file);
  return model;
}

// Mean NLL over the batch, gradients of that mean accumulated over `parts` micro-batches.
double loss_and_grads(TrainModel& m, ThreadPool& pool, const Batch& b, int parts) {
  if (parts < 1 || b.rows % parts != 0)
    throw Error("--micro-batches must divide the number of rows (" + std::to_string(b.rows) + ")");
  const int64_t rows = b.rows / parts;
  const float scale = 1.0f / static_cast<float>(b.rows * b.t);
  double total = 0.0;
  m.zero_grads();
  for (int p = 0; p < parts; ++p)
    total += m.forward_backward(pool, b.tokens.data() + p * rows * (b.t + 1), rows, b.t, scale);
  return total / static_cast<double>(b.rows * b.t);
}

void run_grads(const DebugFlags& f) {
  auto m = load(f.model);
  const Batch b = read_batch(f.tokens);
  ThreadPool pool(f.threads);
  const float loss = static_cast<float>(loss_and_grads(*m, pool, b, f.micro_batches));
  GgufWriter w;
  w.set_string("general.architecture", "slm-gradients");
  std::vector<uint8_t> bytes(sizeof(float));
  std::memcpy(bytes.data(), &loss, sizeof loss);
  w.add_tensor("loss", DType::F32, {1}, bytes);
  for (const ParamTensor& t : m->layout().tensors()) {
    std::vector<uint8_t> data(static_cast<size_t>(t.size) * sizeof(float));
    std::memcpy(data.data(), m->grads().data() + t.offset, data.size());
    w.add_tensor(t.name, DType::F32, t.shape, std::move(data));
  }
  w.write(f.out);
  std::printf("loss %.8f\n", loss);
}

void run_adamw(const DebugFlags& f) {
  auto m = load(f.model);
  const Batch b = read_batch(f.tokens);
  ThreadPool pool(f.threads);
  AdamWParams hp;
  hp.beta1 = f.beta1;
  hp.beta2 = f.beta2;
  hp.eps = f.eps;
  hp.weight_decay = f.weight_decay;
  AdamW opt(m->layout(), hp);
  nlohmann::json losses = nlohmann::json::array();
  for (int s = 0; s < f.steps; ++s) {
    losses.push_back(loss_and_grads(*m, pool, b, f.micro_batches));
    clip_grad_norm(pool, m->grads(), f.grad_clip);
    opt.update(pool, m->params(), m->grads(), f.lr);
  }
  write_file_atomic(f.out, nlohmann::json{{"losses", losses}}.dump() + "\n");
}

}  // namespace

void register_debug_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("debug-train", "Trainer internals on one batch, for referee tests");
  cmd->require_subcommand(1);
  auto f = std::make_shared<DebugFlags>();
  auto common = [f](CLI::App* sub) {
    sub->add_option("-m,--model", f->model, "F32 llama GGUF model")->required();
    sub->add_option("--tokens", f->tokens, "JSON {\"tokens\": [[ids...], ...]}: rows of seq_len + 1 ids")->required();
    sub->add_option("-o,--out", f->out, "output file")->required();
    sub->add_option("--micro-batches", f->micro_batches, "split the rows into K accumulated micro-batches");
    sub->add_option("-t,--threads", f->threads, "threads");
  };
  auto* grads = cmd->add_subcommand("grads", "Loss and parameter gradients, written as GGUF tensors");
  common(grads);
  grads->callback([f] { run_grads(*f); });
  auto* adamw = cmd->add_subcommand("adamw", "N AdamW steps on one batch; losses as JSON");
  common(adamw);
  adamw->add_option("--steps", f->steps, "optimizer steps");
  adamw->add_option("--lr", f->lr, "learning rate");
  adamw->add_option("--weight-decay", f->weight_decay, "decoupled weight decay (matrices except embeddings)");
  adamw->add_option("--beta1", f->beta1, "Adam beta1");
  adamw->add_option("--beta2", f->beta2, "Adam beta2");
  adamw->add_option("--eps", f->eps, "Adam epsilon");
  adamw->add_option("--grad-clip", f->grad_clip, "global gradient norm limit (0 = off)");
  adamw->callback([f] { run_adamw(*f); });
}

}  // namespace slm::cli
