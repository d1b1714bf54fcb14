// MappedFile: the whole file mapped read-only and private, so that tensor data can be used in
// place without copying. The descriptor is closed right after mapping (the mapping keeps the file).
#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace slm {

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw Error(path + ": " + what + ": " + std::strerror(err));
}
}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, "cannot stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  if (st.st_size == 0) {
    ::close(fd);
    throw Error(path + ": the file is empty");
  }
  size_ = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail(path, "cannot map " + std::to_string(size_) + " bytes", err);
  data_ = static_cast<const uint8_t*>(p);
  // Page-table entries of 4 KiB, not 2 MiB: the kernel maps the page cache's 2 MiB folios of a
  // file with one PMD entry each where the mapping's alignment allows (Linux 6.x, large folios),
  // and on this benchmark VM (Linux 6.18 guest) weights read through such entries streamed 2-4x
  // slower: q500m F32 decode at 1 thread 10.4 -> 18.3 tok/s with the advice (300 of its 1475 MB
  // were in 2 MiB folios; alternating slm bench runs), a plain loop over the same mapping 8 ->
  // 20 GB/s. SLM_MMAP_HUGEPAGES=1 leaves the kernel's choice (bare metal may gain from it).
  if (!std::getenv("SLM_MMAP_HUGEPAGES")) ::madvise(p, size_, MADV_NOHUGEPAGE);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace slm
