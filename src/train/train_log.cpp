// JSONL training log: exact-precision writes, tolerant reads (a crash can tear the last line),
// and the cut-back a resumed run applies so no step appears twice.
#include "train/train_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mmap.h"

namespace slm::train {

namespace {
using json = nlohmann::json;

// Timings need no round-trip precision.
std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "null";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
// The learning rate is a float: 9 significant digits round-trip it without float-to-double
// noise such as 0.00030000001424923539.
std::string float_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

Expected<std::vector<LogLine>> read_train_log(const std::string& path) {
  std::vector<LogLine> lines;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return lines;
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(path, 1ull << 30));
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // torn last line: never completed
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    auto st = j.find("step");
    if (st == j.end() || !st->is_number_integer()) continue;
    LogLine l;
    l.step = st->get<int64_t>();
    if (auto v = j.find("val_loss"); v != j.end()) {
      l.is_val = true;
      l.loss = v->is_number() ? v->get<double>() : NAN;
    } else if (auto v2 = j.find("loss"); v2 != j.end()) {
      l.loss = v2->is_number() ? v2->get<double>() : NAN;
    } else {
      continue;
    }
    l.text = std::move(line);
    lines.push_back(std::move(l));
  }
  return lines;
}

TrainLog::~TrainLog() {
  if (f_) std::fclose(f_);
}

Status TrainLog::open(const std::string& path, int64_t keep_through) {
  path_ = path;
  std::string kept;
  if (keep_through > 0) {
    SLM_ASSIGN_OR_RETURN(auto lines, read_train_log(path));
    for (const auto& l : lines) {
      if (l.step <= keep_through) kept += l.text + "\n";
    }
  }
  SLM_TRY(write_file_atomic(path, kept));
  f_ = std::fopen(path.c_str(), "ab");
  if (!f_) return error("%s: cannot open for appending: %s", path.c_str(), std::strerror(errno));
  return Status();
}

Status TrainLog::write_line(const std::string& line) {
  if (!f_) return error("%s: the log is not open", path_.c_str());
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0) {
    return error("%s: write failed: %s", path_.c_str(), std::strerror(errno));
  }
  return Status();
}

Status TrainLog::write_step(const StepRecord& r) {
  return write_line("{\"step\": " + std::to_string(r.step) + ", \"loss\": " + json_number(r.loss) +
                    ", \"lr\": " + float_number(r.lr) + ", \"grad_norm\": " +
                    json_number(r.grad_norm) + ", \"tokens_per_s\": " +
                    fixed(r.tokens_per_s, 1) + ", \"elapsed_s\": " + fixed(r.elapsed_s, 3) + "}\n");
}

Status TrainLog::write_val(int64_t step, double val_loss) {
  return write_line("{\"step\": " + std::to_string(step) + ", \"val_loss\": " +
                    json_number(val_loss) + "}\n");
}

Status TrainLog::close() {
  if (!f_) return Status();
  const int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) return error("%s: close failed: %s", path_.c_str(), std::strerror(errno));
  return Status();
}

}  // namespace slm::train
