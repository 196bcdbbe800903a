// `slm train` building blocks: config parsing (a table of bad files, one per key), the resume
// hash, the data loader's windows checked against a dataset whose token at position p is known
// from p, its RNG state round trip, and the log's cut-back after a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"
#include "data/shards.h"
#include "train/checkpoint.h"
#include "train/data_loader.h"
#include "train/train_config.h"
#include "train/train_log.h"

namespace slm::train {
namespace {

using json = nlohmann::json;

const char* k_good = R"({
  "model": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 160, "rope_theta": 10000,
            "rms_norm_eps": 1e-5, "tie_word_embeddings": false, "max_position_embeddings": 128},
  "data": "ds",
  "train": {"batch_size": 4, "seq_len": 32, "max_steps": 50, "lr": 0.003, "warmup_steps": 5,
            "seed": 7, "eval_interval": 10, "threads": 1}
})";

TEST(TrainConfig, GoodConfigWithDefaults) {
  auto c = parse_train_config(k_good, "cfg.json", "/base");
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->model.dim, 64);
  EXPECT_EQ(c->model.n_layers, 2);
  EXPECT_EQ(c->model.n_heads, 4);
  EXPECT_EQ(c->model.n_kv_heads, 2);
  EXPECT_EQ(c->model.ffn_dim, 160);
  EXPECT_EQ(c->model.max_seq_len, 128);
  EXPECT_FALSE(c->model.tied_embeddings);
  EXPECT_TRUE(c->vocab_from_data);
  EXPECT_EQ(c->data_dir, "/base/ds");
  EXPECT_EQ(c->train.batch_size, 4);
  EXPECT_EQ(c->train.max_steps, 50);
  EXPECT_DOUBLE_EQ(c->train.lr, 0.003);
  EXPECT_DOUBLE_EQ(c->train.min_lr, 0.0003);  // lr / 10 by default
  EXPECT_EQ(c->train.grad_accum, 1);
  EXPECT_EQ(c->train.seed, 7u);
  EXPECT_EQ(c->train.keep_last, 3);

  // Absent optional model keys: KV heads = heads, positions = seq_len, tied embeddings.
  auto d = parse_train_config(
      R"({"model": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
          "intermediate_size": 64, "vocab_size": 300},
          "data": "/abs/ds", "train": {"seq_len": 16, "max_steps": 1e3, "warmup_steps": 0}})",
      "x", "/base");
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(d->model.n_kv_heads, 2);
  EXPECT_EQ(d->model.max_seq_len, 16);
  EXPECT_TRUE(d->model.tied_embeddings);
  EXPECT_FALSE(d->vocab_from_data);
  EXPECT_EQ(d->model.vocab_size, 300);
  EXPECT_EQ(d->data_dir, "/abs/ds");
  EXPECT_EQ(d->train.max_steps, 1000);  // an integral float is accepted for an integer key
}

// Each edit of the good config must fail with a message naming the offending key.
TEST(TrainConfig, BadConfigsNameTheKey) {
  struct Case {
    const char* path;  // JSON pointer to set
    json value;        // null with erase = true removes the key
    bool erase;
    const char* expect;
  };
  const Case cases[] = {
      {"/model/hidden_size", "64", false, "model.hidden_size"},
      {"/model/hidden_size", 0, false, "model.hidden_size"},
      {"/model/hidden_size", 64.5, false, "model.hidden_size"},
      {"/model/hidden_size", nullptr, true, "model.hidden_size"},
      {"/model/num_hidden_layers", -1, false, "model.num_hidden_layers"},
      {"/model/num_attention_heads", nullptr, true, "model.num_attention_heads"},
      {"/model/num_attention_heads", 5, false, "num_attention_heads"},       // 64 % 5 != 0
      {"/model/num_key_value_heads", 3, false, "num_key_value_heads"},       // 4 % 3 != 0
      {"/model/intermediate_size", nullptr, true, "model.intermediate_size"},
      {"/model/rope_theta", -1, false, "model.rope_theta"},
      {"/model/rms_norm_eps", "1e-5", false, "model.rms_norm_eps"},
      {"/model/tie_word_embeddings", 1, false, "model.tie_word_embeddings"},
      {"/model/model_type", "gpt2", false, "model.model_type"},
      {"/model/hiden_size", 64, false, "model.hiden_size"},                  // typo: unknown key
      {"/model/max_position_embeddings", 16, false, "max_position_embeddings"},  // < seq_len
      {"/model", 3, false, "model"},
      {"/data", 5, false, "data"},
      {"/train/batch_size", 0, false, "train.batch_size"},
      {"/train/seq_len", "32", false, "train.seq_len"},
      {"/train/grad_accum", 0, false, "train.grad_accum"},
      {"/train/max_steps", 0, false, "train.max_steps"},
      {"/train/lr", 0, false, "train.lr"},
      {"/train/lr", "fast", false, "train.lr"},
      {"/train/min_lr", 1.0, false, "train.min_lr"},                       // > lr
      {"/train/warmup_steps", 51, false, "train.warmup_steps"},            // > max_steps
      {"/train/weight_decay", -0.1, false, "train.weight_decay"},
      {"/train/beta1", 1.0, false, "train.beta1"},
      {"/train/beta2", -0.5, false, "train.beta2"},
      {"/train/grad_clip", -1, false, "train.grad_clip"},
      {"/train/seed", -3, false, "train.seed"},
      {"/train/eval_batches", 0, false, "train.eval_batches"},
      {"/train/save_interval", -1, false, "train.save_interval"},
      {"/train/keep_last", 1.5, false, "train.keep_last"},
      {"/train/threads", 5000, false, "train.threads"},
      {"/train/learning_rate", 0.1, false, "train.learning_rate"},          // unknown key
      {"/extra", 1, false, "extra"},
  };
  const json good = json::parse(k_good);
  for (const Case& c : cases) {
    json j = good;
    if (c.erase) {
      json::json_pointer p(c.path);
      j[p.parent_pointer()].erase(p.back());
    } else {
      j[json::json_pointer(c.path)] = c.value;
    }
    auto r = parse_train_config(j.dump(), "cfg.json", ".");
    ASSERT_FALSE(r.ok()) << c.path << " = " << c.value.dump() << " was accepted";
    EXPECT_NE(r.message().find(c.expect), std::string::npos)
        << c.path << ": message '" << r.message() << "' does not name " << c.expect;
    EXPECT_EQ(r.message().rfind("cfg.json", 0), 0u) << r.message();
  }
  for (const char* text : {"", "{", "[1, 2]", "{\"model\": }", "\x89PNG\r\n\x1a\n\x00\x01"}) {
    auto r = parse_train_config(text, "cfg.json", ".");
    EXPECT_FALSE(r.ok()) << text;
  }
}

TEST(TrainConfig, DataMayComeFromTheCommandLine) {
  json j = json::parse(k_good);
  j.erase("data");
  auto r = parse_train_config(j.dump(), "cfg.json", ".");
  ASSERT_TRUE(r.ok()) << r.message();
  Status s = validate_train_config(*r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing key 'data'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--data"), std::string::npos) << s.message();
  r->data_dir = "/d";
  EXPECT_TRUE(validate_train_config(*r).ok());
}

TEST(TrainConfig, MissingFileIsAnError) {
  auto r = load_train_config("/nonexistent/dir/cfg.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("not found"), std::string::npos) << r.message();
}

TEST(TrainConfig, HashCoversTrajectoryNotCadence) {
  auto a = parse_train_config(k_good, "a", ".");
  ASSERT_TRUE(a.ok());
  a->model.vocab_size = 300;
  TrainConfig b = *a;
  b.train.save_interval = 1;  // cadence and paths do not change the losses
  b.train.eval_interval = 3;
  b.train.keep_last = 9;
  b.data_dir = "/elsewhere";
  EXPECT_EQ(train_config_hash(*a), train_config_hash(b));
  EXPECT_EQ(train_config_difference(train_config_json(*a), b), "");
  b.train.lr = 0.002;
  EXPECT_NE(train_config_hash(*a), train_config_hash(b));
  const std::string diff = train_config_difference(train_config_json(*a), b);
  EXPECT_NE(diff.find("train.lr"), std::string::npos) << diff;
  TrainConfig c = *a;
  c.model.dim = 128;
  EXPECT_NE(train_config_difference(train_config_json(*a), c).find("model.hidden_size"), std::string::npos);
}

// A dataset whose token at global position p of a split is f(p), written in the layout
// documented in data/shards.h (two shards for train so windows can straddle them).
constexpr int64_t k_vocab = 251;
int32_t train_token(int64_t p) { return static_cast<int32_t>((p * 7 + 3) % k_vocab); }
int32_t val_token(int64_t p) { return static_cast<int32_t>((p * 11 + 5) % k_vocab); }

void write_shard(const std::string& path, int64_t first, int64_t n, int32_t (*f)(int64_t)) {
  std::string bytes;
  for (int64_t p = first; p < first + n; ++p) {
    const auto v = static_cast<uint16_t>(f(p));
    bytes.push_back(static_cast<char>(v & 0xFF));
    bytes.push_back(static_cast<char>(v >> 8));
  }
  test::write_text(path, bytes);
}

void write_dataset(const std::string& dir, int64_t n_train, int64_t n_val) {
  std::filesystem::create_directories(dir);
  const int64_t half = n_train / 2;
  write_shard(dir + "/train-00000.bin", 0, half, train_token);
  write_shard(dir + "/train-00001.bin", half, n_train - half, train_token);
  write_shard(dir + "/val-00000.bin", 0, n_val, val_token);
  json m = {{"format", "slm-dataset"}, {"version", 1}, {"token_bytes", 2},
            {"vocab_size", k_vocab},   {"eos_id", -1},  {"tokenizer", "tokenizer.json"},
            {"splits",
             {{"train", {{"shards", {"train-00000.bin", "train-00001.bin"}}, {"tokens", n_train}, {"documents", 1}}},
              {"val", {{"shards", {"val-00000.bin"}}, {"tokens", n_val}, {"documents", 1}}}}},
            {"stats", json::object()}};
  test::write_text(dir + "/dataset.json", m.dump());
}

TEST(TrainData, WindowsAreConsecutiveTokensAndTargetsShiftByOne) {
  test::TempDir tmp;
  write_dataset(tmp.file("ds"), 1000, 300);
  auto ds = TokenDataset::open(tmp.file("ds"));
  ASSERT_TRUE(ds.ok()) << ds.message();
  const int64_t B = 3, T = 17;
  auto dl = DataLoader::create(&*ds, B, T, k_vocab, 42, 2);
  ASSERT_TRUE(dl.ok()) << dl.message();
  Batch b;
  std::vector<int64_t> starts;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(dl->next_batch(&b).ok());
    ASSERT_EQ(b.tokens.size(), static_cast<size_t>(B * T));
    for (int64_t r = 0; r < B; ++r) {
      // Recover the window start from the first token: f is a bijection on [0, 251).
      int64_t p0 = -1;
      for (int64_t p = 0; p < 1000 - T; ++p) {
        bool match = true;
        for (int64_t t = 0; t <= T && match; ++t) {
          const int32_t got = t < T ? b.tokens[r * T + t] : b.targets[r * T + T - 1];
          match = got == train_token(p + t);
        }
        if (match) {
          p0 = p;
          break;
        }
      }
      ASSERT_GE(p0, 0) << "window " << r << " of batch " << i << " is not a run of the split";
      for (int64_t t = 0; t + 1 < T; ++t) EXPECT_EQ(b.targets[r * T + t], b.tokens[r * T + t + 1]);
      starts.push_back(p0);
    }
  }
  // 150 draws over 983 possible starts: they must not all coincide (the RNG is used).
  std::sort(starts.begin(), starts.end());
  EXPECT_GT(std::unique(starts.begin(), starts.end()) - starts.begin(), 100);

  // Validation windows: fixed, inside the val split, first at 0 and last at the end.
  ASSERT_EQ(dl->n_eval_batches(), 2);
  Batch e0, e1, again;
  ASSERT_TRUE(dl->eval_batch(0, &e0).ok());
  ASSERT_TRUE(dl->eval_batch(1, &e1).ok());
  ASSERT_TRUE(dl->eval_batch(0, &again).ok());
  EXPECT_EQ(e0.tokens, again.tokens);
  EXPECT_EQ(e0.tokens[0], val_token(0));
  EXPECT_EQ(e1.targets[B * T - 1], val_token(299));  // last window ends at the split's end
  EXPECT_FALSE(dl->eval_batch(2, &again).ok());
}

TEST(TrainData, StateRoundTripContinuesTheStream) {
  test::TempDir tmp;
  write_dataset(tmp.file("ds"), 5000, 100);
  auto ds = TokenDataset::open(tmp.file("ds"));
  ASSERT_TRUE(ds.ok()) << ds.message();
  auto a = DataLoader::create(&*ds, 2, 8, k_vocab, 1, 1);
  ASSERT_TRUE(a.ok());
  Batch b;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->next_batch(&b).ok());
  const DataState saved = a->state();
  EXPECT_EQ(saved.batches_drawn, 3);
  std::vector<std::vector<int32_t>> expect;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(a->next_batch(&b).ok());
    expect.push_back(b.tokens);
  }
  auto c = DataLoader::create(&*ds, 2, 8, k_vocab, 1, 1);
  ASSERT_TRUE(c.ok());
  c->restore(saved);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(c->next_batch(&b).ok());
    EXPECT_EQ(b.tokens, expect[static_cast<size_t>(i)]) << "batch " << i;
  }
  // Another seed gives another stream.
  auto d = DataLoader::create(&*ds, 2, 8, k_vocab, 2, 1);
  ASSERT_TRUE(d.ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(d->next_batch(&b).ok());
  EXPECT_NE(b.tokens, expect[3]);
}

TEST(TrainData, TooSmallOrOutOfVocabularyIsAnError) {
  test::TempDir tmp;
  write_dataset(tmp.file("ds"), 10, 100);
  auto ds = TokenDataset::open(tmp.file("ds"));
  ASSERT_TRUE(ds.ok()) << ds.message();
  auto small = DataLoader::create(&*ds, 2, 16, k_vocab, 1, 1);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.message().find("train split has 10 tokens"), std::string::npos) << small.message();

  write_dataset(tmp.file("ds2"), 1000, 100);
  auto ds2 = TokenDataset::open(tmp.file("ds2"));
  ASSERT_TRUE(ds2.ok());
  // A model vocabulary smaller than the ids in the data.
  auto dl = DataLoader::create(&*ds2, 2, 16, 100, 1, 1);
  ASSERT_TRUE(dl.ok()) << dl.message();
  Batch b;
  Status s = dl->next_batch(&b);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("outside the model's vocabulary"), std::string::npos) << s.message();
}

TEST(TrainLog, ResumeCutsBackAndDropsATornLine) {
  test::TempDir tmp;
  const std::string path = tmp.file("train_log.jsonl");
  {
    TrainLog log;
    ASSERT_TRUE(log.open(path, 0).ok());
    for (int64_t s = 1; s <= 6; ++s) {
      ASSERT_TRUE(log.write_step({s, 1.0 / 3.0 + s, 1e-3, 0.5, 100, 1}).ok());
      if (s % 3 == 0) {
        ASSERT_TRUE(log.write_val(s, 2.0 + s).ok());
      }
    }
  }
  // A crash in the middle of a line.
  test::write_text(path, test::read_text(path) + "{\"step\": 7, \"lo");
  auto lines = read_train_log(path);
  ASSERT_TRUE(lines.ok());
  EXPECT_EQ(lines->size(), 8u);
  // The loss reads back exactly (17 significant digits).
  EXPECT_EQ((*lines)[0].loss, 1.0 / 3.0 + 1);
  {
    TrainLog log;
    ASSERT_TRUE(log.open(path, 4).ok());
    ASSERT_TRUE(log.write_step({5, 9.5, 1e-3, 0.5, 100, 1}).ok());
  }
  lines = read_train_log(path);
  ASSERT_TRUE(lines.ok());
  std::vector<int64_t> steps;
  for (const auto& l : *lines) steps.push_back(l.step * 10 + (l.is_val ? 1 : 0));
  EXPECT_EQ(steps, (std::vector<int64_t>{10, 20, 30, 31, 40, 50}));
  EXPECT_EQ(lines->back().loss, 9.5);
}

TEST(TrainCheckpoint, HfConfigAndShapeCheck) {
  TrainModelConfig m;
  m.vocab_size = 300;
  m.dim = 64;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.ffn_dim = 160;
  m.max_seq_len = 128;
  m.tied_embeddings = false;
  const json j = json::parse(hf_llama_config_json(m, 1, 2));
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["hidden_size"], 64);
  EXPECT_EQ(j["num_key_value_heads"], 2);
  EXPECT_EQ(j["tie_word_embeddings"], false);
  EXPECT_EQ(j["torch_dtype"], "float32");
  EXPECT_EQ(j["bos_token_id"], 1);
  EXPECT_EQ(j["eos_token_id"], 2);

  test::TempDir tmp;
  test::write_text(tmp.file("config.json"), j.dump());
  EXPECT_TRUE(check_checkpoint_shape(tmp.path(), m).ok());
  TrainModelConfig other = m;
  other.ffn_dim = 192;
  Status s = check_checkpoint_shape(tmp.path(), other);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("intermediate_size is 160 in the checkpoint, 192 in the config"),
            std::string::npos)
      << s.message();
  other = m;
  other.tied_embeddings = true;
  EXPECT_FALSE(check_checkpoint_shape(tmp.path(), other).ok());
}

}  // namespace
}  // namespace slm::train
