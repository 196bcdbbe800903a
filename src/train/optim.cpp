// The optimizer side of training: global gradient norm and clipping, AdamW (as
// torch.optim.AdamW), its checkpoint state, and the warm-up + cosine learning-rate schedule.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/thread_pool.h"
#include "train/train_model.h"

namespace slm::train {

namespace {

// Elements per block of the gradient-norm sum: each block is summed in double on one thread,
// then the blocks are added in order, so the norm does not depend on the thread count.
constexpr int64_t k_norm_block = 1 << 15;

template <class Fn>
void par(ThreadPool* pool, int64_t n, Fn&& fn, int64_t min_chunk) {
  if (n <= 0) return;
  if (pool == nullptr || pool->n_threads() <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  pool->parallel_for(n, fn, min_chunk);
}

}  // namespace

double grad_norm(std::span<const Param> params, ThreadPool* pool) {
  double total = 0;
  std::vector<double> partial;
  for (const Param& p : params) {
    const int64_t blocks = (p.numel + k_norm_block - 1) / k_norm_block;
    partial.assign(static_cast<size_t>(blocks), 0.0);
    par(pool, blocks, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t i0 = k * k_norm_block, i1 = std::min(p.numel, i0 + k_norm_block);
        double s = 0;
        for (int64_t i = i0; i < i1; ++i) s += static_cast<double>(p.grad[i]) * p.grad[i];
        partial[static_cast<size_t>(k)] = s;
      }
    }, 1);
    for (double s : partial) total += s;
  }
  return std::sqrt(total);
}

double clip_grad_norm(std::span<Param> params, double max_norm, ThreadPool* pool) {
  const double norm = grad_norm(params, pool);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    const float c = static_cast<float>(coef);
    for (Param& p : params) {
      float* gr = p.grad;
      par(pool, p.numel, [gr, c](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) gr[i] *= c;
      }, 1 << 14);
    }
  }
  return norm;
}

AdamW::AdamW(std::span<const Param> params, const AdamWConfig& cfg) : cfg_(cfg) {
  for (const Param& p : params) {
    m_.emplace_back(static_cast<size_t>(p.numel), 0.0f);
    v_.emplace_back(static_cast<size_t>(p.numel), 0.0f);
  }
}

// torch.optim.AdamW (amsgrad off, maximize off), per element:
//   w *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   w -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
void AdamW::step(std::span<Param> params, float lr, ThreadPool* pool) {
  ++t_;
  const double bc1 = 1.0 - std::pow(static_cast<double>(cfg_.beta1), static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(static_cast<double>(cfg_.beta2), static_cast<double>(t_));
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
  const size_t n = std::min(params.size(), m_.size());
  for (size_t k = 0; k < n; ++k) {
    Param& p = params[k];
    const float decay = p.decay ? 1.0f - lr * cfg_.weight_decay : 1.0f;
    float* w = p.value;
    const float* gr = p.grad;
    float* m = m_[k].data();
    float* v = v_[k].data();
    const int64_t numel = std::min<int64_t>(p.numel, static_cast<int64_t>(m_[k].size()));
    par(pool, numel, [=](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float gi = gr[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        const float denom = std::sqrt(v[i]) * inv_bc2_sqrt + eps;
        w[i] = w[i] * decay - step_size * m[i] / denom;
      }
    }, 1 << 14);
  }
}

std::string AdamW::serialize_state() const {
  size_t bytes = sizeof(int64_t);
  for (size_t k = 0; k < m_.size(); ++k) bytes += (m_[k].size() + v_[k].size()) * sizeof(float);
  std::string out(bytes, '\0');
  char* p = out.data();
  // Little-endian on every machine slm builds for (x86-64, aarch64 Linux): raw copies.
  std::memcpy(p, &t_, sizeof t_);
  p += sizeof t_;
  for (size_t k = 0; k < m_.size(); ++k) {
    std::memcpy(p, m_[k].data(), m_[k].size() * sizeof(float));
    p += m_[k].size() * sizeof(float);
    std::memcpy(p, v_[k].data(), v_[k].size() * sizeof(float));
    p += v_[k].size() * sizeof(float);
  }
  return out;
}

Status AdamW::restore_state(std::string_view bytes) {
  size_t want = sizeof(int64_t);
  for (size_t k = 0; k < m_.size(); ++k) want += (m_[k].size() + v_[k].size()) * sizeof(float);
  if (bytes.size() != want) {
    return error("optimizer state: %zu bytes, expected %zu for these parameters", bytes.size(), want);
  }
  int64_t t = 0;
  std::memcpy(&t, bytes.data(), sizeof t);
  if (t < 0) return error("optimizer state: step count %lld at offset 0 is negative", static_cast<long long>(t));
  const char* p = bytes.data() + sizeof t;
  for (size_t k = 0; k < m_.size(); ++k) {
    std::memcpy(m_[k].data(), p, m_[k].size() * sizeof(float));
    p += m_[k].size() * sizeof(float);
    std::memcpy(v_[k].data(), p, v_[k].size() * sizeof(float));
    p += v_[k].size() * sizeof(float);
  }
  t_ = t;
  return Status();
}

float lr_at(int64_t step, int64_t warmup, int64_t total, float max_lr, float min_lr) {
  if (step < warmup) {
    return static_cast<float>(static_cast<double>(max_lr) * static_cast<double>(step + 1) /
                              static_cast<double>(warmup));
  }
  if (step >= total || total <= warmup) return step >= total ? min_lr : max_lr;
  const double frac = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  const double pi = 3.14159265358979323846;
  return static_cast<float>(min_lr + (max_lr - min_lr) * 0.5 * (1.0 + std::cos(pi * frac)));
}

}  // namespace slm::train
