// Models loaded with kernel layouts (Q4_0/Q5_0 x8 copies, LoadOptions::kernel_layouts) compute the
// same logits bit for bit as the file's rows: a 40-token prompt (the GEMMs) and decode
// steps (the dot tiles), on one and two threads, for an architecture with fused q/k/v and
// gate/up matrices (row slices of one tensor) and one with tied embeddings (the lookup reads
// rows of the x8 copy). Each run checks that the copies were (or were not) made, and a model
// whose copies exceed LoadOptions::kernel_layout_budget keeps the file's rows.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "model/fixture.h"
#include "model/model.h"
#include "test_util.h"

namespace slm {
namespace {

// The logits of a 40-token prompt and three decode steps; *copied: whether the load gave the
// matrices x8 copies (every layer matrix and the embedding, or none).
std::vector<float> run_model(const std::string& path, const LoadOptions& o, int threads,
                             bool* copied) {
  auto m = Model::load(path, o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return {};
  const ModelWeights& w = (*m)->weights();
  int with = 0, without = 0;
  auto count = [&](const TensorView& v) { ++(v.x8 ? with : without); };
  count(w.tok_embd);
  count(w.output);
  for (const LayerWeights& L : w.layers) {
    for (const TensorView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) count(*v);
  }
  EXPECT_TRUE(with == 0 || without == 0) << with << " matrices with a copy, " << without << " without";
  *copied = with > 0;
  Session s(**m, 128, threads);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i) prompt.push_back((i * 37 + 11) % 256);
  std::vector<float> all;
  auto r = s.forward(prompt, true);
  EXPECT_TRUE(r.ok());
  if (!r.ok()) return {};
  all.assign(r->begin(), r->end());
  for (int32_t t : {5, 77, 200}) {
    auto d = s.forward(std::span<const int32_t>(&t, 1));
    EXPECT_TRUE(d.ok());
    if (!d.ok()) return {};
    all.insert(all.end(), d->begin(), d->end());
  }
  return all;
}

TEST(KernelLayouts, ModelSameLogitsAsFileRows) {
  for (DType t : {DType::Q4_0, DType::Q5_0}) {
    for (const char* arch : {"llama", "phi3"}) {
      FixtureSpec spec;
      spec.arch = arch;
      spec.fused = std::string(arch) == "phi3";
      spec.tied = !spec.fused;  // the output matrix is the embedding's x8 copy
      spec.n_ff = 160;          // 20 row groups of 8 per gate/up slice: the slices start mid-tensor
      test::TempDir tmp;
      const std::string path = tmp.file("m.gguf");
      Status st = write_fixture_gguf(spec, path, t);
      ASSERT_TRUE(st.ok()) << st.message();
      LoadOptions plain, packed;
      plain.kernel_layouts = false;
      for (int threads : {1, 2}) {
        bool copied = true;
        const std::vector<float> file_rows = run_model(path, plain, threads, &copied);
        EXPECT_FALSE(copied);
        const std::vector<float> x8 = run_model(path, packed, threads, &copied);
        EXPECT_TRUE(copied) << "no x8 copies: the comparison below would be of the file rows twice";
        ASSERT_EQ(file_rows.size(), static_cast<size_t>(43 * 256));
        ASSERT_EQ(x8.size(), file_rows.size());
        EXPECT_EQ(0, std::memcmp(file_rows.data(), x8.data(), x8.size() * sizeof(float)))
            << dtype_name(t) << ", " << arch << ", " << threads << " threads";
      }
    }
  }
}

// The copies cannot be paged back to the file, so a model whose copies exceed the budget
// (LoadOptions::kernel_layout_budget; by default nine tenths of MemAvailable) keeps reading the
// file's rows, with the same results.
TEST(KernelLayouts, CopiesOverTheBudgetAreSkipped) {
  FixtureSpec spec;
  spec.tied = true;
  test::TempDir tmp;
  const std::string path = tmp.file("m.gguf");
  Status st = write_fixture_gguf(spec, path, DType::Q4_0);
  ASSERT_TRUE(st.ok()) << st.message();
  LoadOptions tight, roomy, plain;
  tight.kernel_layout_budget = 4096;  // far below the fixture's matrices
  roomy.kernel_layout_budget = uint64_t{1} << 40;
  plain.kernel_layouts = false;
  bool copied = true;
  const std::vector<float> file_rows = run_model(path, plain, 2, &copied);
  const std::vector<float> skipped = run_model(path, tight, 2, &copied);
  EXPECT_FALSE(copied);
  EXPECT_EQ(skipped, file_rows);
  const std::vector<float> x8 = run_model(path, roomy, 2, &copied);
  EXPECT_TRUE(copied);
  ASSERT_EQ(x8.size(), file_rows.size());
  EXPECT_EQ(0, std::memcmp(x8.data(), file_rows.data(), x8.size() * sizeof(float)));
}

}  // namespace
}  // namespace slm
