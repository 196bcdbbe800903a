// Training and validation batches from a TokenDataset: seeded random windows for training,
// evenly spaced fixed windows for validation, token ids checked against the model's vocabulary.
#include "train/data_loader.h"

#include <algorithm>

namespace slm::train {

Expected<DataLoader> DataLoader::create(const TokenDataset* ds, int64_t batch_size,
                                        int64_t seq_len, int64_t vocab_size, uint64_t seed,
                                        int64_t eval_windows) {
  DataLoader dl;
  dl.ds_ = ds;
  dl.B_ = batch_size;
  dl.T_ = seq_len;
  dl.vocab_ = vocab_size;
  // A distinct stream from the weight init, which uses the seed itself.
  dl.rng_ = TrainRng(seed ^ 0x64617461206f7264ull);
  auto train = ds->split("train");
  if (!train.ok()) return train.status().with_context(ds->dir());
  dl.train_ = *train;
  if (dl.train_->n_tokens() < seq_len + 1) {
    return error("%s: the train split has %lld tokens, fewer than seq_len + 1 = %lld (is the "
                 "corpus empty?)",
                 ds->dir().c_str(), (long long)dl.train_->n_tokens(), (long long)(seq_len + 1));
  }
  if (eval_windows > 0) {
    auto val = ds->split("val");
    if (!val.ok()) {
      return error("%s: the dataset has no val split, which validation needs (prepare it with a "
                   "validation fraction)",
                   ds->dir().c_str());
    }
    dl.val_ = *val;
    const int64_t n = dl.val_->n_tokens();
    if (n < seq_len + 1) {
      return error("%s: the val split has %lld tokens, fewer than seq_len + 1 = %lld",
                   ds->dir().c_str(), (long long)n, (long long)(seq_len + 1));
    }
    // eval_windows micro-batches of B windows, spread evenly over the whole split (windows
    // overlap when the split is small, which is harmless for a fixed measure).
    dl.n_eval_batches_ = eval_windows;
    const int64_t count = eval_windows * batch_size;
    const int64_t span = n - (seq_len + 1);
    dl.eval_offsets_.resize(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      const auto num = static_cast<unsigned __int128>(span) * static_cast<uint64_t>(i);
      dl.eval_offsets_[static_cast<size_t>(i)] =
          count > 1 ? static_cast<int64_t>(num / static_cast<uint64_t>(count - 1)) : 0;
    }
  }
  return dl;
}

Status DataLoader::fill(const TokenSplit& split, const std::vector<int64_t>& offsets,
                        Batch* out) const {
  out->B = B_;
  out->T = T_;
  out->tokens.resize(static_cast<size_t>(B_ * T_));
  out->targets.resize(static_cast<size_t>(B_ * T_));
  window_.resize(static_cast<size_t>(T_ + 1));
  for (int64_t b = 0; b < B_; ++b) {
    const int64_t off = offsets[static_cast<size_t>(b)];
    SLM_TRY(split.read(off, T_ + 1, window_.data()));
    for (int64_t t = 0; t <= T_; ++t) {
      const int32_t id = window_[static_cast<size_t>(t)];
      if (id < 0 || id >= vocab_) {
        return error("%s: token id %d at position %lld is outside the model's vocabulary (%lld)",
                     ds_->dir().c_str(), id, (long long)(off + t), (long long)vocab_);
      }
    }
    std::copy(window_.begin(), window_.end() - 1, out->tokens.begin() + b * T_);
    std::copy(window_.begin() + 1, window_.end(), out->targets.begin() + b * T_);
  }
  return Status();
}

Status DataLoader::next_batch(Batch* out) {
  std::vector<int64_t> offsets(static_cast<size_t>(B_));
  const auto n_starts = static_cast<uint64_t>(train_->n_tokens() - T_);  // >= 1
  for (auto& o : offsets) o = static_cast<int64_t>(rng_.below(n_starts));
  ++batches_drawn_;
  return fill(*train_, offsets, out);
}

Status DataLoader::eval_batch(int64_t i, Batch* out) const {
  if (i < 0 || i >= n_eval_batches_) return error("eval batch %lld out of range", (long long)i);
  std::vector<int64_t> offsets(eval_offsets_.begin() + i * B_, eval_offsets_.begin() + (i + 1) * B_);
  return fill(*val_, offsets, out);
}

}  // namespace slm::train
