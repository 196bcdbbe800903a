// safetensors: hardened reader (header length, bounded JSON, per-tensor dtype/shape/offsets,
// exact coverage of the data buffer, sharded index directories) and an atomic writer.
#include "formats/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/reader.h"

namespace slm {

namespace {

using nlohmann::json;

// The header nests at most 3 levels ({name: {shape: [..]}}); a little slack for forward
// compatibility, but a bound so a hostile header cannot build deep recursive values.
constexpr int k_max_json_depth = 8;
// Arrays in a header are shapes (<= 8 dims) and data_offsets (2); anything far longer is hostile
// and would only cost memory.
constexpr uint64_t k_max_json_array = 64;
// An index.json lists one entry per tensor; 64 MB is far beyond any real one.
constexpr uint64_t k_max_index_bytes = 64ull << 20;
constexpr size_t k_max_shards = 100000;

struct StType {
  const char* name;
  uint64_t size;
  bool viewable;  // has a DType slm can view
  DType dtype;
};

// The dtype strings of the safetensors specification. Types without a DType are accepted (the
// file is valid) but reported through unsupported().
constexpr StType k_st_types[] = {
    {"F64", 8, true, DType::F64},      {"F32", 4, true, DType::F32},
    {"F16", 2, true, DType::F16},      {"BF16", 2, true, DType::BF16},
    {"I64", 8, true, DType::I64},      {"I32", 4, true, DType::I32},
    {"I16", 2, true, DType::I16},      {"I8", 1, true, DType::I8},
    {"U64", 8, false, DType::F32},     {"U32", 4, false, DType::F32},
    {"U16", 2, false, DType::F32},     {"U8", 1, false, DType::F32},
    {"BOOL", 1, false, DType::F32},    {"F8_E5M2", 1, false, DType::F32},
    {"F8_E4M3", 1, false, DType::F32}, {"F8_E8M0", 1, false, DType::F32},
};

const StType* find_st_type(std::string_view name) {
  for (const auto& t : k_st_types) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

// Names in error messages are clipped: a hostile file may use megabyte-long names.
std::string clip(std::string_view s) {
  constexpr size_t k_max = 120;
  if (s.size() <= k_max) return std::string(s);
  return std::string(s.substr(0, k_max)) + "...";
}

struct JsonLimitError {
  std::string msg;
};

// Parses JSON with bounded nesting and array length, rejecting duplicate object keys (the
// specification forbids them; a DOM parser would silently keep the last one).
Expected<json> parse_json_bounded(const char* begin, const char* end, const std::string& what) {
  struct Frame {
    bool is_object;
    uint64_t count;
    std::set<std::string> keys;
  };
  std::vector<Frame> stack;
  auto count_child = [&]() {
    if (!stack.empty() && !stack.back().is_object && ++stack.back().count > k_max_json_array) {
      throw JsonLimitError{"an array has more than " + std::to_string(k_max_json_array) +
                           " elements"};
    }
  };
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) -> bool {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= k_max_json_depth) {
          throw JsonLimitError{"nesting deeper than " + std::to_string(k_max_json_depth)};
        }
        count_child();
        stack.push_back({ev == json::parse_event_t::object_start, 0, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key: {
        if (stack.empty() || !parsed.is_string()) break;
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!stack.back().keys.insert(k).second) {
          throw JsonLimitError{"duplicate key '" + clip(k) + "'"};
        }
        break;
      }
      case json::parse_event_t::value:
        count_child();
        break;
    }
    return true;
  };
  // nlohmann's lexer ends the input at a NUL byte, which would let bytes after it hide in the
  // text unparsed (the safetensors specification allows only spaces after the JSON).
  if (std::memchr(begin, 0, static_cast<size_t>(end - begin)) != nullptr) {
    return error("%s: header JSON contains a NUL byte", what.c_str());
  }
  try {
    return json::parse(begin, end, cb);
  } catch (const JsonLimitError& e) {
    return error("%s: header JSON: %s", what.c_str(), e.msg.c_str());
  } catch (const json::exception& e) {
    return error("%s: header is not valid JSON: %s", what.c_str(), e.what());
  }
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

struct Range {
  uint64_t begin;
  uint64_t end;
  std::string name;
};

}  // namespace

const char* safetensors_dtype_name(DType t) {
  for (const auto& e : k_st_types) {
    if (e.viewable && e.dtype == t) return e.name;
  }
  return nullptr;
}

const TensorView* SafetensorsSet::tensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Expected<const TensorView*> SafetensorsSet::get(std::string_view name) const {
  if (const TensorView* t = tensor(name)) return t;
  auto it = unsupported_.find(name);
  if (it != unsupported_.end()) {
    return error("tensor '%s' cannot be used: %s", clip(name).c_str(), it->second.c_str());
  }
  return error("tensor '%s' not found", clip(name).c_str());
}

Status SafetensorsSet::add_file(const uint8_t* data, uint64_t size, const std::string& what,
                                std::vector<std::string>* names_out) {
  ByteReader r(data, size, what);
  uint64_t header_len = 0;
  SLM_TRY(r.read(&header_len, "header length"));
  if (header_len > k_safetensors_max_header) {
    return error("%s: header length %llu exceeds the %llu byte limit", what.c_str(),
                 (unsigned long long)header_len, (unsigned long long)k_safetensors_max_header);
  }
  if (header_len > r.remaining()) {
    return error("%s: header length %llu is larger than the %llu bytes after it", what.c_str(),
                 (unsigned long long)header_len, (unsigned long long)r.remaining());
  }
  const uint8_t* htext = nullptr;
  SLM_TRY(r.read_bytes(header_len, &htext, "header"));
  if (header_len == 0 || htext[0] != '{') {
    return error("%s: header must start with '{' (offset 8)", what.c_str());
  }
  const char* hb = reinterpret_cast<const char*>(htext);
  SLM_ASSIGN_OR_RETURN(json header, parse_json_bounded(hb, hb + header_len, what));
  if (!header.is_object()) return error("%s: header is not a JSON object", what.c_str());

  const uint8_t* buf = r.cursor();  // the data buffer: data_offsets are relative to it
  const uint64_t buf_size = r.remaining();
  std::vector<Range> ranges;
  std::vector<TensorView> views;
  std::map<std::string, std::string, std::less<>> unsupported;
  std::map<std::string, std::string> metadata;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return error("%s: __metadata__ is not an object", what.c_str());
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          return error("%s: __metadata__: value of '%s' is not a string", what.c_str(),
                       clip(m.key()).c_str());
        }
        metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tn = clip(name);
    if (!v.is_object())
      return error("%s: tensor '%s': entry is not an object", what.c_str(), tn.c_str());

    auto dt_it = v.find("dtype");
    if (dt_it == v.end() || !dt_it->is_string()) {
      return error("%s: tensor '%s': dtype: missing or not a string", what.c_str(), tn.c_str());
    }
    const std::string& dts = dt_it->get_ref<const std::string&>();
    const StType* st = find_st_type(dts);
    if (!st) {
      return error("%s: tensor '%s': dtype: unknown dtype '%s'", what.c_str(), tn.c_str(),
                   clip(dts).c_str());
    }

    auto sh_it = v.find("shape");
    if (sh_it == v.end() || !sh_it->is_array()) {
      return error("%s: tensor '%s': shape: missing or not an array", what.c_str(), tn.c_str());
    }
    if (sh_it->size() > static_cast<size_t>(k_safetensors_max_dims)) {
      return error("%s: tensor '%s': shape: %zu dimensions (limit %d)", what.c_str(), tn.c_str(),
                   sh_it->size(), k_safetensors_max_dims);
    }
    std::vector<uint64_t> shape;
    uint64_t nelem = 1;
    for (size_t d = 0; d < sh_it->size(); ++d) {
      const json& e = (*sh_it)[d];
      if (e.is_number_integer() && !e.is_number_unsigned()) {
        return error("%s: tensor '%s': shape[%zu]: negative dimension %lld", what.c_str(),
                     tn.c_str(), d, (long long)e.get<int64_t>());
      }
      if (!e.is_number_unsigned()) {
        return error("%s: tensor '%s': shape[%zu]: not a non-negative integer", what.c_str(),
                     tn.c_str(), d);
      }
      uint64_t dim = e.get<uint64_t>();
      if (!checked_mul(nelem, dim, &nelem) || nelem > static_cast<uint64_t>(INT64_MAX)) {
        return error("%s: tensor '%s': shape: element count overflows", what.c_str(), tn.c_str());
      }
      shape.push_back(dim);
    }
    uint64_t nbytes = 0;
    if (!checked_mul(nelem, st->size, &nbytes)) {
      return error("%s: tensor '%s': shape: byte size overflows", what.c_str(), tn.c_str());
    }

    auto off_it = v.find("data_offsets");
    if (off_it == v.end() || !off_it->is_array() || off_it->size() != 2 ||
        !(*off_it)[0].is_number_unsigned() || !(*off_it)[1].is_number_unsigned()) {
      return error("%s: tensor '%s': data_offsets: must be [begin, end] of non-negative integers",
                   what.c_str(), tn.c_str());
    }
    uint64_t begin = (*off_it)[0].get<uint64_t>();
    uint64_t end = (*off_it)[1].get<uint64_t>();
    if (begin > end) {
      return error("%s: tensor '%s': data_offsets: begin %llu > end %llu", what.c_str(), tn.c_str(),
                   (unsigned long long)begin, (unsigned long long)end);
    }
    if (end > buf_size) {
      return error("%s: tensor '%s': data_offsets: end %llu is past the data buffer (%llu bytes)",
                   what.c_str(), tn.c_str(), (unsigned long long)end, (unsigned long long)buf_size);
    }
    if (end - begin != nbytes) {
      return error("%s: tensor '%s': data_offsets: span %llu bytes but dtype %s x shape needs %llu",
                   what.c_str(), tn.c_str(), (unsigned long long)(end - begin), st->name,
                   (unsigned long long)nbytes);
    }
    ranges.push_back({begin, end, name});

    if (!st->viewable) {
      unsupported[name] = std::string("dtype ") + st->name + " has no slm tensor type";
      continue;
    }
    if (shape.size() > 4) {
      unsupported[name] = std::to_string(shape.size()) + " dimensions (slm views at most 4)";
      continue;
    }
    TensorView t;
    t.name = name;
    t.dtype = st->dtype;
    t.n_dims = static_cast<int>(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) {
      t.ne[d] = static_cast<int64_t>(shape[shape.size() - 1 - d]);  // PyTorch -> GGUF order
    }
    t.data = buf + begin;
    t.nbytes = nbytes;
    views.push_back(std::move(t));
  }

  // The specification requires the tensors to index the whole buffer without holes, which
  // rules out hidden payloads and polyglot files; overlapping ranges would alias tensors.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Range* prev = nullptr;
  for (const Range& rg : ranges) {
    if (rg.begin < covered) {
      return error("%s: tensor '%s': data_offsets: [%llu, %llu) overlaps tensor '%s'", what.c_str(),
                   clip(rg.name).c_str(), (unsigned long long)rg.begin, (unsigned long long)rg.end,
                   prev ? clip(prev->name).c_str() : "?");
    }
    if (rg.begin > covered) {
      return error(
          "%s: tensor '%s': data_offsets: hole of %llu bytes before offset %llu "
          "(the data buffer must be fully covered)",
          what.c_str(), clip(rg.name).c_str(), (unsigned long long)(rg.begin - covered),
          (unsigned long long)rg.begin);
    }
    covered = rg.end;
    prev = &rg;
  }
  if (covered != buf_size) {
    return error(
        "%s: data buffer has %llu bytes after the last tensor (the data buffer must be "
        "fully covered)",
        what.c_str(), (unsigned long long)(buf_size - covered));
  }

  // Commit only after the whole file validated, checking names against earlier files.
  for (const Range& rg : ranges) {
    if (index_.count(rg.name) || unsupported_.count(rg.name)) {
      return error("%s: tensor '%s' is also present in an earlier file", what.c_str(),
                   clip(rg.name).c_str());
    }
  }
  if (names_out) {
    for (const Range& rg : ranges) names_out->push_back(rg.name);
  }
  for (auto& t : views) {
    index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  for (auto& u : unsupported) unsupported_.insert(u);
  if (!have_metadata_) {
    metadata_ = std::move(metadata);
    have_metadata_ = true;
  }
  return Status();
}

Expected<SafetensorsSet> SafetensorsSet::parse(const uint8_t* data, uint64_t size,
                                               std::string what) {
  SafetensorsSet set;
  SLM_TRY(set.add_file(data, size, what, nullptr));
  return set;
}

Expected<SafetensorsSet> SafetensorsSet::open_file(const std::string& path) {
  SLM_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  SafetensorsSet set;
  SLM_TRY(set.add_file(map->data(), map->size(), path, nullptr));
  set.maps_.push_back(std::move(map));
  return set;
}

Expected<SafetensorsSet> SafetensorsSet::open_dir(const std::string& dir) {
  const std::string single = dir + "/model.safetensors";
  const std::string index_path = dir + "/model.safetensors.index.json";
  // A single file wins when both exist, as Hugging Face loaders do.
  if (is_regular_file(single)) return open_file(single);
  if (!is_regular_file(index_path)) {
    return error("%s: no model.safetensors or model.safetensors.index.json", dir.c_str());
  }
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(index_path, k_max_index_bytes));
  if (text.empty() || text[0] != '{') {
    return error("%s: not a JSON object", index_path.c_str());
  }
  SLM_ASSIGN_OR_RETURN(json index,
                       parse_json_bounded(text.data(), text.data() + text.size(), index_path));
  if (!index.is_object()) return error("%s: not a JSON object", index_path.c_str());
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) {
    return error("%s: weight_map: missing or not an object", index_path.c_str());
  }
  // shard file -> tensors the index places in it
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) {
      return error("%s: weight_map: shard of tensor '%s' is not a string", index_path.c_str(),
                   clip(it.key()).c_str());
    }
    const std::string& shard = it.value().get_ref<const std::string&>();
    // Shards must sit beside the index: no directories, so no path traversal.
    if (shard.empty() || shard.find('/') != std::string::npos ||
        shard.find('\\') != std::string::npos || shard.find("..") != std::string::npos ||
        shard.find('\0') != std::string::npos) {
      return error("%s: weight_map: tensor '%s': shard name '%s' is not a plain file name",
                   index_path.c_str(), clip(it.key()).c_str(), clip(shard).c_str());
    }
    shards[shard].push_back(it.key());
  }
  if (shards.size() > k_max_shards) {
    return error("%s: weight_map: %zu shards (limit %zu)", index_path.c_str(), shards.size(),
                 k_max_shards);
  }
  SafetensorsSet set;
  for (const auto& [shard, listed] : shards) {
    const std::string path = dir + "/" + shard;
    auto map = MappedFile::open(path);
    if (!map.ok()) {
      return error("%s: weight_map: shard '%s': %s", index_path.c_str(), clip(shard).c_str(),
                   map.message().c_str());
    }
    std::vector<std::string> present;
    SLM_TRY(set.add_file((*map)->data(), (*map)->size(), path, &present));
    set.maps_.push_back(std::move(*map));
    std::sort(present.begin(), present.end());
    for (const std::string& name : listed) {
      if (!std::binary_search(present.begin(), present.end(), name)) {
        return error("%s: weight_map: tensor '%s' is not in shard '%s'", index_path.c_str(),
                     clip(name).c_str(), clip(shard).c_str());
      }
    }
    // A tensor the index does not place here is either unlisted or listed elsewhere; both mean
    // the index and the shards disagree, and guessing would pick an arbitrary copy.
    for (const std::string& name : present) {
      auto w = wm->find(name);
      if (w == wm->end()) {
        return error("%s: tensor '%s' in shard '%s' is not listed in weight_map",
                     index_path.c_str(), clip(name).c_str(), clip(shard).c_str());
      }
      if (w->get_ref<const std::string&>() != shard) {
        return error("%s: tensor '%s' is in shard '%s' but weight_map says '%s'",
                     index_path.c_str(), clip(name).c_str(), clip(shard).c_str(),
                     clip(w->get_ref<const std::string&>()).c_str());
      }
    }
  }
  return set;
}

// ---- writer ----

Status SafetensorsWriter::add_tensor(const std::string& name, DType dtype, std::vector<int64_t> ne,
                                     std::string bytes) {
  if (name.empty() || name == "__metadata__") {
    return error("safetensors writer: invalid tensor name '%s'", name.c_str());
  }
  try {
    (void)json(name).dump();  // throws on invalid UTF-8, which JSON cannot carry
  } catch (const json::exception&) {
    return error("safetensors writer: tensor name '%s' is not valid UTF-8", clip(name).c_str());
  }
  for (const auto& t : tensors_) {
    if (t.name == name) return error("safetensors writer: duplicate tensor '%s'", name.c_str());
  }
  const char* dts = safetensors_dtype_name(dtype);
  const StType* st = dts ? find_st_type(dts) : nullptr;
  if (!st) {
    return error("safetensors writer: tensor '%s': dtype %s cannot be stored", name.c_str(),
                 dtype_name(dtype));
  }
  if (ne.size() > static_cast<size_t>(k_safetensors_max_dims)) {
    return error("safetensors writer: tensor '%s': %zu dimensions (limit %d)", name.c_str(),
                 ne.size(), k_safetensors_max_dims);
  }
  uint64_t nelem = 1;
  for (int64_t d : ne) {
    if (d < 0 || !checked_mul(nelem, static_cast<uint64_t>(d), &nelem)) {
      return error("safetensors writer: tensor '%s': invalid shape", name.c_str());
    }
  }
  uint64_t nbytes = 0;
  if (!checked_mul(nelem, st->size, &nbytes) || nbytes != bytes.size()) {
    return error("safetensors writer: tensor '%s': %zu bytes given, shape x %s needs %llu",
                 name.c_str(), bytes.size(), st->name, (unsigned long long)nbytes);
  }
  tensors_.push_back({name, dtype, std::move(ne), std::move(bytes)});
  return Status();
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

std::string SafetensorsWriter::serialize() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = safetensors_dtype_name(t.dtype);
    nlohmann::ordered_json shape = nlohmann::ordered_json::array();
    for (auto it = t.ne.rbegin(); it != t.ne.rend(); ++it) shape.push_back(*it);  // PyTorch order
    e["shape"] = std::move(shape);
    e["data_offsets"] = {offset, offset + t.bytes.size()};
    offset += t.bytes.size();
    header[t.name] = std::move(e);
  }
  std::string text = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  // Pad with spaces (allowed after the JSON) so the data buffer starts 8-byte aligned.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  std::string out;
  out.reserve(8 + text.size() + offset);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += text;
  for (const auto& t : tensors_) out += t.bytes;
  return out;
}

Status SafetensorsWriter::write(const std::string& path) const {
  return write_file_atomic(path, serialize());
}

}  // namespace slm
