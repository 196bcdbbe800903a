// Default output type for `slm export`, chosen from the matrix types of the loaded model.
// The conversion itself is quantize_model's (convert/quantize.cpp), shared with `slm quantize`.
#include "convert/export.h"

#include <map>

namespace slm {

namespace {

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

}  // namespace

ExportTypeChoice default_export_type(const Model& model) {
  // Count the matrix types (the tensors a recipe changes); vectors are F32 in every output.
  std::map<std::string, int64_t> types;
  const ModelWeights& w = model.weights();
  auto add = [&types](const TensorView& t) {
    if (t.data != nullptr && t.n_dims >= 2) ++types[dtype_name(t.dtype)];
  };
  add(w.tok_embd);
  if (w.output.data != w.tok_embd.data) add(w.output);
  for (const LayerWeights& l : w.layers) {
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) add(*t);
  }
  bool quantized = false, all_bf16 = !types.empty();
  std::string list;
  for (const auto& [name, n] : types) {
    DType t = DType::F32;
    dtype_from_name(name, &t);
    quantized |= !is_float(t);
    all_bf16 &= t == DType::BF16;
    if (!list.empty()) list += ", ";
    list += name + " x" + std::to_string(n);
  }
  if (quantized) {
    return {"Q8_0", "the input is already quantized (" + list +
                        "): Q8_0 re-encodes it with little loss; --type F16 is lossless but "
                        "larger, a smaller type rounds a second time"};
  }
  if (all_bf16) {
    return {"BF16", "the input is BF16 (" + list + "): BF16 keeps it exactly (F16 cannot hold "
                    "BF16's range)"};
  }
  if (list.find("F32") == std::string::npos) {
    return {"F16", "the input is F16 (" + list + "): F16 keeps it exactly"};
  }
  return {"F16", "the input is float (" + list + "): F16 halves F32 with negligible loss"};
}

}  // namespace slm
