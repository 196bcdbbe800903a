// Training checkpoints: OUT/checkpoint-<step>/ in the Hugging Face layout (config.json,
// model.safetensors, tokenizer.json, generation_config.json) that `slm run` loads directly,
// plus trainer_state.json and optimizer.bin for an exact resume.
//
// Saving writes checkpoint-<step>.tmp/, fsyncs every file and the directory, renames it into
// place and fsyncs OUT, then deletes the oldest complete checkpoints beyond keep_last. A crash
// or a full disk at any point leaves the previous checkpoints as they were.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "train/data_loader.h"
#include "train/train_model.h"

namespace slm::train {

// Everything besides weights and optimizer moments that a resumed run needs.
struct TrainerState {
  int64_t step = 0;                 // optimizer steps done
  int n_threads = 0;                // bit-exact resume needs the same count
  std::string config_json;          // the resolved config (train_config_json)
  std::string config_hash;          // train_config_hash
  DataState data;                   // loader RNG and batches drawn
  std::vector<double> losses;       // train loss of steps 1..step
  std::vector<std::pair<int64_t, double>> val_losses;  // (step, val loss)
  int64_t tokens_seen = 0;
  double elapsed_s = 0;             // training time so far (for the log; not compared)
  int64_t dataset_train_tokens = 0; // identifies the dataset the run was using
  int64_t dataset_vocab = 0;
};

// Files copied into every checkpoint and the special ids config.json records.
struct CheckpointExtras {
  std::string tokenizer_json;    // contents of tokenizer.json
  std::string tokenizer_config;  // contents of tokenizer_config.json ("" if none)
  int32_t bos_id = -1, eos_id = -1;
};

// config.json of a Hugging Face LlamaForCausalLM with this shape (torch_dtype float32).
std::string hf_llama_config_json(const TrainModelConfig& c, int32_t bos_id, int32_t eos_id);

// The checkpoint directory name for a step: "checkpoint-<step>".
std::string checkpoint_dir_name(int64_t step);

// Saves and prunes as described above; returns the final directory.
Expected<std::string> save_checkpoint(const std::string& out_dir, TrainModel& model,
                                      const AdamW& opt, const TrainerState& st,
                                      const CheckpointExtras& extras, int64_t keep_last);

// Complete checkpoints in out_dir (checkpoint-<N> directories, *.tmp ignored), oldest first.
Expected<std::vector<std::pair<int64_t, std::string>>> list_checkpoints(const std::string& out_dir);

// Reads trainer_state.json (every field checked).
Expected<TrainerState> read_trainer_state(const std::string& ckpt_dir);

// Compares the checkpoint's config.json with the model config; the error names the first
// differing field, e.g. "hidden_size is 64 in the checkpoint, 128 in the config".
Status check_checkpoint_shape(const std::string& ckpt_dir, const TrainModelConfig& c);

// Loads weights (names, dtype F32 and shapes must match exactly) and optimizer state.
Status load_checkpoint_weights(const std::string& ckpt_dir, TrainModel& model);
Status load_optimizer_state(const std::string& ckpt_dir, AdamW& opt);

}  // namespace slm::train
