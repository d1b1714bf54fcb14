// Helpers shared by the tests: where the golden data is, temporary directories, running the CLI,
// the sampler's rules done the slow way.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace slm {
struct SamplerParams;
}

namespace slm::test {

// ../shared/data if present (tests that need it GTEST_SKIP() with a message otherwise).
std::optional<std::filesystem::path> shared_data();
// Skips the current test with a clear message when the shared data is absent.
#define SLM_REQUIRE_SHARED_DATA(var)                                                   \
  auto var##_opt = ::slm::test::shared_data();                                         \
  if (!var##_opt) GTEST_SKIP() << "../shared/data is absent: golden-data test skipped"; \
  const std::filesystem::path var = *var##_opt

// A fresh empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the built `slm` binary with the given arguments (a shell-quoted string) and optional stdin.
CommandResult run_slm(const std::string& args, const std::string& stdin_text = "");

std::string read_text(const std::filesystem::path& p);

// A path quoted for run_slm's argument string.
std::string quote(const std::filesystem::path& p);

// Random models made by `slm init` with the bundled model's vocabulary, so that tests of two-model
// strategies need nothing but the repository: a small and a large one, a second small one (proxy
// tuning's "tuned"), and one with the built-in 257-token vocabulary for vocabulary mismatches.
// Seeds seed_base + 1 .. + 4; made once per seed base and test binary. `error` is non-empty when a
// model could not be made (the bundled model is absent, or `slm init` failed).
struct InitPair {
  std::filesystem::path small, large, tuned, other_vocab;
  std::string error;
};
const InitPair& init_pair(int seed_base);

// The probability of every token under the sampler's rules (generate/sampler.h) done the slow,
// obvious way in double, as a referee for Sampler and for decoders that must reproduce its
// distribution: repetition penalty on each distinct history token (p.repeat_last_n is not
// applied: pass the history it covers), a full stable sort, greedy (temperature <= 0: all mass
// on the top token), top-k, top-p at temperature 1 over the top-k set, min-p, and a softmax of the
// kept logits over the temperature.
std::vector<double> reference_sampler_probs(std::vector<float> logits, const std::vector<int32_t>& history,
                                            const SamplerParams& p);

// Sets a kernel switch (set_use_avx2, set_use_avx512_vnni, ...) for a scope and restores the
// previous setting when the scope ends, also when an assertion returns early.
class KernelSwitch {
 public:
  KernelSwitch(bool (*set)(bool), bool on) : set_(set), prev_(set(on)) {}
  ~KernelSwitch() { set_(prev_); }
  KernelSwitch(const KernelSwitch&) = delete;
  KernelSwitch& operator=(const KernelSwitch&) = delete;

 private:
  bool (*set_)(bool);
  bool prev_;
};

}  // namespace slm::test
