// `slm export` output run by llama.cpp itself (node-llama-cpp's prebuilt CPU binary, pinned in
// tests/ref-llama): the same prompt token ids and the same greedy tokens as slm on the same
// file, for a real llama2.c model and for a Hugging Face Llama with a byte-level BPE tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "generate/generate.h"
#include "model/fixture.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace slm;

constexpr int k_tokens = 24;

struct Greedy {
  std::vector<int32_t> prompt_tokens, tokens;
};

std::string ref_dir() { return test::source_dir() + "/tests/ref-llama"; }

// llama.cpp's tokenization and greedy continuation of each prompt (one node process per file).
std::vector<Greedy> llama_cpp_greedy(const std::string& gguf, const std::vector<std::string>& prompts) {
  std::vector<Greedy> out;
  if (!std::filesystem::exists(ref_dir() + "/node_modules/node-llama-cpp/package.json")) {
    ADD_FAILURE() << "node-llama-cpp is not installed in tests/ref-llama: run scripts/setup.sh";
    return out;
  }
  // Appended piece by piece: g++ 12 warns (-Wrestrict, falsely) on long chains of operator+.
  std::string cmd = test::node_cmd();
  cmd.append(" ").append(test::sh_quote(ref_dir() + "/greedy.mjs"));
  cmd.append(" ").append(test::sh_quote(gguf));
  cmd.append(" ").append(std::to_string(k_tokens));
  for (const std::string& p : prompts) cmd.append(" ").append(test::sh_quote(p));
  auto r = test::run(cmd);
  if (r.exit_code != 0) {
    ADD_FAILURE() << "node-llama-cpp failed on " << gguf << " (" << r.exit_code << "): " << r.err;
    return out;
  }
  for (const auto& j : nlohmann::json::parse(r.out)) {
    out.push_back({j["prompt_tokens"].get<std::vector<int32_t>>(),
                   j["tokens"].get<std::vector<int32_t>>()});
  }
  return out;
}

// slm on the same file: prompt ids as llama.cpp tokenizes (BOS per the model, no special-token
// parsing) and greedy tokens without the final end-of-generation token (llama.cpp's loop stops
// before it).
Greedy slm_greedy(const Model& m, const std::string& prompt) {
  Greedy g;
  g.prompt_tokens = m.tokenizer().encode(prompt, true, false);
  Session s(m, 256, 1);
  GenerateOptions o;
  o.sampling.temperature = 0.0f;
  o.max_tokens = k_tokens;
  auto r = generate(s, m, g.prompt_tokens, o, nullptr);
  EXPECT_TRUE(r.ok()) << r.message();
  if (!r.ok()) return g;
  g.tokens = r->tokens;
  if (r->finish_reason == FinishReason::eos && !g.tokens.empty()) g.tokens.pop_back();
  return g;
}

// Exports src with `slm export` (extra CLI args) to each type and compares both engines.
void check_export(const std::string& src, const std::string& extra,
                  const std::vector<std::string>& prompts, const std::string& dir) {
  for (const char* type : {"F32", "F16", "Q8_0"}) {
    SCOPED_TRACE(type);
    const std::string out = dir + "/out-" + type + ".gguf";
    auto e = test::run(test::sh_quote(test::slm_exe()) + " export " + test::sh_quote(src) + " " +
                       test::sh_quote(out) + " --type " + type + " -q" + extra);
    ASSERT_EQ(e.exit_code, 0) << e.err;
    auto m = Model::load(out);
    ASSERT_TRUE(m.ok()) << m.message();
    const std::vector<Greedy> ref = llama_cpp_greedy(out, prompts);
    ASSERT_EQ(ref.size(), prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      SCOPED_TRACE(prompts[i]);
      const Greedy ours = slm_greedy(**m, prompts[i]);
      EXPECT_EQ(ours.prompt_tokens, ref[i].prompt_tokens);
      EXPECT_EQ(ours.tokens, ref[i].tokens);
      // A continuation stuck on one token would make the comparison weak.
      EXPECT_GE(std::set<int32_t>(ref[i].tokens.begin(), ref[i].tokens.end()).size(), 4u);
    }
    if (::testing::Test::HasFailure()) continue;
    std::printf("%s %s: %zu prompts, prompt ids and %d greedy tokens each equal in llama.cpp\n",
                src.c_str(), type, prompts.size(), k_tokens);
  }
}

TEST(ExportLlamaCpp, Stories260K) {
  test::TempDir dir;
  check_export(test::shared_dir() + "/models/stories260K.bin",
               " --tokenizer " + test::sh_quote(test::shared_dir() + "/models/tok512.bin"),
               {"Once upon a time", "Lily and Ben went to the park."}, dir.path());
}

// A Hugging Face Llama directory (random weights, GQA) with GPT-2's byte-level BPE as
// tokenizer.json, built by @huggingface/tokenizers from the shared vocabulary.
TEST(ExportLlamaCpp, HfLlamaWithBpeTokenizer) {
  const std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-gpt-2.gguf";
  auto g = GgufFile::open(vocab);
  ASSERT_TRUE(g.ok()) << g.message();
  auto toks = g->get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks.ok());
  FixtureSpec s;
  s.n_vocab = static_cast<int64_t>(toks->size());
  s.n_embd = 64;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 128;
  s.seed = 7;
  test::TempDir dir;
  const std::string hf = dir.file("hf");
  std::filesystem::create_directories(hf);
  ASSERT_TRUE(write_fixture_hf(s, hf).ok());
  auto built = test::run(test::node_cmd() + " " +
                         test::sh_quote(test::source_dir() + "/tests/ref/tokenizers_ref.mjs") +
                         " build " + test::sh_quote(vocab) + " gpt-2 " +
                         test::sh_quote(hf + "/tokenizer.json"));
  ASSERT_EQ(built.exit_code, 0) << "tokenizer.json build failed (@huggingface/tokenizers): "
                                << built.err;
  check_export(hf, "", {"Hello world, this is a test.", "The quick brown fox 123"}, dir.path());
}

// Matrix types of a GGUF file (tensors with 2 dims), as its reader sees them.
std::set<std::string> matrix_types(const std::string& path) {
  std::set<std::string> out;
  auto g = GgufFile::open(path);
  EXPECT_TRUE(g.ok()) << g.message();
  if (!g.ok()) return out;
  for (const TensorView& t : g->tensors()) {
    if (t.n_dims == 2) out.insert(dtype_name(t.dtype));
  }
  return out;
}

// The default type follows the input (F16 for float, Q8_0 for quantized) and says so; inputs
// llama.cpp could not use are refused with a message.
TEST(ExportCli, DefaultTypeAndErrors) {
  test::TempDir dir;
  const std::string slm = test::sh_quote(test::slm_exe());
  const std::string stories = test::sh_quote(test::shared_dir() + "/models/stories260K.bin");
  const std::string tok = " --tokenizer " + test::sh_quote(test::shared_dir() + "/models/tok512.bin");
  auto f16 = test::run(slm + " export " + stories + " " + test::sh_quote(dir.file("a.gguf")) + tok);
  ASSERT_EQ(f16.exit_code, 0) << f16.err;
  EXPECT_NE(f16.err.find("type F16"), std::string::npos) << f16.err;
  EXPECT_NE(f16.out.find("(F16): 47 tensors"), std::string::npos) << f16.out;
  EXPECT_EQ(matrix_types(dir.file("a.gguf")), std::set<std::string>{"F16"});

  auto q4 = test::run(slm + " export " + test::sh_quote(dir.file("a.gguf")) + " " +
                      test::sh_quote(dir.file("b.gguf")) + " --type q4_0 -q");
  ASSERT_EQ(q4.exit_code, 0) << q4.err;
  EXPECT_EQ(q4.err, "");
  auto q8 = test::run(slm + " export " + test::sh_quote(dir.file("b.gguf")) + " " +
                      test::sh_quote(dir.file("c.gguf")));
  ASSERT_EQ(q8.exit_code, 0) << q8.err;
  EXPECT_NE(q8.err.find("type Q8_0: the input is already quantized"), std::string::npos) << q8.err;
  // stories260K's ffn_down rows (172) hold no 32-blocks, so those stay F16 in every type.
  EXPECT_EQ(matrix_types(dir.file("b.gguf")), (std::set<std::string>{"F16", "Q4_0"}));
  EXPECT_EQ(matrix_types(dir.file("c.gguf")), (std::set<std::string>{"F16", "Q8_0"}));

  auto no_tok = test::run(slm + " export " + stories + " " + test::sh_quote(dir.file("d.gguf")));
  EXPECT_EQ(no_tok.exit_code, 1);
  EXPECT_NE(no_tok.err.find("--tokenizer"), std::string::npos) << no_tok.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("d.gguf")));
  auto bad_type = test::run(slm + " export " + stories + " " + test::sh_quote(dir.file("e.gguf")) +
                            tok + " --type Q9_9");
  EXPECT_EQ(bad_type.exit_code, 1);
  EXPECT_NE(bad_type.err.find("Q4_K_M"), std::string::npos) << bad_type.err;  // lists the names
  auto missing = test::run(slm + " export /nonexistent/model.gguf " + test::sh_quote(dir.file("f.gguf")));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent/model.gguf"), std::string::npos) << missing.err;
  auto help = test::run(slm + " export --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Default type"), std::string::npos) << help.out;
}

}  // namespace
