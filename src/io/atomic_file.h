// Atomic file writes: data goes to a temporary file beside the target, is fsynced, then renamed
// over the target, so a kill at any moment leaves either the old file or the new one.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace slm {

// A file written as a stream and published atomically: the constructor creates ".NAME.tmp-XXXXXX"
// beside `path` (same directory, so the rename is atomic; mode of the file it replaces, else
// rw-r--r--), file() is open for writing (seeking back to patch a header is fine), commit()
// flushes, fsyncs, renames over `path` and fsyncs the directory. Destroying an uncommitted writer
// removes the temporary file. Errors throw slm::Error naming `path`.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  std::FILE* file() const { return file_; }
  const std::string& path() const { return path_; }
  void commit();
  // Removes the temporary file and throws slm::Error(path + ": " + what + ": " + strerror(err)).
  [[noreturn]] void fail(const std::string& what, int err);

 private:
  std::string path_, tmp_;
  std::FILE* file_ = nullptr;
};

// Calls write(FILE*) on a temporary file, then fsyncs and renames it to `path`. On any error
// (including an exception from `write`) the temporary file is removed and slm::Error is thrown.
void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& write);
void write_file_atomic(const std::string& path, std::string_view contents);

// Reads a whole file; throws slm::Error naming the path on failure.
std::string read_file(const std::string& path);

}  // namespace slm
