// llama2.c checkpoint reader tests: the real stories260K.bin and python-written files checked
// against an independent numpy reading, plus hostile headers and truncation at every prefix.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <sstream>

#include "formats/llama2c.h"
#include "test_util.h"

using namespace slm;
using namespace slm::test;

namespace {

// Independent reference: reads a checkpoint with numpy at offsets it computes itself (legacy
// run.c order or export.py version 1 order) and prints, per tensor under its GGUF name, the
// PyTorch shape, the float64 sum and sum of |x|, and a few probes "r c value" at PyTorch
// indices. Also checks the legacy freq_cis tables against RoPE with theta 10000.
// With "write" it first writes small checkpoints from seeded random numbers with struct.
const char* k_ref_py = R"PY(
import struct, sys
import numpy as np

def write_legacy(path, dim, hidden, L, nh, nkv, vocab, seq, shared, rng):
    hs = dim // nh; kv = nkv * hs
    with open(path, 'wb') as f:
        f.write(struct.pack('<7i', dim, hidden, L, nh, nkv, vocab if shared else -vocab, seq))
        sizes = [vocab*dim, L*dim, L*dim*dim, L*kv*dim, L*kv*dim, L*dim*dim, L*dim,
                 L*hidden*dim, L*dim*hidden, L*hidden*dim, dim]
        for n in sizes:
            f.write(rng.standard_normal(n).astype('<f4').tobytes())
        freqs = 1.0 / (10000.0 ** (np.arange(0, hs, 2)[: hs // 2] / hs))
        ang = np.outer(np.arange(seq), freqs)
        f.write(np.cos(ang).astype('<f4').tobytes())
        f.write(np.sin(ang).astype('<f4').tobytes())
        if not shared:
            f.write(rng.standard_normal(vocab*dim).astype('<f4').tobytes())

def write_v1(path, dim, hidden, L, nh, nkv, vocab, seq, shared, rng):
    hs = dim // nh; kv = nkv * hs
    with open(path, 'wb') as f:
        f.write(struct.pack('<I', 0x616b3432))
        f.write(struct.pack('<i', 1))
        f.write(struct.pack('<7i', dim, hidden, L, nh, nkv, vocab, seq))
        f.write(struct.pack('B', 1 if shared else 0))
        f.write(b'\0' * (256 - f.tell()))
        sizes = [L*dim, L*dim, dim, vocab*dim, L*dim*dim, L*kv*dim, L*kv*dim, L*dim*dim,
                 L*hidden*dim, L*dim*hidden, L*hidden*dim]
        if not shared:
            sizes.append(vocab*dim)
        for n in sizes:
            f.write(rng.standard_normal(n).astype('<f4').tobytes())

def dump(path):
    raw = open(path, 'rb').read()
    if struct.unpack('<I', raw[:4])[0] == 0x616b3432:
        version = struct.unpack('<i', raw[4:8])[0]
        dim, hidden, L, nh, nkv, vocab, seq = struct.unpack('<7i', raw[8:36])
        shared = raw[36] == 1
        off = 256
    else:
        version = 0
        dim, hidden, L, nh, nkv, vocab, seq = struct.unpack('<7i', raw[:28])
        shared = vocab > 0
        vocab = abs(vocab)
        off = 28
    hs = dim // nh; kv = nkv * hs
    pos = [off]
    def take(*shape):
        n = int(np.prod(shape))
        a = np.frombuffer(raw, dtype='<f4', count=n, offset=pos[0]).reshape(shape)
        pos[0] += 4 * n
        return a
    t = {}
    def layers(stem, *shape):
        a = take(L, *shape)
        for i in range(L):
            t['blk.%d.%s.weight' % (i, stem)] = a[i]
    if version == 0:
        t['token_embd.weight'] = take(vocab, dim)
        layers('attn_norm', dim)
        layers('attn_q', dim, dim)
        layers('attn_k', kv, dim)
        layers('attn_v', kv, dim)
        layers('attn_output', dim, dim)
        layers('ffn_norm', dim)
        layers('ffn_gate', hidden, dim)
        layers('ffn_down', dim, hidden)
        layers('ffn_up', hidden, dim)
        t['output_norm.weight'] = take(dim)
        fr = take(seq, hs // 2).astype(np.float64)
        fi = take(seq, hs // 2).astype(np.float64)
        freqs = 1.0 / (10000.0 ** (np.arange(0, hs, 2)[: hs // 2] / hs))
        ang = np.outer(np.arange(seq), freqs)
        err = max(np.abs(fr - np.cos(ang)).max(), np.abs(fi - np.sin(ang)).max())
        print('freq_err %.9g' % err)
    else:
        layers('attn_norm', dim)
        layers('ffn_norm', dim)
        t['output_norm.weight'] = take(dim)
        t['token_embd.weight'] = take(vocab, dim)
        layers('attn_q', dim, dim)
        layers('attn_k', kv, dim)
        layers('attn_v', kv, dim)
        layers('attn_output', dim, dim)
        layers('ffn_gate', hidden, dim)
        layers('ffn_down', dim, hidden)
        layers('ffn_up', hidden, dim)
    if not shared:
        t['output.weight'] = take(vocab, dim)
    assert pos[0] == len(raw), (pos[0], len(raw))
    print('header %d %d %d %d %d %d %d %d %d' % (version, dim, hidden, L, nh, nkv, vocab, seq, int(shared)))
    for name, a in t.items():
        a64 = a.astype(np.float64)
        probes = []
        if a.ndim == 1:
            for i in sorted({0, a.shape[0] // 2, a.shape[0] - 1}):
                probes.append('0 %d %.9g' % (i, a[i]))
        else:
            r, c = a.shape
            for (i, j) in sorted({(0, 0), (0, c - 1), (r - 1, 0), (r // 2, c // 3), (r - 1, c - 1)}):
                probes.append('%d %d %.9g' % (i, j, a[i, j]))
        print('tensor %s %s %.17g %.17g %s' % (name, ','.join(str(s) for s in a.shape),
              a64.sum(), np.abs(a64).sum(), ' '.join(probes)))

if sys.argv[1] == 'write':
    rng = np.random.default_rng(1234)
    d = sys.argv[2]
    write_legacy(d + '/legacy_unshared.bin', 16, 40, 3, 4, 2, 37, 6, False, rng)
    write_v1(d + '/v1_shared.bin', 16, 24, 2, 4, 1, 29, 8, True, rng)
    write_v1(d + '/v1_unshared.bin', 8, 20, 2, 2, 2, 11, 8, False, rng)
else:
    dump(sys.argv[2])
)PY";

struct RefTensor {
  std::vector<int64_t> shape;  // PyTorch order
  double sum = 0, abs_sum = 0;
  std::vector<std::tuple<int64_t, int64_t, float>> probes;
};

struct RefDump {
  std::vector<int64_t> header;
  double freq_err = -1;
  std::map<std::string, RefTensor> tensors;
};

RefDump run_ref(const TempDir& tmp, const std::string& mode, const std::string& arg) {
  std::string script = tmp.file("llama2c_ref.py");
  write_text(script, k_ref_py);
  RunResult rr = run(python_exe() + " " + sh_quote(script) + " " + mode + " " + sh_quote(arg));
  EXPECT_EQ(rr.exit_code, 0) << rr.err;
  RefDump d;
  std::istringstream in(rr.out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string kind;
    ls >> kind;
    if (kind == "header") {
      int64_t v;
      while (ls >> v) d.header.push_back(v);
    } else if (kind == "freq_err") {
      ls >> d.freq_err;
    } else if (kind == "tensor") {
      std::string name, shape;
      RefTensor t;
      ls >> name >> shape >> t.sum >> t.abs_sum;
      std::istringstream ss(shape);
      std::string dim;
      while (std::getline(ss, dim, ',')) t.shape.push_back(std::stoll(dim));
      int64_t r, c;
      std::string v;
      while (ls >> r >> c >> v) t.probes.emplace_back(r, c, std::strtof(v.c_str(), nullptr));
      d.tensors[name] = t;
    }
  }
  return d;
}

float load_f32(const TensorView& t, int64_t i) {
  float f;
  std::memcpy(&f, static_cast<const uint8_t*>(t.data) + 4 * i, 4);
  return f;
}

void expect_matches_ref(const Llama2cCheckpoint& ck, const RefDump& ref) {
  ASSERT_EQ(ref.header.size(), 9u);
  const Llama2cHeader& h = ck.header();
  EXPECT_EQ(h.version, ref.header[0]);
  EXPECT_EQ(h.dim, ref.header[1]);
  EXPECT_EQ(h.hidden_dim, ref.header[2]);
  EXPECT_EQ(h.n_layers, ref.header[3]);
  EXPECT_EQ(h.n_heads, ref.header[4]);
  EXPECT_EQ(h.n_kv_heads, ref.header[5]);
  EXPECT_EQ(h.vocab_size, ref.header[6]);
  EXPECT_EQ(h.seq_len, ref.header[7]);
  EXPECT_EQ(h.shared_classifier, ref.header[8] == 1);
  ASSERT_FALSE(ref.tensors.empty());
  EXPECT_EQ(ck.tensors().size(), ref.tensors.size());
  for (const auto& [name, rt] : ref.tensors) {
    SCOPED_TRACE(name);
    const TensorView* t = ck.tensor(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, DType::F32);
    ASSERT_EQ(t->n_dims, static_cast<int>(rt.shape.size()));
    for (size_t d = 0; d < rt.shape.size(); ++d) {
      EXPECT_EQ(t->ne[d], rt.shape[rt.shape.size() - 1 - d]);  // GGUF order
    }
    EXPECT_EQ(t->nbytes, static_cast<uint64_t>(t->nelements()) * 4);
    double sum = 0, abs_sum = 0;
    for (int64_t i = 0; i < t->nelements(); ++i) {
      float v = load_f32(*t, i);
      sum += v;
      abs_sum += std::fabs(v);
    }
    EXPECT_NEAR(sum, rt.sum, 1e-9 * rt.abs_sum + 1e-12);
    EXPECT_NEAR(abs_sum, rt.abs_sum, 1e-9 * rt.abs_sum + 1e-12);
    for (const auto& [r, c, v] : rt.probes) {
      EXPECT_EQ(load_f32(*t, r * t->ne[0] + c), v) << "at " << r << "," << c;
    }
  }
}

}  // namespace

TEST(Llama2c, Stories260KMatchesNumpy) {
  std::string path = shared_dir() + "/models/stories260K.bin";
  auto ck = Llama2cCheckpoint::open(path);
  ASSERT_TRUE(ck.ok()) << ck.message();
  const Llama2cHeader& h = ck->header();
  // The values documented for this file in shared/README.md.
  EXPECT_EQ(h.dim, 64);
  EXPECT_EQ(h.hidden_dim, 172);
  EXPECT_EQ(h.n_layers, 5);
  EXPECT_EQ(h.n_heads, 8);
  EXPECT_EQ(h.n_kv_heads, 4);
  EXPECT_EQ(h.vocab_size, 512);
  EXPECT_EQ(h.seq_len, 512);
  EXPECT_TRUE(h.shared_classifier);
  EXPECT_EQ(ck->tensor("output.weight"), nullptr);
  ASSERT_NE(ck->mapping(), nullptr);
  EXPECT_EQ(ck->tensor("token_embd.weight")->data, ck->mapping()->data() + 28);
  TempDir tmp;
  RefDump ref = run_ref(tmp, "dump", path);
  expect_matches_ref(*ck, ref);
  // The skipped freq_cis tables are RoPE with theta 10000: the constant the header exports.
  EXPECT_GE(ref.freq_err, 0);
  EXPECT_LT(ref.freq_err, 1e-5);
  EXPECT_EQ(k_llama2c_rope_theta, 10000.0f);
}

TEST(Llama2c, PythonWrittenFilesMatchNumpy) {
  TempDir tmp;
  run_ref(tmp, "write", tmp.path());
  for (const char* f : {"legacy_unshared.bin", "v1_shared.bin", "v1_unshared.bin"}) {
    SCOPED_TRACE(f);
    auto ck = Llama2cCheckpoint::open(tmp.file(f));
    ASSERT_TRUE(ck.ok()) << ck.message();
    RefDump ref = run_ref(tmp, "dump", tmp.file(f));
    expect_matches_ref(*ck, ref);
    EXPECT_EQ(ck->tensor("output.weight") != nullptr, !ck->header().shared_classifier);
  }
}

namespace {

// A synthetic checkpoint built by the test (sizes by the layout formula in run.c), used for
// corruption and truncation cases where only the parser's error handling is under test.
struct Fields {
  int32_t dim = 8, hidden = 12, layers = 2, heads = 2, kv = 1, vocab = 5, seq = 3;
};

uint64_t legacy_floats(const Fields& f, bool shared) {
  uint64_t hs = f.dim / f.heads, kvd = f.kv * hs, L = f.layers, d = f.dim, hd = f.hidden;
  uint64_t n = f.vocab * d + L * d + L * d * d + 2 * L * d * kvd + L * d * d + L * d +
               3 * L * d * hd + d + 2 * f.seq * (hs / 2);
  return n + (shared ? 0 : f.vocab * d);
}

std::string legacy_file(const Fields& f, bool shared = true, int64_t extra_bytes = 0) {
  int32_t hdr[7] = {f.dim, f.hidden, f.layers, f.heads, f.kv, shared ? f.vocab : -f.vocab, f.seq};
  std::string s(reinterpret_cast<const char*>(hdr), sizeof(hdr));
  int64_t body = static_cast<int64_t>(legacy_floats(f, shared)) * 4 + extra_bytes;
  for (int64_t i = 0; i < body; ++i) s.push_back(static_cast<char>(i * 7));
  return s;
}

std::string v1_file(int32_t version, uint8_t shared_flag, const Fields& f) {
  std::string s(256, '\0');
  uint32_t magic = k_llama2c_magic;
  int32_t vals[8] = {version, f.dim, f.hidden, f.layers, f.heads, f.kv, f.vocab, f.seq};
  std::memcpy(&s[0], &magic, 4);
  std::memcpy(&s[4], vals, sizeof(vals));
  s[36] = static_cast<char>(shared_flag);
  uint64_t hs = f.dim / f.heads, L = f.layers, d = f.dim;
  uint64_t n = 2 * L * d + d + f.vocab * d + 2 * L * d * d + 2 * L * d * (f.kv * hs) +
               3 * L * d * f.hidden + (shared_flag ? 0 : f.vocab * d);
  s.append(n * 4, '\x01');
  return s;
}

Expected<Llama2cCheckpoint> parse_str(const std::string& s) {
  return Llama2cCheckpoint::parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "t.bin");
}

}  // namespace

TEST(Llama2c, SyntheticValidFilesParse) {
  Fields f;
  auto a = parse_str(legacy_file(f, true));
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(a->tensors().size(), 1u + 9u * 2u + 1u);
  auto b = parse_str(legacy_file(f, false));
  ASSERT_TRUE(b.ok()) << b.message();
  ASSERT_NE(b->tensor("output.weight"), nullptr);
  auto c = parse_str(v1_file(1, 1, f));
  ASSERT_TRUE(c.ok()) << c.message();
  auto d = parse_str(v1_file(1, 0, f));
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_NE(d->tensor("output.weight"), nullptr);
}

TEST(Llama2c, HostileHeadersNameTheField) {
  struct Case {
    const char* label;
    std::string bytes;
    const char* expect;  // substring of the error
  };
  // Header fields only, plus a little body: validation must fail before sizes are used.
  auto with = [](auto mutate) {
    Fields f;
    mutate(f);
    int32_t hdr[7] = {f.dim, f.hidden, f.layers, f.heads, f.kv, f.vocab, f.seq};
    return std::string(reinterpret_cast<const char*>(hdr), sizeof(hdr)) + std::string(64, '\0');
  };
  std::vector<Case> cases = {
      {"dim negative", with([](Fields& f) { f.dim = -8; }), "dim"},
      {"dim zero", with([](Fields& f) { f.dim = 0; }), "dim"},
      {"dim huge", with([](Fields& f) { f.dim = INT32_MAX; }), "dim"},
      {"hidden negative", with([](Fields& f) { f.hidden = -1; }), "hidden_dim"},
      {"hidden huge", with([](Fields& f) { f.hidden = INT32_MAX; }), "hidden_dim"},
      {"layers zero", with([](Fields& f) { f.layers = 0; }), "n_layers"},
      {"layers huge", with([](Fields& f) { f.layers = 1 << 30; }), "n_layers"},
      {"heads zero", with([](Fields& f) { f.heads = 0; }), "n_heads"},
      {"heads > dim", with([](Fields& f) { f.heads = 16; }), "n_heads"},
      {"kv zero", with([](Fields& f) { f.kv = 0; }), "n_kv_heads"},
      {"kv > heads", with([](Fields& f) { f.kv = 4; }), "n_kv_heads"},
      {"vocab zero", with([](Fields& f) { f.vocab = 0; }), "vocab_size"},
      {"vocab INT32_MIN", with([](Fields& f) { f.vocab = INT32_MIN; }), "vocab_size"},
      {"vocab huge", with([](Fields& f) { f.vocab = INT32_MAX; }), "vocab_size"},
      {"seq zero", with([](Fields& f) { f.seq = 0; }), "seq_len"},
      {"seq negative", with([](Fields& f) { f.seq = -3; }), "seq_len"},
      {"dim not divisible", with([](Fields& f) {
         f.dim = 9;
         f.heads = 2;
       }),
       "divisible by n_heads"},
      {"heads not divisible", with([](Fields& f) {
         f.heads = 4;
         f.kv = 3;
       }),
       "divisible by n_kv_heads"},
      {"odd head size", with([](Fields& f) {
         f.dim = 6;
         f.heads = 2;
       }),
       "odd"},
      {"all at caps (huge product)", with([](Fields& f) {
         f.dim = 1 << 16;
         f.hidden = 1 << 18;
         f.layers = 1 << 10;
         f.heads = 1 << 10;
         f.kv = 1 << 10;
         f.vocab = 1 << 22;
         f.seq = 1 << 22;
       }),
       "truncated"},
      {"trailing bytes", legacy_file(Fields{}, true, 4), "trailing"},
      {"one float short", legacy_file(Fields{}, true, -4), "truncated"},
      {"unshared but shared size",
       [] {
         std::string s = legacy_file(Fields{}, true);
         int32_t v = -5;
         std::memcpy(&s[20], &v, 4);
         return s;
       }(),
       "truncated"},
      {"v2 export", v1_file(2, 1, Fields{}), "version 2"},
      {"unknown version", v1_file(7, 1, Fields{}), "version 7"},
      {"shared flag 2", v1_file(1, 2, Fields{}), "shared_classifier"},
      {"v1 header cut", v1_file(1, 1, Fields{}).substr(0, 100), "header"},
      {"empty", std::string(), "header"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    auto r = parse_str(c.bytes);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("t.bin"), std::string::npos) << r.message();
  }
}

TEST(Llama2c, EveryPrefixIsRejected) {
  Fields f;
  f.layers = 1;
  for (const std::string& full : {legacy_file(f, false), v1_file(1, 0, f)}) {
    ASSERT_TRUE(parse_str(full).ok());
    for (size_t n = 0; n < full.size(); ++n) {
      auto r = parse_str(full.substr(0, n));
      ASSERT_FALSE(r.ok()) << "prefix " << n;
    }
  }
}
