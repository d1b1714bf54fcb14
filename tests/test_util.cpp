#include "test_util.h"

#include "generate/sampler.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>

namespace slm::test {

std::optional<std::filesystem::path> shared_data() {
  if (const char* env = std::getenv("SLM_SHARED_DATA"))
    if (std::filesystem::is_directory(env)) return std::filesystem::path(env);
  std::filesystem::path p(SLM_SHARED_DATA_DIR);
  if (std::filesystem::is_directory(p / "models")) return p;
  return std::nullopt;
}

std::string quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

const InitPair& init_pair(int seed_base) {
  struct Made {
    TempDir dir;
    InitPair pair;
  };
  static std::mutex mu;
  static std::map<int, std::unique_ptr<Made>> made;
  std::lock_guard lock(mu);
  std::unique_ptr<Made>& slot = made[seed_base];
  if (slot) return slot->pair;
  slot = std::make_unique<Made>();
  InitPair& ip = slot->pair;
  const std::filesystem::path vocab = std::filesystem::path(SLM_SOURCE_DIR) / "models" / "slm-brown-6m.gguf";
  if (!std::filesystem::exists(vocab)) {
    ip.error = vocab.string() + " is absent";
    return ip;
  }
  ip.small = slot->dir / "small.gguf";
  ip.large = slot->dir / "large.gguf";
  ip.tuned = slot->dir / "tuned.gguf";
  ip.other_vocab = slot->dir / "bytes.gguf";
  const std::string v = " --vocab-from " + quote(vocab) + " --ctx 256 --tie";
  const auto seed = [&](int k) { return " --seed " + std::to_string(seed_base + k); };
  for (const std::string& args :
       {"init --dim 32 --layers 1 --heads 4 --ffn 64" + seed(1) + v + " -o " + quote(ip.small),
        "init --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128" + seed(2) + v + " -o " + quote(ip.large),
        "init --dim 32 --layers 1 --heads 4 --ffn 64" + seed(3) + v + " -o " + quote(ip.tuned),
        "init --dim 32 --layers 1 --heads 4 --ffn 64" + seed(4) + " -o " + quote(ip.other_vocab)}) {
    const CommandResult r = run_slm(args);
    if (r.exit_code != 0) ip.error += "slm " + args + ": " + r.err;
  }
  return ip;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("slm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CommandResult run_slm(const std::string& args, const std::string& stdin_text) {
  TempDir dir;
  const auto in = dir / "stdin", out = dir / "stdout", err = dir / "stderr";
  {
    std::ofstream f(in, std::ios::binary);
    f << stdin_text;
  }
  const std::string cmd = std::string("'") + SLM_BINARY + "' " + args + " <'" + in.string() +
                          "' >'" + out.string() + "' 2>'" + err.string() + "'";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

std::vector<double> reference_sampler_probs(std::vector<float> l, const std::vector<int32_t>& history,
                                            const SamplerParams& p) {
  std::vector<int32_t> distinct = history;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (int32_t id : distinct) l[id] = l[id] > 0 ? l[id] / p.repeat_penalty : l[id] * p.repeat_penalty;
  std::vector<int32_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  std::vector<double> out(l.size(), 0.0);
  if (p.temperature <= 0.0f) {
    out[static_cast<size_t>(order[0])] = 1.0;
    return out;
  }
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < order.size()) order.resize(static_cast<size_t>(p.top_k));
  const double mx = l[static_cast<size_t>(order[0])];
  double z = 0.0;
  for (int32_t id : order) z += std::exp(l[static_cast<size_t>(id)] - mx);
  // min-p and top-p both keep a prefix of the sorted order; the shorter one wins.
  std::vector<int32_t> kept;
  double cum = 0.0;
  for (int32_t id : order) {
    const double rel = std::exp(l[static_cast<size_t>(id)] - mx);
    if (rel < p.min_p) break;
    kept.push_back(id);
    cum += rel / z;
    if (p.top_p < 1.0f && cum >= p.top_p) break;
  }
  double kz = 0.0;
  for (int32_t id : kept) kz += std::exp((l[static_cast<size_t>(id)] - mx) / p.temperature);
  for (int32_t id : kept) out[static_cast<size_t>(id)] = std::exp((l[static_cast<size_t>(id)] - mx) / p.temperature) / kz;
  return out;
}

}  // namespace slm::test
