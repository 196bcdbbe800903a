// GGUF v2/v3 parser (every field bounded and validated through ByteReader) and writer.
// Layout: magic, version, n_tensors, n_kv, kv pairs, tensor infos, padding, aligned data.
#include "formats/gguf.h"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstring>

#include "core/reader.h"

namespace slm {

namespace {

// Caps on what one file may claim. Counts are also checked against the bytes remaining before
// anything is allocated, so memory stays proportional to the file size (integer arrays are
// widened to int64: at most 8 bytes of memory per byte of the file).
constexpr uint64_t k_max_key_len = 64 * 1024;
constexpr uint64_t k_max_string_len = 4ull << 20;  // chat templates are tens of KiB
constexpr uint64_t k_max_name_len = 64 * 1024;
constexpr int k_max_depth = 8;  // levels of arrays, the outermost one included
constexpr uint64_t k_default_alignment = 32;
constexpr uint64_t k_max_kv = 1u << 16;             // real files have about a hundred
constexpr uint64_t k_max_tensors = 1u << 20;        // real files have thousands
constexpr uint64_t k_max_nested_arrays = 1u << 16;  // real files have none
// Smallest encodings: a kv is key length (8) + type (4) + a 1-byte value; a tensor info is
// name length (8) + n_dims (4) + one ne (8) + type (4) + offset (8).
constexpr uint64_t k_min_kv_bytes = 13;
constexpr uint64_t k_min_tensor_info_bytes = 32;

bool is_valid_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufType::FLOAT64);
}

bool is_int_type(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::UINT16:
    case GgufType::INT16:
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::UINT64:
    case GgufType::INT64:
      return true;
    default:
      return false;
  }
}
bool is_unsigned_type(GgufType t) {
  return t == GgufType::UINT8 || t == GgufType::UINT16 || t == GgufType::UINT32 ||
         t == GgufType::UINT64;
}
bool is_float_type(GgufType t) {
  return t == GgufType::FLOAT32 || t == GgufType::FLOAT64;
}

// Bytes of the smallest encoding of one element of type t (for count-vs-remaining checks).
uint64_t min_elem_bytes(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL:
      return 1;
    case GgufType::UINT16:
    case GgufType::INT16:
      return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32:
      return 4;
    case GgufType::STRING:
      return 8;
    case GgufType::ARRAY:
      return 12;
    default:
      return 8;
  }
}

std::string vformat(const char* fmt, va_list ap) {
  char buf[512];
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap2);
  va_end(ap2);
  if (n < 0) return fmt;
  if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
  std::string s(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(s.data(), s.size(), fmt, ap);
  s.resize(static_cast<size_t>(n));
  return s;
}

// Shows at most 64 bytes of a name from the file in an error message.
std::string short_name(const std::string& s) {
  return s.size() <= 64 ? s : s.substr(0, 64) + "...";
}

class Parser {
 public:
  Parser(const uint8_t* data, uint64_t size, std::string what)
      : r_(data, size, what), what_(what) {}

  __attribute__((format(printf, 2, 3))) Status fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string msg = vformat(fmt, ap);
    va_end(ap);
    return error("%s: %s", what_.c_str(), msg.c_str());
  }

  ByteReader& r() { return r_; }

  // A u64 length then that many bytes. (The length's field name is only built on error: token
  // arrays hold hundreds of thousands of strings.)
  Status read_str(uint64_t max_len, std::string* out, const std::string& field) {
    uint64_t len = 0;
    if (r_.remaining() < sizeof len) {
      std::string lf = field + " length";
      return r_.read(&len, lf.c_str());
    }
    SLM_TRY(r_.read(&len, "length"));
    return r_.read_string(len, max_len, out, field.c_str());
  }

  // Arrays of arrays cost a GgufValue (~200 bytes) per 12 file bytes: cap their total count so
  // memory stays a small multiple of the file size.
  Status take_nested(uint64_t n, const std::string& field) {
    if (n > nested_budget_) {
      return fail("%s: more than %" PRIu64 " nested arrays in the file", field.c_str(),
                  k_max_nested_arrays);
    }
    nested_budget_ -= n;
    return Status();
  }

  Status read_scalar(GgufType t, int64_t* i, uint64_t* u, double* f, const std::string& field);
  Status read_value(GgufType t, GgufValue* out, int depth, const std::string& field);

 private:
  ByteReader r_;
  std::string what_;
  uint64_t nested_budget_ = k_max_nested_arrays;
};

template <class T>
Status read_int(ByteReader& r, int64_t* i, uint64_t* u, const std::string& field) {
  T v{};
  SLM_TRY(r.read(&v, field.c_str()));
  if constexpr (std::is_signed_v<T>) {
    *i = v;
    *u = static_cast<uint64_t>(*i);
  } else {
    *u = v;
    *i = static_cast<int64_t>(*u);
  }
  return Status();
}

Status Parser::read_scalar(GgufType t, int64_t* i, uint64_t* u, double* f,
                           const std::string& field) {
  switch (t) {
    case GgufType::UINT8:
      return read_int<uint8_t>(r_, i, u, field);
    case GgufType::INT8:
      return read_int<int8_t>(r_, i, u, field);
    case GgufType::UINT16:
      return read_int<uint16_t>(r_, i, u, field);
    case GgufType::INT16:
      return read_int<int16_t>(r_, i, u, field);
    case GgufType::UINT32:
      return read_int<uint32_t>(r_, i, u, field);
    case GgufType::INT32:
      return read_int<int32_t>(r_, i, u, field);
    case GgufType::UINT64:
      return read_int<uint64_t>(r_, i, u, field);
    case GgufType::INT64:
      return read_int<int64_t>(r_, i, u, field);
    case GgufType::BOOL: {
      uint64_t off = r_.offset();
      uint8_t b = 0;
      SLM_TRY(r_.read(&b, field.c_str()));
      if (b > 1)
        return fail("%s: bool byte %u is not 0 or 1 at offset %" PRIu64, field.c_str(), b, off);
      *i = b;
      *u = b;
      return Status();
    }
    case GgufType::FLOAT32: {
      float v = 0;
      SLM_TRY(r_.read(&v, field.c_str()));
      *f = v;
      return Status();
    }
    case GgufType::FLOAT64:
      return r_.read(f, field.c_str());
    default:
      return fail("%s: type %s is not a scalar", field.c_str(), gguf_type_name(t));
  }
}

Status Parser::read_value(GgufType t, GgufValue* out, int depth, const std::string& field) {
  out->type = t;
  if (t == GgufType::STRING) return read_str(k_max_string_len, &out->s, field);
  if (t != GgufType::ARRAY) {
    SLM_TRY(read_scalar(t, &out->i, &out->u, &out->f, field));
    out->b = t == GgufType::BOOL && out->i != 0;
    return Status();
  }
  uint64_t type_off = r_.offset();
  uint32_t et = 0;
  std::string ef = field + " array type";
  SLM_TRY(r_.read(&et, ef.c_str()));
  if (!is_valid_type(et)) {
    return fail("%s: unknown array element type %u at offset %" PRIu64, field.c_str(), et,
                type_off);
  }
  out->elem_type = static_cast<GgufType>(et);
  if (out->elem_type == GgufType::ARRAY && depth + 1 >= k_max_depth) {
    return fail("%s: arrays nested more than %d levels deep at offset %" PRIu64, field.c_str(),
                k_max_depth, type_off);
  }
  uint64_t n = 0;
  std::string nf = field + " array length";
  SLM_TRY(r_.read(&n, nf.c_str()));
  // Before any allocation: the claimed elements must fit in what is left of the file.
  SLM_TRY(r_.check_count(n, min_elem_bytes(out->elem_type), nf.c_str()));
  std::string elf = field + " element";
  switch (out->elem_type) {
    case GgufType::STRING:
      out->strings.resize(n);
      for (uint64_t k = 0; k < n; ++k) SLM_TRY(read_str(k_max_string_len, &out->strings[k], elf));
      break;
    case GgufType::ARRAY:
      SLM_TRY(take_nested(n, field));
      out->array.resize(n);
      for (uint64_t k = 0; k < n; ++k) {
        SLM_TRY(read_value(GgufType::ARRAY, &out->array[k], depth + 1, elf));
      }
      break;
    case GgufType::FLOAT32:
    case GgufType::FLOAT64:
      out->floats.resize(n);
      for (uint64_t k = 0; k < n; ++k) {
        int64_t i = 0;
        uint64_t u = 0;
        SLM_TRY(read_scalar(out->elem_type, &i, &u, &out->floats[k], elf));
      }
      break;
    default:
      out->ints.resize(n);
      for (uint64_t k = 0; k < n; ++k) {
        uint64_t u = 0;
        double f = 0;
        SLM_TRY(read_scalar(out->elem_type, &out->ints[k], &u, &f, elf));
      }
      break;
  }
  return Status();
}

uint32_t bswap32(uint32_t v) {
  return __builtin_bswap32(v);
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
      return "u8";
    case GgufType::INT8:
      return "i8";
    case GgufType::UINT16:
      return "u16";
    case GgufType::INT16:
      return "i16";
    case GgufType::UINT32:
      return "u32";
    case GgufType::INT32:
      return "i32";
    case GgufType::FLOAT32:
      return "f32";
    case GgufType::BOOL:
      return "bool";
    case GgufType::STRING:
      return "string";
    case GgufType::ARRAY:
      return "array";
    case GgufType::UINT64:
      return "u64";
    case GgufType::INT64:
      return "i64";
    case GgufType::FLOAT64:
      return "f64";
  }
  return "unknown";
}

uint64_t GgufValue::array_len() const {
  if (type != GgufType::ARRAY) return 0;
  switch (elem_type) {
    case GgufType::STRING:
      return strings.size();
    case GgufType::ARRAY:
      return array.size();
    case GgufType::FLOAT32:
    case GgufType::FLOAT64:
      return floats.size();
    default:
      return ints.size();
  }
}

GgufValue gguf_int(GgufType t, int64_t v) {
  GgufValue x;
  x.type = t;
  x.i = v;
  x.u = static_cast<uint64_t>(v);
  return x;
}
GgufValue gguf_uint(GgufType t, uint64_t v) {
  GgufValue x;
  x.type = t;
  x.u = v;
  x.i = static_cast<int64_t>(v);
  return x;
}
GgufValue gguf_float(GgufType t, double v) {
  GgufValue x;
  x.type = t;
  x.f = v;
  return x;
}
GgufValue gguf_bool(bool v) {
  GgufValue x = gguf_uint(GgufType::BOOL, v ? 1 : 0);
  x.b = v;
  return x;
}
GgufValue gguf_string(std::string v) {
  GgufValue x;
  x.type = GgufType::STRING;
  x.s = std::move(v);
  return x;
}
GgufValue gguf_int_array(GgufType elem, std::vector<int64_t> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem_type = elem;
  x.ints = std::move(v);
  return x;
}
GgufValue gguf_float_array(GgufType elem, std::vector<double> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem_type = elem;
  x.floats = std::move(v);
  return x;
}
GgufValue gguf_string_array(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem_type = GgufType::STRING;
  x.strings = std::move(v);
  return x;
}
GgufValue gguf_array_array(std::vector<GgufValue> children) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem_type = GgufType::ARRAY;
  x.array = std::move(children);
  return x;
}

// ---------------------------------------------------------------------------------------------
// Reader

Expected<GgufFile> GgufFile::open(const std::string& path) {
  SLM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::open(path));
  SLM_ASSIGN_OR_RETURN(GgufFile f, parse(map->data(), map->size(), path));
  f.map_ = std::move(map);
  return f;
}

Expected<GgufFile> GgufFile::parse(const uint8_t* data, uint64_t size, std::string what) {
  GgufFile f;
  f.path_ = what;
  f.data_ = data;
  f.size_ = size;
  Parser p(data, size, what);
  ByteReader& r = p.r();

  const uint8_t* magic = nullptr;
  SLM_TRY(r.read_bytes(4, &magic, "magic"));
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    return p.fail("magic: expected \"GGUF\", found bytes %02x %02x %02x %02x at offset 0", magic[0],
                  magic[1], magic[2], magic[3]);
  }
  uint32_t version = 0;
  SLM_TRY(r.read(&version, "version"));
  if (version != 2 && version != 3) {
    if (bswap32(version) == 2 || bswap32(version) == 3) {
      return p.fail("version: big-endian GGUF files are not supported (offset 4)");
    }
    if (version == 1) {
      return p.fail(
          "version: GGUF version 1 (32-bit counts) is not supported; need 2 or 3 "
          "(offset 4)");
    }
    return p.fail("version: unsupported GGUF version %u, need 2 or 3 (offset 4)", version);
  }
  f.version_ = version;

  uint64_t n_tensors = 0, n_kv = 0;
  SLM_TRY(r.read(&n_tensors, "n_tensors"));
  SLM_TRY(r.read(&n_kv, "n_kv"));
  SLM_TRY(r.check_count(n_kv, k_min_kv_bytes, "n_kv"));
  SLM_TRY(r.check_count(n_tensors, k_min_tensor_info_bytes, "n_tensors"));
  if (n_kv > k_max_kv) {
    return p.fail("n_kv: %" PRIu64 " exceeds the limit %" PRIu64, n_kv, k_max_kv);
  }
  if (n_tensors > k_max_tensors) {
    return p.fail("n_tensors: %" PRIu64 " exceeds the limit %" PRIu64, n_tensors, k_max_tensors);
  }

  f.kv_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    uint64_t key_off = r.offset();
    std::string key;
    std::string kf = "kv #" + std::to_string(k) + " key";
    SLM_TRY(p.read_str(k_max_key_len, &key, kf));
    std::string field = "kv '" + short_name(key) + "'";
    if (f.kv_index_.count(key)) {
      return p.fail("%s: duplicate key at offset %" PRIu64, field.c_str(), key_off);
    }
    uint64_t type_off = r.offset();
    uint32_t type = 0;
    std::string tf = field + " type";
    SLM_TRY(r.read(&type, tf.c_str()));
    if (!is_valid_type(type)) {
      return p.fail("%s: unknown value type %u at offset %" PRIu64, field.c_str(), type, type_off);
    }
    GgufValue v;
    SLM_TRY(p.read_value(static_cast<GgufType>(type), &v, 0, field));
    f.kv_index_.emplace(key, f.kv_.size());
    f.kv_.emplace_back(std::move(key), std::move(v));
  }

  f.alignment_ = k_default_alignment;
  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufType::UINT32) {
      return p.fail("kv 'general.alignment': must be u32, found %s", gguf_type_name(a->type));
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return p.fail("kv 'general.alignment': %" PRIu64 " is not a non-zero power of two", a->u);
    }
    f.alignment_ = a->u;
  }

  SLM_TRY(r.check_count(n_tensors, k_min_tensor_info_bytes, "n_tensors"));
  f.tensors_.reserve(n_tensors);
  std::vector<uint64_t> rel_offsets;
  rel_offsets.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    TensorView t;
    std::string nf = "tensor #" + std::to_string(k) + " name";
    SLM_TRY(p.read_str(k_max_name_len, &t.name, nf));
    std::string field = "tensor '" + short_name(t.name) + "'";
    if (f.tensor_index_.count(t.name)) {
      return p.fail("%s: duplicate tensor name at offset %" PRIu64, field.c_str(), r.offset());
    }
    uint64_t off = r.offset();
    uint32_t n_dims = 0;
    std::string df = field + " n_dims";
    SLM_TRY(r.read(&n_dims, df.c_str()));
    if (n_dims < 1 || n_dims > 4) {
      return p.fail("%s: n_dims %u out of range 1..4 at offset %" PRIu64, field.c_str(), n_dims,
                    off);
    }
    t.n_dims = static_cast<int>(n_dims);
    uint64_t nelem = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      off = r.offset();
      uint64_t ne = 0;
      std::string ef = field + " ne[" + std::to_string(d) + "]";
      SLM_TRY(r.read(&ne, ef.c_str()));
      if (ne == 0 || ne > static_cast<uint64_t>(INT64_MAX)) {
        return p.fail("%s: ne[%u] = %" PRId64 " must be positive at offset %" PRIu64, field.c_str(),
                      d, static_cast<int64_t>(ne), off);
      }
      if (!checked_mul(nelem, ne, &nelem) || nelem > static_cast<uint64_t>(INT64_MAX)) {
        return p.fail("%s: ne product overflows int64 at ne[%u] (offset %" PRIu64 ")",
                      field.c_str(), d, off);
      }
      t.ne[d] = static_cast<int64_t>(ne);
    }
    off = r.offset();
    uint32_t type = 0;
    std::string tf = field + " type";
    SLM_TRY(r.read(&type, tf.c_str()));
    const DTypeTraits* tr = dtype_traits(type);
    if (!tr) {
      return p.fail("%s: unknown ggml type id %u at offset %" PRIu64, field.c_str(), type, off);
    }
    t.dtype = static_cast<DType>(type);
    uint64_t row_bytes = 0;
    if (!dtype_row_bytes(t.dtype, t.ne[0], &row_bytes)) {
      return p.fail("%s: ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64,
                    field.c_str(), t.ne[0], tr->name, tr->block_size);
    }
    if (!checked_mul(row_bytes, static_cast<uint64_t>(t.rows()), &t.nbytes)) {
      return p.fail("%s: byte size overflows", field.c_str());
    }
    off = r.offset();
    uint64_t rel = 0;
    std::string of = field + " offset";
    SLM_TRY(r.read(&rel, of.c_str()));
    if (rel % f.alignment_ != 0) {
      return p.fail("%s: data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64
                    " (field at offset %" PRIu64 ")",
                    field.c_str(), rel, f.alignment_, off);
    }
    rel_offsets.push_back(rel);
    f.tensor_index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment after the tensor infos.
  uint64_t end_infos = r.offset();
  uint64_t data_off = 0;
  if (!checked_add(end_infos, f.alignment_ - 1, &data_off)) {
    return p.fail("data section: offset overflows");
  }
  data_off -= data_off % f.alignment_;
  f.data_offset_ = data_off;
  if (n_tensors > 0 && data_off > size) {
    return p.fail("data section: starts at offset %" PRIu64 " past the end of the file (%" PRIu64
                  " bytes)",
                  data_off, size);
  }
  for (size_t k = 0; k < f.tensors_.size(); ++k) {
    TensorView& t = f.tensors_[k];
    uint64_t start = 0, end = 0;
    if (!checked_add(data_off, rel_offsets[k], &start) || !checked_add(start, t.nbytes, &end) ||
        end > size) {
      return p.fail("tensor '%s': data [%" PRIu64 " + %" PRIu64 ", +%" PRIu64
                    " bytes) extends past the end of the file (%" PRIu64 " bytes)",
                    short_name(t.name).c_str(), data_off, rel_offsets[k], t.nbytes, size);
    }
    t.data = data + start;
  }
  // No two tensors may share bytes: sort by offset and compare neighbours.
  std::vector<size_t> order(f.tensors_.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return rel_offsets[a] < rel_offsets[b]; });
  for (size_t k = 1; k < order.size(); ++k) {
    size_t a = order[k - 1], b = order[k];
    if (rel_offsets[a] + f.tensors_[a].nbytes > rel_offsets[b]) {
      return p.fail("tensor '%s': data at offset %" PRIu64 " overlaps tensor '%s'",
                    short_name(f.tensors_[b].name).c_str(), rel_offsets[b],
                    short_name(f.tensors_[a].name).c_str());
    }
  }
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorView* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status missing(const std::string& path, std::string_view key) {
  return error("%s: kv '%.*s': missing", path.c_str(), static_cast<int>(key.size()), key.data());
}

Status wrong_type(const std::string& path, std::string_view key, const char* want,
                  const GgufValue& v) {
  std::string got = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) got += std::string(" of ") + gguf_type_name(v.elem_type);
  return error("%s: kv '%.*s': expected %s, found %s", path.c_str(), static_cast<int>(key.size()),
               key.data(), want, got.c_str());
}

}  // namespace

Expected<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(path_, key);
  if (v->type != GgufType::STRING) return wrong_type(path_, key, "string", *v);
  return v->s;
}

Expected<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(path_, key);
  if (!is_int_type(v->type)) return wrong_type(path_, key, "an integer", *v);
  if (v->type == GgufType::UINT64 && v->u > static_cast<uint64_t>(INT64_MAX)) {
    return error("%s: kv '%.*s': value %" PRIu64 " does not fit in int64", path_.c_str(),
                 static_cast<int>(key.size()), key.data(), v->u);
  }
  return v->i;
}

Expected<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(path_, key);
  if (is_float_type(v->type)) return v->f;
  if (is_int_type(v->type)) {
    return v->type == GgufType::UINT64 ? static_cast<double>(v->u) : static_cast<double>(v->i);
  }
  return wrong_type(path_, key, "a number", *v);
}

Expected<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(path_, key);
  if (v->type != GgufType::BOOL) return wrong_type(path_, key, "bool", *v);
  return v->b;
}

Expected<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(path_, key);
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING) {
    return wrong_type(path_, key, "array of string", *v);
  }
  return v->strings;
}

Expected<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(path_, key);
  if (v->type != GgufType::ARRAY || !is_int_type(v->elem_type)) {
    return wrong_type(path_, key, "array of integers", *v);
  }
  if (v->elem_type == GgufType::UINT64) {
    for (int64_t x : v->ints) {
      if (x < 0) {
        return error("%s: kv '%.*s': element %" PRIu64 " does not fit in int64", path_.c_str(),
                     static_cast<int>(key.size()), key.data(), static_cast<uint64_t>(x));
      }
    }
  }
  return v->ints;
}

Expected<std::vector<double>> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(path_, key);
  if (v->type != GgufType::ARRAY) return wrong_type(path_, key, "array of numbers", *v);
  if (is_float_type(v->elem_type)) return v->floats;
  if (!is_int_type(v->elem_type)) return wrong_type(path_, key, "array of numbers", *v);
  std::vector<double> out(v->ints.size());
  bool u = v->elem_type == GgufType::UINT64;
  for (size_t k = 0; k < out.size(); ++k) {
    out[k] = u ? static_cast<double>(static_cast<uint64_t>(v->ints[k]))
               : static_cast<double>(v->ints[k]);
  }
  return out;
}

Expected<int64_t> GgufFile::get_int_or(std::string_view key, int64_t dflt) const {
  return has(key) ? get_int(key) : Expected<int64_t>(dflt);
}
Expected<double> GgufFile::get_float_or(std::string_view key, double dflt) const {
  return has(key) ? get_float(key) : Expected<double>(dflt);
}
Expected<bool> GgufFile::get_bool_or(std::string_view key, bool dflt) const {
  return has(key) ? get_bool(key) : Expected<bool>(dflt);
}
Expected<std::string> GgufFile::get_string_or(std::string_view key, std::string dflt) const {
  return has(key) ? get_string(key) : Expected<std::string>(std::move(dflt));
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

template <class T>
void put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

void put_str(std::string* out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out->append(s);
}

// One scalar of type t from the integer pattern `bits` or the double `f`.
void put_scalar(std::string* out, GgufType t, uint64_t bits, double f) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL:
      put<uint8_t>(out, static_cast<uint8_t>(bits));
      break;
    case GgufType::UINT16:
    case GgufType::INT16:
      put<uint16_t>(out, static_cast<uint16_t>(bits));
      break;
    case GgufType::UINT32:
    case GgufType::INT32:
      put<uint32_t>(out, static_cast<uint32_t>(bits));
      break;
    case GgufType::UINT64:
    case GgufType::INT64:
      put<uint64_t>(out, bits);
      break;
    case GgufType::FLOAT32:
      put<float>(out, static_cast<float>(f));
      break;
    case GgufType::FLOAT64:
      put<double>(out, f);
      break;
    default:
      break;
  }
}

void put_value(std::string* out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::STRING:
      put_str(out, v.s);
      return;
    case GgufType::BOOL:
      put<uint8_t>(out, v.b ? 1 : 0);
      return;
    case GgufType::ARRAY:
      break;
    default:
      put_scalar(out, v.type, is_unsigned_type(v.type) ? v.u : static_cast<uint64_t>(v.i), v.f);
      return;
  }
  put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
  put<uint64_t>(out, v.array_len());
  switch (v.elem_type) {
    case GgufType::STRING:
      for (const auto& s : v.strings) put_str(out, s);
      break;
    case GgufType::ARRAY:
      for (const auto& c : v.array) put_value(out, c);
      break;
    case GgufType::FLOAT32:
    case GgufType::FLOAT64:
      for (double f : v.floats) put_scalar(out, v.elem_type, 0, f);
      break;
    default:
      for (int64_t i : v.ints) put_scalar(out, v.elem_type, static_cast<uint64_t>(i), 0);
      break;
  }
}

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

}  // namespace

std::string gguf_header_bytes(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                              const std::vector<GgufTensorInfo>& tensors,
                              const std::vector<uint64_t>& sizes, uint32_t version,
                              uint64_t alignment) {
  std::string out = "GGUF";
  put<uint32_t>(&out, version);
  put<uint64_t>(&out, tensors.size());
  put<uint64_t>(&out, metadata.size());
  for (const auto& [key, v] : metadata) {
    put_str(&out, key);
    put<uint32_t>(&out, static_cast<uint32_t>(v.type));
    put_value(&out, v);
  }
  uint64_t rel = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = tensors[i];
    put_str(&out, t.name);
    put<uint32_t>(&out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(&out, static_cast<uint64_t>(d));
    put<uint32_t>(&out, static_cast<uint32_t>(t.dtype));
    put<uint64_t>(&out, rel);
    rel += align_up(sizes[i], alignment);
  }
  return out;
}

GgufWriter::GgufWriter(uint32_t version, uint64_t alignment)
    : version_(version),
      alignment_(alignment && !(alignment & (alignment - 1)) ? alignment : k_default_alignment) {
  if (alignment_ != k_default_alignment) {
    set_u32("general.alignment", static_cast<uint32_t>(alignment_));
  }
}

void GgufWriter::set_value(const std::string& key, const GgufValue& v) {
  // Keep the layout alignment in step with a valid general.alignment the caller sets.
  if (key == "general.alignment" && v.type == GgufType::UINT32 && v.u && !(v.u & (v.u - 1))) {
    alignment_ = v.u;
  }
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = v;
      return;
    }
  }
  kv_.emplace_back(key, v);
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  set_value(key, gguf_uint(GgufType::UINT32, v));
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
  set_value(key, gguf_int(GgufType::INT32, v));
}
void GgufWriter::set_u64(const std::string& key, uint64_t v) {
  set_value(key, gguf_uint(GgufType::UINT64, v));
}
void GgufWriter::set_f32(const std::string& key, float v) {
  set_value(key, gguf_float(GgufType::FLOAT32, v));
}
void GgufWriter::set_bool(const std::string& key, bool v) {
  set_value(key, gguf_bool(v));
}
void GgufWriter::set_string(const std::string& key, const std::string& v) {
  set_value(key, gguf_string(v));
}
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  set_value(key, gguf_string_array(v));
}
void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  set_value(key, gguf_float_array(GgufType::FLOAT32, std::vector<double>(v.begin(), v.end())));
}
void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  set_value(key, gguf_int_array(GgufType::INT32, std::vector<int64_t>(v.begin(), v.end())));
}

Status GgufWriter::add_tensor(const std::string& name, DType dtype, std::vector<int64_t> ne,
                              std::string bytes) {
  for (const auto& t : tensors_) {
    if (t.name == name) return error("gguf writer: tensor '%s': duplicate name", name.c_str());
  }
  if (ne.empty() || ne.size() > 4) {
    return error("gguf writer: tensor '%s': %zu dims, need 1..4", name.c_str(), ne.size());
  }
  const DTypeTraits* tr = dtype_traits(dtype);
  if (!tr) return error("gguf writer: tensor '%s': unknown dtype", name.c_str());
  uint64_t n = 1;
  for (int64_t d : ne) {
    if (d <= 0 || !checked_mul(n, static_cast<uint64_t>(d), &n) ||
        n > static_cast<uint64_t>(INT64_MAX)) {
      return error("gguf writer: tensor '%s': bad shape", name.c_str());
    }
  }
  uint64_t row = 0, total = 0;
  if (!dtype_row_bytes(dtype, ne[0], &row)) {
    return error("gguf writer: tensor '%s': ne[0] = %lld is not a multiple of the %s block size",
                 name.c_str(), static_cast<long long>(ne[0]), tr->name);
  }
  if (!checked_mul(row, n / static_cast<uint64_t>(ne[0]), &total) || total != bytes.size()) {
    return error("gguf writer: tensor '%s': %zu bytes given, %s %s needs %llu", name.c_str(),
                 bytes.size(), tr->name, "shape", static_cast<unsigned long long>(total));
  }
  tensors_.push_back(Tensor{name, dtype, std::move(ne), std::move(bytes)});
  return Status();
}

std::string GgufWriter::serialize() const {
  std::vector<GgufTensorInfo> infos;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors_) {
    infos.push_back(GgufTensorInfo{t.name, t.dtype, t.ne});
    sizes.push_back(t.bytes.size());
  }
  std::string out = gguf_header_bytes(kv_, infos, sizes, version_, alignment_);
  // Each tensor (the last included) is padded to the alignment, as ggml's writer does.
  out.resize(align_up(out.size(), alignment_), '\0');
  for (const auto& t : tensors_) {
    out += t.bytes;
    out.resize(align_up(out.size(), alignment_), '\0');
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  return write_file_atomic(path, serialize());
}

}  // namespace slm
