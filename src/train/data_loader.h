// Batches for training: random (seq_len + 1)-token windows of the train split drawn by a
// seeded RNG whose whole state is saved in checkpoints, and fixed windows of the val split.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/status.h"
#include "data/shards.h"

namespace slm::train {

// The data order generator (core/rng.h: xoshiro256**, state saved in checkpoints).
using TrainRng = Rng;

// One micro-batch: tokens and next-token targets, each B x T row-major.
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens, targets;
};

// The loader's position in the data stream, as checkpoints store it.
struct DataState {
  std::array<uint64_t, 4> rng{};
  int64_t batches_drawn = 0;
};

class DataLoader {
 public:
  // Checks the splits are large enough for one window and that every token id is below
  // vocab_size (the model's, which may exceed the dataset's). eval_windows 0: no validation.
  static Expected<DataLoader> create(const TokenDataset* ds, int64_t batch_size, int64_t seq_len,
                                     int64_t vocab_size, uint64_t seed, int64_t eval_windows);

  // Fills the next training micro-batch (B windows at uniform random offsets).
  Status next_batch(Batch* out);
  // Validation micro-batch i of n_eval_batches(): windows at fixed, evenly spaced offsets.
  Status eval_batch(int64_t i, Batch* out) const;
  int64_t n_eval_batches() const { return n_eval_batches_; }

  DataState state() const { return {rng_.state(), batches_drawn_}; }
  void restore(const DataState& s) {
    rng_.set_state(s.rng);
    batches_drawn_ = s.batches_drawn;
  }
  int64_t train_tokens() const { return train_->n_tokens(); }

 private:
  Status fill(const TokenSplit& split, const std::vector<int64_t>& offsets, Batch* out) const;

  const TokenDataset* ds_ = nullptr;
  const TokenSplit* train_ = nullptr;
  const TokenSplit* val_ = nullptr;
  int64_t B_ = 0, T_ = 0, vocab_ = 0;
  TrainRng rng_;
  int64_t batches_drawn_ = 0;
  int64_t n_eval_batches_ = 0;
  std::vector<int64_t> eval_offsets_;  // n_eval_batches_ * B_
  mutable std::vector<int32_t> window_;
};

}  // namespace slm::train
