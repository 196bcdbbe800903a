// The training loop behind `slm train`: dataset, model, AdamW with warm-up + cosine schedule,
// gradient accumulation and clipping, validation, JSONL log, loss plot and checkpoints, with
// a resume that repeats an uninterrupted run bit for bit (same thread count required).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"
#include "train/train_config.h"

namespace slm::train {

// What the loop reports to its caller (the CLI draws progress from these).
enum class TrainEventKind { started, step, eval, checkpoint, message };

struct TrainEvent {
  TrainEventKind kind = TrainEventKind::message;
  int64_t step = 0, max_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0;  // this process's average since it started
  double eta_s = 0;         // remaining time at that rate
  double val_loss = 0;      // eval
  std::string text;         // message text, or the checkpoint directory
};

struct TrainRunOptions {
  TrainConfig config;       // data_dir and out_dir set
  bool resume = false;      // continue from the newest complete checkpoint in out_dir
  const std::atomic<bool>* stop = nullptr;  // set (e.g. by SIGINT): save and return
  std::function<void(const TrainEvent&)> on_event;
};

struct TrainResult {
  int64_t first_step = 0;   // first step this call ran (1, or checkpoint step + 1)
  int64_t last_step = 0;    // steps done when it returned
  int64_t n_params = 0;
  bool interrupted = false; // stopped by the stop flag before max_steps
  std::string last_checkpoint;
  double final_loss = 0, final_val_loss = 0;  // NaN when none was computed
};

// OUT gets: checkpoint-<step>/ (see checkpoint.h), train_log.jsonl, loss.png and
// train_config.json (the resolved training config). Errors name the file or key; a failed
// save leaves the earlier checkpoints intact.
Expected<TrainResult> run_training(const TrainRunOptions& o);

}  // namespace slm::train
