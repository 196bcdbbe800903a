// What a GGUF file written from a loaded Model contains, whatever format the model came from:
// llama.cpp-convention metadata (architecture keys, tokenizer, chat template) and the list of
// tensors with their source views. `slm quantize` and `slm export` turn a plan into a file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "formats/gguf.h"

namespace slm {

class Model;

struct ExportTensor {
  std::string name;    // GGUF canonical name, e.g. "blk.0.attn_q.weight"
  TensorView src;      // the loaded weights (any dtype dequantize_row reads)
  // > 0: the rows are q or k of this many heads in Hugging Face (half-split rope) order and must
  // be reordered to GGUF "llama" adjacent-pair order (llama.cpp's converter permutation). For a
  // 1-D tensor (a q/k bias) the elements are reordered the same way.
  int64_t permute_heads = 0;
  bool is_matrix = false;  // 2-D weight a quantization recipe may change; vectors stay F32
};

struct ExportPlan {
  std::vector<std::pair<std::string, GgufValue>> metadata;  // in writing order
  std::vector<ExportTensor> tensors;                         // in writing order
  // Data the plan computed itself (e.g. rope_freqs.weight for a Hugging Face llama3 model);
  // some tensors' src views point here, so the plan must outlive its use (copies share it).
  std::vector<std::shared_ptr<const std::vector<float>>> owned;
};

// Builds the plan for `model` (GGUF, Hugging Face or llama2.c source): general.*, <arch>.*
// hyper-parameters, tokenizer.ggml.* from the loaded tokenizer, tokenizer.chat_template.
// general.file_type is left to the writer. The src views point into `model`, which must
// outlive the plan. Errors name what cannot be expressed in GGUF (e.g. a tokenizer kind
// llama.cpp lacks).
Expected<ExportPlan> plan_gguf_export(const Model& model);

// Source rows of tensor t converted to F32 (and permuted if t.permute_heads), rows [r0, r1).
// out holds (r1 - r0) * t.src.ne[0] floats. Preconditions (true for plan tensors):
// 0 <= r0 <= r1 <= t.src.rows().
void export_rows_f32(const ExportTensor& t, int64_t r0, int64_t r1, float* out);

}  // namespace slm
