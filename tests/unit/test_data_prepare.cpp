// Token datasets: the writer/reader round trip checked against the bytes a Python reader sees,
// a table of hostile manifests (one corruption per field), and `slm data prepare` end to end.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "data/shards.h"
#include "test_util.h"

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

}  // namespace
}  // namespace slm
