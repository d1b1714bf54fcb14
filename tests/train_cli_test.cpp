// End-to-end tests of `slm train` through the CLI (and the commands around it: tokenizer train,
// data prepare, export, generate, eval). Referees: an uninterrupted run of the same config (a
// stopped, killed or interrupted run that is resumed must reproduce its per-step losses and final
// tensors bit for bit), ln(vocab) for the loss of a fresh model, the F32 model against its own
// F16/Q8_0 exports, and the error contract (exit 1, a message naming the file and the problem,
// never a crash, nothing overwritten).
//
// Models are tiny (dim 32-64, 2 layers) and runs use one thread so that each test takes well under
// 10 s on a loaded machine. No timing assertions: kill delays are random, scaled to a measured
// uninterrupted run, and every check holds whatever moment the kill lands at.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace slm {
namespace {

namespace fs = std::filesystem;
using test::CommandResult;
using test::read_text;
using test::run_slm;
using test::TempDir;
using Json = nlohmann::json;


void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << p;
}

// The small random-data model most tests train (28 832 parameters, steps of well under 1 ms).
std::string tiny_config(const fs::path& out_dir, int steps, int checkpoint_every) {
  return "random_data = true\nvocab_size = 64\nout_dir = \"" + out_dir.string() +
         "\"\ndim = 32\nn_layers = 2\nn_heads = 4\nseq_len = 16\nbatch_size = 4\nsteps = " +
         std::to_string(steps) + "\nwarmup_steps = 5\neval_every = 0\ncheckpoint_every = " +
         std::to_string(checkpoint_every) + "\nthreads = 1\n";
}

// A bigger one for the kill test: steps of a few ms and a 1.7 MB checkpoint written every 3 steps,
// so random kills land both in steps and in checkpoint writes.
std::string kill_config(const fs::path& out_dir) {
  return "random_data = true\nvocab_size = 512\nout_dir = \"" + out_dir.string() +
         "\"\ndim = 64\nn_layers = 2\nn_heads = 4\nseq_len = 32\nbatch_size = 8\nsteps = 60\n"
         "warmup_steps = 5\neval_every = 0\ncheckpoint_every = 3\nthreads = 1\n";
}

struct StepLine {
  double loss = 0, lr = 0, grad_norm = 0;
  uint64_t tokens = 0;
};

struct TrainLog {
  std::vector<int64_t> step_order;        // steps of the per-step lines, in file order
  std::map<int64_t, StepLine> steps;
  std::map<int64_t, double> val_loss;     // step -> val_loss
  std::vector<std::pair<std::string, int64_t>> events;  // (event, step)
  int64_t last_step() const { return step_order.empty() ? 0 : step_order.back(); }
};

TrainLog read_log(const fs::path& p) {
  TrainLog log;
  std::istringstream in(read_text(p));
  std::string line;
  while (std::getline(in, line)) {
    const Json j = Json::parse(line);  // every line of a log must be whole JSON
    if (j.contains("event")) {
      log.events.emplace_back(j["event"].get<std::string>(), j["step"].get<int64_t>());
    } else if (j.contains("val_loss")) {
      log.val_loss[j["step"].get<int64_t>()] = j["val_loss"].get<double>();
    } else {
      const int64_t s = j.at("step").get<int64_t>();
      log.step_order.push_back(s);
      log.steps[s] = {j.at("loss").get<double>(), j.at("lr").get<double>(), j.at("grad_norm").get<double>(),
                      j.at("tokens").get<uint64_t>()};
    }
  }
  return log;
}

int count_events(const TrainLog& log, const std::string& name) {
  int n = 0;
  for (const auto& [e, s] : log.events) n += e == name;
  return n;
}

// Steps 1..n each exactly once, in order, and every number equal (==) to the reference run's.
void expect_same_steps(const TrainLog& got, const TrainLog& ref, int64_t n) {
  ASSERT_EQ(got.step_order.size(), static_cast<size_t>(n)) << "steps logged (duplicates or gaps)";
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got.step_order[static_cast<size_t>(i)], i + 1) << "log line " << i;
  ASSERT_EQ(ref.steps.size(), static_cast<size_t>(n));
  for (const auto& [s, r] : ref.steps) {
    const StepLine& g = got.steps.at(s);
    EXPECT_EQ(g.loss, r.loss) << "step " << s;
    EXPECT_EQ(g.lr, r.lr) << "step " << s;
    EXPECT_EQ(g.grad_norm, r.grad_norm) << "step " << s;
    EXPECT_EQ(g.tokens, r.tokens) << "step " << s;
  }
}

// Same tensors (names, shapes, types, bytes: parameters and both AdamW moments) and the same
// training state keys. The files themselves differ (out_dir, elapsed time).
void expect_same_checkpoint(const fs::path& a, const fs::path& b) {
  auto fa = GgufFile::open(a.string());
  auto fb = GgufFile::open(b.string());
  ASSERT_GT(fa->tensors().size(), 3u);
  ASSERT_EQ(fa->tensors().size(), fb->tensors().size());
  int adam = 0;
  for (const GgufTensorInfo& t : fa->tensors()) {
    const GgufTensorInfo* u = fb->find_tensor(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(t.shape, u->shape) << t.name;
    EXPECT_EQ(t.type, u->type) << t.name;
    ASSERT_EQ(t.nbytes, u->nbytes) << t.name;
    EXPECT_EQ(std::memcmp(t.data, u->data, t.nbytes), 0) << "tensor " << t.name << " differs";
    adam += t.name.rfind("adam.", 0) == 0;
  }
  EXPECT_EQ(adam * 3, static_cast<int>(fa->tensors().size()) * 2) << "parameters + adam.m + adam.v";
  for (const char* k : {"slm.train.step", "slm.train.tokens_seen", "slm.train.adam_step"})
    EXPECT_EQ(fa->get_int(k), fb->get_int(k)) << k;
  EXPECT_EQ(fa->get_string("slm.train.rng"), fb->get_string("slm.train.rng"));
}

void expect_ok(const CommandResult& r, const std::string& what) {
  EXPECT_EQ(r.exit_code, 0) << what << "\nstdout: " << r.out << "\nstderr: " << r.err;
}

// A failure the user caused: exit 1 with "error: ..." naming each of `needles`, not a crash.
void expect_error(const CommandResult& r, const std::vector<std::string>& needles, const std::string& what) {
  EXPECT_EQ(r.exit_code, 1) << what << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find("error:"), std::string::npos) << what << "\nstderr: " << r.err;
  for (const std::string& n : needles)
    EXPECT_NE(r.err.find(n), std::string::npos) << what << ": the message should mention '" << n << "'\nstderr: " << r.err;
}

std::string train_args(const fs::path& config, const std::string& extra = "") {
  return "train -q -c " + test::quote(config) + (extra.empty() ? "" : " " + extra);
}

// --- 1. exact resume ------------------------------------------------------------------------------

TEST(TrainCli, StopAndResumeReproducesTheUninterruptedRun) {
  TempDir dir;
  const fs::path ref_dir = dir / "ref", a_dir = dir / "a", b_dir = dir / "b", c_dir = dir / "c";
  for (const auto& [name, out, every] : {std::tuple{"ref.toml", ref_dir, 5}, std::tuple{"a.toml", a_dir, 5},
                                         std::tuple{"b.toml", b_dir, 5}, std::tuple{"c.toml", c_dir, 5}})
    write_text(dir / name, tiny_config(out, 30, every));

  expect_ok(run_slm(train_args(dir / "ref.toml")), "reference run");
  const TrainLog ref = read_log(ref_dir / "log.jsonl");
  ASSERT_EQ(ref.steps.size(), 30u);
  // A fresh model on uniform random tokens starts at the entropy of the data: ln 64.
  EXPECT_NEAR(ref.steps.at(1).loss, std::log(64.0), 0.1);

  // a: stop after 12 (not a checkpoint step: the stop writes one anyway), resume to the end.
  expect_ok(run_slm(train_args(dir / "a.toml", "--stop-after 12")), "a: first segment");
  {
    const Checkpoint ck = open_checkpoint((a_dir / "checkpoint.gguf").string());
    EXPECT_EQ(ck.state.step, 12);
    const TrainLog log = read_log(a_dir / "log.jsonl");
    EXPECT_EQ(log.last_step(), 12);
    ASSERT_FALSE(log.events.empty());
    EXPECT_EQ(log.events.back(), (std::pair<std::string, int64_t>{"stopped", 12}));
    EXPECT_FALSE(fs::exists(a_dir / "model.gguf"));
  }
  expect_ok(run_slm(train_args(dir / "a.toml", "--resume")), "a: resume");
  const TrainLog a = read_log(a_dir / "log.jsonl");
  expect_same_steps(a, ref, 30);
  EXPECT_EQ(count_events(a, "resume"), 1);
  EXPECT_EQ(count_events(a, "end"), 1);
  expect_same_checkpoint(a_dir / "checkpoint.gguf", ref_dir / "checkpoint.gguf");

  // b: three segments, the first stopping mid-interval (13 with checkpoint_every 5: the stop
  // writes a checkpoint anyway), the second again mid-interval (22).
  expect_ok(run_slm(train_args(dir / "b.toml", "--stop-after 13")), "b: first segment");
  EXPECT_EQ(open_checkpoint((b_dir / "checkpoint.gguf").string()).state.step, 13);
  expect_ok(run_slm(train_args(dir / "b.toml", "--resume --stop-after 9")), "b: second segment");
  EXPECT_EQ(open_checkpoint((b_dir / "checkpoint.gguf").string()).state.step, 22);
  expect_ok(run_slm(train_args(dir / "b.toml", "--resume")), "b: third segment");
  expect_same_steps(read_log(b_dir / "log.jsonl"), ref, 30);
  expect_same_checkpoint(b_dir / "checkpoint.gguf", ref_dir / "checkpoint.gguf");

  // c: a checkpoint older than the last logged step (what a kill between checkpoints leaves):
  // keep the step-10 checkpoint, run on to 13, put the old checkpoint back and resume. The log
  // must be cut back to step 10 and then carry steps 11..30 once, with the reference's numbers.
  expect_ok(run_slm(train_args(dir / "c.toml", "--stop-after 10")), "c: to step 10");
  fs::copy_file(c_dir / "checkpoint.gguf", dir / "c-step10.gguf");
  expect_ok(run_slm(train_args(dir / "c.toml", "--resume --stop-after 3")), "c: to step 13");
  EXPECT_EQ(read_log(c_dir / "log.jsonl").last_step(), 13);
  fs::copy_file(dir / "c-step10.gguf", c_dir / "checkpoint.gguf", fs::copy_options::overwrite_existing);
  expect_ok(run_slm(train_args(dir / "c.toml", "--resume")), "c: resume from the older checkpoint");
  const TrainLog c = read_log(c_dir / "log.jsonl");
  expect_same_steps(c, ref, 30);
  for (const auto& [e, s] : c.events) EXPECT_LE(s, 30) << e;
  expect_same_checkpoint(c_dir / "checkpoint.gguf", ref_dir / "checkpoint.gguf");
}

TEST(TrainCli, ResumeMayExtendTheRunAndChangeBookkeeping) {
  TempDir dir;
  write_text(dir / "c.toml", tiny_config(dir / "run", 10, 5));
  expect_ok(run_slm(train_args(dir / "c.toml")), "10 steps");
  // Resuming a finished run (what a kill after its "end" line, before the exit, leaves) trains
  // nothing and logs one end, not two.
  expect_ok(run_slm(train_args(dir / "c.toml", "--resume")), "resume the finished run");
  {
    const TrainLog done = read_log(dir / "run" / "log.jsonl");
    EXPECT_EQ(done.step_order.size(), 10u);
    EXPECT_EQ(count_events(done, "resume"), 1);
    EXPECT_EQ(count_events(done, "end"), 1);
    ASSERT_FALSE(done.events.empty());
    EXPECT_EQ(done.events.back(), (std::pair<std::string, int64_t>{"end", 10}));
  }
  // steps, checkpoint_every, eval_every and threads may change on --resume.
  expect_ok(run_slm(train_args(dir / "c.toml", "--resume --steps 14 --set checkpoint_every=7 -t 2")), "extend");
  const TrainLog log = read_log(dir / "run" / "log.jsonl");
  EXPECT_EQ(count_events(log, "end"), 1);  // where the run ends now, at 14
  ASSERT_FALSE(log.events.empty());
  EXPECT_EQ(log.events.back(), (std::pair<std::string, int64_t>{"end", 14}));
  ASSERT_EQ(log.step_order.size(), 14u);
  for (size_t i = 0; i < log.step_order.size(); ++i) EXPECT_EQ(log.step_order[i], static_cast<int64_t>(i) + 1);
  EXPECT_EQ(open_checkpoint((dir / "run" / "checkpoint.gguf").string()).state.step, 14);
}

// --- 2. kills -----------------------------------------------------------------------------------

struct Child {
  pid_t pid = -1;
};

// Starts `slm ARGS...` with stdout and stderr going to `log`; a non-zero `max_bytes` caps its
// address space (RLIMIT_AS), so that a run that tries to allocate without bound fails instead
// of exhausting the machine.
Child spawn_slm(const std::vector<std::string>& args, const fs::path& log, rlim_t max_bytes = 0) {
  std::vector<std::string> all = {SLM_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log_path = log.string();
  Child c;
  c.pid = ::fork();
  if (c.pid == 0) {
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (max_bytes > 0) {
      const struct rlimit lim = {max_bytes, max_bytes};
      ::setrlimit(RLIMIT_AS, &lim);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return c;
}

// Waits up to `ms` for the child; if it is still running then, sends `sig` and reaps it.
// Returns the wait status and whether the signal was sent.
std::pair<int, bool> wait_or_signal(const Child& c, int ms, int sig) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) return {status, false};
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  ::kill(c.pid, sig);
  ::waitpid(c.pid, &status, 0);
  return {status, true};
}

// run_slm with a 512 MiB address-space cap and a 30 s limit; the exit code is 128 + signal for a
// crash or a kill.
CommandResult run_slm_limited(const std::vector<std::string>& args, const fs::path& scratch) {
  const fs::path out = scratch / "limited.out";
  const Child c = spawn_slm(args, out, rlim_t{512} << 20);
  const auto [status, killed] = wait_or_signal(c, 30000, SIGKILL);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = read_text(out);
  return r;
}

bool is_temp_name(const std::string& name) {
  return name.rfind(".checkpoint.gguf.tmp-", 0) == 0 || name.rfind(".log.jsonl.tmp-", 0) == 0;
}

TEST(TrainCli, SigkillAtRandomMomentsThenResumeReproducesTheRun) {
  TempDir dir;
  const fs::path ref_dir = dir / "ref", run_dir = dir / "run";
  write_text(dir / "ref.toml", kill_config(ref_dir));
  write_text(dir / "run.toml", kill_config(run_dir));

  const auto t0 = std::chrono::steady_clock::now();
  {
    const Child c = spawn_slm({"train", "-q", "-c", (dir / "ref.toml").string()}, dir / "ref.out");
    const auto [status, killed] = wait_or_signal(c, 60000, SIGKILL);
    ASSERT_FALSE(killed);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(dir / "ref.out");
  }
  const double full_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const TrainLog ref = read_log(ref_dir / "log.jsonl");
  ASSERT_EQ(ref.steps.size(), 60u);

  // Delays spread over 5%..45% of an uninterrupted run's wall time, so most kills land mid-run
  // whatever the machine's load; seeded, so the sequence of delays can be replayed.
  std::mt19937 rng(20250611);
  std::uniform_int_distribution<int> delay(std::max(20, static_cast<int>(full_ms * 0.05)),
                                           std::max(40, static_cast<int>(full_ms * 0.45)));
  int64_t last_ckpt_step = 0;
  int kills = 0, kills_with_temp = 0, resumes = 0, temp_files = 0;
  bool finished = false;
  for (int round = 0; round < 10 && !finished; ++round) {
    const bool resume = fs::exists(run_dir / "checkpoint.gguf");
    std::vector<std::string> args = {"train", "-q", "-c", (dir / "run.toml").string()};
    if (resume) args.push_back("--resume");
    resumes += resume;
    const int ms = delay(rng);
    const Child c = spawn_slm(args, dir / "run.out");
    const auto [status, killed] = wait_or_signal(c, ms, SIGKILL);
    if (!killed) {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << round << ": " << read_text(dir / "run.out");
      finished = true;
      break;
    }
    ++kills;
    SCOPED_TRACE("round " + std::to_string(round) + ", killed after " + std::to_string(ms) + " ms");
    // Nothing but the run's files and temporary files of interrupted atomic writes.
    // (A kill inside an atomic write leaves its temporary file: nothing can remove it at SIGKILL.)
    // A kill before the trainer made its directory leaves nothing at all, which is fine too.
    if (!fs::exists(run_dir)) continue;
    int temps = 0;
    for (const auto& e : fs::directory_iterator(run_dir)) {
      const std::string name = e.path().filename().string();
      if (is_temp_name(name)) ++temps;
      else EXPECT_TRUE(name == "checkpoint.gguf" || name == "log.jsonl") << "unexpected file " << name;
    }
    kills_with_temp += temps > temp_files;
    temp_files = temps;
    if (fs::exists(run_dir / "checkpoint.gguf")) {
      // Whatever the moment, the checkpoint is a whole, valid one from a checkpoint step.
      Checkpoint ck;
      ASSERT_NO_THROW(ck = open_checkpoint((run_dir / "checkpoint.gguf").string()));
      EXPECT_TRUE(ck.state.step % 3 == 0) << ck.state.step;
      EXPECT_GE(ck.state.step, last_ckpt_step);
      EXPECT_EQ(ck.state.tokens_seen, static_cast<uint64_t>(ck.state.step) * 8 * 32);
      // Log lines are written before the checkpoint of their step.
      if (fs::exists(run_dir / "log.jsonl")) {
        // A torn last line is allowed here (the resume drops it): parse only whole lines.
        const std::string text = read_text(run_dir / "log.jsonl");
        int64_t logged = 0;
        std::istringstream in(text.substr(0, text.rfind('\n') + 1));
        std::string line;
        while (std::getline(in, line)) {
          const Json j = Json::parse(line);
          if (j.contains("loss")) logged = std::max(logged, j["step"].get<int64_t>());
        }
        EXPECT_GE(logged, ck.state.step);
      }
      last_ckpt_step = ck.state.step;
    }
  }
  if (!finished) {
    const bool resume = fs::exists(run_dir / "checkpoint.gguf");
    resumes += resume;
    expect_ok(run_slm(train_args(dir / "run.toml", resume ? "--resume" : "")), "final segment");
  }
  std::printf("[ kills ] %d kills (%d inside a checkpoint or log write), %d resumes, reference run %.0f ms\n",
              kills, kills_with_temp, resumes, full_ms);
  EXPECT_GE(kills, 1) << "no kill landed before the run ended";

  const TrainLog got = read_log(run_dir / "log.jsonl");
  expect_same_steps(got, ref, 60);
  EXPECT_EQ(count_events(got, "end"), 1);
  expect_same_checkpoint(run_dir / "checkpoint.gguf", ref_dir / "checkpoint.gguf");
}

TEST(TrainCli, CtrlCSavesACheckpointAndTheRunResumesExactly) {
  TempDir dir;
  const fs::path ref_dir = dir / "ref", run_dir = dir / "run";
  write_text(dir / "ref.toml", kill_config(ref_dir));
  write_text(dir / "run.toml", kill_config(run_dir));
  expect_ok(run_slm(train_args(dir / "ref.toml")), "reference run");

  const Child c = spawn_slm({"train", "-q", "-c", (dir / "run.toml").string()}, dir / "run.out");
  // SIGINT once a few steps are logged.
  bool sent = false;
  int status = 0;
  for (int i = 0; i < 20000 && !sent; ++i) {
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) break;
    if (fs::exists(run_dir / "log.jsonl") && read_text(run_dir / "log.jsonl").find("\"step\":4,") != std::string::npos) {
      ::kill(c.pid, SIGINT);
      sent = true;
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  }
  if (sent) ::waitpid(c.pid, &status, 0);
  ASSERT_TRUE(sent) << "the run ended before step 4 was seen";
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(dir / "run.out");
  const TrainLog stopped = read_log(run_dir / "log.jsonl");
  ASSERT_FALSE(stopped.events.empty());
  if (stopped.events.back().first != "end") {  // the signal came before the last step
    EXPECT_EQ(stopped.events.back().first, "interrupted");
    const int64_t at = stopped.events.back().second;
    EXPECT_EQ(open_checkpoint((run_dir / "checkpoint.gguf").string()).state.step, at);
    EXPECT_EQ(stopped.last_step(), at);
    expect_ok(run_slm(train_args(dir / "run.toml", "--resume")), "resume after Ctrl-C");
  }
  expect_same_steps(read_log(run_dir / "log.jsonl"), read_log(ref_dir / "log.jsonl"), 60);
  expect_same_checkpoint(run_dir / "checkpoint.gguf", ref_dir / "checkpoint.gguf");
}

// --- 3. corrupt and mismatched checkpoints ---------------------------------------------------------

class TrainCliCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    write_text(dir_ / "c.toml", tiny_config(run_, 10, 5));
    expect_ok(run_slm(train_args(dir_ / "c.toml")), "10 steps");
    good_ = read_text(ckpt());
    log_ = read_text(run_ / "log.jsonl");
  }
  fs::path ckpt() const { return run_ / "checkpoint.gguf"; }
  void put(const std::string& bytes) { write_text(ckpt(), bytes); }
  // A failed --resume must leave the log as it was.
  void expect_log_untouched() { EXPECT_EQ(read_text(run_ / "log.jsonl"), log_); }

  TempDir dir_;
  fs::path run_ = dir_ / "run";
  std::string good_, log_;
};

TEST_F(TrainCliCheckpoint, TruncatedCheckpointIsAClearError) {
  for (size_t keep : {good_.size() / 2, good_.size() - 1, size_t{100}, size_t{10}, size_t{0}}) {
    put(good_.substr(0, keep));
    expect_error(run_slm(train_args(dir_ / "c.toml", "--resume")), {ckpt().string()},
                 "truncated to " + std::to_string(keep) + " bytes");
    expect_log_untouched();
  }
  // export reads the same file: the same kind of error.
  put(good_.substr(0, good_.size() / 2));
  expect_error(run_slm("export " + test::quote(ckpt()) + " -o " + test::quote(dir_ / "m.gguf")), {ckpt().string()}, "export");
  EXPECT_FALSE(fs::exists(dir_ / "m.gguf"));
}

TEST_F(TrainCliCheckpoint, FlippedHeaderBytesNeverCrash) {
  const size_t data_offset = GgufFile::open(ckpt().string())->data_offset();
  std::string bad = good_;
  std::memcpy(bad.data(), "GGUX", 4);
  put(bad);
  expect_error(run_slm(train_args(dir_ / "c.toml", "--resume")), {ckpt().string(), "GGUF"}, "bad magic");
  bad = good_;
  bad[4] = 99;  // version
  put(bad);
  expect_error(run_slm(train_args(dir_ / "c.toml", "--resume")), {ckpt().string(), "version"}, "bad version");

  // Bytes anywhere in the header and metadata (before the tensor data): either the run resumes
  // (a harmless byte, e.g. in general.name) or it stops with an error naming the file.
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> pos(0, data_offset - 1);
  int errors = 0;
  for (int i = 0; i < 24; ++i) {
    const size_t p = pos(rng);
    bad = good_;
    bad[p] = static_cast<char>(bad[p] ^ 0x5a);
    put(bad);
    const CommandResult r = run_slm_limited({"train", "-q", "-c", (dir_ / "c.toml").string(), "--resume"}, dir_.path());
    ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 1) << "byte " << p << ": exit " << r.exit_code << "\n" << r.err;
    if (r.exit_code == 1) {
      ++errors;
      EXPECT_NE(r.err.find(ckpt().string()), std::string::npos) << "byte " << p << ": " << r.err;
    }
    // Restore the log a run may have appended to.
    write_text(run_ / "log.jsonl", log_);
  }
  EXPECT_GT(errors, 0);
}

// A corrupt llama.block_count (one flipped high byte: 2 -> 1 509 949 442) must be an error, not
// an attempt to build a parameter layout of 13 billion tensors (which exhausts the memory of the
// machine before anything is checked). Run with a 512 MiB address-space cap.
TEST_F(TrainCliCheckpoint, HugeBlockCountIsAnErrorNotAnAllocation) {
  const std::string key = "llama.block_count";
  const size_t k = good_.find(key);
  ASSERT_NE(k, std::string::npos);
  const size_t value = k + key.size() + 4;  // after the u32 type tag
  ASSERT_EQ(good_.substr(value, 4), std::string("\x02\0\0\0", 4));
  std::string bad = good_;
  bad[value + 3] = 0x5a;
  put(bad);
  const CommandResult r =
      run_slm_limited({"train", "-q", "-c", (dir_ / "c.toml").string(), "--resume"}, dir_.path());
  expect_error(r, {ckpt().string(), "block_count"}, "resume");
  expect_log_untouched();

  // The same byte in a model (with a tokenizer, so that export and generate get past that check).
  const fs::path model = dir_ / "model.gguf";
  expect_ok(run_slm("init --dim 32 --layers 2 --heads 4 --ffn 96 --tie -o " + test::quote(model)), "init");
  std::string m = read_text(model);
  const size_t mk = m.find(key);
  ASSERT_NE(mk, std::string::npos);
  ASSERT_EQ(m.substr(mk + key.size() + 4, 4), std::string("\x02\0\0\0", 4));
  m[mk + key.size() + 4 + 3] = 0x5a;
  write_text(model, m);
  expect_error(run_slm_limited({"export", model.string(), "-o", (dir_ / "m.gguf").string()}, dir_.path()),
               {model.string(), "block_count"}, "export");
  expect_error(run_slm_limited({"generate", "-m", model.string(), "-p", "a", "-n", "1"}, dir_.path()),
               {model.string(), "block_count"}, "generate");
}

TEST_F(TrainCliCheckpoint, CheckpointFromAnotherConfigIsRefused) {
  expect_error(run_slm(train_args(dir_ / "c.toml", "--resume --set dim=64")),
               {ckpt().string(), "different config", "dim: checkpoint 32, now 64"}, "dim changed");
  expect_log_untouched();
  expect_error(run_slm(train_args(dir_ / "c.toml", "--resume --set lr=0.003")), {ckpt().string(), "different config"},
               "lr changed");
  expect_error(run_slm(train_args(dir_ / "c.toml", "--resume --set seed=99")), {ckpt().string(), "different config"},
               "seed changed");
  expect_error(run_slm(train_args(dir_ / "c.toml", "--resume --set vocab_size=65")),
               {ckpt().string(), "different config"}, "vocab changed");
  expect_log_untouched();
  EXPECT_EQ(read_text(ckpt()), good_);
}

TEST_F(TrainCliCheckpoint, AModelThatIsNotACheckpointIsRefused) {
  expect_ok(run_slm("init --dim 32 --layers 2 --heads 4 --ffn 96 --tie -o " + test::quote(dir_ / "model.gguf")), "init");
  fs::copy_file(dir_ / "model.gguf", ckpt(), fs::copy_options::overwrite_existing);
  expect_error(run_slm(train_args(dir_ / "c.toml", "--resume")), {ckpt().string(), "not a training checkpoint"},
               "a plain model");
  expect_log_untouched();
}

TEST_F(TrainCliCheckpoint, ResumeWithoutACheckpointAndFreshRunOverACheckpoint) {
  write_text(dir_ / "other.toml", tiny_config(dir_ / "empty", 10, 5));
  expect_error(run_slm(train_args(dir_ / "other.toml", "--resume")), {(dir_ / "empty" / "checkpoint.gguf").string()},
               "--resume without a checkpoint");
  // A fresh run into a directory with a checkpoint: refused, telling to use --resume, and
  // neither the checkpoint nor the log is touched.
  expect_error(run_slm(train_args(dir_ / "c.toml")), {run_.string(), "--resume"}, "fresh run over a checkpoint");
  expect_log_untouched();
  EXPECT_EQ(read_text(ckpt()), good_);
}

// --- 4. data pipeline ------------------------------------------------------------------------------

// A few KB of repetitive English: 40 documents of 3-6 sentences from a tiny grammar, separated by
// blank lines.
std::string make_corpus() {
  const std::vector<std::string> subj = {"the cat", "a dog", "the little bird", "my friend", "the old man", "a child"};
  const std::vector<std::string> verb = {"sees", "likes", "chases", "finds", "watches", "follows"};
  const std::vector<std::string> obj = {"the ball", "a red apple", "the green tree", "the river", "a small house", "the moon"};
  std::mt19937 rng(7);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  std::string out;
  for (int d = 0; d < 40; ++d) {
    if (d) out += "\n\n";
    const int n = 3 + static_cast<int>(rng() % 4);
    for (int s = 0; s < n; ++s) {
      std::string sentence = pick(subj) + " " + pick(verb) + " " + pick(obj) + ".";
      sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
      out += (s ? " " : "") + sentence;
    }
  }
  return out + "\n";
}

std::string data_config(const fs::path& data, const fs::path& out_dir) {
  return "data = \"" + data.string() + "\"\nout_dir = \"" + out_dir.string() +
         "\"\ndim = 32\nn_layers = 2\nn_heads = 4\nseq_len = 16\nbatch_size = 4\nsteps = 20\nwarmup_steps = 2\n"
         "lr = 1e-2\nmin_lr = 1e-3\ncheckpoint_every = 10\neval_every = 10\neval_batches = 2\nthreads = 1\n";
}

double eval_ppl(const fs::path& model, const fs::path& text) {
  const CommandResult r = run_slm("eval -t 1 --json -m " + test::quote(model) + " -f " + test::quote(text));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return NAN;
  return Json::parse(r.out).at("perplexity").get<double>();
}

TEST(TrainCli, DataPipelineEndToEnd) {
  TempDir dir;
  const fs::path corpus = dir / "corpus.txt", data = dir / "data", run = dir / "run";
  write_text(corpus, make_corpus());
  expect_ok(run_slm("tokenizer train -i " + test::quote(corpus) + " --vocab 300 -o " + test::quote(dir / "tokA.gguf")), "tokenizer A");
  expect_ok(run_slm("data prepare -i " + test::quote(corpus) + " -t " + test::quote(dir / "tokA.gguf") + " -o " + test::quote(data) +
                    " --val-fraction 0.1"),
            "data prepare");
  write_text(dir / "c.toml", data_config(data, run));
  expect_ok(run_slm(train_args(dir / "c.toml")), "train");

  const TrainLog log = read_log(run / "log.jsonl");
  ASSERT_EQ(log.steps.size(), 20u);
  EXPECT_NEAR(log.steps.at(1).loss, std::log(300.0), 0.2) << "a fresh model predicts about uniformly";
  double first = 0, last = 0;
  for (int s = 1; s <= 5; ++s) first += log.steps.at(s).loss / 5;
  for (int s = 16; s <= 20; ++s) last += log.steps.at(s).loss / 5;
  EXPECT_LT(last, first - 0.5) << "the loss must fall on a repetitive corpus";
  ASSERT_EQ(log.val_loss.size(), 2u);
  EXPECT_TRUE(log.val_loss.count(10) && log.val_loss.count(20));
  EXPECT_LT(log.val_loss.at(20), log.val_loss.at(10));
  EXPECT_LT(log.val_loss.at(20), std::log(300.0) - 0.5);
  ASSERT_TRUE(fs::exists(run / "model.gguf"));

  // Generation: the checkpoint is a llama GGUF too, and the F32 export has the same weights, so
  // greedy output is identical.
  const std::string gen = " -p 'The cat' -n 5 --temp 0 --ignore-eos -t 1";
  const CommandResult g_model = run_slm("generate -m " + test::quote(run / "model.gguf") + gen);
  expect_ok(g_model, "generate model.gguf");
  EXPECT_NE(g_model.err.find("generated 5 tokens"), std::string::npos) << g_model.err;
  const CommandResult g_ckpt = run_slm("generate -m " + test::quote(run / "checkpoint.gguf") + gen);
  expect_ok(g_ckpt, "generate checkpoint.gguf");
  EXPECT_EQ(g_model.out, g_ckpt.out);

  // Exports: F16 and Q8_0 load and score the corpus close to the F32 model.
  const double ppl = eval_ppl(run / "model.gguf", corpus);
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 100.0) << "20 steps on this corpus get far below the vocabulary size (300)";
  EXPECT_EQ(eval_ppl(run / "checkpoint.gguf", corpus), ppl);
  for (const auto& [dtype, tol] : {std::pair{"f16", 0.01}, std::pair{"q8_0", 0.03}}) {
    const fs::path out = dir / (std::string(dtype) + ".gguf");
    expect_ok(run_slm("export " + test::quote(run / "checkpoint.gguf") + " -o " + test::quote(out) + " --dtype " + dtype), dtype);
    expect_ok(run_slm("generate -m " + test::quote(out) + gen), std::string("generate ") + dtype);
    EXPECT_NEAR(eval_ppl(out, corpus) / ppl, 1.0, tol) << dtype;
  }

  // Shards of tokenizer A with tokenizer B in the directory: refused before any training.
  expect_ok(run_slm("tokenizer train -i " + test::quote(corpus) + " --vocab 280 -o " + test::quote(dir / "tokB.gguf")), "tokenizer B");
  fs::copy(data, dir / "mixed", fs::copy_options::recursive);
  fs::copy_file(dir / "tokB.gguf", dir / "mixed" / "tokenizer.gguf", fs::copy_options::overwrite_existing);
  write_text(dir / "mixed.toml", data_config(dir / "mixed", dir / "run-mixed"));
  expect_error(run_slm(train_args(dir / "mixed.toml")), {(dir / "mixed" / "train.bin").string(), "tokenizer"},
               "shards of another tokenizer");
  EXPECT_FALSE(fs::exists(dir / "run-mixed" / "checkpoint.gguf"));

  // Resuming a data run reproduces it too (the sampler's position is in the checkpoint), down to
  // the validation losses and the exported model's bytes.
  write_text(dir / "r.toml", data_config(data, dir / "run2"));
  expect_ok(run_slm(train_args(dir / "r.toml", "--stop-after 7")), "data run, first segment");
  expect_ok(run_slm(train_args(dir / "r.toml", "--resume")), "data run, resumed");
  const TrainLog log2 = read_log(dir / "run2" / "log.jsonl");
  expect_same_steps(log2, log, 20);
  EXPECT_EQ(log2.val_loss, log.val_loss);
  EXPECT_EQ(read_text(dir / "run2" / "model.gguf"), read_text(run / "model.gguf"));
  // The data directory the checkpoint was made with is part of its identity.
  expect_error(run_slm(train_args(dir / "r.toml", "--resume --data " + test::quote(dir / "mixed"))),
               {(dir / "run2" / "checkpoint.gguf").string()}, "resume on other data");
}

TEST(TrainCli, BrokenDataDirectories) {
  TempDir dir;
  const fs::path corpus = dir / "corpus.txt", data = dir / "data";
  write_text(corpus, make_corpus());
  expect_ok(run_slm("tokenizer train -i " + test::quote(corpus) + " --vocab 300 -o " + test::quote(dir / "tok.gguf")), "tokenizer");
  expect_ok(run_slm("data prepare -i " + test::quote(corpus) + " -t " + test::quote(dir / "tok.gguf") + " -o " + test::quote(data)), "prepare");
  write_text(dir / "c.toml", data_config(data, dir / "run"));

  // A truncated shard: the checksum / size check names it.
  const std::string train_bin = read_text(data / "train.bin");
  write_text(data / "train.bin", train_bin.substr(0, train_bin.size() - 6));
  expect_error(run_slm(train_args(dir / "c.toml")), {(data / "train.bin").string()}, "truncated train.bin");
  write_text(data / "train.bin", train_bin);
  // A missing val.bin.
  fs::rename(data / "val.bin", dir / "val.bin");
  expect_error(run_slm(train_args(dir / "c.toml")), {(data / "val.bin").string()}, "missing val.bin");
  fs::rename(dir / "val.bin", data / "val.bin");
  // A window longer than the data.
  expect_error(run_slm(train_args(dir / "c.toml", "--set seq_len=60000")), {(data / "train.bin").string(), "seq_len"},
               "seq_len longer than the data");
  // vocab_size that contradicts the tokenizer.
  expect_error(run_slm(train_args(dir / "c.toml", "--set vocab_size=64")), {"vocab_size"}, "vocab_size mismatch");
  // Sanity: the directory is fine again.
  expect_ok(run_slm(train_args(dir / "c.toml", "--steps 2 --set warmup_steps=1")), "2 steps");
}

// --- 5. config errors ------------------------------------------------------------------------------

TEST(TrainCli, ConfigErrorsAreClearAndNeverCrash) {
  TempDir dir;
  const std::string base = tiny_config(dir / "run", 10, 5);
  struct Case {
    std::string name, text, extra;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"unknown.toml", base + "dimm = 32\n", "", {"unknown.toml", "dimm"}},
      {"badint.toml", base + "n_kv_heads = \"two\"\n", "", {"badint.toml", "n_kv_heads", "two"}},
      {"badfloat.toml", base + "lr = \"fast\"\n", "", {"badfloat.toml", "lr"}},
      {"fractional.toml", base + "batch_size = 2.5\n", "", {"fractional.toml", "batch_size"}},
      {"schedule.toml", base + "schedule = \"linear\"\n", "", {"schedule.toml", "schedule", "linear"}},
      {"heads.toml", base, "--set n_heads=5", {"dim", "n_heads"}},
      {"oddhead.toml", base, "--set n_heads=32", {"head size"}},
      {"kvheads.toml", base, "--set n_kv_heads=3", {"n_kv_heads"}},
      {"minlr.toml", base, "--set min_lr=0.1", {"min_lr"}},
      {"warmup.toml", base, "--set warmup_steps=50", {"warmup_steps"}},
      {"steps.toml", base, "--set steps=0", {"steps"}},
      {"syntax.toml", base + "dimx = = 3\n", "", {"syntax.toml"}},
      {"array.toml", base + "seed = [1, 2]\n", "", {"array.toml", "seed"}},
      {"novocab.toml", "random_data = true\nsteps = 2\nwarmup_steps = 0\nout_dir = \"" + (dir / "nv").string() + "\"\n", "",
       {"vocab_size"}},
      {"nodata.toml", "steps = 2\nwarmup_steps = 0\nout_dir = \"" + (dir / "nd").string() + "\"\n", "", {"data"}},
      {"missingdata.toml",
       "data = \"" + (dir / "no-such-dir").string() + "\"\nsteps = 2\nwarmup_steps = 0\nout_dir = \"" + (dir / "md").string() + "\"\n",
       "", {(dir / "no-such-dir").string(), "slm data prepare"}},
      {"emptydata.toml", "data = \"" + dir.path().string() + "\"\nsteps = 2\nwarmup_steps = 0\nout_dir = \"" + (dir / "ed").string() + "\"\n",
       "", {(dir / "tokenizer.gguf").string()}},
      {"json.json", "{\"dim\": 32, \"bogus\": 1}", "", {"json.json", "bogus"}},
      {"badjson.json", "{\"dim\": 32,", "", {"badjson.json"}},
      {"config.yaml", base, "", {"config.yaml", ".toml"}},
      {"setbad.toml", base, "--set lr=abc", {"lr", "abc"}},
      {"setunknown.toml", base, "--set nope=1", {"nope"}},
      {"setnoeq.toml", base, "--set lr", {"key=value"}},
  };
  for (const Case& c : cases) {
    write_text(dir / c.name, c.text);
    expect_error(run_slm(train_args(dir / c.name, c.extra)), c.needles, c.name);
  }
  // No case got as far as writing a run.
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoint.gguf"));
  // A missing config file is a usage error (non-zero exit), not a crash.
  const CommandResult r = run_slm(train_args(dir / "absent.toml"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128);
  // The base config itself is fine (so the cases above fail for the reason given).
  write_text(dir / "ok.toml", base);
  expect_ok(run_slm(train_args(dir / "ok.toml")), "the base config");
}

}  // namespace
}  // namespace slm

namespace slm {
namespace {

// The test corpus with a 300-token tokenizer trained on it, prepared into dir/data (returned).
fs::path prepare_corpus_data(const fs::path& dir) {
  const fs::path corpus = dir / "corpus.txt", data = dir / "data";
  write_text(corpus, make_corpus());
  expect_ok(run_slm("tokenizer train -i " + test::quote(corpus) + " --vocab 300 -o " + test::quote(dir / "tok.gguf")), "tokenizer");
  expect_ok(run_slm("data prepare -i " + test::quote(corpus) + " -t " + test::quote(dir / "tok.gguf") + " -o " + test::quote(data) +
                    " --val-fraction 0.1"),
            "data prepare");
  return data;
}

// Fine-tuning (`init_from`): the run starts from the given model's weights (its first loss is
// that model's, far below a fresh model's log(vocab)), and a model with another tokenizer, another
// shape or no file at all is refused with a message naming it.
TEST(TrainCli, InitFromStartsFromTheModelAndRefusesMismatches) {
  TempDir dir;
  const fs::path data = prepare_corpus_data(dir.path());
  write_text(dir / "base.toml", data_config(data, dir / "base"));
  expect_ok(run_slm(train_args(dir / "base.toml")), "base run");
  const double base_last = read_log(dir / "base" / "log.jsonl").steps.at(20).loss;

  write_text(dir / "tune.toml", data_config(data, dir / "tune"));
  expect_ok(run_slm(train_args(dir / "tune.toml", "--set init_from=" + test::quote(dir / "base" / "model.gguf"))), "tune run");
  const double tune_first = read_log(dir / "tune" / "log.jsonl").steps.at(1).loss;
  EXPECT_LT(tune_first, std::log(300.0) - 0.5) << "the run must start from the trained weights";
  EXPECT_NEAR(tune_first, base_last, 0.5);

  write_text(dir / "wide.toml", data_config(data, dir / "wide"));
  expect_error(run_slm(train_args(dir / "wide.toml", "--set dim=64 --set init_from=" + test::quote(dir / "base" / "model.gguf"))),
               {"init_from", "shape"}, "shape mismatch");
  const fs::path other = fs::path(SLM_SOURCE_DIR) / "models" / "slm-brown-small-1m.gguf";
  if (fs::exists(other)) {
    write_text(dir / "other.toml", data_config(data, dir / "other"));
    expect_error(run_slm(train_args(dir / "other.toml", "--set init_from=" + test::quote(other))),
                 {"init_from", "different tokenizer"}, "tokenizer mismatch");
  }
  write_text(dir / "none.toml", data_config(data, dir / "none"));
  expect_error(run_slm(train_args(dir / "none.toml", "--set init_from=" + test::quote(dir / "missing.gguf"))),
               {"missing.gguf"}, "missing file");
}

// The "kl" of each step line of a log (distillation runs), by step.
std::map<int64_t, double> read_kl(const fs::path& p) {
  std::map<int64_t, double> out;
  std::istringstream in(read_text(p));
  for (std::string line; std::getline(in, line);) {
    const Json j = Json::parse(line);
    if (j.contains("kl")) out[j.at("step").get<int64_t>()] = j["kl"].get<double>();
  }
  return out;
}

TEST(TrainCli, TeacherDistillationRunsTheTeacherAndRefusesMismatches) {
  TempDir dir;
  const fs::path data = prepare_corpus_data(dir.path());
  // A wider teacher (another shape than the student's).
  write_text(dir / "teacher.toml", data_config(data, dir / "teacher"));
  expect_ok(run_slm(train_args(dir / "teacher.toml", "--set dim=64")), "teacher run");
  const fs::path teacher = dir / "teacher" / "model.gguf";

  // A fresh student learns towards it: the KL falls.
  write_text(dir / "student.toml", data_config(data, dir / "student"));
  expect_ok(run_slm(train_args(dir / "student.toml", "--set teacher=" + test::quote(teacher) + " --set distill_weight=0.7")),
            "student run");
  const std::map<int64_t, double> kl = read_kl(dir / "student" / "log.jsonl");
  ASSERT_EQ(kl.size(), 20u) << "every step logs the KL";
  EXPECT_GT(kl.at(1), 0.5) << "a random student is far from the trained teacher";
  EXPECT_LT(kl.at(20), 0.7 * kl.at(1));

  // The teacher's logits are the ones the engine computes: a student started from the teacher's
  // own weights starts at KL 0.
  write_text(dir / "self.toml", data_config(data, dir / "self"));
  expect_ok(run_slm(train_args(dir / "self.toml", "--set dim=64 --set steps=2 --set init_from=" + test::quote(teacher) +
                                                      " --set teacher=" + test::quote(teacher))),
            "self run");
  EXPECT_LT(read_kl(dir / "self" / "log.jsonl").at(1), 1e-4);

  const fs::path other = fs::path(SLM_SOURCE_DIR) / "models" / "slm-brown-small-1m.gguf";
  if (fs::exists(other)) {
    write_text(dir / "other.toml", data_config(data, dir / "other"));
    expect_error(run_slm(train_args(dir / "other.toml", "--set teacher=" + test::quote(other))),
                 {"teacher", "different tokenizer"}, "tokenizer mismatch");
  }
  write_text(dir / "none.toml", data_config(data, dir / "none"));
  expect_error(run_slm(train_args(dir / "none.toml", "--set teacher=" + test::quote(dir / "missing.gguf"))),
               {"missing.gguf"}, "missing file");
  write_text(dir / "weight.toml", data_config(data, dir / "weight"));
  expect_error(run_slm(train_args(dir / "weight.toml", "--set distill_weight=1.5 --set teacher=" + test::quote(teacher))),
               {"distill_weight"}, "weight out of range");
  write_text(dir / "temp.toml", data_config(data, dir / "temp"));
  expect_error(run_slm(train_args(dir / "temp.toml", "--set distill_temperature=0 --set teacher=" + test::quote(teacher))),
               {"distill_temperature"}, "temperature out of range");
  write_text(dir / "notllama.toml", data_config(data, dir / "notllama"));
  expect_error(run_slm(train_args(dir / "notllama.toml", "--set teacher=" + test::quote(dir / "corpus.txt"))),
               {"corpus.txt"}, "a teacher that is not a GGUF file");
}

}  // namespace
}  // namespace slm
