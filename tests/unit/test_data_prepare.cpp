// Token datasets: the writer/reader round trip checked against the bytes a Python reader sees,
// a table of hostile manifests (one corruption per field), and `slm data prepare` end to end.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "data/corpus.h"
#include "data/prepare.h"
#include "data/shards.h"
#include "data/text_extract.h"
#include "test_util.h"
#include "tokenizer/bpe_trainer.h"

namespace slm {
namespace {

using nlohmann::json;

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<uint8_t> le16(std::initializer_list<uint16_t> ids) {
  std::vector<uint8_t> b;
  for (uint16_t v : ids) b.push_back(static_cast<uint8_t>(v & 0xff)), b.push_back(static_cast<uint8_t>(v >> 8));
  return b;
}

// A valid hand-written dataset: train = shards {1,2,3} {4,5}, val = {6}, vocab 10.
json make_valid(const std::string& dir) {
  write_bytes(dir + "/train-00000.bin", le16({1, 2, 3}));
  write_bytes(dir + "/train-00001.bin", le16({4, 5}));
  write_bytes(dir + "/val-00000.bin", le16({6}));
  test::write_text(dir + "/tokenizer.json", "{}");
  return {{"format", "slm-dataset"},
          {"version", 1},
          {"token_bytes", 2},
          {"vocab_size", 10},
          {"eos_id", 5},
          {"tokenizer", "tokenizer.json"},
          {"splits",
           {{"train", {{"shards", {"train-00000.bin", "train-00001.bin"}}, {"tokens", 5}, {"documents", 2}}},
            {"val", {{"shards", {"val-00000.bin"}}, {"tokens", 1}, {"documents", 1}}}}},
          {"stats", json::object()}};
}

TEST(TokenDataset, HandWrittenManifestReads) {
  test::TempDir dir;
  test::write_text(dir.file("dataset.json"), make_valid(dir.path()).dump());
  auto ds = TokenDataset::open(dir.path());
  ASSERT_TRUE(ds.ok()) << ds.message();
  EXPECT_EQ(ds->vocab_size(), 10);
  EXPECT_EQ(ds->eos_id(), 5);
  EXPECT_EQ(ds->tokenizer_path(), dir.path() + "/tokenizer.json");
  auto train = ds->split("train");
  ASSERT_TRUE(train.ok());
  EXPECT_EQ((*train)->n_tokens(), 5);
  EXPECT_EQ((*train)->n_documents(), 2);
  int32_t out[5] = {};
  ASSERT_TRUE((*train)->read(0, 5, out).ok());
  EXPECT_EQ(std::vector<int32_t>(out, out + 5), (std::vector<int32_t>{1, 2, 3, 4, 5}));
  ASSERT_TRUE((*train)->read(2, 2, out).ok());  // spans the two shards
  EXPECT_EQ(out[0], 3);
  EXPECT_EQ(out[1], 4);
  EXPECT_FALSE((*train)->read(4, 2, out).ok());
  EXPECT_FALSE((*train)->read(-1, 1, out).ok());
  EXPECT_FALSE((*train)->read(0, -1, out).ok());
  EXPECT_TRUE((*train)->read(5, 0, out).ok());
  auto missing = ds->split("test");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("'test'"), std::string::npos);
}

// One corruption per field; each must be an error naming something useful, never a crash.
TEST(TokenDataset, HostileManifests) {
  struct Case {
    const char* name;
    std::function<void(json&, const std::string&)> corrupt;
    const char* expect;  // substring of the message
  };
  const std::vector<Case> cases = {
      {"no format", [](json& j, auto&) { j.erase("format"); }, "format"},
      {"wrong format", [](json& j, auto&) { j["format"] = "gguf"; }, "format"},
      {"version 2", [](json& j, auto&) { j["version"] = 2; }, "version"},
      {"version string", [](json& j, auto&) { j["version"] = "1"; }, "version"},
      {"token_bytes 3", [](json& j, auto&) { j["token_bytes"] = 3; }, "token_bytes"},
      {"token_bytes 8", [](json& j, auto&) { j["token_bytes"] = 8; }, "token_bytes"},
      {"no token_bytes", [](json& j, auto&) { j.erase("token_bytes"); }, "token_bytes"},
      {"vocab 0", [](json& j, auto&) { j["vocab_size"] = 0; }, "vocab_size"},
      {"vocab too big for u16", [](json& j, auto&) { j["vocab_size"] = 70000; }, "vocab_size"},
      {"vocab huge unsigned", [](json& j, auto&) { j["vocab_size"] = 18446744073709551615ull; }, "vocab_size"},
      {"vocab float", [](json& j, auto&) { j["vocab_size"] = 10.5; }, "vocab_size"},
      {"eos >= vocab", [](json& j, auto&) { j["eos_id"] = 10; }, "eos_id"},
      {"eos -2", [](json& j, auto&) { j["eos_id"] = -2; }, "eos_id"},
      {"no eos", [](json& j, auto&) { j.erase("eos_id"); }, "eos_id"},
      {"no tokenizer", [](json& j, auto&) { j.erase("tokenizer"); }, "tokenizer"},
      {"tokenizer escapes", [](json& j, auto&) { j["tokenizer"] = "../x.json"; }, "tokenizer"},
      {"tokenizer absolute", [](json& j, auto&) { j["tokenizer"] = "/etc/passwd"; }, "tokenizer"},
      {"no splits", [](json& j, auto&) { j.erase("splits"); }, "splits"},
      {"splits empty", [](json& j, auto&) { j["splits"] = json::object(); }, "splits"},
      {"split not object", [](json& j, auto&) { j["splits"]["train"] = 3; }, "splits.train"},
      {"no shards", [](json& j, auto&) { j["splits"]["train"].erase("shards"); }, "shards"},
      {"shard path escapes", [](json& j, auto&) { j["splits"]["val"]["shards"][0] = "../val-00000.bin"; }, "shards[0]"},
      {"shard not string", [](json& j, auto&) { j["splits"]["val"]["shards"][0] = 7; }, "shards[0]"},
      {"shard missing", [](json& j, auto&) { j["splits"]["val"]["shards"][0] = "nope.bin"; }, "nope.bin"},
      {"tokens too many", [](json& j, auto&) { j["splits"]["train"]["tokens"] = 6; }, "tokens"},
      {"tokens too few", [](json& j, auto&) { j["splits"]["train"]["tokens"] = 4; }, "tokens"},
      {"tokens negative", [](json& j, auto&) { j["splits"]["train"]["tokens"] = -5; }, "tokens"},
      {"no documents", [](json& j, auto&) { j["splits"]["train"].erase("documents"); }, "documents"},
      {"documents > tokens", [](json& j, auto&) { j["splits"]["val"]["documents"] = 2; }, "documents"},
      {"odd shard size", [](json&, const std::string& d) { write_bytes(d + "/val-00000.bin", {6, 0, 1}); }, "multiple of token_bytes"},
      {"4-byte ids on 2-byte shards", [](json& j, const std::string&) { j["token_bytes"] = 4; j["splits"]["val"]["tokens"] = 0; }, ""},
      {"deep nesting", [](json& j, auto&) { json x = 1; for (int i = 0; i < 100; ++i) x = json::array({x}); j["stats"] = x; }, "nesting"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    test::TempDir dir;
    json j = make_valid(dir.path());
    c.corrupt(j, dir.path());
    test::write_text(dir.file("dataset.json"), j.dump());
    auto ds = TokenDataset::open(dir.path());
    ASSERT_FALSE(ds.ok());
    EXPECT_NE(ds.message().find(c.expect), std::string::npos) << ds.message();
  }
  // Not JSON at all, and no manifest.
  test::TempDir dir;
  test::write_text(dir.file("dataset.json"), "{\"format\": ");
  EXPECT_FALSE(TokenDataset::open(dir.path()).ok());
  test::TempDir empty;
  auto none = TokenDataset::open(empty.path());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.message().find("manifest"), std::string::npos);
}

// Ids at or above vocab_size in a shard are caught when read, naming the shard and position.
TEST(TokenDataset, IdsOutOfVocabAreErrors) {
  test::TempDir dir;
  json j = make_valid(dir.path());
  write_bytes(dir.file("train-00001.bin"), le16({4, 10}));
  test::write_text(dir.file("dataset.json"), j.dump());
  auto ds = TokenDataset::open(dir.path());
  ASSERT_TRUE(ds.ok()) << ds.message();
  auto train = ds->split("train");
  int32_t out[5];
  EXPECT_TRUE((*train)->read(0, 4, out).ok());
  Status s = (*train)->read(0, 5, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("train-00001.bin"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("vocab_size"), std::string::npos) << s.message();
}

// The writer's files, read back by an independent Python reader (json + struct) and by
// TokenDataset, give the documents written, each followed by eos, across shard boundaries.
TEST(TokenDatasetWriter, RoundTripMatchesPythonReader) {
  for (int64_t vocab : {300, 70000}) {
    SCOPED_TRACE(vocab);
    test::TempDir dir;
    TokenDatasetWriter::Options o;
    o.dir = dir.path();
    o.vocab_size = vocab;
    o.eos_id = 0;
    o.shard_tokens = 7;
    // A stale shard of an earlier run must disappear.
    test::write_text(dir.file("train-00009.bin"), "xx");
    auto w = TokenDatasetWriter::create(o);
    ASSERT_TRUE(w.ok()) << w.message();
    std::vector<std::vector<int32_t>> docs = {{1, 2, 3}, {4, 5, 6, 7, 8, 9, 10, 11, 12}, {}, {299}};
    std::vector<int32_t> expect;
    for (auto& d : docs) {
      ASSERT_TRUE((*w)->add_document("train", d).ok());
      expect.insert(expect.end(), d.begin(), d.end());
      expect.push_back(0);
    }
    ASSERT_TRUE((*w)->add_split("val").ok());
    std::vector<int32_t> bad = {static_cast<int32_t>(vocab)};
    EXPECT_FALSE((*w)->add_document("train", bad).ok());
    ASSERT_TRUE((*w)->finish(R"({"note": "test"})").ok());
    EXPECT_FALSE(std::filesystem::exists(dir.file("train-00009.bin")));

    const std::string py = R"(
import json, struct, sys
d = sys.argv[1]
m = json.load(open(d + '/dataset.json'))
fmt = {2: 'H', 4: 'I'}[m['token_bytes']]
out = {}
for name, s in m['splits'].items():
    ids = []
    for f in s['shards']:
        b = open(d + '/' + f, 'rb').read()
        ids += struct.unpack('<%d%s' % (len(b) // m['token_bytes'], fmt), b)
    out[name] = ids
print(json.dumps({'ids': out, 'tb': m['token_bytes'], 'stats': m['stats']}))
)";
    test::write_text(dir.file("read.py"), py);
    auto r = test::run(test::python_exe() + " " + dir.file("read.py") + " " + dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json got = json::parse(r.out);
    EXPECT_EQ(got["tb"].get<int>(), vocab <= 65536 ? 2 : 4);
    EXPECT_EQ(got["ids"]["train"].get<std::vector<int32_t>>(), expect);
    EXPECT_TRUE(got["ids"]["val"].empty());
    EXPECT_EQ(got["stats"]["note"], "test");

    auto ds = TokenDataset::open(dir.path());
    ASSERT_TRUE(ds.ok()) << ds.message();
    auto train = ds->split("train");
    ASSERT_TRUE(train.ok());
    EXPECT_EQ((*train)->n_documents(), 4);
    std::vector<int32_t> all(expect.size());
    ASSERT_TRUE((*train)->read(0, static_cast<int64_t>(all.size()), all.data()).ok());
    EXPECT_EQ(all, expect);
    EXPECT_EQ((*ds->split("val"))->n_tokens(), 0);
  }
}

// ---- text extraction ----

// Entity decoding agrees with Python's html.unescape (the HTML5 table) on the entities we know,
// numeric references included (C1 remapping, out-of-range and NUL to U+FFFD).
TEST(TextExtract, EntitiesMatchPythonHtmlUnescape) {
  const std::vector<std::string> ents = {
      "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&nbsp;", "&copy;", "&mdash;", "&hellip;",
      "&euro;", "&eacute;", "&szlig;", "&rarr;", "&alpha;", "&Omega;", "&frac12;", "&#65;",
      "&#x41;", "&#X1F600;", "&#233;", "&#0;", "&#x110000;", "&#128;", "&#x9F;", "&#xD800;",
      "&#99999999999;", "&amp", "&lt", "&copy"};
  std::vector<std::string> ours;
  for (const std::string& e : ents) {
    size_t i = 0;
    std::string out;
    ASSERT_TRUE(decode_html_entity(e, i, out)) << e;
    EXPECT_EQ(i, e.size()) << e;
    ours.push_back(out);
  }
  test::TempDir dir;
  test::write_text(dir.file("u.py"),
                   "import html, json, sys\n"
                   "print(json.dumps([html.unescape(e) for e in json.load(sys.stdin)]))\n");
  auto r = test::run(test::python_exe() + " " + dir.file("u.py"), json(ents).dump());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).get<std::vector<std::string>>(), ours);
  // Not entities: left for the caller to copy literally.
  for (std::string s : {"&", "&;", "&#;", "&#x;", "&unknownthing;", "&ampx;"}) {
    size_t i = 0;
    std::string out;
    EXPECT_FALSE(decode_html_entity(s, i, out)) << s;
    EXPECT_EQ(i, 0u);
  }
}

// Expected text written by hand from the rules: head/script/style gone, paragraphs separated
// by a blank line, <br> and <li> end lines, whitespace collapsed outside <pre>.
TEST(TextExtract, HtmlToText) {
  const std::string html =
      "<!DOCTYPE html><html><head><title>Title</title><style>p{color:red}</style></head>\n"
      "<body><!-- a comment <p>hidden</p> -->\n<h1>Heading</h1>\n"
      "<p>Hello&nbsp;&amp;   <b>bold</b>\n world</p><script>var s = \"<p>no</p>\";</script>"
      "<ul><li>one</li><li>two</li></ul><p>a<br>b &#x1F600; &eacute; 3 &lt; 4</p>"
      "<pre>  keep\n    this</pre><table><tr><td>x</td><td>y</td></tr></table>"
      "<p title=\"a > b\">attr</p>1 < 2</body></html>";
  EXPECT_EQ(html_to_text(html),
            "Heading\n\nHello & bold world\n\none\ntwo\n\na\nb \xf0\x9f\x98\x80 \xc3\xa9 3 < 4\n\n"
            "  keep\n    this\n\nx y\n\nattr\n\n1 < 2");
  // A page whose <head> never closes still yields its body; an unclosed script swallows the rest.
  EXPECT_EQ(html_to_text("<head><meta charset=utf-8><body><p>text</p>"), "text");
  EXPECT_EQ(html_to_text("before<script>never closed <p>x</p>"), "before");
  EXPECT_EQ(html_to_text(""), "");
  EXPECT_EQ(html_to_text("<<<>>>&&&"), "<<<>>>&&&");
}

TEST(TextExtract, RepairAndBinary) {
  std::string t = "\xef\xbb\xbfok \xff\xfe end";
  EXPECT_TRUE(repair_text(t));
  EXPECT_EQ(t, "ok \xef\xbf\xbd\xef\xbf\xbd end");
  std::string good = "plain ascii and caf\xc3\xa9";
  EXPECT_FALSE(repair_text(good));
  EXPECT_TRUE(looks_binary(std::string("ab\0cd", 5)));
  EXPECT_FALSE(looks_binary("abcd"));
}

// Large text files are cut after line breaks into bounded parts that concatenate to the file.
TEST(Corpus, LargeTextIsStreamedInParts) {
  test::TempDir dir;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "line " + std::to_string(i) + " of the long file\n";
  test::write_text(dir.file("big.txt"), text);
  int64_t skipped = 0;
  auto files = list_corpus_files({dir.path()}, &skipped);
  ASSERT_TRUE(files.ok()) << files.message();
  ASSERT_EQ(files->size(), 1u);
  CorpusOptions o;
  o.max_part_bytes = 4096;
  CorpusStats st;
  std::string joined;
  size_t parts = 0;
  ASSERT_TRUE(corpus_for_each(*files, o, [&](const CorpusDoc& d) {
    EXPECT_LE(d.text.size(), 4096u);
    EXPECT_EQ(d.text.back(), '\n');
    joined += d.text;
    ++parts;
    return Status();
  }, &st).ok());
  EXPECT_EQ(joined, text);
  EXPECT_GT(parts, 5u);
  EXPECT_EQ(st.bytes_read, text.size());
}

// A .json file holding one array of records; JSON lines with CRLF endings and bad records.
TEST(Corpus, JsonArrayAndJsonLines) {
  test::TempDir dir;
  test::write_text(dir.file("a.json"),
                   "[{\"text\": \"first\"}, {\"text\": \"second\"}, {\"no\": 1}, 7]");
  test::write_text(dir.file("b.jsonl"),
                   "{\"body\": \"x\", \"text\": \"third\"}\r\n[1]\r\n{\"text\": \"fourth\"}");
  std::string deep(200, '[');
  test::write_text(dir.file("c.jsonl"), deep + "\n{\"text\": \"fifth\"}\n");
  int64_t skipped = 0;
  auto files = list_corpus_files({dir.file("a.json"), dir.file("*.jsonl")}, &skipped);
  ASSERT_TRUE(files.ok()) << files.message();
  ASSERT_EQ(files->size(), 3u);
  std::vector<std::string> docs;
  CorpusStats st;
  ASSERT_TRUE(corpus_for_each(*files, CorpusOptions(), [&](const CorpusDoc& d) {
    docs.emplace_back(d.text);
    return Status();
  }, &st).ok());
  EXPECT_EQ(docs, (std::vector<std::string>{"first", "second", "third", "fourth", "fifth"}));
  EXPECT_EQ(st.bad_json_lines, 4);  // {"no":1}, 7, [1], the deep line
}

// ---- slm data prepare ----

struct Corpus {
  std::vector<std::string> docs;  // the documents prepare should keep, in input order
};

// Writes a small mixed corpus; returns the de-duplicated documents it holds, in order.
Corpus write_corpus(const std::string& dir) {
  test::run("mkdir -p " + test::sh_quote(dir + "/sub") + " " + test::sh_quote(dir + "/.hidden"));
  Corpus c;
  test::write_text(dir + "/a.txt", "The first document.\nIt has two lines.\n");
  c.docs.push_back("The first document.\nIt has two lines.\n");
  test::write_text(dir + "/b.md", "# Title\n\nSome *markdown* text.");
  c.docs.push_back("# Title\n\nSome *markdown* text.");
  test::write_text(dir + "/bad.txt", "caf\xe9 latin-1 bytes");
  c.docs.push_back("caf\xef\xbf\xbd latin-1 bytes");
  test::write_text(dir + "/blob.txt", std::string("PK\3\4\0\0binary", 12));
  test::write_text(dir + "/empty.txt", " \n\n");
  test::write_text(dir + "/image.png", "not listed: unknown extension");
  test::write_text(dir + "/.hidden/x.txt", "hidden files are not read");
  test::write_text(dir + "/sub/page.html",
                   "<html><head><title>t</title></head><body><p>Web &amp; page</p>"
                   "<script>x()</script><p>second</p></body></html>");
  c.docs.push_back("Web & page\n\nsecond");
  std::string jl;
  for (int i = 0; i < 40; ++i) {
    jl += json({{"text", "record number " + std::to_string(i) + " \xf0\x9f\x99\x82"}, {"id", i}}).dump() + "\n";
    c.docs.push_back("record number " + std::to_string(i) + " \xf0\x9f\x99\x82");
  }
  jl += json({{"text", "The first document.\nIt has two lines.\n"}}).dump() + "\n";  // duplicate
  jl += "{not json\n";
  jl += json({{"body", "no text field"}}).dump() + "\n";
  jl += "\n";
  jl += json({{"text", "last line without newline"}}).dump();
  c.docs.push_back("last line without newline");
  test::write_text(dir + "/sub/records.jsonl", jl);
  return c;
}

std::string train_tokenizer(const std::string& out_dir, const Corpus& c) {
  BpeTrainerOptions o;
  o.vocab_size = 400;
  o.pretokenizer = "gpt2";
  auto t = BpeTrainer::create(o);
  std::vector<std::string_view> views(c.docs.begin(), c.docs.end());
  (*t)->add_documents(views);
  auto r = (*t)->train();
  test::run("mkdir -p " + test::sh_quote(out_dir));
  test::write_text(out_dir + "/tokenizer.json", r->tokenizer_json);
  test::write_text(out_dir + "/tokenizer_config.json", r->tokenizer_config_json);
  return out_dir;
}

// Reads a dataset with Python (json + struct) and cuts each split at eos into documents.
json read_dataset_py(const std::string& dir) {
  const std::string py = R"(
import json, struct, sys
d = sys.argv[1]
m = json.load(open(d + '/dataset.json'))
fmt = {2: 'H', 4: 'I'}[m['token_bytes']]
out = {'manifest': m, 'docs': {}}
for name, s in m['splits'].items():
    ids = []
    for f in s['shards']:
        b = open(d + '/' + f, 'rb').read()
        ids += struct.unpack('<%d%s' % (len(b) // m['token_bytes'], fmt), b)
    docs, cur = [], []
    for t in ids:
        if t == m['eos_id']:
            docs.append(cur); cur = []
        else:
            cur.append(t)
    assert not cur, 'split does not end with eos'
    out['docs'][name] = docs
print(json.dumps(out))
)";
  test::write_text(dir + "/../read_ds.py", py);
  auto r = test::run(test::python_exe() + " " + test::sh_quote(dir + "/../read_ds.py") + " " +
                     test::sh_quote(dir));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json();
}

// End to end through the CLI: every kept document, tokenized by tokenizers.js, appears exactly
// once across train and val (in input order within each), duplicates, binary and empty files
// and bad JSON lines are counted, and reordering the inputs keeps the split.
TEST(DataPrepareCli, MixedCorpusMatchesReferenceTokenization) {
  test::TempDir dir;
  const std::string corpus = dir.file("corpus");
  const Corpus c = write_corpus(corpus);
  const std::string tok = train_tokenizer(dir.file("tok"), c);
  const std::string out = dir.file("ds");
  auto r = test::run(test::slm_exe() + " data prepare " + test::sh_quote(corpus) +
                     " --tokenizer " + test::sh_quote(tok) + " -o " + test::sh_quote(out) +
                     " --val-fraction 0.3 --shard-tokens 64");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("1 duplicates removed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 binary"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 bad JSON lines"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 with invalid UTF-8 repaired"), std::string::npos) << r.out;

  // Reference ids: tokenizers.js on the expected document texts.
  const std::string script = test::source_dir() + "/tests/ref/tokenizers_ref.mjs";
  auto ref = test::run(test::node_cmd() + " " + test::sh_quote(script) + " encode " +
                       test::sh_quote(tok + "/tokenizer.json"), json(c.docs).dump());
  ASSERT_EQ(ref.exit_code, 0) << "node + @huggingface/tokenizers are required: " << ref.err;
  const auto expect = json::parse(ref.out)["plain"].get<std::vector<std::vector<int32_t>>>();

  const json ds = read_dataset_py(out);
  ASSERT_TRUE(ds.is_object());
  const auto train = ds["docs"]["train"].get<std::vector<std::vector<int32_t>>>();
  const auto val = ds["docs"]["val"].get<std::vector<std::vector<int32_t>>>();
  EXPECT_EQ(train.size() + val.size(), expect.size());
  EXPECT_GT(val.size(), 3u);
  EXPECT_GT(train.size(), val.size());
  // Each split is the expected documents in input order, filtered.
  size_t ti = 0, vi = 0;
  for (const auto& e : expect) {
    if (ti < train.size() && train[ti] == e) {
      ++ti;
    } else if (vi < val.size() && val[vi] == e) {
      ++vi;
    } else {
      ADD_FAILURE() << "expected document missing from both splits";
      break;
    }
  }
  EXPECT_EQ(ti, train.size());
  EXPECT_EQ(vi, val.size());
  const json& m = ds["manifest"];
  EXPECT_EQ(m["splits"]["train"]["documents"].get<size_t>(), train.size());
  EXPECT_GT(m["splits"]["train"]["shards"].size(), 1u);  // 64-token shards
  EXPECT_EQ(m["tokenizer"], "tokenizer.json");
  EXPECT_TRUE(std::filesystem::exists(out + "/tokenizer_config.json"));

  // Our own reader agrees, and the dataset's tokenizer copy loads.
  auto opened = TokenDataset::open(out);
  ASSERT_TRUE(opened.ok()) << opened.message();
  EXPECT_EQ((*opened->split("val"))->n_documents(), static_cast<int64_t>(val.size()));

  // Inputs listed in another order (files and a glob): the same validation documents.
  const std::string out2 = dir.file("ds2");
  auto r2 = test::run(test::slm_exe() + " data prepare " +
                      test::sh_quote(corpus + "/sub/records.jsonl") + " " +
                      test::sh_quote(corpus + "/*.md") + " " + test::sh_quote(corpus) +
                      " --tokenizer " + test::sh_quote(tok + "/tokenizer.json") + " -o " +
                      test::sh_quote(out2) + " --val-fraction 0.3 -t 1");
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  const json ds2 = read_dataset_py(out2);
  auto val2 = ds2["docs"]["val"].get<std::vector<std::vector<int32_t>>>();
  auto val1 = val;
  std::sort(val1.begin(), val1.end());
  std::sort(val2.begin(), val2.end());
  EXPECT_EQ(val1, val2);
}

TEST(DataPrepareCli, BadInputsAreClearErrors) {
  test::TempDir dir;
  const Corpus c = write_corpus(dir.file("corpus"));
  const std::string tok = train_tokenizer(dir.file("tok"), c);
  const std::string empty = dir.file("empty");
  test::run("mkdir -p " + test::sh_quote(empty));
  test::write_text(empty + "/a.txt", "");
  test::write_text(empty + "/b.bin.txt", std::string("\0\0\0", 3));
  test::write_text(empty + "/c.jsonl", "{\"other\": 1}\n");
  auto r = test::run(test::slm_exe() + " data prepare " + test::sh_quote(empty) +
                     " --tokenizer " + test::sh_quote(tok) + " -o " + test::sh_quote(dir.file("o")));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("corpus is empty"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("o/dataset.json")));

  auto missing = test::run(test::slm_exe() + " data prepare " + test::sh_quote(dir.file("nope")) +
                           " --tokenizer " + test::sh_quote(tok) + " -o " + test::sh_quote(dir.file("o")));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no such file"), std::string::npos) << missing.err;

  auto badtok = test::run(test::slm_exe() + " data prepare " + test::sh_quote(dir.file("corpus")) +
                          " --tokenizer " + test::sh_quote(dir.file("corpus/a.txt")) + " -o " +
                          test::sh_quote(dir.file("o")));
  EXPECT_NE(badtok.exit_code, 0);
  auto badfrac = test::run(test::slm_exe() + " data prepare " + test::sh_quote(dir.file("corpus")) +
                           " --tokenizer " + test::sh_quote(tok) + " -o " +
                           test::sh_quote(dir.file("o")) + " --val-fraction 1.5");
  EXPECT_EQ(badfrac.exit_code, 1);
  EXPECT_NE(badfrac.err.find("fraction"), std::string::npos) << badfrac.err;
}

// A GGUF vocabulary (the shared GPT-2 one) works as the tokenizer too.
TEST(DataPrepareCli, GgufTokenizer) {
  test::TempDir dir;
  const std::string gguf = test::shared_dir() + "/tokenizer/ggml-vocab-gpt-2.gguf";
  test::write_text(dir.file("t.txt"), "Hello world from a GGUF tokenizer.");
  auto r = test::run(test::slm_exe() + " data prepare " + test::sh_quote(dir.file("t.txt")) +
                     " --tokenizer " + test::sh_quote(gguf) + " -o " + test::sh_quote(dir.file("ds")) +
                     " --val-fraction 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ds = TokenDataset::open(dir.file("ds"));
  ASSERT_TRUE(ds.ok()) << ds.message();
  EXPECT_EQ(ds->vocab_size(), 50257);
  EXPECT_EQ(ds->eos_id(), 50256);
  const TokenSplit* train = *ds->split("train");
  std::vector<int32_t> ids(static_cast<size_t>(train->n_tokens()));
  ASSERT_TRUE(train->read(0, train->n_tokens(), ids.data()).ok());
  // GPT-2's ids for "Hello world" are 15496, 995 (published vocabulary).
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], 15496);
  EXPECT_EQ(ids[1], 995);
  EXPECT_EQ(ids.back(), 50256);
}

}  // namespace
}  // namespace slm
