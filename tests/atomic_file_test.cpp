// write_file_atomic / read_file: content is replaced whole, a failing writer leaves the old file
// and no temporary behind, and unusable paths give slm::Error naming the path.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <stdexcept>

#include "core/error.h"
#include "io/atomic_file.h"
#include "test_util.h"

namespace slm {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(AtomicFile, WritesAndReplacesContent) {
  TempDir dir;
  const std::string p = (dir / "out.txt").string();
  write_file_atomic(p, "old content that is longer");
  EXPECT_EQ(read_file(p), "old content that is longer");
  write_file_atomic(p, [](std::FILE* f) { std::fputs("new", f); });
  EXPECT_EQ(test::read_text(p), "new");  // read independently of read_file
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"out.txt"});

  std::string big(3 << 20, '\0');
  for (size_t k = 0; k < big.size(); ++k) big[k] = static_cast<char>(k * 131 + (k >> 9));
  write_file_atomic(p, big);
  EXPECT_EQ(read_file(p), big);
  write_file_atomic(p, "");
  EXPECT_EQ(read_file(p), "");
}

TEST(AtomicFile, RelativePathInCurrentDirectory) {
  TempDir dir;
  const fs::path old = fs::current_path();
  fs::current_path(dir.path());
  EXPECT_NO_THROW(write_file_atomic("rel.txt", "x"));
  fs::current_path(old);
  EXPECT_EQ(read_file((dir / "rel.txt").string()), "x");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"rel.txt"});
}

TEST(AtomicFile, ThrowingWriterLeavesOldFileAndNoTemp) {
  TempDir dir;
  const std::string p = (dir / "keep.bin").string();
  write_file_atomic(p, "original");
  std::string msg = error_of([&] {
    write_file_atomic(p, [](std::FILE* f) {
      std::fputs("partial garbage", f);
      throw std::runtime_error("disk on fire");
    });
  });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("disk on fire"), std::string::npos) << msg;
  EXPECT_EQ(read_file(p), "original");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"keep.bin"});

  // An slm::Error from the writer comes through unchanged.
  msg = error_of([&] { write_file_atomic(p, [](std::FILE*) { throw Error("tensor 'x': bad"); }); });
  EXPECT_EQ(msg, "tensor 'x': bad");
  EXPECT_EQ(read_file(p), "original");

  // A new target that fails is never created.
  const std::string q = (dir / "new.bin").string();
  EXPECT_THROW(write_file_atomic(q, [](std::FILE*) { throw 42; }), Error);
  EXPECT_FALSE(fs::exists(q));
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"keep.bin"});
}

TEST(AtomicFile, UnusableDirectoryGivesError) {
  TempDir dir;
  const std::string missing = (dir / "no-such-dir" / "f.txt").string();
  std::string msg = error_of([&] { write_file_atomic(missing, "x"); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;

  write_file_atomic((dir / "plain").string(), "x");
  const std::string under_file = (dir / "plain" / "f.txt").string();
  msg = error_of([&] { write_file_atomic(under_file, "x"); });
  EXPECT_NE(msg.find(under_file), std::string::npos) << msg;
  EXPECT_NE(msg.find("Not a directory"), std::string::npos) << msg;

  // The target is a directory: the rename fails after the data was written; the temp goes.
  fs::create_directory(dir / "sub");
  msg = error_of([&] { write_file_atomic((dir / "sub").string(), "x"); });
  EXPECT_NE(msg.find("rename"), std::string::npos) << msg;
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"plain", "sub"}));
}

TEST(AtomicFile, ReadOnlyDirectory) {
  TempDir dir;
  fs::create_directory(dir / "ro");
  ::chmod((dir / "ro").c_str(), 0555);
  if (::access((dir / "ro").c_str(), W_OK) == 0) {
    ::chmod((dir / "ro").c_str(), 0755);
    GTEST_SKIP() << "running with permission to write anywhere (root): cannot test";
  }
  const std::string p = (dir / "ro" / "f.txt").string();
  std::string msg = error_of([&] { write_file_atomic(p, "x"); });
  ::chmod((dir / "ro").c_str(), 0755);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("Permission denied"), std::string::npos) << msg;
}

TEST(AtomicFile, KeepsModeOfReplacedFile) {
  TempDir dir;
  const std::string p = (dir / "m").string();
  write_file_atomic(p, "a");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);  // not mkstemp's 0600
  ::chmod(p.c_str(), 0640);
  write_file_atomic(p, "b");
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(ReadFile, Errors) {
  TempDir dir;
  const std::string missing = (dir / "missing").string();
  std::string msg = error_of([&] { read_file(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
  msg = error_of([&] { read_file(dir.path().string()); });
  EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("Is a directory"), std::string::npos) << msg;
}

}  // namespace
}  // namespace slm
