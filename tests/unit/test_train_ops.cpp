// Trainer ops against finite differences (double precision where the op is templated, a
// directional difference for the float-only attention), SIMD row kernels against their scalar
// references, plus determinism, schedule, optimizer state and config/batch validation.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "train/train_model.h"
#include "train/train_ops.h"
#include "train/train_simd.h"

namespace slm::train {
namespace {

template <class F>
std::vector<F> randn(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<F> v(n);
  for (auto& x : v) x = static_cast<F>(d(g));
  return v;
}

// Central differences of L(x) = Σ f(x) * R, element by element, against the analytic grad.
void check_fd(std::vector<double>& x, const std::function<double()>& loss,
              const std::vector<double>& grad, double tol, const char* what) {
  ASSERT_EQ(x.size(), grad.size());
  const double h = 1e-6;
  double worst = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    const double fd = (lp - lm) / (2 * h);
    worst = std::max(worst, std::fabs(fd - grad[i]));
    scale = std::max(scale, std::fabs(fd));
  }
  EXPECT_LT(worst, tol * std::max(scale, 1e-3)) << what << ": worst |fd - analytic| " << worst;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

TEST(TrainOps, RmsNormMatchesFiniteDifferences) {
  ThreadPool pool(2);
  const int64_t n = 5, d = 24;
  auto x = randn<double>(n * d, 1), w = randn<double>(d, 2), R = randn<double>(n * d, 3);
  std::vector<double> y(n * d), rstd(n);
  auto loss = [&] {
    rmsnorm_forward(x.data(), w.data(), n, d, 1e-5f, y.data(), rstd.data(), &pool);
    return dot(y, R);
  };
  loss();
  std::vector<double> dx(n * d, 0.5), dw(d, 0.25);  // backward adds: start from non-zero
  rmsnorm_backward(x.data(), w.data(), rstd.data(), R.data(), n, d, dx.data(), dw.data(), &pool);
  for (auto& v : dx) v -= 0.5;
  for (auto& v : dw) v -= 0.25;
  check_fd(x, loss, dx, 1e-6, "rmsnorm dx");
  check_fd(w, loss, dw, 1e-6, "rmsnorm dw");
}

TEST(TrainOps, RopeMatchesFiniteDifferencesAndSpec) {
  const int64_t T = 7, hd = 8, heads = 3, ld = heads * hd + 5, n = 2 * T;
  std::vector<float> cs(T * hd / 2), sn(T * hd / 2);
  rope_tables(T, hd, 10000.0, cs.data(), sn.data());
  // From the definition: angle(p, i) = p * 10000^(-2i/hd).
  EXPECT_NEAR(cs[3 * 4 + 1], std::cos(3.0 * std::pow(10000.0, -2.0 / 8)), 1e-7);
  EXPECT_NEAR(sn[6 * 4 + 3], std::sin(6.0 * std::pow(10000.0, -6.0 / 8)), 1e-7);
  auto x = randn<double>(n * ld, 4), R = randn<double>(n * ld, 5);
  std::vector<double> y;
  auto loss = [&] {
    y = x;
    rope_forward(y.data(), n, T, ld, heads, hd, cs.data(), sn.data(), nullptr);
    return dot(y, R);
  };
  loss();
  // Position 0 is the identity; element i of head 1 at row T + 2 (position 2) rotates with
  // element i + hd/2 (Hugging Face rotate_half).
  EXPECT_DOUBLE_EQ(y[hd + 1], x[hd + 1]);
  const int64_t r = T + 2, i = 1, a = r * ld + hd + i, b = a + hd / 2;
  EXPECT_NEAR(y[a], x[a] * cs[2 * 4 + i] - x[b] * sn[2 * 4 + i], 1e-12);
  EXPECT_NEAR(y[b], x[b] * cs[2 * 4 + i] + x[a] * sn[2 * 4 + i], 1e-12);
  std::vector<double> dx = R;
  rope_backward(dx.data(), n, T, ld, heads, hd, cs.data(), sn.data(), nullptr);
  check_fd(x, loss, dx, 1e-6, "rope dx");
}

TEST(TrainOps, SwigluMatchesFiniteDifferences) {
  ThreadPool pool(2);
  const int64_t n = 4, f = 13;
  auto gu = randn<double>(n * 2 * f, 6, 2.0), R = randn<double>(n * f, 7);
  std::vector<double> a(n * f), dgu(n * 2 * f);
  auto loss = [&] {
    swiglu_forward(gu.data(), n, f, a.data(), &pool);
    return dot(a, R);
  };
  loss();
  EXPECT_NEAR(a[f + 2], gu[2 * f + 2] / (1 + std::exp(-gu[2 * f + 2])) * gu[2 * f + f + 2], 1e-12);
  swiglu_backward(gu.data(), R.data(), n, f, dgu.data(), &pool);
  check_fd(gu, loss, dgu, 1e-6, "swiglu dgu");
}

// Plain double attention from the definition, the oracle for the sgemm-based forward.
std::vector<double> naive_attention(const AttnShape& s, const std::vector<float>& qkv) {
  std::vector<double> out(static_cast<size_t>(s.B * s.T * s.ldo), 0.0);
  const int64_t hd = s.hd, group = s.H / s.Hk;
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t h = 0; h < s.H; ++h) {
      for (int64_t i = 0; i < s.T; ++i) {
        std::vector<double> sc(static_cast<size_t>(i + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < hd; ++c) {
            acc += static_cast<double>(qkv[(b * s.T + i) * s.ld + h * hd + c]) *
                   qkv[(b * s.T + j) * s.ld + (s.H + h / group) * hd + c];
          }
          sc[j] = acc / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (auto& v : sc) sum += (v = std::exp(v - mx));
        for (int64_t c = 0; c < hd; ++c) {
          double acc = 0;
          for (int64_t j = 0; j <= i; ++j) {
            acc += sc[j] / sum * qkv[(b * s.T + j) * s.ld + (s.H + s.Hk + h / group) * hd + c];
          }
          out[(b * s.T + i) * s.ldo + h * hd + c] = acc;
        }
      }
    }
  }
  return out;
}

void attention_case(int64_t B, int64_t T, int64_t H, int64_t Hk, int64_t hd, int threads) {
  ThreadPool pool(threads);
  AttnShape s{B, T, H, Hk, hd, (H + 2 * Hk) * hd + 3, H * hd + 1};
  const int64_t N = B * T;
  auto qkv = randn<float>(N * s.ld, 8), R = randn<float>(N * s.ldo, 9);
  std::vector<float> out(N * s.ldo, 0.0f), lse(B * H * T), dqkv(N * s.ld, 0.0f);
  std::vector<float> scratch(threads * 2 * T * T);
  auto loss = [&](const std::vector<float>& in) {
    attention_forward(s, in.data(), out.data(), lse.data(), scratch.data(), &pool);
    double l = 0;
    for (int64_t r = 0; r < N; ++r) {
      for (int64_t c = 0; c < H * hd; ++c) l += static_cast<double>(out[r * s.ldo + c]) * R[r * s.ldo + c];
    }
    return l;
  };
  loss(qkv);
  const std::vector<double> ref = naive_attention(s, qkv);
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t c = 0; c < H * hd; ++c) {
      ASSERT_NEAR(out[r * s.ldo + c], ref[r * s.ldo + c], 2e-5) << "row " << r << " col " << c;
    }
  }
  attention_backward(s, qkv.data(), lse.data(), R.data(), dqkv.data(), scratch.data(), &pool);
  // Directional derivatives along random directions restricted to q, k, then v columns.
  for (int part = 0; part < 3; ++part) {
    const int64_t c0 = part == 0 ? 0 : part == 1 ? H * hd : (H + Hk) * hd;
    const int64_t c1 = part == 0 ? H * hd : part == 1 ? (H + Hk) * hd : (H + 2 * Hk) * hd;
    auto u = randn<float>(N * s.ld, 20 + part);
    double analytic = 0;
    std::vector<float> plus = qkv, minus = qkv;
    const float h = 1e-2f;
    for (int64_t r = 0; r < N; ++r) {
      for (int64_t c = 0; c < s.ld; ++c) {
        if (c < c0 || c >= c1) continue;
        const int64_t k = r * s.ld + c;
        analytic += static_cast<double>(dqkv[k]) * u[k];
        plus[k] += h * u[k];
        minus[k] -= h * u[k];
      }
    }
    const double fd = (loss(plus) - loss(minus)) / (2.0 * h);
    EXPECT_NEAR(fd, analytic, 2e-3 * std::fabs(analytic) + 1e-3) << "part " << part;
  }
}

TEST(TrainOps, AttentionMatchesDefinitionAndFiniteDifferences) {
  attention_case(2, 9, 2, 2, 8, 1);    // multi-head, one thread
  attention_case(2, 70, 4, 2, 8, 2);   // GQA, rows across the 64-row block boundary
  attention_case(1, 5, 3, 1, 4, 2);    // multi-query
}

TEST(TrainOps, CrossEntropyRowMatchesDefinition) {
  for (int64_t v : {5, 37, 1000}) {
    auto z = randn<float>(v, 11, 3.0);
    double mx = -1e300, sum = 0;
    for (float x : z) mx = std::max(mx, static_cast<double>(x));
    for (float x : z) sum += std::exp(x - mx);
    const double lse = mx + std::log(sum);
    const int32_t t = static_cast<int32_t>(v / 2);
    std::vector<float> dz(v);
    const double loss = cross_entropy_row(z.data(), v, t, 0.5f, dz.data());
    EXPECT_NEAR(loss, lse - z[t], 1e-5);
    for (int64_t j = 0; j < v; ++j) {
      const double want = 0.5 * (std::exp(z[j] - lse) - (j == t ? 1.0 : 0.0));
      ASSERT_NEAR(dz[j], want, 1e-6) << "v " << v << " j " << j;
    }
    // In place (dz aliases z), as the fused output layer uses it.
    std::vector<float> zz = z;
    EXPECT_EQ(cross_entropy_row(zz.data(), v, t, 0.5f, zz.data()), loss);
    EXPECT_EQ(zz, dz);
  }
}

TEST(TrainOps, SimdRowKernelsMatchScalar) {
  const int64_t f = 37;
  auto g = randn<float>(f, 12, 4.0), u = randn<float>(f, 13), da = randn<float>(f, 14);
  auto z = randn<float>(1000, 15, 5.0);
  struct Out {
    std::vector<float> a, dg, du, sm, dp, sg;
    double lse;
  };
  auto run = [&] {
    Out o{std::vector<float>(f), std::vector<float>(f), std::vector<float>(f), z, da, std::vector<float>(1000), 0};
    swiglu_row(g.data(), u.data(), f, o.a.data());
    swiglu_backward_row(g.data(), u.data(), da.data(), f, o.dg.data(), o.du.data());
    softmax_row_inplace(o.sm.data(), 1000);
    softmax_backward_row(o.sm.data(), o.dp.data(), f, 0.7f);
    o.lse = logsumexp_row(z.data(), 1000);
    softmax_grad_row(z.data(), 1000, static_cast<float>(o.lse), 0.3f, o.sg.data());
    return o;
  };
  const bool was = train_simd_force_scalar(true);
  const Out ref = run();
  train_simd_force_scalar(false);
  const Out fast = run();
  train_simd_force_scalar(was);
  auto close = [](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_NEAR(a[i], b[i], 2e-6 * std::max(1.0f, std::fabs(b[i]))) << what << " " << i;
    }
  };
  close(fast.a, ref.a, "swiglu");
  close(fast.dg, ref.dg, "swiglu dg");
  close(fast.du, ref.du, "swiglu du");
  close(fast.sm, ref.sm, "softmax");
  close(fast.dp, ref.dp, "softmax backward");
  close(fast.sg, ref.sg, "softmax grad");
  EXPECT_NEAR(fast.lse, ref.lse, 1e-5);
}

TEST(TrainOps, EmbeddingBackwardSumsRepeatedTokens) {
  ThreadPool pool(2);
  const int64_t V = 6, d = 130, n = 5;
  const int32_t toks[n] = {2, 4, 2, 0, 2};
  auto table = randn<float>(V * d, 16), dx = randn<float>(n * d, 17);
  std::vector<float> x(n * d), dt(V * d, 1.0f);
  embedding_forward(table.data(), toks, n, d, x.data(), &pool);
  EXPECT_EQ(x[3 * d + 7], table[0 * d + 7]);
  embedding_backward(dx.data(), toks, n, d, dt.data(), &pool);
  for (int64_t j = 0; j < d; ++j) {
    EXPECT_EQ(dt[2 * d + j], ((1.0f + dx[0 * d + j]) + dx[2 * d + j]) + dx[4 * d + j]);
    EXPECT_EQ(dt[1 * d + j], 1.0f);
  }
}

TrainModelConfig small_config() {
  TrainModelConfig c;
  c.vocab_size = 50;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn_dim = 48;
  c.max_seq_len = 32;
  return c;
}

TEST(TrainModel, GradientsAreBitIdenticalAcrossRuns) {
  std::vector<int32_t> toks(2 * 20), tgts(toks.size());
  for (size_t i = 0; i < toks.size(); ++i) {
    toks[i] = static_cast<int32_t>((i * 7 + 3) % 50);
    tgts[i] = static_cast<int32_t>((i * 11 + 1) % 50);
  }
  std::vector<float> first;
  double first_loss = 0;
  for (int run = 0; run < 3; ++run) {
    auto m = TrainModel::create(small_config(), 2);
    ASSERT_TRUE(m.ok()) << m.message();
    (*m)->init_weights(99);
    (*m)->zero_grads();
    auto loss = (*m)->forward_backward(toks.data(), tgts.data(), 2, 20);
    ASSERT_TRUE(loss.ok());
    std::vector<float> g;
    for (const Param& p : (*m)->params()) g.insert(g.end(), p.grad, p.grad + p.numel);
    if (run == 0) {
      first = g;
      first_loss = *loss;
      EXPECT_NEAR(*loss, std::log(50.0), 0.1);  // small init: near-uniform predictions
      auto ev = (*m)->eval_loss(toks.data(), tgts.data(), 2, 20);
      ASSERT_TRUE(ev.ok());
      EXPECT_EQ(*ev, *loss);
    } else {
      EXPECT_EQ(*loss, first_loss);
      EXPECT_TRUE(g == first) << "run " << run << " gave different gradients";
    }
  }
}

TEST(TrainModel, InitIsDeterministicAndNamed) {
  auto a = TrainModel::create(small_config(), 1), b = TrainModel::create(small_config(), 2);
  ASSERT_TRUE(a.ok() && b.ok());
  (*a)->init_weights(5);
  (*b)->init_weights(5);
  auto pa = (*a)->params(), pb = (*b)->params();
  ASSERT_EQ(pa.size(), pb.size());
  ASSERT_EQ(pa.size(), 1u + 9 * 2 + 1);  // tied: no lm_head
  EXPECT_EQ(pa[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(pa[3].name, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(pa[3].shape, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(pa.back().name, "model.norm.weight");
  double ss = 0;
  for (size_t k = 0; k < pa.size(); ++k) {
    ASSERT_TRUE(std::equal(pa[k].value, pa[k].value + pa[k].numel, pb[k].value)) << pa[k].name;
  }
  for (int64_t i = 0; i < pa[0].numel; ++i) ss += static_cast<double>(pa[0].value[i]) * pa[0].value[i];
  EXPECT_NEAR(std::sqrt(ss / static_cast<double>(pa[0].numel)), 0.02, 0.002);
  EXPECT_EQ(pa[1].value[0], 1.0f);  // norms start at 1
  int64_t total = 0;
  for (const Param& p : pa) total += p.numel;
  EXPECT_EQ(total, (*a)->n_params());
}

TEST(TrainModel, RejectsBadConfigsAndBatches) {
  const struct {
    const char* field;
    std::function<void(TrainModelConfig&)> edit;
  } bad[] = {
      {"vocab_size", [](TrainModelConfig& c) { c.vocab_size = 0; }},
      {"dim", [](TrainModelConfig& c) { c.dim = -4; }},
      {"n_heads", [](TrainModelConfig& c) { c.n_heads = 5; }},
      {"n_kv_heads", [](TrainModelConfig& c) { c.n_kv_heads = 3; }},
      {"head_dim", [](TrainModelConfig& c) { c.dim = 36; c.n_heads = 4; }},
      {"rope_theta", [](TrainModelConfig& c) { c.rope_theta = 0; }},
      {"norm_eps", [](TrainModelConfig& c) { c.norm_eps = NAN; }},
      {"max_seq_len", [](TrainModelConfig& c) { c.max_seq_len = 0; }},
      {"parameters", [](TrainModelConfig& c) { c.vocab_size = int64_t{1} << 30; c.dim = 1 << 14; c.n_heads = 64; c.n_kv_heads = 64; }},
  };
  for (const auto& b : bad) {
    TrainModelConfig c = small_config();
    b.edit(c);
    const Status s = validate(c);
    EXPECT_FALSE(s.ok()) << b.field;
    EXPECT_NE(s.message().find(b.field), std::string::npos) << s.message();
  }
  auto m = TrainModel::create(small_config(), 1);
  ASSERT_TRUE(m.ok());
  std::vector<int32_t> toks(8, 1), tgts(8, 2);
  toks[5] = 50;
  auto r = (*m)->forward_backward(toks.data(), tgts.data(), 2, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("position 5"), std::string::npos) << r.message();
  toks[5] = 1;
  tgts[2] = -2;
  EXPECT_FALSE((*m)->eval_loss(toks.data(), tgts.data(), 2, 4).ok());
  tgts[2] = -1;
  EXPECT_FALSE((*m)->eval_loss(toks.data(), tgts.data(), 1, 33).ok());  // T > max_seq_len
  EXPECT_TRUE((*m)->eval_loss(toks.data(), tgts.data(), 2, 4).ok());
}

TEST(TrainOptim, ScheduleFollowsItsDefinition) {
  EXPECT_FLOAT_EQ(lr_at(0, 10, 110, 1.0f, 0.1f), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(9, 10, 110, 1.0f, 0.1f), 1.0f);
  EXPECT_FLOAT_EQ(lr_at(10, 10, 110, 1.0f, 0.1f), 1.0f);
  EXPECT_FLOAT_EQ(lr_at(60, 10, 110, 1.0f, 0.1f), 0.55f);  // cos(pi/2) = 0: halfway
  EXPECT_FLOAT_EQ(lr_at(110, 10, 110, 1.0f, 0.1f), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(500, 10, 110, 1.0f, 0.1f), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(0, 0, 10, 2.0f, 0.0f), 2.0f);  // no warm-up
}

TEST(TrainOptim, AdamWStepAndStateRoundTrip) {
  std::vector<float> w = {1.0f, -2.0f, 0.5f}, g = {0.1f, -0.2f, 0.0f}, n = {1.0f}, gn = {0.3f};
  std::vector<Param> ps(2);
  ps[0] = {"m", {3}, 3, w.data(), g.data(), true};
  ps[1] = {"n", {1}, 1, n.data(), gn.data(), false};
  AdamWConfig cfg;
  cfg.weight_decay = 0.1f;
  AdamW opt(ps, cfg);
  opt.step(ps, 0.01f);
  // First step from the formulas: m = 0.1 g, v = 0.05 g^2, bias-corrected m/sqrt(v) = sign(g).
  EXPECT_NEAR(w[0], 1.0 * (1 - 0.001) - 0.01 * 0.1 / (0.1 + 1e-8), 1e-7);
  EXPECT_NEAR(w[1], -2.0 * (1 - 0.001) + 0.01, 1e-6);
  EXPECT_FLOAT_EQ(w[2], 0.5f * (1 - 0.001f));  // zero grad: only the decay
  EXPECT_NEAR(n[0], 1.0 - 0.01, 1e-7);         // no decay on norms
  const std::string st = opt.serialize_state();
  EXPECT_EQ(st.size(), 8u + 2 * 4 * 4);
  AdamW other(ps, cfg);
  ASSERT_TRUE(other.restore_state(st).ok());
  EXPECT_EQ(other.steps(), 1);
  EXPECT_EQ(other.serialize_state(), st);
  EXPECT_FALSE(other.restore_state(st.substr(1)).ok());
  // Clipping: norm of (0.1, -0.2, 0, 0.3) = sqrt(0.14).
  EXPECT_NEAR(grad_norm(ps), std::sqrt(0.14), 1e-7);
  EXPECT_NEAR(clip_grad_norm(ps, 0.1), std::sqrt(0.14), 1e-7);
  EXPECT_NEAR(grad_norm(ps), 0.1, 1e-6);
}

}  // namespace
}  // namespace slm::train
