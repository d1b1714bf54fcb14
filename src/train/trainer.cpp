#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/export.h"
#include "train/lr_schedule.h"
#include "train/rng.h"
#include "train/token_shards.h"
#include "train/train_model.h"

namespace slm {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted.store(true); }

// Installs the Ctrl-C handler for the loop's lifetime: the step in progress finishes, a
// checkpoint is written, and the run stops (a second Ctrl-C is then the default: exit at once).
struct InterruptGuard {
  void (*previous)(int);
  InterruptGuard() : previous(std::signal(SIGINT, on_interrupt)) { g_interrupted.store(false); }
  ~InterruptGuard() { std::signal(SIGINT, previous); }
};

struct Data {
  std::unique_ptr<GgufFile> tokenizer_file;  // data/tokenizer.gguf
  uint64_t fingerprint = 0;
  std::unique_ptr<TokenShard> train, val;
  int64_t vocab = 0;
};

Data open_data(const TrainConfig& c) {
  Data d;
  if (c.random_data) {
    d.vocab = c.vocab_size;
    return d;
  }
  const fs::path dir = c.data;
  if (!fs::is_directory(dir))
    throw Error("data directory '" + c.data + "' does not exist (make it with `slm data prepare`)");
  const std::string tok_path = (dir / "tokenizer.gguf").string();
  d.tokenizer_file = GgufFile::open(tok_path);
  auto tok = Tokenizer::from_gguf(*d.tokenizer_file);
  d.fingerprint = tok->fingerprint();
  d.vocab = tok->vocab_size();
  if (c.vocab_size != 0 && c.vocab_size != d.vocab)
    throw Error("config vocab_size " + std::to_string(c.vocab_size) + " differs from the data's tokenizer (" +
                std::to_string(d.vocab) + " tokens); leave vocab_size at 0 to use the tokenizer's");
  for (auto [name, shard] : {std::pair{"train.bin", &d.train}, std::pair{"val.bin", &d.val}}) {
    const std::string p = (dir / name).string();
    *shard = TokenShard::open(p);
    check_shard_tokenizer(**shard, p, d.fingerprint, static_cast<uint32_t>(d.vocab));
  }
  if (d.train->size() < c.seq_len + 1)
    throw Error((dir / "train.bin").string() + " holds " + std::to_string(d.train->size()) +
                " tokens, fewer than one window of seq_len + 1 = " + std::to_string(c.seq_len + 1));
  return d;
}

// rows windows of t + 1 tokens at random offsets (or random tokens).
void sample_batch(const Data& d, Rng& rng, int64_t rows, int64_t t, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* row = out + r * (t + 1);
    if (!d.train) {
      for (int64_t i = 0; i <= t; ++i) row[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(d.vocab)));
    } else {
      const uint64_t start = rng.below(static_cast<uint64_t>(d.train->size() - t));
      d.train->read(static_cast<int64_t>(start), t + 1, row);
    }
  }
}

ModelConfig model_config(const TrainConfig& c, int64_t vocab) {
  ModelConfig m;
  m.arch = "llama";
  m.name = "slm-train d" + std::to_string(c.dim) + " l" + std::to_string(c.n_layers);
  m.n_vocab = vocab;
  m.dim = c.dim;
  m.n_layers = c.n_layers;
  m.n_heads = c.n_heads;
  m.n_kv_heads = c.n_kv_heads > 0 ? c.n_kv_heads : c.n_heads;
  m.head_dim = c.dim / c.n_heads;
  m.ffn_dim = c.ffn_dim > 0 ? c.ffn_dim : llama_ffn_dim(c.dim);
  m.ctx_len = c.seq_len;
  m.norm_eps = c.norm_eps;
  m.rope_base = c.rope_base;
  m.rope_style = RopeStyle::Adjacent;
  m.tied_output = c.tie_embeddings;
  return m;
}

// The settings that must not change when a run is resumed (everything but run length and
// bookkeeping).
nlohmann::json resume_identity(const TrainConfig& c) {
  nlohmann::json j = nlohmann::json::parse(c.to_json());
  for (const char* k : {"steps", "eval_every", "eval_batches", "checkpoint_every", "threads", "out_dir"}) j.erase(k);
  return j;
}

class Log {
 public:
  Log(const std::string& path, bool resume, int64_t keep_through_step) : path_(path) {
    if (resume && fs::exists(path)) {
      // Drop what was logged after the checkpoint (those steps will run again), a line torn
      // by a kill, and the "end" event: the resumed run writes it again where it ends (a kill
      // after the end was logged, before the export finished, or a run extended by --steps).
      std::istringstream in(read_file(path));
      std::string kept, line;
      while (std::getline(in, line)) {
        try {
          const auto j = nlohmann::json::parse(line);
          if (j.contains("step") && j["step"].get<int64_t>() > keep_through_step) continue;
          if (j.value("event", "") == "end") continue;
          kept += line + "\n";
        } catch (const nlohmann::json::exception&) {
        }
      }
      write_file_atomic(path, kept);
    } else if (!resume) {
      write_file_atomic(path, "");
    }
    f_ = std::fopen(path.c_str(), "a");
    if (!f_) throw Error("cannot open the log " + path + " for appending");
  }
  ~Log() { if (f_) std::fclose(f_); }
  void write(const nlohmann::json& j) {
    const std::string s = j.dump() + "\n";
    std::fwrite(s.data(), 1, s.size(), f_);
    std::fflush(f_);
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  const auto t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%02lld:%02lld", t / 60, t % 60);
  return buf;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

TrainSummary run_training(const TrainConfig& config_in, const TrainerOptions& opt) {
  TrainConfig c = config_in;
  c.validate();
  fs::create_directories(c.out_dir);
  const std::string ckpt_path = (fs::path(c.out_dir) / "checkpoint.gguf").string();
  const std::string log_path = (fs::path(c.out_dir) / "log.jsonl").string();
  const std::string model_path = (fs::path(c.out_dir) / "model.gguf").string();

  // Temporary files that a killed run left mid-write (io/atomic_file.h names them
  // .NAME.tmp-XXXXXX); they are never complete, and each can be as large as a checkpoint.
  for (const auto& entry : fs::directory_iterator(c.out_dir)) {
    const std::string name = entry.path().filename().string();
    for (const char* base : {".checkpoint.gguf.tmp-", ".log.jsonl.tmp-", ".model.gguf.tmp-"})
      if (name.rfind(base, 0) == 0) fs::remove(entry.path());
  }

  std::unique_ptr<Checkpoint> ckpt;
  if (opt.resume) {
    if (!fs::exists(ckpt_path)) throw Error("--resume: there is no checkpoint at " + ckpt_path);
    ckpt = std::make_unique<Checkpoint>(open_checkpoint(ckpt_path));
    const nlohmann::json was = resume_identity(ckpt->config), now = resume_identity(c);
    if (was != now) {
      std::string diff;
      for (const auto& [key, value] : was.items())
        if (!now.contains(key) || now[key] != value)
          diff += "\n  " + key + ": checkpoint " + value.dump() + ", now " + (now.contains(key) ? now[key].dump() : "unset");
      throw Error(ckpt_path + " was made with a different config; only steps, eval_every, eval_batches, "
                  "checkpoint_every and threads may change on --resume. Differences:" + diff);
    }
    if (ckpt->state.step > c.steps)
      throw Error(ckpt_path + " is at step " + std::to_string(ckpt->state.step) + ", past steps = " +
                  std::to_string(c.steps) + "; give --steps " + std::to_string(ckpt->state.step) +
                  " or more to continue it");
  } else if (fs::exists(ckpt_path)) {
    throw Error(c.out_dir + " already holds a checkpoint; pass --resume to continue it, or choose another out_dir");
  }

  const Data data = open_data(c);
  if (ckpt && ckpt->state.tokenizer_fingerprint != data.fingerprint)
    throw Error(ckpt_path + " was trained with a different tokenizer than " + c.data + "/tokenizer.gguf");
  const ModelConfig mc = model_config(c, data.vocab);
  ThreadPool pool(c.threads > 0 ? c.threads : default_thread_count());
  TrainModel model(mc);
  AdamWParams hp;
  hp.beta1 = c.beta1;
  hp.beta2 = c.beta2;
  hp.eps = c.adam_eps;
  hp.weight_decay = c.weight_decay;
  hp.decay_embeddings = c.decay_embeddings;
  AdamW adam(model.layout(), hp);

  TrainState state;
  state.tokenizer_fingerprint = data.fingerprint;
  Rng rng(c.seed ^ 0xda7a5eedull);
  if (ckpt) {
    restore_checkpoint(*ckpt, model, adam);
    state = ckpt->state;
    rng.set_state(state.rng);
  } else if (!c.init_from.empty()) {
    // Fine-tuning: the starting weights must read token ids as the data's tokenizer writes them.
    auto init = GgufFile::open(c.init_from);
    if (Tokenizer::from_gguf(*init)->fingerprint() != data.fingerprint)
      throw Error("init_from " + c.init_from + " uses a different tokenizer than " + c.data +
                  "/tokenizer.gguf; prepare the data with that model's tokenizer");
    try {
      model.load_params(*init);
    } catch (const Error& e) {
      throw Error("init_from " + c.init_from + ": " + e.what() + " (set the model shape to the one of that model)");
    }
  } else {
    model.init_random(c.seed, c.init_std);
  }
  ckpt.reset();  // unmaps the file before it is replaced

  // Logit-level distillation: the teacher runs forward on every micro-batch (no backward).
  std::unique_ptr<TrainModel> teacher;
  if (!c.teacher.empty()) {
    auto tf = GgufFile::open(c.teacher);
    if (Tokenizer::from_gguf(*tf)->fingerprint() != data.fingerprint)
      throw Error("teacher " + c.teacher + " uses a different tokenizer than " + c.data + "/tokenizer.gguf");
    const ModelConfig tc = ModelConfig::from_gguf(*tf);
    if (tc.n_vocab != mc.n_vocab)
      throw Error("teacher " + c.teacher + " has " + std::to_string(tc.n_vocab) + " output rows, the student " +
                  std::to_string(mc.n_vocab));
    if (tc.ctx_len > 0 && tc.ctx_len < c.seq_len)
      throw Error("teacher " + c.teacher + " has a context of " + std::to_string(tc.ctx_len) +
                  " positions, less than seq_len = " + std::to_string(c.seq_len));
    try {
      teacher = std::make_unique<TrainModel>(tc);
      teacher->load_params(*tf);
    } catch (const Error& e) {
      throw Error("teacher " + c.teacher + ": " + e.what());
    }
  }

  Log log(log_path, opt.resume, state.step);
  const int64_t T = c.seq_len, B = c.batch_size;
  const int64_t step_tokens = B * T * c.grad_accum;
  const int64_t n_params = model.layout().total();
  if (opt.resume) {
    log.write({{"event", "resume"}, {"step", state.step}});
  } else {
    log.write({{"event", "start"}, {"step", 0}, {"params", n_params}, {"config", nlohmann::json::parse(c.to_json())}});
  }
  const bool tty = opt.progress && isatty(2);
  if (opt.progress)
    std::fprintf(stderr, "training %s: %.2f M parameters, %lld steps of %lld tokens, %d threads%s\n",
                 mc.name.c_str(), static_cast<double>(n_params) / 1e6, static_cast<long long>(c.steps),
                 static_cast<long long>(step_tokens), pool.size(),
                 opt.resume ? (", resumed at step " + std::to_string(state.step)).c_str() : "");
  if (opt.progress && teacher)
    std::fprintf(stderr, "distilling from %s (%.2f M parameters): weight %.2f, temperature %.2f\n", c.teacher.c_str(),
                 static_cast<double>(teacher->layout().total()) / 1e6, c.distill_weight, c.distill_temperature);

  std::vector<int32_t> batch(static_cast<size_t>(B * (T + 1)));
  const float scale = 1.0f / static_cast<float>(step_tokens);

  // Validation: fixed windows spread evenly over the validation shard.
  auto evaluate = [&]() -> double {
    if (!data.val || data.val->size() < T + 1) return -1.0;
    const int64_t windows = c.eval_batches * B, span = data.val->size() - (T + 1);
    double total = 0.0;
    for (int64_t e = 0; e < c.eval_batches; ++e) {
      for (int64_t r = 0; r < B; ++r) {
        const int64_t k = e * B + r;
        const int64_t start = windows > 1 ? span * k / (windows - 1) : 0;
        data.val->read(start, T + 1, batch.data() + r * (T + 1));
      }
      total += model.forward_backward(pool, batch.data(), B, T, 0.0f);
    }
    return total / static_cast<double>(windows * T);
  };

  auto save = [&]() {
    state.rng = rng.state();
    save_checkpoint(ckpt_path, c, model, adam, state, data.tokenizer_file.get());
  };

  InterruptGuard guard;
  TrainSummary summary;
  std::vector<double> rates;
  const auto run_start = Clock::now();
  const double elapsed0 = state.elapsed_s;
  const int64_t first_step = state.step;
  int64_t saved_at = state.step;
  double last_loss = 0.0;
  const int64_t print_every = std::max<int64_t>(1, std::min<int64_t>(50, c.steps / 20));

  while (state.step < c.steps) {
    const auto t0 = Clock::now();
    const int64_t step = state.step;
    const float lr = learning_rate(c, step);
    model.zero_grads(pool);
    double loss = 0.0, kl = 0.0;
    for (int64_t a = 0; a < c.grad_accum; ++a) {
      sample_batch(data, rng, B, T, batch.data());
      if (teacher) {
        const float* teacher_logits = teacher->forward_logits(pool, batch.data(), B, T);
        const DistillTargets d{teacher_logits, c.distill_weight, c.distill_temperature, &kl};
        loss += model.forward_backward(pool, batch.data(), B, T, scale, &d);
      } else {
        loss += model.forward_backward(pool, batch.data(), B, T, scale);
      }
    }
    loss /= static_cast<double>(step_tokens);
    kl /= static_cast<double>(step_tokens);
    if (!std::isfinite(loss))
      throw Error("the loss became " + std::to_string(loss) + " at step " + std::to_string(step + 1) +
                  " (learning rate too high?); the last checkpoint is at step " + std::to_string(saved_at));
    const double gnorm = clip_grad_norm(pool, model.grads(), c.grad_clip);
    adam.update(pool, model.params(), model.grads(), lr);
    state.step = step + 1;
    state.tokens_seen += static_cast<uint64_t>(step_tokens);
    last_loss = loss;

    const double step_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double rate = static_cast<double>(step_tokens) / step_s;
    rates.push_back(rate);
    const double elapsed = elapsed0 + std::chrono::duration<double>(Clock::now() - run_start).count();
    nlohmann::json entry = {{"step", state.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", gnorm},
                            {"tokens", state.tokens_seen}, {"tokens_per_s", rate}, {"step_ms", step_s * 1e3},
                            {"elapsed_s", elapsed}};
    if (teacher) entry["kl"] = kl;  // mean KL(teacher || student) per target
    log.write(entry);

    const bool last = state.step == c.steps;
    if ((c.eval_every > 0 && state.step % c.eval_every == 0) || last) {
      const double vl = evaluate();
      if (vl >= 0) {
        summary.val_loss = vl;
        log.write({{"step", state.step}, {"val_loss", vl}, {"val_ppl", std::exp(vl)},
                   {"tokens", state.tokens_seen}, {"elapsed_s", elapsed}});
        if (opt.progress)
          std::fprintf(stderr, "%sstep %lld: validation loss %.4f, perplexity %.2f\n", tty ? "\r\033[K" : "",
                       static_cast<long long>(state.step), vl, std::exp(vl));
      }
    }
    const bool stop_now = g_interrupted.load() || (opt.stop_after > 0 && state.step - first_step >= opt.stop_after);
    state.elapsed_s = elapsed;
    if ((c.checkpoint_every > 0 && state.step % c.checkpoint_every == 0) || last || stop_now) {
      save();
      saved_at = state.step;
    }

    if (opt.progress && (tty || state.step % print_every == 0 || last)) {
      const double recent = median(std::vector<double>(rates.end() - std::min<size_t>(rates.size(), 20), rates.end()));
      const double eta = static_cast<double>(c.steps - state.step) * static_cast<double>(step_tokens) / recent;
      const int width = 24;
      const int filled = static_cast<int>(width * state.step / c.steps);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(width, '.');
      char kl_text[32] = "";
      if (teacher) std::snprintf(kl_text, sizeof kl_text, " kl %.4f", kl);
      std::fprintf(stderr, "%sstep %lld/%lld [%s] loss %.4f%s lr %.2e |g| %.3f %.0f tok/s elapsed %s ETA %s%s",
                   tty ? "\r\033[K" : "", static_cast<long long>(state.step), static_cast<long long>(c.steps),
                   bar.c_str(), loss, kl_text, lr, gnorm, recent, format_duration(elapsed).c_str(),
                   format_duration(eta).c_str(), tty ? "" : "\n");
      std::fflush(stderr);
    }
    if (stop_now) {
      log.write({{"event", g_interrupted.load() ? "interrupted" : "stopped"}, {"step", state.step}});
      if (opt.progress)
        std::fprintf(stderr, "%sstopped at step %lld; checkpoint saved to %s (continue with --resume)\n",
                     tty ? "\n" : "", static_cast<long long>(state.step), ckpt_path.c_str());
      break;
    }
  }
  if (tty) std::fprintf(stderr, "\n");

  summary.steps = state.step;
  summary.final_loss = last_loss;
  summary.seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
  summary.tokens_per_s = median(rates);
  if (state.step == c.steps) {
    if (saved_at != state.step) save();
    log.write({{"event", "end"}, {"step", state.step}, {"elapsed_s", state.elapsed_s}});
    if (data.tokenizer_file) {
      auto src = GgufFile::open(ckpt_path);
      export_model(*src, model_path, ExportOptions{});
      if (opt.progress) std::fprintf(stderr, "model written to %s\n", model_path.c_str());
    }
  }
  return summary;
}

}  // namespace slm
