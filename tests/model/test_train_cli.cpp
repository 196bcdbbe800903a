// `slm train` end to end on a tiny model and a hand-written dataset (byte-level tokenizer, token
// id = byte): training lowers the loss; the checkpoint is a Hugging Face directory that
// `slm run` loads and whose validation loss a PyTorch decoder (tests/ref/torch_model.py)
// reproduces; SIGKILL or SIGINT at a random step + --resume repeats an uninterrupted run bit
// for bit; bad inputs and a full disk (RLIMIT_FSIZE) fail clearly and keep the last checkpoint.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace slm {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr int k_eos = 256;  // "<|endoftext|>"; ids 0..255 are the bytes themselves

// GPT-2's byte-to-character map, so the byte-level vocabulary has one entry per byte.
std::string byte_char(int b) {
  int cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

std::string tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  json t = {{"version", "1.0"},
            {"added_tokens",
             {{{"id", k_eos}, {"content", "<|endoftext|>"}, {"special", true}, {"single_word", false},
               {"lstrip", false}, {"rstrip", false}, {"normalized", false}}}},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
  return t.dump();
}

// A small deterministic "language": sentences from word lists, so a tiny model can learn it.
std::vector<std::string> documents(int n, uint64_t seed) {
  const char* subj[] = {"the cat", "a dog", "the bird", "my friend", "the old man"};
  const char* verb[] = {"sees", "likes", "finds", "helps", "follows"};
  const char* obj[] = {"the ball", "a tree", "the river", "a small house", "the red car"};
  std::vector<std::string> out;
  uint64_t x = seed;
  auto next = [&x](int n) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((x >> 33) % static_cast<uint64_t>(n));
  };
  for (int d = 0; d < n; ++d) {
    std::string doc;
    const int sentences = 3 + next(4);
    for (int s = 0; s < sentences; ++s) {
      doc += std::string(subj[next(5)]) + " " + verb[next(5)] + " " + obj[next(5)] + ". ";
    }
    out.push_back(doc);
  }
  return out;
}

void write_split(const std::string& dir, const std::string& name, const std::vector<std::string>& docs,
                 json* splits) {
  std::string bytes;
  int64_t n = 0;
  auto put = [&](int v) {
    bytes.push_back(static_cast<char>(v & 0xFF));
    bytes.push_back(static_cast<char>(v >> 8));
    ++n;
  };
  for (const auto& d : docs) {
    for (unsigned char c : d) put(c);
    put(k_eos);
  }
  test::write_text(dir + "/" + name + "-00000.bin", bytes);
  (*splits)[name] = {{"shards", {name + "-00000.bin"}}, {"tokens", n}, {"documents", docs.size()}};
}

// The dataset layout of data/shards.h, written by hand.
void write_dataset(const std::string& dir, int n_train_docs = 200, int n_val_docs = 20) {
  fs::create_directories(dir);
  json splits = json::object();
  write_split(dir, "train", documents(n_train_docs, 1), &splits);
  write_split(dir, "val", documents(n_val_docs, 2), &splits);
  test::write_text(dir + "/tokenizer.json", tokenizer_json());
  test::write_text(dir + "/tokenizer_config.json",
                   R"({"eos_token": "<|endoftext|>", "add_bos_token": false})");
  json m = {{"format", "slm-dataset"}, {"version", 1},       {"token_bytes", 2},
            {"vocab_size", 257},       {"eos_id", k_eos},    {"tokenizer", "tokenizer.json"},
            {"splits", splits},        {"stats", json::object()}};
  test::write_text(dir + "/dataset.json", m.dump());
}

json tiny_config(const std::string& data_dir) {
  return {{"model",
           {{"hidden_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"intermediate_size", 128}, {"max_position_embeddings", 32},
            {"tie_word_embeddings", true}}},
          {"data", data_dir},
          {"train",
           {{"batch_size", 4}, {"seq_len", 32}, {"grad_accum", 2}, {"max_steps", 40}, {"lr", 3e-3},
            {"warmup_steps", 4}, {"seed", 11}, {"eval_interval", 8}, {"eval_batches", 2},
            {"save_interval", 6}, {"keep_last", 2}, {"threads", 2}}}};
}

std::string write_config(const test::TempDir& tmp, const json& cfg, const std::string& name = "cfg.json") {
  test::write_text(tmp.file(name), cfg.dump(2));
  return tmp.file(name);
}

test::RunResult slm(const std::string& args) { return test::run(test::slm_exe() + " " + args); }

struct LogStep {
  double loss = 0, lr = 0, grad_norm = 0;
};
struct Log {
  std::vector<std::pair<int64_t, LogStep>> steps;
  std::vector<std::pair<int64_t, double>> val;
};
Log read_log(const std::string& path) {
  Log log;
  std::string text = fs::exists(path) ? test::read_text(path) : "";
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    json j = json::parse(text.substr(pos, nl - pos));
    pos = nl + 1;
    if (j.contains("val_loss")) {
      log.val.emplace_back(j["step"].get<int64_t>(), j["val_loss"].get<double>());
    } else {
      log.steps.push_back({j["step"].get<int64_t>(),
                           {j["loss"].get<double>(), j["lr"].get<double>(), j["grad_norm"].get<double>()}});
    }
  }
  return log;
}

int64_t last_logged_step(const std::string& path) {
  if (!fs::exists(path)) return 0;
  std::string text = test::read_text(path);
  int64_t last = 0;
  size_t pos = 0;
  while ((pos = text.find("{\"step\": ", pos)) != std::string::npos) {
    pos += 9;
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // torn line
    last = std::max<int64_t>(last, std::stoll(text.substr(pos)));
  }
  return last;
}

// Starts `slm args...` with output to log_file; fsize_limit > 0 sets RLIMIT_FSIZE in the child
// with SIGXFSZ ignored, so writes past it fail with EFBIG (a full disk, as the process sees it).
pid_t spawn(const std::vector<std::string>& args, const std::string& log_file, rlim_t fsize_limit = 0) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  if (fsize_limit > 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl {fsize_limit, fsize_limit};
    setrlimit(RLIMIT_FSIZE, &rl);
  }
  std::vector<char*> argv;
  std::string exe = test::slm_exe();
  argv.push_back(exe.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(exe.c_str(), argv.data());
  _exit(127);
}

int wait_status(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = tmp_.file("ds");
    write_dataset(data_);
  }
  test::TempDir tmp_;
  std::string data_;
};

// Mean cross-entropy of the validation windows under the PyTorch reference decoder.
double torch_val_loss(const std::string& ckpt, const std::vector<std::vector<int32_t>>& windows,
                      const test::TempDir& tmp) {
  json w = windows;
  test::write_text(tmp.file("windows.json"), w.dump());
  const std::string script = R"PY(
import json, math, sys
sys.path.insert(0, sys.argv[1])
import torch
import torch_model as tm
cfg, t = tm.load_hf(sys.argv[2])
windows = json.load(open(sys.argv[3]))
total, n = 0.0, 0
for w in windows:
    logits = tm.hf_forward(cfg, t, w[:-1]).double()
    lp = torch.log_softmax(logits, dim=-1)
    for i, target in enumerate(w[1:]):
        total -= float(lp[i, target]); n += 1
print('%.12f' % (total / n))
)PY";
  test::write_text(tmp.file("val.py"), script);
  test::RunResult r = test::run(test::python_exe() + " " + test::sh_quote(tmp.file("val.py")) + " " +
                                test::sh_quote(test::source_dir() + "/tests/ref") + " " +
                                test::sh_quote(ckpt) + " " + test::sh_quote(tmp.file("windows.json")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? std::stod(r.out) : NAN;
}

TEST_F(TrainCli, TrainsACheckpointThatSlmRunAndPyTorchLoad) {
  json cfg = tiny_config(data_);
  cfg["train"]["max_steps"] = 30;
  cfg["train"]["save_interval"] = 10;
  cfg["train"]["eval_interval"] = 10;
  cfg["train"]["keep_last"] = 2;
  const std::string out = tmp_.file("run");
  test::RunResult r = slm("train " + test::sh_quote(write_config(tmp_, cfg)) + " --out " + test::sh_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("done at step 30/30"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("val loss"), std::string::npos) << r.err;

  // keep_last 2: checkpoints 20 and 30 remain, 10 was pruned; no temporary directory left.
  EXPECT_FALSE(fs::exists(out + "/checkpoint-10"));
  EXPECT_TRUE(fs::exists(out + "/checkpoint-20/trainer_state.json"));
  const std::string ckpt = out + "/checkpoint-30";
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                        "generation_config.json", "trainer_state.json", "optimizer.bin"}) {
    EXPECT_TRUE(fs::exists(ckpt + "/" + f)) << f;
  }
  for (const auto& e : fs::directory_iterator(out)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
  EXPECT_TRUE(fs::exists(out + "/loss.png"));
  const json hf = json::parse(test::read_text(ckpt + "/config.json"));
  EXPECT_EQ(hf["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(hf["vocab_size"], 257);  // from the dataset
  EXPECT_EQ(hf["eos_token_id"], k_eos);

  // The loss fell well below the uniform guess ln(257) = 5.55.
  Log log = read_log(out + "/train_log.jsonl");
  ASSERT_EQ(log.steps.size(), 30u);
  for (size_t i = 0; i < log.steps.size(); ++i) EXPECT_EQ(log.steps[i].first, static_cast<int64_t>(i) + 1);
  EXPECT_GT(log.steps.front().second.loss, 5.0);
  EXPECT_LT(log.steps.back().second.loss, 3.2);
  ASSERT_EQ(log.val.size(), 3u);
  EXPECT_LT(log.val.back().second, 3.2);

  // The validation loss at step 30, recomputed by PyTorch from the checkpoint on the same
  // windows: the eval_batches * batch_size windows of seq_len + 1 tokens at offsets
  // floor(i * (n - seq_len - 1) / (count - 1)) of the val split (docs/TRAINING.md).
  std::vector<int32_t> val_tokens;
  for (const auto& d : documents(20, 2)) {
    for (unsigned char c : d) val_tokens.push_back(c);
    val_tokens.push_back(k_eos);
  }
  const int64_t T = 32, count = 2 * 4, span = static_cast<int64_t>(val_tokens.size()) - T - 1;
  std::vector<std::vector<int32_t>> windows;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t off = i * span / (count - 1);
    windows.emplace_back(val_tokens.begin() + off, val_tokens.begin() + off + T + 1);
  }
  const double ref = torch_val_loss(ckpt, windows, tmp_);
  EXPECT_NEAR(log.val.back().second, ref, 1e-4 * ref) << "slm val loss vs PyTorch on the checkpoint";

  // slm run loads the directory and continues a prompt in the corpus' words.
  r = slm("run " + test::sh_quote(ckpt) + " -p 'the cat ' -n 24 --temp 0 --kv-type f32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(r.out.size(), 10u) << r.out;
}

// The uninterrupted run both resume tests compare against, trained once per test binary.
struct Reference {
  test::TempDir dir;
  std::string cfg_path, out;
  Log log;
  std::string error;  // non-empty if the reference run failed
};
const Reference& reference() {
  static const std::unique_ptr<Reference> ref = [] {
    auto r = std::make_unique<Reference>();
    write_dataset(r->dir.file("ds"));
    r->cfg_path = write_config(r->dir, tiny_config(r->dir.file("ds")));
    r->out = r->dir.file("ref");
    test::RunResult run = slm("train " + test::sh_quote(r->cfg_path) + " -q --out " + test::sh_quote(r->out));
    if (run.exit_code != 0) r->error = run.err;
    r->log = read_log(r->out + "/train_log.jsonl");
    return r;
  }();
  return *ref;
}

// Kills a run at a random step (SIGKILL, or SIGINT which saves first), resumes it, and checks
// every logged step and validation, and the final weights, against an uninterrupted run.
void interrupted_run_matches(const test::TempDir& tmp, int sig) {
  const Reference& reference_run = reference();
  ASSERT_EQ(reference_run.error, "");
  const std::string& cfg_path = reference_run.cfg_path;
  const std::string& ref_out = reference_run.out;
  const Log& ref = reference_run.log;
  ASSERT_EQ(ref.steps.size(), 40u);
  test::RunResult r;

  std::mt19937 rng(std::random_device{}());
  std::string out;
  int64_t killed_at = -1;
  for (int attempt = 0; attempt < 4 && killed_at < 0; ++attempt) {
    out = tmp.file("run" + std::to_string(sig) + "_" + std::to_string(attempt));
    // SIGKILL leaves only the checkpoints saved so far (every 6 steps): a kill before the
    // first one leaves nothing to resume, so it aims past it. SIGINT saves where it stops.
    const int64_t first = sig == SIGKILL ? 7 : 2;
    const int64_t target = std::uniform_int_distribution<int64_t>(first, 30 - 6 * attempt)(rng);
    const pid_t pid = spawn({"train", cfg_path, "-q", "--out", out}, tmp.file("child.log"));
    ASSERT_GT(pid, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    int st = 0;
    bool exited = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (last_logged_step(out + "/train_log.jsonl") >= target) break;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (exited) continue;  // finished before the signal: try an earlier step
    kill(pid, sig);
    st = wait_status(pid);
    if (sig == SIGKILL) {
      ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
    } else {
      ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::read_text(tmp.file("child.log"));
    }
    killed_at = last_logged_step(out + "/train_log.jsonl");
  }
  ASSERT_GE(killed_at, 1) << "the run always finished before it could be interrupted";
  ASSERT_LT(killed_at, 40) << "interrupted after the last step: nothing left to resume";
  std::printf("[ interrupted with signal %d after logged step %lld ]\n", sig, (long long)killed_at);
  if (sig == SIGINT) {
    // Ctrl-C saved the step it stopped at.
    EXPECT_TRUE(fs::exists(out + "/" + "checkpoint-" + std::to_string(killed_at)));
  }
  // A directory left by a crash during a save must be ignored.
  fs::create_directories(out + "/checkpoint-999.tmp");
  test::write_text(out + "/checkpoint-999.tmp/model.safetensors", "partial");

  r = slm("train " + test::sh_quote(cfg_path) + " --resume --out " + test::sh_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("resuming from"), std::string::npos) << r.err;
  const Log got = read_log(out + "/train_log.jsonl");
  ASSERT_EQ(got.steps.size(), ref.steps.size()) << "steps missing or duplicated";
  for (size_t i = 0; i < ref.steps.size(); ++i) {
    EXPECT_EQ(got.steps[i].first, ref.steps[i].first);
    // Exact equality: the log holds 17 significant digits, so equal text is equal bits.
    EXPECT_EQ(got.steps[i].second.loss, ref.steps[i].second.loss) << "step " << ref.steps[i].first;
    EXPECT_EQ(got.steps[i].second.lr, ref.steps[i].second.lr) << "step " << ref.steps[i].first;
    EXPECT_EQ(got.steps[i].second.grad_norm, ref.steps[i].second.grad_norm) << "step " << ref.steps[i].first;
  }
  EXPECT_EQ(got.val, ref.val);
  EXPECT_EQ(test::read_text(out + "/checkpoint-40/model.safetensors"),
            test::read_text(ref_out + "/checkpoint-40/model.safetensors"))
      << "final weights differ";
}

TEST_F(TrainCli, SigkillAtARandomStepThenResumeIsBitExact) { interrupted_run_matches(tmp_, SIGKILL); }

TEST_F(TrainCli, SigintSavesAndResumeIsBitExact) { interrupted_run_matches(tmp_, SIGINT); }

TEST_F(TrainCli, FullDiskWhileSavingKeepsThePreviousCheckpoint) {
  json cfg = tiny_config(data_);
  cfg["train"]["max_steps"] = 12;
  cfg["train"]["eval_interval"] = 4;
  cfg["train"]["save_interval"] = 4;
  cfg["train"]["keep_last"] = 0;
  const std::string cfg_path = write_config(tmp_, cfg);
  const std::string out = tmp_.file("run");
  // A whole run, then its later checkpoints removed: the state of a run stopped at step 4.
  test::RunResult r = slm("train " + test::sh_quote(cfg_path) + " -q --out " + test::sh_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::remove_all(out + "/checkpoint-8");
  fs::remove_all(out + "/checkpoint-12");
  ASSERT_TRUE(fs::exists(out + "/checkpoint-4/trainer_state.json"));
  std::vector<std::string> before;
  for (const char* f : {"model.safetensors", "optimizer.bin", "trainer_state.json", "config.json"}) {
    before.push_back(test::read_text(out + "/checkpoint-4/" + f));
  }

  // Resume under a 48 KB file size limit: the log and the JSON files fit, model.safetensors
  // (~360 KB) does not, so the save at step 8 fails with EFBIG.
  const pid_t pid = spawn({"train", cfg_path, "-q", "--resume", "--out", out}, tmp_.file("full.log"), 48 << 10);
  const int st = wait_status(pid);
  const std::string err = test::read_text(tmp_.file("full.log"));
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << "status " << st << ": " << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  EXPECT_NE(err.find("checkpoint-8"), std::string::npos) << err;
  EXPECT_NE(err.find("earlier checkpoints are intact"), std::string::npos) << err;

  // Nothing half-written is left; checkpoint-4 is byte for byte what it was, and loads.
  EXPECT_FALSE(fs::exists(out + "/checkpoint-8.tmp"));
  EXPECT_FALSE(fs::exists(out + "/checkpoint-8"));
  size_t i = 0;
  for (const char* f : {"model.safetensors", "optimizer.bin", "trainer_state.json", "config.json"}) {
    EXPECT_EQ(test::read_text(out + "/checkpoint-4/" + f), before[i++]) << f;
  }
  r = slm("run " + test::sh_quote(out + "/checkpoint-4") + " -p 'the ' -n 4 --temp 0");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Without the limit the run resumes from it and finishes.
  r = slm("train " + test::sh_quote(cfg_path) + " -q --resume --out " + test::sh_quote(out));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out + "/checkpoint-12/model.safetensors"));
}

TEST_F(TrainCli, BadInputsFailClearly) {
  struct Case {
    std::string what, args, expect;
  };
  const json good = tiny_config(data_);
  auto cfg_with = [&](const std::string& name, const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    return write_config(tmp_, j, name);
  };
  // Datasets: empty corpus, a binary file where the directory should be, a binary manifest,
  // token ids beyond the vocabulary (binary data tokenized as nothing valid).
  const std::string empty = tmp_.file("empty");
  write_dataset(empty, 0, 0);
  test::write_text(tmp_.file("binary.bin"), std::string("\x7f" "ELF\x02\x01\x01\x00\xff\xfe", 10));
  const std::string badman = tmp_.file("badman");
  write_dataset(badman);
  test::write_text(badman + "/dataset.json", std::string("\x89PNG\r\n\x1a\n\x00\x00", 10));
  const std::string badids = tmp_.file("badids");
  write_dataset(badids);
  {
    std::string junk(4000, '\0');
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 131 + 7) & 0xFF);
    test::write_text(badids + "/train-00000.bin", junk);
    json m = json::parse(test::read_text(badids + "/dataset.json"));
    m["splits"]["train"]["tokens"] = 2000;
    test::write_text(badids + "/dataset.json", m.dump());
  }
  test::write_text(tmp_.file("broken.json"), "{\"model\": {\"hidden_size\": 64,");
  const Case cases[] = {
      {"missing config", test::sh_quote(tmp_.file("nope.json")), "config file not found"},
      {"malformed config", test::sh_quote(tmp_.file("broken.json")), "not valid JSON"},
      {"unknown key", cfg_with("c1.json", [](json& j) { j["train"]["learning_rate"] = 1; }), "unknown key 'train.learning_rate'"},
      {"wrong type", cfg_with("c2.json", [](json& j) { j["model"]["hidden_size"] = "64"; }), "model.hidden_size"},
      {"missing data", cfg_with("c3.json", [&](json& j) { j["data"] = tmp_.file("nodata"); }), "not a dataset directory"},
      {"data is a binary file", cfg_with("c4.json", [&](json& j) { j["data"] = tmp_.file("binary.bin"); }), "not a dataset directory"},
      {"binary manifest", cfg_with("c5.json", [&](json& j) { j["data"] = badman; }), "dataset.json"},
      {"empty corpus", cfg_with("c6.json", [&](json& j) { j["data"] = empty; }), "is the corpus empty?"},
      {"ids beyond the vocabulary", cfg_with("c7.json", [&](json& j) { j["data"] = badids; }), "badids"},
      {"vocab smaller than the data", cfg_with("c8.json", [](json& j) { j["model"]["vocab_size"] = 100; }), "smaller than the dataset's vocabulary"},
      {"no output directory", cfg_with("c9.json", [](json&) {}), "--out"},
  };
  for (const Case& c : cases) {
    const std::string out = c.what == "no output directory" ? "" : " --out " + test::sh_quote(tmp_.file("o"));
    test::RunResult r = slm("train " + c.args + out + " -q");
    EXPECT_EQ(r.exit_code, 1) << c.what << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.what << ": " << r.err;
    EXPECT_EQ(r.err.find("Assertion"), std::string::npos) << c.what;
  }

  // Corpora through the real pipeline (`slm data prepare` with the byte tokenizer): binary
  // data is refused before training; invalid UTF-8 is repaired (U+FFFD) and trains.
  {
    const std::string corpus_bin = tmp_.file("corpus_bin"), corpus_utf = tmp_.file("corpus_utf");
    fs::create_directories(corpus_bin);
    fs::create_directories(corpus_utf);
    std::string binary(4000, '\0');
    for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>((i * 97 + 13) & 0xFF);
    test::write_text(corpus_bin + "/a.txt", binary);
    const auto docs = documents(40, 3);
    for (size_t i = 0; i < docs.size(); ++i) {
      test::write_text(corpus_utf + "/d" + std::to_string(i) + ".txt", docs[i] + "\xff\xfe\xc3(" + docs[i]);
    }
    const std::string tok = test::sh_quote(data_ + "/tokenizer.json");
    test::RunResult p = slm("data prepare " + test::sh_quote(corpus_bin) + " --tokenizer " + tok + " -q -o " +
                            test::sh_quote(tmp_.file("ds_bin")));
    EXPECT_NE(p.exit_code, 0) << "a binary corpus was accepted";
    EXPECT_NE(p.err.find("empty"), std::string::npos) << p.err;
    p = slm("data prepare " + test::sh_quote(corpus_utf) + " --tokenizer " + tok +
            " -q --val-fraction 0.25 -o " + test::sh_quote(tmp_.file("ds_utf")));
    ASSERT_EQ(p.exit_code, 0) << p.err;
    json j = good;
    j["data"] = tmp_.file("ds_utf");
    j["train"]["max_steps"] = 2;
    j["train"]["warmup_steps"] = 1;
    p = slm("train " + test::sh_quote(write_config(tmp_, j, "utf.json")) + " -q --out " + test::sh_quote(tmp_.file("o_utf")));
    EXPECT_EQ(p.exit_code, 0) << p.err;
  }

  // Resume refusals: no checkpoint yet, a different model shape, a different thread count.
  const std::string out = tmp_.file("run");
  const std::string cfg_path = write_config(tmp_, good, "g.json");
  test::RunResult r = slm("train " + test::sh_quote(cfg_path) + " -q --resume --out " + test::sh_quote(out));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no complete checkpoint"), std::string::npos) << r.err;
  r = slm("train " + test::sh_quote(cfg_path) + " -q --max-steps 4 --out " + test::sh_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json wide = good;
  wide["model"]["hidden_size"] = 128;
  r = slm("train " + test::sh_quote(write_config(tmp_, wide, "w.json")) + " -q --max-steps 4 --resume --out " +
          test::sh_quote(out));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("hidden_size is 64 in the checkpoint, 128 in the config"), std::string::npos) << r.err;
  r = slm("train " + test::sh_quote(cfg_path) + " -q --max-steps 4 --threads 1 --resume --out " + test::sh_quote(out));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--threads 2"), std::string::npos) << r.err;
  // A different schedule is a config change: refused with the key named.
  r = slm("train " + test::sh_quote(cfg_path) + " -q --max-steps 8 --resume --out " + test::sh_quote(out));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("train.max_steps: 4 in the checkpoint, 8 now"), std::string::npos) << r.err;
  // A fresh run into a directory that holds checkpoints.
  r = slm("train " + test::sh_quote(cfg_path) + " -q --max-steps 4 --out " + test::sh_quote(out));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already holds checkpoints"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace slm
