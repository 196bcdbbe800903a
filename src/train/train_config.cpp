// Parsing and checking of `slm train` config files: typed reads with the key in every error,
// unknown keys rejected, defaults filled in, and the hash a resumed run must match.
#include "train/train_config.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/mmap.h"

namespace slm::train {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Caps that keep every size product far from overflow and memory within reason; real small
// models are orders of magnitude below them.
constexpr int64_t k_max_dim = 1 << 16;
constexpr int64_t k_max_layers = 1024;
constexpr int64_t k_max_vocab = 1 << 24;
constexpr int64_t k_max_positions = 1 << 20;
constexpr int64_t k_max_steps = int64_t{1} << 40;

std::string describe(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

// One typed reader per value kind. Each names the key as "model.hidden_size".
struct Reader {
  const std::string& what;
  Status fail(const std::string& key, const char* expect, const json& v) const {
    return error("%s: %s: expected %s, got %s", what.c_str(), key.c_str(), expect,
                 describe(v).c_str());
  }
  // Integers may be written as 1e3 or 64.0 as long as the value is integral.
  Status get_int(const json& v, const std::string& key, int64_t lo, int64_t hi,
                 int64_t* out) const {
    char expect[96];
    std::snprintf(expect, sizeof expect, "an integer in [%lld, %lld]", (long long)lo,
                  (long long)hi);
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        return fail(key, expect, v);
      }
      const int64_t x = v.get<int64_t>();
      if (x < lo || x > hi) return fail(key, expect, v);
      *out = x;
      return Status();
    }
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || std::floor(d) != d) {
        return fail(key, expect, v);
      }
      *out = static_cast<int64_t>(d);
      return Status();
    }
    return fail(key, expect, v);
  }
  // lo_open: the bound itself is excluded.
  Status get_num(const json& v, const std::string& key, double lo, bool lo_open, double hi,
                 bool hi_open, double* out) const {
    char expect[96];
    std::snprintf(expect, sizeof expect, "a number in %c%g, %g%c", lo_open ? '(' : '[', lo, hi,
                  hi_open ? ')' : ']');
    if (!v.is_number()) return fail(key, expect, v);
    const double d = v.get<double>();
    const bool ok = std::isfinite(d) && (lo_open ? d > lo : d >= lo) && (hi_open ? d < hi : d <= hi);
    if (!ok) return fail(key, expect, v);
    *out = d;
    return Status();
  }
  Status get_bool(const json& v, const std::string& key, bool* out) const {
    if (!v.is_boolean()) return fail(key, "true or false", v);
    *out = v.get<bool>();
    return Status();
  }
};

// A key handler: reads the value into the config.
using Handler = std::function<Status(const json&, const std::string&)>;

Status walk_object(const json& obj, const std::string& prefix, const std::string& what,
                   const std::vector<std::pair<const char*, Handler>>& table) {
  if (!obj.is_object()) {
    return error("%s: %s: expected an object, got %s", what.c_str(), prefix.c_str(),
                 describe(obj).c_str());
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string key = prefix + "." + it.key();
    const Handler* h = nullptr;
    for (const auto& [name, fn] : table) {
      if (it.key() == name) h = &fn;
    }
    if (!h) {
      std::string known;
      for (const auto& [name, fn] : table) known += std::string(known.empty() ? "" : ", ") + name;
      return error("%s: unknown key '%s' (known keys: %s)", what.c_str(), key.c_str(),
                   known.c_str());
    }
    SLM_TRY((*h)(it.value(), key));
  }
  return Status();
}

std::string resolve_path(const std::string& p, const std::string& base) {
  if (p.empty() || fs::path(p).is_absolute() || base.empty()) return p;
  return (fs::path(base) / p).lexically_normal().string();
}

// The keys whose values shape the sequence of losses, as JSON (model shape and optimisation;
// not paths, not the eval/save cadence, not threads, which resume checks on its own).
json trajectory_json(const TrainConfig& c) {
  const TrainModelConfig& m = c.model;
  const TrainSettings& t = c.train;
  json j;
  j["model.vocab_size"] = m.vocab_size;
  j["model.hidden_size"] = m.dim;
  j["model.num_hidden_layers"] = m.n_layers;
  j["model.num_attention_heads"] = m.n_heads;
  j["model.num_key_value_heads"] = m.n_kv_heads;
  j["model.intermediate_size"] = m.ffn_dim;
  j["model.max_position_embeddings"] = m.max_seq_len;
  j["model.rope_theta"] = m.rope_theta;
  j["model.rms_norm_eps"] = m.norm_eps;
  j["model.tie_word_embeddings"] = m.tied_embeddings;
  j["model.initializer_range"] = m.init_std;
  j["train.batch_size"] = t.batch_size;
  j["train.seq_len"] = t.seq_len;
  j["train.grad_accum"] = t.grad_accum;
  j["train.max_steps"] = t.max_steps;
  j["train.lr"] = t.lr;
  j["train.min_lr"] = t.min_lr;
  j["train.warmup_steps"] = t.warmup_steps;
  j["train.weight_decay"] = t.weight_decay;
  j["train.beta1"] = t.beta1;
  j["train.beta2"] = t.beta2;
  j["train.adam_eps"] = t.adam_eps;
  j["train.grad_clip"] = t.grad_clip;
  j["train.seed"] = t.seed;
  return j;
}

}  // namespace

Expected<TrainConfig> parse_train_config(const std::string& text, const std::string& what,
                                         const std::string& base_dir) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return error("%s: not valid JSON", what.c_str());
  if (!root.is_object()) return error("%s: expected a JSON object at the top level", what.c_str());
  TrainConfig c;
  c.source = what;
  Reader r{what};
  TrainModelConfig& m = c.model;
  TrainSettings& t = c.train;
  bool have_model = false, have_data = false;
  bool have_dim = false, have_layers = false, have_heads = false, have_ffn = false,
       have_kv = false;

  auto int_into = [&r](int64_t* dst, int64_t lo, int64_t hi, bool* seen = nullptr) -> Handler {
    return [&r, dst, lo, hi, seen](const json& v, const std::string& key) {
      if (seen) *seen = true;
      return r.get_int(v, key, lo, hi, dst);
    };
  };
  auto num_into = [&r](double* dst, double lo, bool lo_open, double hi, bool hi_open) -> Handler {
    return [&r, dst, lo, lo_open, hi, hi_open](const json& v, const std::string& key) {
      return r.get_num(v, key, lo, lo_open, hi, hi_open, dst);
    };
  };
  auto float_into = [&r](float* dst, double lo, double hi) -> Handler {
    return [&r, dst, lo, hi](const json& v, const std::string& key) {
      double d = 0;
      SLM_TRY(r.get_num(v, key, lo, true, hi, false, &d));
      *dst = static_cast<float>(d);
      return Status();
    };
  };

  const std::vector<std::pair<const char*, Handler>> model_keys = {
      {"model_type",
       [&](const json& v, const std::string& key) {
         if (!v.is_string() || v.get<std::string>() != "llama") {
           return r.fail(key, "\"llama\" (the only architecture slm trains)", v);
         }
         return Status();
       }},
      {"hidden_size", int_into(&m.dim, 1, k_max_dim, &have_dim)},
      {"num_hidden_layers", int_into(&m.n_layers, 1, k_max_layers, &have_layers)},
      {"num_attention_heads", int_into(&m.n_heads, 1, k_max_dim, &have_heads)},
      {"num_key_value_heads", int_into(&m.n_kv_heads, 1, k_max_dim, &have_kv)},
      {"intermediate_size", int_into(&m.ffn_dim, 1, 4 * k_max_dim, &have_ffn)},
      {"max_position_embeddings",
       [&](const json& v, const std::string& key) {
         c.max_pos_from_seq = false;
         return r.get_int(v, key, 1, k_max_positions, &m.max_seq_len);
       }},
      {"vocab_size",
       [&](const json& v, const std::string& key) {
         c.vocab_from_data = false;
         return r.get_int(v, key, 1, k_max_vocab, &m.vocab_size);
       }},
      {"rope_theta", float_into(&m.rope_theta, 0, 1e12)},
      {"rms_norm_eps", float_into(&m.norm_eps, 0, 1)},
      {"initializer_range", float_into(&m.init_std, 0, 10)},
      {"tie_word_embeddings",
       [&](const json& v, const std::string& key) { return r.get_bool(v, key, &m.tied_embeddings); }},
  };
  int64_t seed = static_cast<int64_t>(t.seed);
  const std::vector<std::pair<const char*, Handler>> train_keys = {
      {"batch_size", int_into(&t.batch_size, 1, 1 << 16)},
      {"seq_len", int_into(&t.seq_len, 1, k_max_positions)},
      {"grad_accum", int_into(&t.grad_accum, 1, 1 << 16)},
      {"max_steps", int_into(&t.max_steps, 1, k_max_steps)},
      {"lr", num_into(&t.lr, 0, true, 10, false)},
      {"min_lr", num_into(&t.min_lr, 0, false, 10, false)},
      {"warmup_steps", int_into(&t.warmup_steps, 0, k_max_steps)},
      {"weight_decay", num_into(&t.weight_decay, 0, false, 10, false)},
      {"beta1", num_into(&t.beta1, 0, false, 1, true)},
      {"beta2", num_into(&t.beta2, 0, false, 1, true)},
      {"adam_eps", num_into(&t.adam_eps, 0, true, 1, false)},
      {"grad_clip", num_into(&t.grad_clip, 0, false, 1e9, false)},
      {"seed", int_into(&seed, 0, INT64_MAX)},
      {"eval_interval", int_into(&t.eval_interval, 0, k_max_steps)},
      {"eval_batches", int_into(&t.eval_batches, 1, 1 << 20)},
      {"save_interval", int_into(&t.save_interval, 0, k_max_steps)},
      {"keep_last", int_into(&t.keep_last, 0, 1 << 20)},
      {"threads", int_into(&t.threads, 0, 1024)},
  };
  const std::vector<std::pair<const char*, Handler>> top_keys = {
      {"model",
       [&](const json& v, const std::string& key) {
         have_model = true;
         return walk_object(v, key, what, model_keys);
       }},
      {"train", [&](const json& v, const std::string& key) { return walk_object(v, key, what, train_keys); }},
      {"data",
       [&](const json& v, const std::string& key) {
         if (!v.is_string() || v.get<std::string>().empty()) {
           return r.fail(key, "a dataset directory (from `slm data prepare`)", v);
         }
         have_data = true;
         c.data_dir = resolve_path(v.get<std::string>(), base_dir);
         return Status();
       }},
      {"out",
       [&](const json& v, const std::string& key) {
         if (!v.is_string() || v.get<std::string>().empty()) return r.fail(key, "a directory", v);
         c.out_dir = resolve_path(v.get<std::string>(), base_dir);
         return Status();
       }},
  };
  // The top level is walked with an empty prefix; strip the leading '.' from its key names.
  for (auto it = root.begin(); it != root.end(); ++it) {
    const Handler* h = nullptr;
    for (const auto& [name, fn] : top_keys) {
      if (it.key() == name) h = &fn;
    }
    if (!h) {
      return error("%s: unknown key '%s' (known keys: model, data, out, train)", what.c_str(),
                   it.key().c_str());
    }
    SLM_TRY((*h)(it.value(), it.key()));
  }
  if (!have_model) return error("%s: missing key 'model' (the model's shape)", what.c_str());
  const std::pair<bool, const char*> required[] = {{have_dim, "hidden_size"},
                                                   {have_layers, "num_hidden_layers"},
                                                   {have_heads, "num_attention_heads"},
                                                   {have_ffn, "intermediate_size"}};
  for (const auto& [have, key] : required) {
    if (!have) return error("%s: missing key 'model.%s'", what.c_str(), key);
  }
  (void)have_data;  // --data may supply it; validate_train_config checks before training
  if (!have_kv) m.n_kv_heads = m.n_heads;
  if (c.max_pos_from_seq) m.max_seq_len = t.seq_len;
  if (t.min_lr < 0) t.min_lr = t.lr / 10;
  t.seed = static_cast<uint64_t>(seed);
  SLM_TRY(validate_train_config(c, /*need_data=*/false));
  return c;
}

Expected<TrainConfig> load_train_config(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return error("%s: config file not found", path.c_str());
  if (fs::is_directory(path, ec)) return error("%s: is a directory, not a config file", path.c_str());
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(path, 16ull << 20));
  const std::string base = fs::path(path).parent_path().string();
  return parse_train_config(text, path, base.empty() ? "." : base);
}

Status validate_train_config(const TrainConfig& c, bool need_data) {
  const char* w = c.source.c_str();
  const TrainModelConfig& m = c.model;
  const TrainSettings& t = c.train;
  if (m.n_heads > 0 && m.dim % m.n_heads != 0) {
    return error("%s: model.hidden_size %lld is not a multiple of num_attention_heads %lld", w,
                 (long long)m.dim, (long long)m.n_heads);
  }
  if (m.n_heads > 0 && (m.dim / m.n_heads) % 2 != 0) {
    return error("%s: head size hidden_size / num_attention_heads = %lld must be even (rope)", w,
                 (long long)(m.dim / m.n_heads));
  }
  if (m.n_kv_heads > 0 && m.n_heads % m.n_kv_heads != 0) {
    return error("%s: model.num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                 w, (long long)m.n_heads, (long long)m.n_kv_heads);
  }
  if (t.seq_len > m.max_seq_len) {
    return error("%s: train.seq_len %lld exceeds model.max_position_embeddings %lld", w,
                 (long long)t.seq_len, (long long)m.max_seq_len);
  }
  if (t.warmup_steps > t.max_steps) {
    return error("%s: train.warmup_steps %lld exceeds train.max_steps %lld", w,
                 (long long)t.warmup_steps, (long long)t.max_steps);
  }
  if (t.min_lr > t.lr) {
    return error("%s: train.min_lr %g exceeds train.lr %g", w, t.min_lr, t.lr);
  }
  // Tokens per micro-batch bound the activation memory; keep the product sane.
  if (t.batch_size * t.seq_len > (int64_t{1} << 24)) {
    return error("%s: train.batch_size * train.seq_len = %lld tokens per micro-batch is too large",
                 w, (long long)(t.batch_size * t.seq_len));
  }
  if (need_data && c.data_dir.empty()) {
    return error("%s: missing key 'data' (a dataset directory from `slm data prepare`; or pass --data)", w);
  }
  return Status();
}

std::string train_config_json(const TrainConfig& c) {
  const TrainModelConfig& m = c.model;
  const TrainSettings& t = c.train;
  json j;
  j["model"] = {{"model_type", "llama"},
                {"vocab_size", m.vocab_size},
                {"hidden_size", m.dim},
                {"num_hidden_layers", m.n_layers},
                {"num_attention_heads", m.n_heads},
                {"num_key_value_heads", m.n_kv_heads},
                {"intermediate_size", m.ffn_dim},
                {"max_position_embeddings", m.max_seq_len},
                {"rope_theta", m.rope_theta},
                {"rms_norm_eps", m.norm_eps},
                {"tie_word_embeddings", m.tied_embeddings},
                {"initializer_range", m.init_std}};
  j["data"] = c.data_dir;
  if (!c.out_dir.empty()) j["out"] = c.out_dir;
  j["train"] = {{"batch_size", t.batch_size},       {"seq_len", t.seq_len},
                {"grad_accum", t.grad_accum},       {"max_steps", t.max_steps},
                {"lr", t.lr},                       {"min_lr", t.min_lr},
                {"warmup_steps", t.warmup_steps},   {"weight_decay", t.weight_decay},
                {"beta1", t.beta1},                 {"beta2", t.beta2},
                {"adam_eps", t.adam_eps},           {"grad_clip", t.grad_clip},
                {"seed", t.seed},                   {"eval_interval", t.eval_interval},
                {"eval_batches", t.eval_batches},   {"save_interval", t.save_interval},
                {"keep_last", t.keep_last},         {"threads", t.threads}};
  return j.dump(2);
}

std::string train_config_hash(const TrainConfig& c) {
  // FNV-1a 64 over the canonical (sorted-key) dump: stable across runs and platforms.
  const std::string s = trajectory_json(c).dump();
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string train_config_difference(const std::string& saved_json, const TrainConfig& now) {
  json saved = json::parse(saved_json, nullptr, false);
  if (saved.is_discarded() || !saved.is_object()) return "the saved config is unreadable";
  const json cur = trajectory_json(now);
  for (auto it = cur.begin(); it != cur.end(); ++it) {
    const std::string& key = it.key();
    const size_t dot = key.find('.');
    const std::string sec = key.substr(0, dot), name = key.substr(dot + 1);
    const json* old = nullptr;
    if (saved.contains(sec) && saved[sec].is_object() && saved[sec].contains(name)) {
      old = &saved[sec][name];
    }
    // Numbers compare by value (a float stored as double reads back equal).
    bool same = old && ((old->is_number() && it->is_number() &&
                         old->get<double>() == it->get<double>()) ||
                        *old == *it);
    if (!same) {
      return key + ": " + (old ? old->dump() : std::string("absent")) + " in the checkpoint, " +
             it->dump() + " now";
    }
  }
  return "";
}

}  // namespace slm::train
