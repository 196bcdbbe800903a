// Checkpoint save (temporary directory, fsync, rename, prune) and load (shape-checked weights,
// CRC-checked optimizer state, strictly parsed trainer state).
#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mmap.h"
#include "core/reader.h"
#include "formats/safetensors.h"
#include "train/plot.h"

namespace slm::train {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr char k_opt_magic[8] = {'S', 'L', 'M', 'A', 'D', 'A', 'M', 'W'};
constexpr uint32_t k_opt_version = 1;
constexpr int k_state_version = 1;

Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return error("%s: cannot open directory: %s", dir.c_str(), std::strerror(errno));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) return error("%s: fsync failed: %s", dir.c_str(), std::strerror(e));
  return Status();
}

// "checkpoint-<digits>" -> step, else -1.
int64_t parse_checkpoint_name(const std::string& name) {
  static const std::string prefix = "checkpoint-";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() || name.size() > prefix.size() + 18) {
    return -1;
  }
  int64_t v = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string optimizer_file(const AdamW& opt) {
  const std::string payload = opt.serialize_state();
  std::string out(k_opt_magic, sizeof k_opt_magic);
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  const uint32_t crc = crc32(payload.data(), payload.size());
  const uint64_t size = payload.size();
  put(&k_opt_version, 4);
  put(&crc, 4);
  put(&size, 8);
  out += payload;
  return out;
}

// Typed reads of trainer_state.json fields.
struct StateReader {
  const json& j;
  const std::string& what;
  Status missing(const char* key, const char* expect) const {
    return error("%s: field '%s' is missing or not %s", what.c_str(), key, expect);
  }
  Status get_int(const char* key, int64_t lo, int64_t hi, int64_t* out) const {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return missing(key, "an integer");
    if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return error("%s: field '%s' is out of range", what.c_str(), key);
    }
    const int64_t v = it->get<int64_t>();
    if (v < lo || v > hi) return error("%s: field '%s' = %lld is out of range", what.c_str(), key, (long long)v);
    *out = v;
    return Status();
  }
  Status get_string(const char* key, std::string* out) const {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return missing(key, "a string");
    *out = it->get<std::string>();
    return Status();
  }
};

}  // namespace

std::string checkpoint_dir_name(int64_t step) { return "checkpoint-" + std::to_string(step); }

std::string hf_llama_config_json(const TrainModelConfig& c, int32_t bos_id, int32_t eos_id) {
  json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.ffn_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.dim / c.n_heads;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.norm_eps;
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["initializer_range"] = c.init_std;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["torch_dtype"] = "float32";
  j["bos_token_id"] = bos_id >= 0 ? json(bos_id) : json(nullptr);
  j["eos_token_id"] = eos_id >= 0 ? json(eos_id) : json(nullptr);
  return j.dump(2) + "\n";
}

Expected<std::string> save_checkpoint(const std::string& out_dir, TrainModel& model,
                                      const AdamW& opt, const TrainerState& st,
                                      const CheckpointExtras& extras, int64_t keep_last) {
  const std::string final_dir = out_dir + "/" + checkpoint_dir_name(st.step);
  const std::string tmp_dir = final_dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp_dir, ec);  // left by a run that died while saving this step
  if (!fs::create_directories(tmp_dir, ec) && ec) {
    return error("%s: cannot create: %s", tmp_dir.c_str(), ec.message().c_str());
  }
  auto fail = [&](const Status& s) -> Expected<std::string> {
    std::error_code ec2;
    fs::remove_all(tmp_dir, ec2);
    return s.with_context("saving checkpoint " + final_dir + " (earlier checkpoints are intact)");
  };

  SafetensorsWriter w;
  for (const Param& p : model.params()) {
    std::vector<int64_t> ne(p.shape.rbegin(), p.shape.rend());  // GGUF order
    std::string bytes(reinterpret_cast<const char*>(p.value), static_cast<size_t>(p.numel) * 4);
    if (Status s = w.add_tensor(p.name, DType::F32, std::move(ne), std::move(bytes)); !s.ok()) {
      return fail(s);
    }
  }
  w.set_metadata("format", "pt");
  const TrainModelConfig& mc = model.config();
  json gen = {{"bos_token_id", extras.bos_id >= 0 ? json(extras.bos_id) : json(nullptr)},
              {"eos_token_id", extras.eos_id >= 0 ? json(extras.eos_id) : json(nullptr)}};
  json state;
  state["format"] = "slm-trainer-state";
  state["version"] = k_state_version;
  state["step"] = st.step;
  state["n_threads"] = st.n_threads;
  state["config_hash"] = st.config_hash;
  state["config"] = json::parse(st.config_json, nullptr, false);
  state["data"] = {{"rng", {hex64(st.data.rng[0]), hex64(st.data.rng[1]), hex64(st.data.rng[2]),
                            hex64(st.data.rng[3])}},
                   {"batches_drawn", st.data.batches_drawn},
                   {"train_tokens", st.dataset_train_tokens},
                   {"vocab_size", st.dataset_vocab}};
  state["tokens_seen"] = st.tokens_seen;
  state["elapsed_s"] = st.elapsed_s;
  state["losses"] = st.losses;  // nlohmann writes doubles with round-trip precision
  json val = json::array();
  for (const auto& [s, v] : st.val_losses) val.push_back({s, v});
  state["val_losses"] = val;

  // trainer_state.json goes last: a directory holding it was written completely.
  const std::pair<std::string, std::string> files[] = {
      {"model.safetensors", w.serialize()},
      {"optimizer.bin", optimizer_file(opt)},
      {"config.json", hf_llama_config_json(mc, extras.bos_id, extras.eos_id)},
      {"generation_config.json", gen.dump(2) + "\n"},
      {"tokenizer.json", extras.tokenizer_json},
      {"tokenizer_config.json", extras.tokenizer_config},
      {"trainer_state.json", state.dump(1) + "\n"},
  };
  for (const auto& [name, data] : files) {
    if (name == "tokenizer_config.json" && data.empty()) continue;
    if (Status s = write_file_atomic(tmp_dir + "/" + name, data); !s.ok()) return fail(s);
  }
  if (Status s = fsync_dir(tmp_dir); !s.ok()) return fail(s);
  // A directory of the same name can only be a checkpoint of the same step from an earlier
  // run that this one resumed before; the new one replaces it.
  if (fs::exists(final_dir, ec)) fs::remove_all(final_dir, ec);
  if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0) {
    return fail(error("rename %s -> %s: %s", tmp_dir.c_str(), final_dir.c_str(), std::strerror(errno)));
  }
  SLM_TRY(fsync_dir(out_dir));

  if (keep_last > 0) {
    SLM_ASSIGN_OR_RETURN(auto all, list_checkpoints(out_dir));
    const int64_t excess = static_cast<int64_t>(all.size()) - keep_last;
    for (int64_t i = 0; i < excess; ++i) {
      if (all[static_cast<size_t>(i)].second == final_dir) continue;
      fs::remove_all(all[static_cast<size_t>(i)].second, ec);
    }
  }
  return final_dir;
}

Expected<std::vector<std::pair<int64_t, std::string>>> list_checkpoints(const std::string& out_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(out_dir, ec)) return out;
  for (fs::directory_iterator it(out_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const int64_t step = parse_checkpoint_name(it->path().filename().string());
    if (step < 0 || !it->is_directory(ec)) continue;
    if (!fs::exists(it->path() / "trainer_state.json", ec)) continue;
    out.emplace_back(step, it->path().string());
  }
  if (ec) return error("%s: cannot list: %s", out_dir.c_str(), ec.message().c_str());
  std::sort(out.begin(), out.end());
  return out;
}

Expected<TrainerState> read_trainer_state(const std::string& ckpt_dir) {
  const std::string path = ckpt_dir + "/trainer_state.json";
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(path, 1ull << 30));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return error("%s: not a JSON object", path.c_str());
  StateReader r{j, path};
  TrainerState st;
  std::string format;
  SLM_TRY(r.get_string("format", &format));
  if (format != "slm-trainer-state") return error("%s: format is '%s', not slm-trainer-state", path.c_str(), format.c_str());
  int64_t version = 0, threads = 0;
  SLM_TRY(r.get_int("version", 1, 1 << 20, &version));
  if (version != k_state_version) {
    return error("%s: version %lld is not supported (this slm reads %d)", path.c_str(), (long long)version, k_state_version);
  }
  SLM_TRY(r.get_int("step", 0, INT64_MAX, &st.step));
  SLM_TRY(r.get_int("n_threads", 1, 1024, &threads));
  st.n_threads = static_cast<int>(threads);
  SLM_TRY(r.get_string("config_hash", &st.config_hash));
  SLM_TRY(r.get_int("tokens_seen", 0, INT64_MAX, &st.tokens_seen));
  auto cfg = j.find("config");
  if (cfg == j.end() || !cfg->is_object()) return error("%s: field 'config' is missing", path.c_str());
  st.config_json = cfg->dump();
  if (auto e = j.find("elapsed_s"); e != j.end() && e->is_number()) st.elapsed_s = e->get<double>();

  auto data = j.find("data");
  if (data == j.end() || !data->is_object()) return error("%s: field 'data' is missing", path.c_str());
  StateReader dr{*data, path};
  SLM_TRY(dr.get_int("batches_drawn", 0, INT64_MAX, &st.data.batches_drawn));
  SLM_TRY(dr.get_int("train_tokens", 0, INT64_MAX, &st.dataset_train_tokens));
  SLM_TRY(dr.get_int("vocab_size", 0, INT64_MAX, &st.dataset_vocab));
  auto rng = data->find("rng");
  if (rng == data->end() || !rng->is_array() || rng->size() != 4) {
    return error("%s: field 'data.rng' is not an array of 4 hex strings", path.c_str());
  }
  for (size_t i = 0; i < 4; ++i) {
    const json& w = (*rng)[i];
    const std::string s = w.is_string() ? w.get<std::string>() : "";
    if (s.size() != 16 || s.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return error("%s: data.rng[%zu] is not a 16-digit hex string", path.c_str(), i);
    }
    st.data.rng[i] = std::stoull(s, nullptr, 16);
  }

  auto losses = j.find("losses");
  if (losses == j.end() || !losses->is_array()) return error("%s: field 'losses' is missing", path.c_str());
  if (static_cast<int64_t>(losses->size()) != st.step) {
    return error("%s: %zu losses for %lld steps", path.c_str(), losses->size(), (long long)st.step);
  }
  st.losses.reserve(losses->size());
  for (const json& v : *losses) st.losses.push_back(v.is_number() ? v.get<double>() : NAN);
  auto val = j.find("val_losses");
  if (val != j.end() && val->is_array()) {
    for (const json& v : *val) {
      if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number()) {
        st.val_losses.emplace_back(v[0].get<int64_t>(), v[1].get<double>());
      }
    }
  }
  return st;
}

Status check_checkpoint_shape(const std::string& ckpt_dir, const TrainModelConfig& c) {
  const std::string path = ckpt_dir + "/config.json";
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(path, 16ull << 20));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return error("%s: not a JSON object", path.c_str());
  const std::pair<const char*, int64_t> ints[] = {
      {"vocab_size", c.vocab_size},          {"hidden_size", c.dim},
      {"num_hidden_layers", c.n_layers},     {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads}, {"intermediate_size", c.ffn_dim},
      {"max_position_embeddings", c.max_seq_len}};
  for (const auto& [key, want] : ints) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) {
      return error("%s: field '%s' is missing or not an integer", path.c_str(), key);
    }
    if (it->get<int64_t>() != want) {
      return error("%s: the checkpoint's model has a different shape: %s is %lld in the "
                   "checkpoint, %lld in the config",
                   path.c_str(), key, (long long)it->get<int64_t>(), (long long)want);
    }
  }
  auto tied = j.find("tie_word_embeddings");
  if (tied == j.end() || !tied->is_boolean() || tied->get<bool>() != c.tied_embeddings) {
    return error("%s: the checkpoint's model has a different shape: tie_word_embeddings differs "
                 "from the config (%s)",
                 path.c_str(), c.tied_embeddings ? "true" : "false");
  }
  return Status();
}

Status load_checkpoint_weights(const std::string& ckpt_dir, TrainModel& model) {
  const std::string path = ckpt_dir + "/model.safetensors";
  SLM_ASSIGN_OR_RETURN(SafetensorsSet set, SafetensorsSet::open_file(path));
  auto params = model.params();
  if (set.tensors().size() != params.size() || !set.unsupported().empty()) {
    return error("%s: %zu tensors, the model has %zu parameters", path.c_str(),
                 set.tensors().size() + set.unsupported().size(), params.size());
  }
  for (Param& p : params) {
    auto t = set.get(p.name);
    if (!t.ok()) return t.status().with_context(path);
    const TensorView& v = **t;
    bool same = v.dtype == DType::F32 && v.n_dims == static_cast<int>(p.shape.size());
    for (size_t i = 0; same && i < p.shape.size(); ++i) {
      same = v.ne[i] == p.shape[p.shape.size() - 1 - i];
    }
    if (!same || v.nbytes != static_cast<uint64_t>(p.numel) * 4) {
      return error("%s: tensor '%s' is %s %s, the model needs F32 with %lld elements",
                   path.c_str(), p.name.c_str(), dtype_name(v.dtype), v.shape_string().c_str(),
                   (long long)p.numel);
    }
    std::memcpy(p.value, v.data, v.nbytes);
  }
  return Status();
}

Status load_optimizer_state(const std::string& ckpt_dir, AdamW& opt) {
  const std::string path = ckpt_dir + "/optimizer.bin";
  SLM_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  ByteReader r(file->data(), file->size(), path);
  const uint8_t* magic = nullptr;
  SLM_TRY(r.read_bytes(8, &magic, "magic"));
  if (std::memcmp(magic, k_opt_magic, 8) != 0) return error("%s: not an slm optimizer state file", path.c_str());
  uint32_t version = 0, crc = 0;
  uint64_t size = 0;
  SLM_TRY(r.read(&version, "version"));
  if (version != k_opt_version) return error("%s: version %u is not supported", path.c_str(), version);
  SLM_TRY(r.read(&crc, "crc32"));
  SLM_TRY(r.read(&size, "payload size"));
  if (size != r.remaining()) {
    return error("%s: payload size %llu, but %llu bytes follow the header", path.c_str(),
                 (unsigned long long)size, (unsigned long long)r.remaining());
  }
  const uint8_t* payload = nullptr;
  SLM_TRY(r.read_bytes(size, &payload, "payload"));
  if (crc32(payload, size) != crc) return error("%s: CRC mismatch (the file is damaged)", path.c_str());
  return opt.restore_state(std::string_view(reinterpret_cast<const char*>(payload), size))
      .with_context(path);
}

}  // namespace slm::train
