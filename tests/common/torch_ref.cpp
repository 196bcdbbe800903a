// Implementation of the model-parity test helpers.
#include "torch_ref.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "test_util.h"

namespace slm::test {

std::vector<float> torch_logits_hf(const std::string& hf_dir, const std::vector<int32_t>& toks,
                                   const std::string& out_path) {
  std::string list;
  for (size_t i = 0; i < toks.size(); ++i) {
    if (i) list += ',';
    list += std::to_string(toks[i]);
  }
  RunResult r =
      run(python_exe() + " " + sh_quote(source_dir() + "/tests/ref/torch_model.py") + " --hf " +
          sh_quote(hf_dir) + " --tokens " + list + " --logits-out " + sh_quote(out_path));
  if (r.exit_code != 0) {
    ADD_FAILURE() << "reference failed (" << r.exit_code << "): " << r.err;
    return {};
  }
  std::string bytes = read_text(out_path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

std::vector<int32_t> lcg_tokens(int64_t n_vocab, uint32_t seed, int n) {
  std::vector<int32_t> t;
  uint32_t x = seed;
  for (int i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    t.push_back(static_cast<int32_t>((x >> 8) % static_cast<uint32_t>(n_vocab)));
  }
  return t;
}

double logits_rel_err(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) return 1e9;
    num = std::max(num, std::fabs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::fabs(static_cast<double>(b[i])));
  }
  return num / den;
}

}  // namespace slm::test
