// BPE trainer: the tokenizer.json it writes gives the same ids in slm and in Hugging Face's
// tokenizers.js (npm) for every offered pre-tokenizer; merges equal a naive from-the-definition
// Python trainer; output is deterministic; bad input is an error, never a crash.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"

namespace slm {
namespace {

using nlohmann::json;

// A deterministic mixed corpus: English-like words, digits, punctuation, accents, CJK, emoji,
// whitespace runs and code.
std::vector<std::string> make_corpus(int n_docs) {
  const char* words[] = {"the", "model", "learns", "tokens", "from", "text", "and", "data",
                         "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "it's",
                         "we'll", "naïve", "café", "über", "日本語", "テキスト", "🙂", "🚀",
                         "def", "return", "x", "=", "(", ")", ":", "1234", "42", "3.14",
                         "hello", "world", "Hello", "WORLD", "don't", "I'm", "--", "...",
                         "\"quoted\"", "tab\there", "line", "Ελληνικά", "русский", "a_b"};
  const size_t n_words = sizeof(words) / sizeof(words[0]);
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<size_t>(state >> 33);
  };
  std::vector<std::string> docs;
  for (int d = 0; d < n_docs; ++d) {
    std::string doc;
    const size_t len = 20 + next() % 80;
    for (size_t i = 0; i < len; ++i) {
      // Zipf-like: low indices far more often.
      const size_t w = (next() % n_words) * (next() % n_words) / n_words;
      doc += words[w];
      const size_t sep = next() % 20;
      doc += sep == 0 ? "\n" : sep == 1 ? "  " : sep == 2 ? ", " : " ";
    }
    docs.push_back(doc);
  }
  return docs;
}

const std::vector<std::string>& probe_texts() {
  static const std::vector<std::string> t = {
      "Hello world",
      "the quick brown fox jumps over the lazy dog",
      "  leading spaces and trailing   ",
      "tabs\tand\nnewlines\n\n\nruns",
      "digits 1 12 123 1234 12345 3.14159",
      "naïve café über Ελληνικά русский",
      "日本語のテキスト",
      "emoji 🙂🚀 mixed🙂text",
      "it's we'll I'm don't THEY'RE",
      "def f(x): return x + 1  # code",
      "<|endoftext|>special<|endoftext|> tokens",
      "unseen: zyxwvut qqq ŋ ∑ 𝔘",
      "",
      " ",
      "a",
  };
  return t;
}

std::vector<std::vector<int32_t>> node_encode(const std::string& tokenizer_json_path,
                                              const std::vector<std::string>& texts) {
  const std::string script = test::source_dir() + "/tests/ref/tokenizers_ref.mjs";
  auto r = test::run(test::node_cmd() + " " + test::sh_quote(script) + " encode " +
                     test::sh_quote(tokenizer_json_path),
                     json(texts).dump());
  EXPECT_EQ(r.exit_code, 0) << "node + @huggingface/tokenizers are required: " << r.err;
  if (r.exit_code != 0) return {};
  return json::parse(r.out)["plain"].get<std::vector<std::vector<int32_t>>>();
}

BpeTrainResult train(const std::vector<std::string>& docs, BpeTrainerOptions o) {
  auto t = BpeTrainer::create(o);
  EXPECT_TRUE(t.ok()) << t.message();
  std::vector<std::string_view> views(docs.begin(), docs.end());
  (*t)->add_documents(views);
  auto r = (*t)->train();
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? *r : BpeTrainResult{};
}

class TrainerPresetTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainerPresetTest, SlmAndTokenizersJsAgree) {
  const std::vector<std::string> docs = make_corpus(400);
  BpeTrainerOptions o;
  o.vocab_size = 450;
  o.pretokenizer = GetParam();
  o.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  o.n_threads = 2;
  const BpeTrainResult r = train(docs, o);
  ASSERT_EQ(r.vocab_size, 450);
  EXPECT_EQ(r.n_merges, 450 - 256 - 3);

  test::TempDir dir;
  test::write_text(dir.file("tokenizer.json"), r.tokenizer_json);
  auto tok = Tokenizer::from_hf_json(r.tokenizer_json, r.tokenizer_config_json);
  ASSERT_TRUE(tok.ok()) << tok.message();
  EXPECT_EQ((*tok)->vocab_size(), 450);
  EXPECT_EQ((*tok)->eos_id(), 447);
  EXPECT_EQ((*tok)->find_token("<|im_end|>"), 449);

  std::vector<std::string> texts = probe_texts();
  texts.insert(texts.end(), docs.begin(), docs.begin() + 5);
  const auto ref = node_encode(dir.file("tokenizer.json"), texts);
  ASSERT_EQ(ref.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(texts[i]);
    const std::vector<int32_t> ids = (*tok)->encode(texts[i], false, true);
    EXPECT_EQ(ids, ref[i]);
    // Every byte survives: decode(encode(x)) == x (special tokens rendered).
    EXPECT_EQ((*tok)->decode(ids, true), texts[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, TrainerPresetTest,
                         ::testing::Values("gpt2", "llama3", "qwen2", "starcoder", "gpt-4o"));

// The merges equal those of a naive trainer written from the definition (recount every pair
// after each merge; most frequent pair, ties to the smaller (left id, right id); a merged
// string that already exists keeps its id). Words: lowercase ASCII separated by single spaces,
// which the GPT-2 split turns into "w" and " w" pieces without needing a regex engine.
TEST(BpeTrainer, MergesMatchNaivePythonTrainer) {
  uint64_t state = 7;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<size_t>(state >> 33);
  };
  std::vector<std::string> docs;
  for (int d = 0; d < 60; ++d) {
    std::string doc;
    for (int w = 0; w < 30; ++w) {
      if (w) doc += ' ';
      const size_t len = 1 + next() % 6;
      for (size_t k = 0; k < len; ++k) doc += static_cast<char>('a' + (next() % 5) * (next() % 3));
    }
    docs.push_back(doc);
  }
  BpeTrainerOptions o;
  o.vocab_size = 256 + 150 + 1;
  o.min_frequency = 2;
  o.pretokenizer = "gpt2";
  const BpeTrainResult r = train(docs, o);

  const std::string py = R"PY(
import json, sys
docs, target, minf = json.load(sys.stdin)
def b2u():
    bs = list(range(ord('!'), ord('~')+1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]; n = 0
    for b in range(256):
        if b not in bs: bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
m = b2u()
counts = {}
for d in docs:
    for i, w in enumerate(d.split(' ')):
        piece = w if i == 0 else ' ' + w
        counts[piece] = counts.get(piece, 0) + 1
syms = [bytes([b]) for b in range(256)]
ids = {s: i for i, s in enumerate(syms)}
words = [([b for b in w.encode()], c) for w, c in sorted(counts.items(), key=lambda x: x[0].encode())]
merges = []
while len(syms) < target:
    pc = {}
    for s, c in words:
        for a, b in zip(s, s[1:]): pc[(a, b)] = pc.get((a, b), 0) + c
    if not pc: break
    best = min(pc, key=lambda p: (-pc[p], p))
    if pc[best] < minf: break
    new = syms[best[0]] + syms[best[1]]
    if new not in ids: ids[new] = len(syms); syms.append(new)
    nid = ids[new]
    merges.append(''.join(m[x] for x in syms[best[0]]) + ' ' + ''.join(m[x] for x in syms[best[1]]))
    out = []
    for s, c in words:
        t = []; i = 0
        while i < len(s):
            if i + 1 < len(s) and (s[i], s[i+1]) == best: t.append(nid); i += 2
            else: t.append(s[i]); i += 1
        out.append((t, c))
    words = out
print(json.dumps(merges))
)PY";
  test::TempDir dir;
  test::write_text(dir.file("naive.py"), py);
  auto run = test::run(test::python_exe() + " " + dir.file("naive.py"),
                       json::array({docs, o.vocab_size - 1, o.min_frequency}).dump());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto expect = json::parse(run.out).get<std::vector<std::string>>();
  const auto got = json::parse(r.tokenizer_json)["model"]["merges"].get<std::vector<std::string>>();
  ASSERT_GT(expect.size(), 50u);
  EXPECT_EQ(got, expect);
}

TEST(BpeTrainer, DeterministicAcrossRunsThreadsAndOrder) {
  std::vector<std::string> docs = make_corpus(150);
  BpeTrainerOptions o;
  o.vocab_size = 600;
  o.n_threads = 1;
  const std::string a = train(docs, o).tokenizer_json;
  const std::string b = train(docs, o).tokenizer_json;
  o.n_threads = 2;
  std::reverse(docs.begin(), docs.end());
  const std::string c = train(docs, o).tokenizer_json;
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

TEST(BpeTrainer, BadInputIsAnError) {
  BpeTrainerOptions o;
  o.vocab_size = 100;
  EXPECT_FALSE(BpeTrainer::create(o).ok());  // no room for the 256 bytes
  o.vocab_size = 300;
  o.pretokenizer = "nope";
  auto bad = BpeTrainer::create(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("llama3"), std::string::npos);  // lists the choices
  o.pretokenizer = "gpt2";
  o.special_tokens = {"<a>", "<a>"};
  EXPECT_FALSE(BpeTrainer::create(o).ok());
  o.special_tokens = {"\xff"};
  EXPECT_FALSE(BpeTrainer::create(o).ok());
  o.special_tokens = {"<|endoftext|>"};
  auto t = BpeTrainer::create(o);
  ASSERT_TRUE(t.ok());
  auto empty = (*t)->train();
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.message().find("empty"), std::string::npos);

  // Invalid UTF-8 and NULs are repaired/kept as bytes; the result still loads and round-trips.
  auto t2 = BpeTrainer::create(o);
  (*t2)->add_text(std::string("ab\xff\xfe ab\0ab ab\xc3", 15));
  (*t2)->add_text("<|endoftext|><|endoftext|>");  // only special tokens: no words
  auto r = (*t2)->train();
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->n_repaired, 1);
  auto tok = Tokenizer::from_hf_json(r->tokenizer_json, r->tokenizer_config_json);
  ASSERT_TRUE(tok.ok()) << tok.message();
  const std::string probe = "ab ab \xef\xbf\xbd";
  EXPECT_EQ((*tok)->decode((*tok)->encode(probe, false, false)), probe);
}

// The CLI end to end: directory in, model-style directory out that `slm tokenize` loads; an
// empty corpus and a binary-only corpus are clear errors.
TEST(TokenizerTrainCli, TrainsLoadsAndRefusesEmptyCorpora) {
  test::TempDir dir;
  const std::string corpus = dir.file("corpus");
  test::run("mkdir -p " + test::sh_quote(corpus));
  const auto docs = make_corpus(50);
  for (size_t i = 0; i < docs.size(); ++i) {
    test::write_text(corpus + "/doc" + std::to_string(i) + ".txt", docs[i]);
  }
  test::write_text(corpus + "/blob.txt", std::string("\x7f" "ELF\0\0\0binary", 13));
  const std::string out = dir.file("tok");
  auto r = test::run(test::slm_exe() + " tokenizer train " + test::sh_quote(corpus) + " -o " +
                     test::sh_quote(out) + " --vocab-size 400 --special '<|endoftext|>,<|pad|>'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("vocabulary 400"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("binary"), std::string::npos) << r.err;
  auto enc = test::run(test::slm_exe() + " tokenize " + test::sh_quote(out) + " --add-special",
                       "hello world");
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  EXPECT_FALSE(enc.out.empty());

  test::TempDir empty;
  test::write_text(empty.file("a.txt"), "");
  test::write_text(empty.file("b.txt"), "  \n\n ");
  auto e = test::run(test::slm_exe() + " tokenizer train " + test::sh_quote(empty.path()) +
                     " -o " + test::sh_quote(dir.file("t2")));
  EXPECT_NE(e.exit_code, 0);
  EXPECT_NE(e.err.find("empty"), std::string::npos) << e.err;
  auto missing = test::run(test::slm_exe() + " tokenizer train " +
                           test::sh_quote(dir.file("nope/*.txt")) + " -o " +
                           test::sh_quote(dir.file("t3")));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("matches no files"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace slm
