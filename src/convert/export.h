// `slm export`: the user-facing "GGUF for llama.cpp / Ollama" conversion. It picks a sensible
// output type for the input (this file) and writes through quantize_model (convert/quantize.h).
#pragma once

#include <string>

#include "model/model.h"

namespace slm {

struct ExportTypeChoice {
  std::string type;    // a quantize recipe name, e.g. "F16"
  std::string reason;  // one line for the user: why this type
};

// The default output type for exporting `model`:
//   - float matrices (F32/F16): F16, half the size of F32 with no loss that matters;
//   - all matrices BF16: BF16 (F16 cannot hold BF16's exponent range);
//   - any quantized matrix: Q8_0 (re-encoding is near-lossless; the same or a smaller type
//     would round a second time, F16 would only grow the file).
ExportTypeChoice default_export_type(const Model& model);

}  // namespace slm
