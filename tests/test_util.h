// Helpers shared by the tests: where the golden data is, temporary directories, running the CLI.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

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

}  // namespace slm::test
