// POSIX implementation of MappedFile, read_file and write_file_atomic.
#include "core/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace slm {

namespace {
const uint8_t k_empty = 0;
}

MappedFile::~MappedFile() {
  if (mapped_) munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (mapped_) munmap(const_cast<uint8_t*>(data_), size_);
    data_ = o.data_;
    size_ = o.size_;
    mapped_ = o.mapped_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
    o.mapped_ = false;
  }
  return *this;
}

Expected<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error("%s: cannot open: %s", path.c_str(), std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return error("%s: cannot stat: %s", path.c_str(), std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return error("%s: not a regular file", path.c_str());
  }
  auto mf = std::make_shared<MappedFile>();
  mf->path_ = path;
  mf->size_ = static_cast<uint64_t>(st.st_size);
  if (mf->size_ == 0) {
    mf->data_ = &k_empty;
  } else {
    void* p = mmap(nullptr, mf->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return error("%s: mmap failed: %s", path.c_str(), std::strerror(e));
    }
    mf->data_ = static_cast<const uint8_t*>(p);
    mf->mapped_ = true;
  }
  ::close(fd);
  return mf;
}

bool read_full(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t k = ::read(fd, c, n);
    if (k < 0 && errno == EINTR) continue;
    if (k == 0) errno = 0;
    if (k <= 0) return false;
    c += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool write_full(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::write(fd, c, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

Expected<std::string> read_file(const std::string& path, uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error("%s: cannot open: %s", path.c_str(), std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return error("%s: not a regular file", path.c_str());
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return error("%s: file is %lld bytes, limit is %llu", path.c_str(), (long long)st.st_size,
                 (unsigned long long)max_bytes);
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  if (!read_full(fd, out.data(), out.size())) {
    const int e = errno;
    ::close(fd);
    return error("%s: read failed: %s", path.c_str(), e == 0 ? "short read" : std::strerror(e));
  }
  ::close(fd);
  return out;
}

Status write_file_atomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return error("%s: cannot create: %s", tmp.c_str(), std::strerror(errno));
  if (!write_full(fd, data.data(), data.size())) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return error("%s: write failed: %s", tmp.c_str(), std::strerror(e));
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return error("%s: flush failed: %s", tmp.c_str(), std::strerror(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return error("%s: rename failed: %s", path.c_str(), std::strerror(e));
  }
  return Status();
}

}  // namespace slm
