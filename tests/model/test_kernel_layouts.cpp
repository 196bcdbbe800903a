// Models loaded with kernel layouts (Q4_0 x8 copies, LoadOptions::kernel_layouts) compute the
// same logits bit for bit as the file's rows: a 40-token prompt (the int8 GEMM) and decode
// steps (the dot tiles), on one and two threads, for an architecture with fused q/k/v and
// gate/up matrices (row slices of one tensor) and one with tied embeddings (the lookup reads
// rows of the x8 copy).
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

std::vector<float> run_model(const std::string& path, bool layouts, int threads) {
  LoadOptions o;
  o.kernel_layouts = layouts;
  auto m = Model::load(path, o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return {};
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

TEST(KernelLayouts, Q4_0ModelSameLogitsAsFileRows) {
  for (const char* arch : {"llama", "phi3"}) {
    FixtureSpec spec;
    spec.arch = arch;
    spec.fused = std::string(arch) == "phi3";
    spec.tied = !spec.fused;  // the output matrix is the embedding's x8 copy
    spec.n_ff = 160;          // 20 row groups of 8 per gate/up slice: the slices start mid-tensor
    test::TempDir tmp;
    const std::string path = tmp.file("m.gguf");
    Status st = write_fixture_gguf(spec, path, DType::Q4_0);
    ASSERT_TRUE(st.ok()) << st.message();
    for (int threads : {1, 2}) {
      const std::vector<float> file_rows = run_model(path, false, threads);
      const std::vector<float> x8 = run_model(path, true, threads);
      ASSERT_EQ(file_rows.size(), static_cast<size_t>(43 * 256));
      ASSERT_EQ(x8.size(), file_rows.size());
      EXPECT_EQ(0, std::memcmp(file_rows.data(), x8.data(), x8.size() * sizeof(float)))
          << arch << ", " << threads << " threads";
    }
  }
}

}  // namespace
}  // namespace slm
