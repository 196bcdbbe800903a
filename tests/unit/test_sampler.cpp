// Sampler tests: greedy ties, the exact sets kept by top-k / top-p / min-p (recomputed here from
// sorted probabilities), the temperature distribution (chi-square), penalty arithmetic done by
// hand, seeding, logit bias bans, parameter validation, and no allocation per token.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <numeric>
#include <set>
#include <vector>

#include "generate/sampler.h"

// Counts heap allocations so the per-token path can be checked to allocate nothing.
static std::atomic<long> g_allocs{0};
// noinline: GCC would otherwise see malloc/free pairs through inlined new/delete and warn.
__attribute__((noinline)) void* operator new(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace slm {
namespace {

SamplerParams plain(float temperature) {
  SamplerParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 1234;
  return p;
}

Sampler make(const SamplerParams& p, int64_t n_vocab) {
  auto s = Sampler::create(p, n_vocab);
  EXPECT_TRUE(s.ok()) << s.message();
  return std::move(s).value();
}

// Distinct pseudo-random logits in [-4, 4) from a fixed LCG (independent of the sampler's RNG).
std::vector<float> test_logits(int n, uint32_t seed) {
  std::vector<float> l(static_cast<size_t>(n));
  uint32_t x = seed;
  for (auto& v : l) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<float>((x >> 8) % 80000) / 10000.0f - 4.0f +
        1e-6f * static_cast<float>(&v - l.data());
  }
  return l;
}

// Token ids sorted by logit descending (ids ascending on ties) with their softmax probabilities.
struct Ranked {
  std::vector<int32_t> ids;
  std::vector<double> probs;
};
Ranked rank(const std::vector<float>& l, const std::vector<int32_t>& subset) {
  Ranked r;
  r.ids = subset;
  std::sort(r.ids.begin(), r.ids.end(),
            [&](int32_t a, int32_t b) { return l[a] != l[b] ? l[a] > l[b] : a < b; });
  double m = l[r.ids[0]], sum = 0;
  for (int32_t id : r.ids) sum += std::exp(double(l[id]) - m);
  for (int32_t id : r.ids) r.probs.push_back(std::exp(double(l[id]) - m) / sum);
  return r;
}
std::vector<int32_t> all_ids(size_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::set<int32_t> kept(Sampler& s, const std::vector<float>& l) {
  auto c = s.candidates(l);
  EXPECT_TRUE(c.ok()) << c.message();
  std::set<int32_t> out;
  for (const auto& t : *c) out.insert(t.id);
  return out;
}

TEST(Sampler, GreedyPicksLowestIdOnTies) {
  Sampler s = make(plain(0.0f), 5);
  std::vector<float> l = {1.0f, 3.0f, -2.0f, 3.0f, 2.9f};
  auto t = s.sample(l);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, 1);
  std::vector<float> same(5, -7.5f);
  EXPECT_EQ(*s.sample(same), 0);
  std::vector<float> last = {-1, -1, -1, -1, 0};
  EXPECT_EQ(*s.sample(last), 4);
}

TEST(Sampler, TopKKeepsTheKLargest) {
  const auto l = test_logits(200, 7);
  for (int k : {1, 5, 40, 199}) {
    SamplerParams p = plain(1.0f);
    p.top_k = k;
    Sampler s = make(p, 200);
    Ranked r = rank(l, all_ids(200));
    std::set<int32_t> expect(r.ids.begin(), r.ids.begin() + k);
    EXPECT_EQ(kept(s, l), expect) << "k=" << k;
    // The probabilities are the softmax over the kept set.
    auto c = s.candidates(l);
    Ranked rk = rank(l, std::vector<int32_t>(expect.begin(), expect.end()));
    for (size_t i = 0; i < c->size(); ++i) {
      EXPECT_EQ((*c)[i].id, rk.ids[i]);
      EXPECT_NEAR((*c)[i].prob, rk.probs[i], 1e-6);
    }
  }
}

TEST(Sampler, TopPKeepsSmallestPrefixReachingP) {
  const auto l = test_logits(300, 11);
  Ranked r = rank(l, all_ids(300));
  for (float p : {0.05f, 0.3f, 0.5f, 0.9f, 0.99f}) {
    size_t n = 0;
    double cum = 0;
    while (n < r.ids.size()) {
      cum += r.probs[n++];
      if (cum >= p) break;
    }
    SamplerParams sp = plain(1.0f);
    sp.top_p = p;
    Sampler s = make(sp, 300);
    std::set<int32_t> expect(r.ids.begin(), r.ids.begin() + static_cast<long>(n));
    EXPECT_EQ(kept(s, l), expect) << "p=" << p;
  }
}

TEST(Sampler, MinPKeepsTokensAboveFractionOfTop) {
  const auto l = test_logits(300, 13);
  Ranked r = rank(l, all_ids(300));
  for (float mp : {0.01f, 0.1f, 0.5f, 0.9f}) {
    std::set<int32_t> expect;
    for (size_t i = 0; i < r.ids.size(); ++i) {
      if (r.probs[i] >= mp * r.probs[0]) expect.insert(r.ids[i]);
    }
    SamplerParams sp = plain(1.0f);
    sp.min_p = mp;
    Sampler s = make(sp, 300);
    EXPECT_EQ(kept(s, l), expect) << "min_p=" << mp;
  }
}

TEST(Sampler, ChainOrderTopKThenTopPThenMinP) {
  const auto l = test_logits(100, 17);
  SamplerParams sp = plain(2.0f);  // temperature last: must not change the kept set
  sp.top_k = 20;
  sp.top_p = 0.6f;
  sp.min_p = 0.3f;
  Sampler s = make(sp, 100);
  Ranked r = rank(l, all_ids(100));
  // top-k, then top-p over the renormalised survivors, then min-p relative to the top one.
  Ranked rk = rank(l, std::vector<int32_t>(r.ids.begin(), r.ids.begin() + 20));
  size_t n = 0;
  double cum = 0;
  while (n < rk.ids.size()) {
    cum += rk.probs[n++];
    if (cum >= 0.6) break;
  }
  std::set<int32_t> expect;
  for (size_t i = 0; i < n; ++i) {
    if (rk.probs[i] >= 0.3 * rk.probs[0]) expect.insert(rk.ids[i]);
  }
  EXPECT_EQ(kept(s, l), expect);
  // Final probabilities: softmax(l / T) over the kept set.
  auto c = s.candidates(l);
  double m = -1e30, sum = 0;
  for (int32_t id : expect) m = std::max(m, double(l[id]) / 2.0);
  for (int32_t id : expect) sum += std::exp(double(l[id]) / 2.0 - m);
  for (const auto& t : *c) EXPECT_NEAR(t.prob, std::exp(double(l[t.id]) / 2.0 - m) / sum, 1e-6);
}

TEST(Sampler, TemperatureDistributionMatchesSoftmax) {
  const std::vector<float> l = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 0.3f};
  for (float temp : {0.7f, 1.0f, 1.6f}) {
    SamplerParams sp = plain(temp);
    sp.seed = 42;
    Sampler s = make(sp, 6);
    const int n = 30000;
    std::vector<int> hist(6, 0);
    for (int i = 0; i < n; ++i) ++hist[static_cast<size_t>(*s.sample(l))];
    double m = 2.0 / temp, sum = 0;
    for (float v : l) sum += std::exp(v / temp - m);
    double chi2 = 0;
    for (size_t i = 0; i < 6; ++i) {
      const double e = n * std::exp(l[i] / temp - m) / sum;
      chi2 += (hist[i] - e) * (hist[i] - e) / e;
    }
    // 5 degrees of freedom: P(chi2 > 20.5) = 0.001.
    EXPECT_LT(chi2, 20.5) << "T=" << temp;
  }
}

TEST(Sampler, PenaltiesByHand) {
  const std::vector<float> l = {2.0f, -1.0f, 0.5f, 0.0f};
  SamplerParams sp = plain(1.0f);
  sp.repeat_penalty = 2.0f;
  sp.frequency_penalty = 0.5f;
  sp.presence_penalty = 0.25f;
  sp.repeat_last_n = 64;
  Sampler s = make(sp, 4);
  for (int32_t t : {0, 0, 1, 3}) s.accept(t);
  auto c = s.candidates(l);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), 4u);  // no filter active: id order
  // token 0: seen twice, positive: 2/2 - 2*0.5 - 0.25 = -0.25
  // token 1: once, negative: -1*2 - 0.5 - 0.25 = -2.75
  // token 2: unseen: 0.5
  // token 3: once, zero counts as non-positive: 0*2 - 0.75 = -0.75
  EXPECT_FLOAT_EQ((*c)[0].logit, -0.25f);
  EXPECT_FLOAT_EQ((*c)[1].logit, -2.75f);
  EXPECT_FLOAT_EQ((*c)[2].logit, 0.5f);
  EXPECT_FLOAT_EQ((*c)[3].logit, -0.75f);

  // A window of 2 only remembers {1, 3}.
  sp.repeat_last_n = 2;
  Sampler w = make(sp, 4);
  for (int32_t t : {0, 0, 1, 3}) w.accept(t);
  c = w.candidates(l);
  EXPECT_FLOAT_EQ((*c)[0].logit, 2.0f);
  EXPECT_FLOAT_EQ((*c)[1].logit, -2.75f);
  EXPECT_FLOAT_EQ((*c)[3].logit, -0.75f);
  // The window slides: after two more 2s only token 2 (count 2) is penalised.
  w.accept(2);
  w.accept(2);
  c = w.candidates(l);
  EXPECT_FLOAT_EQ((*c)[0].logit, 2.0f);
  EXPECT_FLOAT_EQ((*c)[1].logit, -1.0f);
  EXPECT_FLOAT_EQ((*c)[2].logit, 0.5f / 2.0f - 2 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ((*c)[3].logit, 0.0f);

  // Window 0 disables penalties; reset() forgets the history.
  sp.repeat_last_n = 0;
  Sampler off = make(sp, 4);
  off.accept(0);
  EXPECT_FLOAT_EQ((*off.candidates(l))[0].logit, 2.0f);
  s.reset();
  EXPECT_FLOAT_EQ((*s.candidates(l))[0].logit, 2.0f);

  // Unbounded history (repeat_last_n < 0) counts everything.
  sp.repeat_last_n = -1;
  sp.repeat_penalty = 1.0f;
  Sampler all = make(sp, 4);
  for (int i = 0; i < 100; ++i) all.accept(2);
  EXPECT_FLOAT_EQ((*all.candidates(l))[2].logit, 0.5f - 100 * 0.5f - 0.25f);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDiffers) {
  const auto l = test_logits(50, 3);
  auto run = [&](uint64_t seed) {
    SamplerParams sp = plain(1.0f);
    sp.seed = seed;
    Sampler s = make(sp, 50);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(*s.sample(l));
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
  // reset() restarts the same stream.
  SamplerParams sp = plain(1.0f);
  sp.seed = 9;
  Sampler s = make(sp, 50);
  std::vector<int32_t> a, b;
  for (int i = 0; i < 50; ++i) a.push_back(*s.sample(l));
  s.reset();
  for (int i = 0; i < 50; ++i) b.push_back(*s.sample(l));
  EXPECT_EQ(a, b);
  // A random seed is reported and replays the same stream.
  SamplerParams rp = plain(1.0f);
  Sampler r1 = make(rp, 50);
  EXPECT_NE(r1.seed(), SamplerParams::k_random_seed);
  rp.seed = r1.seed();
  Sampler r2 = make(rp, 50);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(*r1.sample(l), *r2.sample(l));
}

TEST(Sampler, LogitBiasMinusInfinityBans) {
  const std::vector<float> l = {0.0f, 1.0f, 5.0f, 0.5f};
  SamplerParams sp = plain(0.0f);
  sp.logit_bias = {{2, -std::numeric_limits<float>::infinity()}};
  Sampler g = make(sp, 4);
  EXPECT_EQ(*g.sample(l), 1);
  sp.temperature = 1.5f;
  Sampler s = make(sp, 4);
  for (int i = 0; i < 2000; ++i) EXPECT_NE(*s.sample(l), 2);
  // A positive bias shifts the logit.
  SamplerParams bp = plain(0.0f);
  bp.logit_bias = {{0, 10.0f}};
  EXPECT_EQ(*make(bp, 4).sample(l), 0);
  // Banning everything is an error, not a crash.
  for (float t : {0.0f, 1.0f}) {
    SamplerParams ap = plain(t);
    for (int32_t i = 0; i < 4; ++i) ap.logit_bias.push_back({i, -INFINITY});
    Sampler a = make(ap, 4);
    EXPECT_FALSE(a.sample(l).ok());
  }
}

TEST(Sampler, RejectsInvalidParameters) {
  auto bad = [](auto edit) {
    SamplerParams p;
    edit(p);
    return !Sampler::create(p, 10).ok();
  };
  EXPECT_TRUE(bad([](SamplerParams& p) { p.temperature = -1.0f; }));
  EXPECT_TRUE(bad([](SamplerParams& p) { p.temperature = NAN; }));
  EXPECT_TRUE(bad([](SamplerParams& p) { p.top_p = 1.5f; }));
  EXPECT_TRUE(bad([](SamplerParams& p) { p.min_p = -0.1f; }));
  EXPECT_TRUE(bad([](SamplerParams& p) { p.repeat_penalty = 0.0f; }));
  EXPECT_TRUE(bad([](SamplerParams& p) { p.logit_bias = {{10, 1.0f}}; }));
  EXPECT_TRUE(bad([](SamplerParams& p) { p.logit_bias = {{-1, 1.0f}}; }));
  EXPECT_TRUE(bad([](SamplerParams& p) { p.logit_bias = {{1, INFINITY}}; }));
  EXPECT_FALSE(bad([](SamplerParams&) {}));
  EXPECT_FALSE(Sampler::create(SamplerParams{}, 0).ok());
  Sampler s = make(SamplerParams{}, 10);
  std::vector<float> wrong(9, 0.0f);
  EXPECT_FALSE(s.sample(wrong).ok());
}

TEST(Sampler, NoAllocationPerToken) {
  const auto l = test_logits(5000, 5);
  SamplerParams sp;  // defaults: top-k 40, top-p 0.95, min-p 0.05, T 0.8
  sp.seed = 1;
  sp.repeat_penalty = 1.1f;
  sp.frequency_penalty = 0.1f;
  sp.logit_bias = {{3, -1.0f}};
  Sampler s = make(sp, 5000);
  SamplerParams full = plain(0.9f);  // full sort path (top-p without top-k)
  full.top_p = 0.9f;
  Sampler f = make(full, 5000);
  const long before = g_allocs.load();
  for (int i = 0; i < 200; ++i) {
    auto t = s.sample(l);
    if (t.ok()) s.accept(*t);
    auto u = f.sample(l);
    if (u.ok()) f.accept(*u);
  }
  EXPECT_EQ(g_allocs.load() - before, 0);
}

}  // namespace
}  // namespace slm
