// Atomic writes: mkstemp beside the target (same directory, hence same file system, so rename is
// atomic), write, fflush + fsync, rename over the target, then fsync the directory so the rename
// itself is durable. Any failure removes the temporary file.
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "core/error.h"

namespace slm {

namespace {

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string sys_error(const std::string& path, const std::string& what, int err) {
  return path + ": " + what + ": " + std::strerror(err);
}

// Best effort: a directory fsync makes the rename durable; some file systems refuse it.
void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  if (path_.empty()) throw Error("atomic write: empty path");
  const std::string dir = dir_of(path_);
  const size_t slash = path_.find_last_of('/');
  const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  std::string tmpl = (dir == "/" ? std::string("/") : dir + "/") + "." + base + ".tmp-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0) throw Error(sys_error(path_, "cannot create a temporary file in " + dir, errno));
  tmp_ = name.data();

  // Keep the mode of the file being replaced; a new file gets rw-r--r--.
  struct stat st {};
  mode_t mode = (::stat(path_.c_str(), &st) == 0) ? (st.st_mode & 07777) : 0644;
  ::fchmod(fd, mode);

  file_ = ::fdopen(fd, "wb");
  if (file_ == nullptr) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp_.c_str());
    throw Error(sys_error(path_, "cannot open a temporary file", err));
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_ != nullptr) {
    std::fclose(file_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFileWriter::fail(const std::string& what, int err) {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  ::unlink(tmp_.c_str());
  throw Error(sys_error(path_, what, err));
}

void AtomicFileWriter::commit() {
  if (file_ == nullptr) throw Error(path_ + ": atomic write already committed or failed");
  if (std::fflush(file_) != 0 || std::ferror(file_)) fail("write failed", errno);
  if (::fsync(::fileno(file_)) != 0) fail("fsync failed", errno);
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) fail("close failed", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename the temporary file over it", errno);
  fsync_dir(dir_of(path_));
}

void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& write) {
  AtomicFileWriter out(path);
  try {
    write(out.file());
  } catch (const Error&) {
    throw;  // the writer's destructor removes the temporary file
  } catch (const std::exception& e) {
    throw Error(path + ": write failed: " + e.what());
  } catch (...) {
    throw Error(path + ": write failed with an unknown exception");
  }
  out.commit();
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  write_file_atomic(path, [&](std::FILE* f) {
    if (!contents.empty() && std::fwrite(contents.data(), 1, contents.size(), f) != contents.size())
      throw Error(sys_error(path, "write failed", errno));
  });
}

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(sys_error(path, "cannot open", errno));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw Error(sys_error(path, "read failed", err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace slm
