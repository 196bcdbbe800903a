// llama2.c checkpoint reader: the legacy run.c layout (7 int32 header, fp32 arrays) and the
// "ak42" version 1 export (256-byte header, fp32). Tensors are zero-copy views with GGUF names.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mmap.h"
#include "core/status.h"

namespace slm {

// Hyper-parameters llama2.c fixes in run.c rather than storing in the file.
inline constexpr float k_llama2c_rope_theta = 10000.0f;
inline constexpr float k_llama2c_norm_eps = 1e-5f;
// Magic of the versioned exports: "ak42" read as a little-endian uint32.
inline constexpr uint32_t k_llama2c_magic = 0x616b3432;

struct Llama2cHeader {
  int32_t version = 0;  // 0: legacy run.c layout; 1: "ak42" fp32 export
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // always positive here (legacy files store -vocab when unshared)
  int32_t seq_len = 0;
  bool shared_classifier = true;  // output.weight is token_embd.weight

  int32_t head_size() const { return dim / n_heads; }
  int32_t kv_dim() const { return n_kv_heads * head_size(); }
};

// A validated checkpoint. Tensor names and shapes (GGUF order, ne[0] innermost):
//   token_embd.weight          {dim, vocab}
//   blk.N.attn_norm.weight     {dim}
//   blk.N.attn_q.weight        {dim, dim}         (rows are n_heads * head_size)
//   blk.N.attn_k.weight        {dim, kv_dim}
//   blk.N.attn_v.weight        {dim, kv_dim}
//   blk.N.attn_output.weight   {dim, dim}
//   blk.N.ffn_norm.weight      {dim}
//   blk.N.ffn_gate.weight      {dim, hidden}      (w1)
//   blk.N.ffn_down.weight      {hidden, dim}      (w2)
//   blk.N.ffn_up.weight        {dim, hidden}      (w3)
//   output_norm.weight         {dim}
//   output.weight              {dim, vocab}       only when !shared_classifier
// All F32. q/k rows are in Meta's layout: RoPE rotates adjacent pairs (x[2i], x[2i+1]), as
// GGUF "llama" expects, so no permutation is needed. The legacy file's precomputed
// freq_cis tables are skipped (RoPE is recomputed from k_llama2c_rope_theta).
// The whole file must be consumed exactly: trailing bytes are an error, since they mean the
// header does not describe the file (wrong format or a corrupt header).
class Llama2cCheckpoint {
 public:
  static Expected<Llama2cCheckpoint> open(const std::string& path);
  // Parses an in-memory image (tests, fuzzers); data must outlive the result and should be
  // 4-byte aligned for the F32 views to be read directly.
  static Expected<Llama2cCheckpoint> parse(const uint8_t* data, uint64_t size, std::string what);

  const Llama2cHeader& header() const { return header_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* tensor(std::string_view name) const;
  // The mapped file the views point into (null after parse()). Keep it alive for as long as
  // any copied TensorView is used.
  const std::shared_ptr<MappedFile>& mapping() const { return map_; }

 private:
  std::shared_ptr<MappedFile> map_;
  Llama2cHeader header_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace slm
