// GgufStreamWriter: header first, then tensor data appended to a temporary file that is
// fsynced and renamed over the destination only when everything was written.
#include "formats/gguf_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <set>

#include "core/reader.h"

namespace slm {

namespace {

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Bytes of a tensor of this dtype and shape, or an error naming it.
Status tensor_size(const GgufTensorInfo& t, uint64_t* out) {
  if (t.name.empty()) return error("gguf stream: a tensor has an empty name");
  if (t.ne.empty() || t.ne.size() > 4) {
    return error("gguf stream: tensor '%s': %zu dims, need 1..4", t.name.c_str(), t.ne.size());
  }
  const DTypeTraits* tr = dtype_traits(t.dtype);
  if (!tr) return error("gguf stream: tensor '%s': unknown dtype", t.name.c_str());
  uint64_t rows = 1;
  for (size_t k = 0; k < t.ne.size(); ++k) {
    const int64_t d = t.ne[k];
    if (d <= 0) return error("gguf stream: tensor '%s': ne[%zu] = %lld", t.name.c_str(), k, (long long)d);
    if (k > 0 && !checked_mul(rows, static_cast<uint64_t>(d), &rows)) {
      return error("gguf stream: tensor '%s': shape overflows", t.name.c_str());
    }
  }
  uint64_t row = 0;
  if (!dtype_row_bytes(t.dtype, t.ne[0], &row)) {
    return error("gguf stream: tensor '%s': ne[0] = %lld is not a multiple of the %s block size",
                 t.name.c_str(), static_cast<long long>(t.ne[0]), tr->name);
  }
  if (!checked_mul(row, rows, out) || *out > (1ull << 62)) {
    return error("gguf stream: tensor '%s': size overflows", t.name.c_str());
  }
  return Status();
}

}  // namespace

GgufStreamWriter::~GgufStreamWriter() { abort(); }

void GgufStreamWriter::abort() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_.c_str());
  }
}

Status GgufStreamWriter::open(const std::string& path,
                              const std::vector<std::pair<std::string, GgufValue>>& metadata,
                              const std::vector<GgufTensorInfo>& tensors, uint32_t version,
                              uint64_t alignment) {
  if (fd_ >= 0) return error("gguf stream: %s: already open", path_.c_str());
  if (!alignment || (alignment & (alignment - 1)) || alignment > (1u << 30)) {
    return error("gguf stream: %s: alignment %" PRIu64 " is not a power of two", path.c_str(),
                 alignment);
  }
  // Readers take the alignment from general.alignment (default 32): the two must agree.
  uint64_t declared = 32;
  std::set<std::string> keys;
  for (const auto& [key, v] : metadata) {
    if (!keys.insert(key).second) {
      return error("gguf stream: %s: duplicate metadata key '%s'", path.c_str(), key.c_str());
    }
    if (key == "general.alignment") declared = v.u;
  }
  if (declared != alignment) {
    return error("gguf stream: %s: alignment %" PRIu64 " but general.alignment says %" PRIu64,
                 path.c_str(), alignment, declared);
  }
  std::vector<uint64_t> sizes(tensors.size());
  std::set<std::string> names;
  for (size_t i = 0; i < tensors.size(); ++i) {
    SLM_TRY(tensor_size(tensors[i], &sizes[i]).with_context(path));
    if (!names.insert(tensors[i].name).second) {
      return error("%s: gguf stream: tensor '%s': duplicate name", path.c_str(),
                   tensors[i].name.c_str());
    }
  }
  std::string header = gguf_header_bytes(metadata, tensors, sizes, version, alignment);
  path_ = path;
  tmp_ = path + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) return error("%s: cannot create: %s", tmp_.c_str(), std::strerror(errno));
  alignment_ = alignment;
  sizes_ = std::move(sizes);
  names_.clear();
  for (const auto& t : tensors) names_.push_back(t.name);
  cur_ = 0;
  cur_done_ = 0;
  written_ = 0;
  SLM_TRY(write_raw(header.data(), header.size()));
  SLM_TRY(pad_to_alignment());
  // Zero-sized tensors are impossible (every ne >= 1), so tensor 0 is the one to fill next.
  return Status();
}

Status GgufStreamWriter::write_raw(const void* data, uint64_t size) {
  const char* p = static_cast<const char*>(data);
  uint64_t done = 0;
  while (done < size) {
    const uint64_t chunk = std::min<uint64_t>(size - done, 1u << 30);
    ssize_t n = ::write(fd_, p + done, static_cast<size_t>(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = error("%s: write failed at offset %" PRIu64 ": %s", tmp_.c_str(), written_ + done,
                       n < 0 ? std::strerror(errno) : "no progress");
      abort();
      return s;
    }
    done += static_cast<uint64_t>(n);
  }
  written_ += size;
  return Status();
}

Status GgufStreamWriter::pad_to_alignment() {
  static const char zeros[64] = {};
  uint64_t pad = align_up(written_, alignment_) - written_;
  while (pad > 0) {
    const uint64_t n = std::min<uint64_t>(pad, sizeof zeros);
    SLM_TRY(write_raw(zeros, n));
    pad -= n;
  }
  return Status();
}

Status GgufStreamWriter::append(const void* data, uint64_t size) {
  if (fd_ < 0) return error("gguf stream: %s: not open", path_.c_str());
  while (size > 0) {
    if (cur_ >= sizes_.size()) {
      abort();
      return error("gguf stream: %s: more data than the declared tensors hold", path_.c_str());
    }
    const uint64_t room = sizes_[cur_] - cur_done_;
    if (size > room) {
      abort();
      return error("gguf stream: %s: tensor '%s': %" PRIu64 " bytes given past its %" PRIu64
                   "-byte end",
                   path_.c_str(), names_[cur_].c_str(), size - room, sizes_[cur_]);
    }
    SLM_TRY(write_raw(data, size));
    cur_done_ += size;
    size = 0;
    if (cur_done_ == sizes_[cur_]) {
      SLM_TRY(pad_to_alignment());
      ++cur_;
      cur_done_ = 0;
    }
  }
  return Status();
}

Status GgufStreamWriter::finish() {
  if (fd_ < 0) return error("gguf stream: %s: not open", path_.c_str());
  if (cur_ != sizes_.size()) {
    Status s = error("gguf stream: %s: tensor '%s' has %" PRIu64 " of %" PRIu64 " bytes",
                     path_.c_str(), names_[cur_].c_str(), cur_done_, sizes_[cur_]);
    abort();
    return s;
  }
  if (::fsync(fd_) != 0) {
    Status s = error("%s: fsync failed: %s", tmp_.c_str(), std::strerror(errno));
    abort();
    return s;
  }
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    Status s = error("%s: close failed: %s", tmp_.c_str(), std::strerror(errno));
    ::unlink(tmp_.c_str());
    return s;
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    Status s = error("%s: cannot rename to %s: %s", tmp_.c_str(), path_.c_str(), std::strerror(errno));
    ::unlink(tmp_.c_str());
    return s;
  }
  return Status();
}

}  // namespace slm
