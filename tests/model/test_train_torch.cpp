// PyTorch parity of the trainer: loss and every parameter gradient of one batch, then the
// weights after 3 AdamW steps with gradient accumulation, clipping and the lr schedule.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <span>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train/train_model.h"

namespace slm::train {
namespace {

using test::TempDir;

template <class T>
void write_raw(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

std::vector<double> read_numbers(const std::string& path) {
  std::istringstream in(test::read_text(path));
  std::vector<double> v;
  double x;
  while (in >> x) v.push_back(x);
  return v;
}

// max|a - b| / max|b| over one tensor.
double rel_err(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num = std::max(num, std::fabs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::fabs(static_cast<double>(b[i])));
  }
  return den > 0 ? num / den : num;
}

std::vector<float> flatten(std::span<Param> ps, bool grads) {
  std::vector<float> out;
  for (const Param& p : ps) {
    const float* src = grads ? p.grad : p.value;
    out.insert(out.end(), src, src + p.numel);
  }
  return out;
}

struct Case {
  TrainModelConfig cfg;
  int64_t B = 3, T = 12;
};

void run_parity(const Case& c, int n_threads) {
  const int64_t steps = 3, accum = 2, B = c.B, T = c.T, N = B * T;
  auto made = TrainModel::create(c.cfg, n_threads);
  ASSERT_TRUE(made.ok()) << made.message();
  TrainModel& m = **made;
  m.init_weights(7);
  // A larger init than 0.02 so every op (softmax, SwiGLU) works away from its linear region.
  for (Param& p : m.params()) {
    if (!p.decay) {
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] += 0.1f * std::sin(static_cast<float>(i));
    } else {
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] *= 10.0f;
    }
  }
  std::vector<int32_t> toks(static_cast<size_t>(steps * accum * N)), tgts(toks.size());
  uint32_t s = 12345;
  for (size_t i = 0; i < toks.size(); ++i) {
    s = s * 1664525u + 1013904223u;
    toks[i] = static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(c.cfg.vocab_size));
    s = s * 1664525u + 1013904223u;
    tgts[i] = (i % 7 == 3) ? -1 : static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(c.cfg.vocab_size));
  }

  TempDir dir;
  nlohmann::json j;
  j["model"] = {{"vocab_size", c.cfg.vocab_size}, {"dim", c.cfg.dim}, {"n_layers", c.cfg.n_layers},
                {"n_heads", c.cfg.n_heads}, {"n_kv_heads", c.cfg.n_kv_heads}, {"ffn_dim", c.cfg.ffn_dim},
                {"rope_theta", c.cfg.rope_theta}, {"norm_eps", c.cfg.norm_eps},
                {"tied", c.cfg.tied_embeddings}};
  j["params"] = nlohmann::json::array();
  for (const Param& p : m.params()) j["params"].push_back({p.name, p.shape});
  const float max_lr = 1e-2f, min_lr = 1e-3f, clip = 0.5f;
  const int64_t warmup = 1, total = 3;
  AdamWConfig ac;
  ac.weight_decay = 0.1f;
  // Adam moves every weight by about lr whatever the size of its gradient, so a gradient that is
  // rounding noise (~1e-9, its sign set by summation order) would move by +-lr in one
  // implementation and -+lr in the other; eps = 1e-5 keeps such elements still in both.
  ac.eps = 1e-5f;
  j["B"] = B;
  j["T"] = T;
  j["steps"] = steps;
  j["accum"] = accum;
  j["clip"] = clip;
  j["sched"] = {{"warmup", warmup}, {"total", total}, {"max_lr", max_lr}, {"min_lr", min_lr}};
  j["adamw"] = {{"beta1", ac.beta1}, {"beta2", ac.beta2}, {"eps", ac.eps}, {"wd", ac.weight_decay}};
  test::write_text(dir.file("config.json"), j.dump());
  write_raw(dir.file("params.bin"), flatten(m.params(), false));
  write_raw(dir.file("tokens.bin"), toks);
  write_raw(dir.file("targets.bin"), tgts);
  const auto r = test::run(test::python_exe() + " " +
                           test::sh_quote(test::source_dir() + "/tests/ref/train_torch_ref.py") +
                           " " + test::sh_quote(dir.path()));
  ASSERT_EQ(r.exit_code, 0) << "PyTorch reference failed (python3-torch is required):\n" << r.err;

  // One batch: loss and every gradient.
  m.zero_grads();
  auto loss = m.forward_backward(toks.data(), tgts.data(), B, T, 1.0f);
  ASSERT_TRUE(loss.ok()) << loss.message();
  const double ref_loss = read_numbers(dir.file("ref_loss0.txt")).at(0);
  EXPECT_NEAR(*loss, ref_loss, 1e-4 * std::fabs(ref_loss));
  const std::vector<float> ref_g = read_floats(dir.file("ref_grads0.bin"));
  ASSERT_EQ(static_cast<int64_t>(ref_g.size()), m.n_params());
  int64_t off = 0;
  double worst_g = 0;
  for (const Param& p : m.params()) {
    const double e = rel_err(p.grad, ref_g.data() + off, p.numel);
    EXPECT_LT(e, 1e-4) << "gradient of " << p.name;
    worst_g = std::max(worst_g, e);
    off += p.numel;
  }

  // Training: accumulation, clipping, schedule, AdamW.
  AdamW opt(m.params(), ac);
  const std::vector<double> ref_losses = read_numbers(dir.file("ref_losses.txt"));
  ASSERT_EQ(static_cast<int64_t>(ref_losses.size()), steps);
  for (int64_t st = 0; st < steps; ++st) {
    m.zero_grads();
    double step_loss = 0;
    for (int64_t k = 0; k < accum; ++k) {
      const size_t at = static_cast<size_t>((st * accum + k) * N);
      auto l = m.forward_backward(toks.data() + at, tgts.data() + at, B, T, 1.0f / accum);
      ASSERT_TRUE(l.ok()) << l.message();
      step_loss += *l / accum;
    }
    EXPECT_NEAR(step_loss, ref_losses[static_cast<size_t>(st)], 1e-4 * ref_losses[static_cast<size_t>(st)]) << "step " << st;
    const double norm = clip_grad_norm(m.params(), clip, m.pool());
    EXPECT_GT(norm, clip) << "the test means to exercise clipping";
    opt.step(m.params(), lr_at(st, warmup, total, max_lr, min_lr), m.pool());
  }
  const std::vector<float> ref_w = read_floats(dir.file("ref_final.bin"));
  ASSERT_EQ(static_cast<int64_t>(ref_w.size()), m.n_params());
  off = 0;
  double worst_w = 0, moved = 0;
  const std::vector<float> start = read_floats(dir.file("params.bin"));
  for (const Param& p : m.params()) {
    const double e = rel_err(p.value, ref_w.data() + off, p.numel);
    EXPECT_LT(e, 1e-4) << "weights of " << p.name;
    worst_w = std::max(worst_w, e);
    moved = std::max(moved, rel_err(start.data() + off, ref_w.data() + off, p.numel));
    off += p.numel;
  }
  // The steps must move the weights far more than the tolerance, or the check means nothing.
  EXPECT_GT(moved, 1e-2);
  std::printf("loss %.7f (torch %.7f), worst gradient error %.2e, worst weight error %.2e "
              "after %lld steps (weights moved up to %.2e)\n",
              *loss, ref_loss, worst_g, worst_w, static_cast<long long>(steps), moved);
}

TrainModelConfig tiny(bool tied, int64_t kv_heads) {
  TrainModelConfig c;
  c.vocab_size = 67;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = kv_heads;
  c.ffn_dim = 40;
  c.max_seq_len = 16;
  c.rope_theta = 10000.0f;
  c.tied_embeddings = tied;
  return c;
}

TEST(TrainTorch, TiedGqaMatchesPyTorch) { run_parity({tiny(true, 2)}, 2); }
TEST(TrainTorch, UntiedMhaMatchesPyTorch) { run_parity({tiny(false, 4)}, 1); }
// T above the attention block (64 rows) and the fused output's 256-row chunks.
TEST(TrainTorch, LongerSequencesMatchPyTorch) {
  Case c{tiny(true, 1), 3, 100};
  c.cfg.max_seq_len = 128;
  run_parity(c, 2);
}

}  // namespace
}  // namespace slm::train
