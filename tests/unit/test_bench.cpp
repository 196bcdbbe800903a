// `slm bench` command line: the tiny random-weight model it writes (read back by
// @huggingface/gguf), the JSON fields and their accounting against hand-computed byte and flop
// counts, the human table, and errors for bad arguments. No timing assertions.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace slm::test {
namespace {

using json = nlohmann::json;

std::string slm() { return sh_quote(slm_exe()); }

// The "tiny" preset's shapes, restated here so the accounting is checked against an
// independent count: llama, vocab 512, n_embd 64, 2 layers, 4 heads, 2 KV heads, FFN 128, tied.
constexpr int64_t V = 512, E = 64, L = 2, H = 4, HKV = 2, F = 128, HD = E / H, KV = HKV * HD;

// One tiny F32 model shared by the tests of this file.
class BenchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    RunResult r = run(slm() + " bench --make-model tiny " + sh_quote(model()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string model() { return dir_->file("tiny.gguf"); }
  static TempDir* dir_;
};
TempDir* BenchTest::dir_ = nullptr;

TEST_F(BenchTest, MadeModelReadsBackWithIndependentParser) {
  std::string script = source_dir() + "/tests/ref/gguf_read.mjs";
  RunResult r = run(node_cmd() + " " + sh_quote(script) + " " + sh_quote(model()));
  ASSERT_EQ(r.exit_code, 0) << "@huggingface/gguf failed: " << r.err;
  json g = json::parse(r.out);
  const json& md = g["metadata"];
  EXPECT_EQ(md["general.architecture"]["value"], "llama");
  EXPECT_EQ(md["llama.embedding_length"]["value"], E);
  EXPECT_EQ(md["llama.block_count"]["value"], L);
  EXPECT_EQ(md["llama.attention.head_count"]["value"], H);
  EXPECT_EQ(md["llama.attention.head_count_kv"]["value"], HKV);
  EXPECT_EQ(md["llama.feed_forward_length"]["value"], F);
  EXPECT_EQ(md["tokenizer.ggml.model"]["value"], "llama");
  const json& toks = md["tokenizer.ggml.tokens"]["value"];
  ASSERT_EQ(toks.size(), static_cast<size_t>(V));
  EXPECT_EQ(toks[0], "<unk>");
  EXPECT_EQ(toks[1], "<s>");
  EXPECT_EQ(toks[2], "</s>");
  EXPECT_EQ(toks[3], "<0x00>");
  EXPECT_EQ(toks[258], "<0xFF>");
  std::set<std::string> distinct(toks.begin(), toks.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(V));
  EXPECT_EQ(md["tokenizer.ggml.scores"]["value"].size(), static_cast<size_t>(V));
  EXPECT_EQ(md["tokenizer.ggml.token_type"]["value"].size(), static_cast<size_t>(V));
  // token_embd + output_norm + 9 per layer (tied: no output.weight).
  ASSERT_EQ(g["tensors"].size(), static_cast<size_t>(2 + 9 * L));
  bool saw_down = false;
  for (const json& t : g["tensors"]) {
    EXPECT_EQ(t["dtype"], 0) << t["name"];  // F32
    if (t["name"] == "blk.1.ffn_down.weight") {
      saw_down = true;
      EXPECT_EQ(t["shape"], json::array({std::to_string(F), std::to_string(E)}));
    }
    EXPECT_NE(t["name"], "output.weight");
  }
  EXPECT_TRUE(saw_down);
  // The data section ends exactly at the end of the file: 32-byte aligned tensors.
  uint64_t data = 0;
  for (const json& t : g["tensors"]) {
    uint64_t n = 1;
    for (const json& d : t["shape"]) n *= std::stoull(d.get<std::string>());
    data = std::max<uint64_t>(data, std::stoull(t["offset"].get<std::string>()) + (n * 4 + 31) / 32 * 32);
  }
  const json& off = g["tensorDataOffset"];
  const uint64_t data_offset = off.is_string() ? std::stoull(off.get<std::string>())
                               : off.is_object() ? std::stoull(off["$big"].get<std::string>())
                                                 : off.get<uint64_t>();
  EXPECT_EQ(data_offset + data,
            std::filesystem::file_size(model()));
}

TEST_F(BenchTest, MadeModelRuns) {
  // The synthetic tokenizer and weights are usable by the ordinary generation path.
  RunResult r = run(slm() + " run " + sh_quote(model()) + " -p hello -n 4 --temp 0 -t 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(BenchTest, JsonFieldsAndAccounting) {
  const int64_t p = 8, n = 4;
  RunResult r = run(slm() + " bench " + sh_quote(model()) +
                    " -p 8 -n 4 -t 1 -r 2 --json --bw-mib 16 --bw-passes 2 --gemm-seconds 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["arch"], "llama");
  EXPECT_EQ(j["weight_type"], "F32");
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["n_prompt"], p);
  EXPECT_EQ(j["n_gen"], n);
  EXPECT_EQ(j["repetitions"], 2);
  EXPECT_EQ(j["file_bytes"].get<uint64_t>(), std::filesystem::file_size(model()));
  EXPECT_GT(j["peak_rss_bytes"].get<double>(), 0);

  for (const char* part : {"prompt", "gen"}) {
    SCOPED_TRACE(part);
    const json& s = j[part]["tok_s"];
    ASSERT_EQ(s["runs"].size(), 2u);
    for (const json& v : s["runs"]) EXPECT_GT(v.get<double>(), 0);
    EXPECT_GT(s["median"].get<double>(), 0);
    EXPECT_LE(s["min"].get<double>(), s["median"].get<double>());
    EXPECT_GE(s["max"].get<double>(), s["median"].get<double>());
    EXPECT_GE(s["stddev"].get<double>(), 0);
  }

  // Bytes per generated token: every layer matrix, the (tied) output matrix, norms, and one
  // embedding row, all F32.
  const int64_t layer_mats = E * E * 2 + E * KV * 2 + E * F * 3;
  const int64_t norms = L * 2 * E + E;
  const uint64_t want_bytes = static_cast<uint64_t>(4 * (L * layer_mats + V * E + norms + E));
  EXPECT_EQ(j["gen"]["bytes_per_token"].get<uint64_t>(), want_bytes);
  // K and V rows (F16, 2 bytes a value) of the positions attended, mean over the generated
  // tokens p .. p+n-1.
  EXPECT_DOUBLE_EQ(j["gen"]["kv_cache_bytes_per_token"].get<double>(), 2.0 * L * KV * 2 * (p + (n + 1) / 2.0));
  // Prompt flops: 2 per weight per token for layer matrices, the output for the last token,
  // causal attention 4 * L * H * HD * p(p+1)/2.
  const double want_flops = 2.0 * L * layer_mats * p + 2.0 * V * E + 4.0 * L * H * HD * p * (p + 1) / 2;
  EXPECT_DOUBLE_EQ(j["prompt"]["flops_per_prompt"].get<double>(), want_flops);
  EXPECT_NEAR(j["prompt"]["gflops"].get<double>(),
              want_flops * j["prompt"]["tok_s"]["median"].get<double>() / p / 1e9,
              1e-9 * want_flops);

  const json& m = j["machine"];
  ASSERT_TRUE(m.contains("read_bandwidth_gbs"));
  EXPECT_GT(m["read_bandwidth_gbs"].get<double>(), 0);
  EXPECT_EQ(m["read_bandwidth_statistic"], "best pass");
  // --bw-passes 2 per sample, a sample after the warm-up and after each of the 2 timed runs.
  ASSERT_EQ(m["read_bandwidth_passes_gbs"].size(), 6u);
  double best_pass = 0;
  for (const json& v : m["read_bandwidth_passes_gbs"]) best_pass = std::max(best_pass, v.get<double>());
  EXPECT_EQ(m["read_bandwidth_gbs"].get<double>(), best_pass);
  EXPECT_GE(m["read_bandwidth_gbs"].get<double>(), m["read_bandwidth_median_gbs"].get<double>());
  EXPECT_GT(m["read_bandwidth_median_gbs"].get<double>(), 0);
  EXPECT_EQ(m["read_bandwidth_threads"], 1);
  ASSERT_TRUE(m.contains("gemm_peak_gflops"));
  const double peak = m["gemm_peak_gflops"].get<double>();
  EXPECT_GT(peak, 0);
  ASSERT_EQ(m["gemm_samples_gflops"].size(), 3u);
  double best_gemm = 0;
  for (const json& v : m["gemm_samples_gflops"]) best_gemm = std::max(best_gemm, v.get<double>());
  EXPECT_EQ(peak, best_gemm);
  const double gemm_median = m["gemm_median_gflops"].get<double>();
  EXPECT_GT(gemm_median, 0);
  EXPECT_LE(gemm_median, peak);
  EXPECT_NEAR(j["prompt"]["fraction_of_gemm_peak"].get<double>(),
              j["prompt"]["gflops"].get<double>() / peak, 1e-9);
  EXPECT_NEAR(j["prompt"]["fraction_of_gemm_median"].get<double>(),
              j["prompt"]["gflops"].get<double>() / gemm_median, 1e-9);
  const double bound = m["read_bandwidth_gbs"].get<double>() * 1e9 / static_cast<double>(want_bytes);
  EXPECT_NEAR(j["gen"]["bandwidth_bound_tok_s"].get<double>(), bound, 1e-9 * bound);
  EXPECT_NEAR(j["gen"]["fraction_of_bound"].get<double>(),
              j["gen"]["tok_s"]["median"].get<double>() / bound, 1e-9);
  const double median_bound =
      m["read_bandwidth_median_gbs"].get<double>() * 1e9 / static_cast<double>(want_bytes);
  EXPECT_NEAR(j["gen"]["bandwidth_bound_at_median_tok_s"].get<double>(), median_bound, 1e-9 * median_bound);
  EXPECT_NEAR(j["gen"]["fraction_of_median_bound"].get<double>(),
              j["gen"]["tok_s"]["median"].get<double>() / median_bound, 1e-9);
}

TEST_F(BenchTest, PromptOnlyAndNoLimits) {
  RunResult r = run(slm() + " bench " + sh_quote(model()) + " -p 4 -n 0 -t 1 -r 1 --json --no-limits");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_TRUE(j.contains("prompt"));
  EXPECT_FALSE(j.contains("gen"));
  EXPECT_FALSE(j["machine"].contains("read_bandwidth_gbs"));
  EXPECT_FALSE(j["machine"].contains("gemm_peak_gflops"));
  EXPECT_FALSE(j["prompt"].contains("fraction_of_gemm_peak"));
}

TEST_F(BenchTest, HumanTable) {
  RunResult r = run(slm() + " bench " + sh_quote(model()) + " -p 4 -n 2 -t 1 -r 1 --bw-mib 8 --bw-passes 1 --gemm-seconds 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("pp4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tg2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("read bandwidth"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("of the bandwidth bound"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FP32 GEMM peak"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("of the GEMM peak"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak RSS"), std::string::npos) << r.out;
}

// Joins arguments with spaces (built stepwise: g++ 12 warns falsely on chained " " + s).
std::string join(std::initializer_list<std::string> parts) {
  std::string out;
  for (const std::string& p : parts) {
    out += ' ';
    out += p;
  }
  return out;
}

TEST_F(BenchTest, BadArguments) {
  const std::string m = sh_quote(model()), x = sh_quote(dir_->file("x.gguf"));
  struct Case {
    std::string args, message;
  };
  const Case cases[] = {
      {join({m, "--no-limits -r 0"}), "repetitions"},
      {join({m, "--no-limits -p 0 -n 0"}), "positive prompt length"},
      {join({m, "--no-limits -t 0"}), "threads"},
      {join({m, "--no-limits -p -3"}), "-p"},
      {join({m, "--bw-mib 0"}), "--bw-mib"},
      {join({m, "--gemm-seconds -1"}), "--gemm-seconds"},
      {join({m, "--bw-passes 0"}), "passes per sample 0"},
      {join({m, "--bw-passes 65"}), "passes per sample 65"},
      {join({sh_quote(dir_->file("missing.gguf"))}), "missing.gguf"},
      {join({"--make-model nosuch", x}), "unknown preset 'nosuch'"},
      {join({"--make-model tiny --type Q9_9", x}), "unknown type 'Q9_9'"},
      {join({"--make-model tiny", sh_quote(dir_->file("no/such/dir/x.gguf"))}), "cannot create"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    RunResult r = run(slm() + " bench" + c.args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir_->file("x.gguf")));
}

}  // namespace
}  // namespace slm::test
