// The `slm train` configuration file: a JSON object with the model's shape (Hugging Face Llama
// config names), the dataset directory and the optimisation settings, every key checked.
//
// {"model": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8,
//            "num_key_value_heads": 4, "intermediate_size": 688, "rope_theta": 10000,
//            "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "max_position_embeddings": 256,
//            "vocab_size": 4096 (default: the dataset's), "initializer_range": 0.02},
//  "data": "dataset-dir",            (relative paths are relative to the config file)
//  "out": "runs/name",               (optional; --out overrides)
//  "train": {"batch_size": 16, "seq_len": 256, ...}}   (see TrainSettings for every key)
// Unknown keys are errors, so a typo never silently falls back to a default.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "train/train_model.h"

namespace slm::train {

struct TrainSettings {
  int64_t batch_size = 8;     // sequences per micro-batch
  int64_t seq_len = 128;      // tokens per sequence (<= max_position_embeddings)
  int64_t grad_accum = 1;     // micro-batches per optimizer step
  int64_t max_steps = 1000;   // optimizer steps
  double lr = 1e-3;           // peak learning rate
  double min_lr = -1;         // end of the cosine; < 0 in the file means lr / 10
  int64_t warmup_steps = 100; // linear warm-up (capped at max_steps)
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double adam_eps = 1e-8;
  double grad_clip = 1.0;     // max global gradient norm; 0: no clipping
  uint64_t seed = 1337;       // weights and data order
  int64_t eval_interval = 100;  // steps between validation losses; 0: only at the end
  int64_t eval_batches = 8;     // validation micro-batches (fixed windows of the val split)
  int64_t save_interval = 500;  // steps between checkpoints; 0: only at the end
  int64_t keep_last = 3;        // checkpoints kept; 0: all
  int64_t threads = 0;          // 0: all hardware threads
};

struct TrainConfig {
  TrainModelConfig model;      // vocab_size 0 until resolved against the dataset
  bool vocab_from_data = true; // "vocab_size" absent from the file
  bool max_pos_from_seq = true;  // "max_position_embeddings" absent: seq_len
  std::string data_dir;        // resolved path
  std::string out_dir;         // resolved path, may be empty
  TrainSettings train;
  std::string source;          // the file it came from (error messages)
};

// Parses and checks a config. base_dir resolves relative "data" and "out" paths; `what` names
// the source in errors ("configs/x.json").
Expected<TrainConfig> parse_train_config(const std::string& text, const std::string& what,
                                         const std::string& base_dir);
Expected<TrainConfig> load_train_config(const std::string& path);

// Checks the cross-field rules (seq_len <= max positions, warm-up <= steps, model shape); run
// again after CLI overrides and after vocab_size is known. need_data: a dataset directory must
// be set (parsing alone does not require it, since --data may supply it).
Status validate_train_config(const TrainConfig& c, bool need_data = true);

// The resolved config as JSON text (every key, defaults filled in): what checkpoints record.
std::string train_config_json(const TrainConfig& c);

// A hash of everything that changes the sequence of losses (model shape, data path, all
// optimisation settings except the eval/save/keep cadence and thread count, which are checked
// separately): a resumed run must match it.
std::string train_config_hash(const TrainConfig& c);

// The first trajectory-relevant key whose value differs between two configs, as
// "train.lr: 0.001 in the checkpoint, 0.002 now", or "" if none.
std::string train_config_difference(const std::string& saved_json, const TrainConfig& now);

}  // namespace slm::train
