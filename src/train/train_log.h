// The training log OUT/train_log.jsonl: one JSON object per optimizer step and per validation,
// flushed line by line, with losses printed to full double precision (%.17g) so two runs can
// be compared bit for bit. A resumed run first cuts the log back to its checkpoint's step.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/status.h"

namespace slm::train {

// {"step": 12, "loss": 5.12, "lr": 0.001, "grad_norm": 1.3, "tokens_per_s": 5200, "elapsed_s": 3.1}
struct StepRecord {
  int64_t step = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, elapsed_s = 0;
};

// One line of the log as read back: a step record or {"step": N, "val_loss": x}.
struct LogLine {
  int64_t step = 0;
  bool is_val = false;
  double loss = 0;  // loss or val_loss
  std::string text;  // the line as written (no newline)
};

// Reads the complete, well-formed lines of a log (a torn last line from a crash is dropped).
// A missing file is an empty log.
Expected<std::vector<LogLine>> read_train_log(const std::string& path);

class TrainLog {
 public:
  TrainLog() = default;
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  // Opens the log for appending after keeping only the lines with step <= keep_through
  // (rewritten atomically); keep_through 0 starts an empty log.
  Status open(const std::string& path, int64_t keep_through);
  Status write_step(const StepRecord& r);
  Status write_val(int64_t step, double val_loss);
  Status close();
  const std::string& path() const { return path_; }

 private:
  Status write_line(const std::string& line);
  std::string path_;
  std::FILE* f_ = nullptr;
};

// A double as JSON: %.17g (round-trips exactly), or null when not finite.
std::string json_number(double v);

}  // namespace slm::train
