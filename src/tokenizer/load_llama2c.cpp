// Reads a llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32
// length and the bytes. Encodes like SentencePiece BPE (score-ordered merges, byte fallback).
#include "core/mmap.h"
#include "core/reader.h"
#include "tokenizer/tokenizer_impl.h"

namespace slm {

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_llama2c(const std::string& path,
                                                             int64_t vocab_size) {
  // Far above any real vocabulary; keeps a hostile header from driving a huge allocation.
  constexpr int64_t k_max_vocab = int64_t{1} << 24;
  if (vocab_size <= 0 || vocab_size > k_max_vocab) {
    return error("%s: vocab_size %lld out of range", path.c_str(), (long long)vocab_size);
  }
  SLM_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  ByteReader r(bytes.data(), bytes.size(), path);
  int32_t max_len = 0;
  SLM_TRY(r.read(&max_len, "max_token_length"));
  if (max_len <= 0 || max_len > (1 << 16)) {
    return error("%s: max_token_length %d out of range", path.c_str(), max_len);
  }
  // Each token takes at least 8 bytes (score + length).
  SLM_TRY(r.check_count(static_cast<uint64_t>(vocab_size), 8, "tokens"));

  auto t = std::make_unique<tok::TokenizerImpl>();
  t->set_kind(TokenizerKind::spm);
  t->merge_by_score = true;
  t->text.prefix_space = true;  // llama2.c prepends a dummy space, as SentencePiece does
  t->text.escape_spaces = false;
  t->set_strip_leading_space(true);
  auto& tokens = t->tokens();
  tokens.reserve(static_cast<size_t>(vocab_size));
  t->scores.reserve(static_cast<size_t>(vocab_size));
  for (int64_t i = 0; i < vocab_size; ++i) {
    float score = 0;
    int32_t len = 0;
    SLM_TRY(r.read(&score, "score"));
    SLM_TRY(r.read(&len, "token length"));
    if (len < 0) {
      return error("%s: token %lld: negative length %d at offset %llu", path.c_str(),
                   (long long)i, len, (unsigned long long)r.offset());
    }
    std::string text;
    SLM_TRY(r.read_string(static_cast<uint64_t>(len), static_cast<uint64_t>(max_len), &text,
                          "token text"));
    tokens.push_back(std::move(text));
    t->scores.push_back(score);
  }
  // llama2.c vocabularies (SentencePiece exports): 0 <unk>, 1 <s>, 2 </s>, then byte tokens.
  t->types().assign(tokens.size(), TokenType::normal);
  auto& types = t->types();
  if (tokens.size() > 0) types[0] = TokenType::unknown;
  if (tokens.size() > 1) types[1] = TokenType::control;
  if (tokens.size() > 2) types[2] = TokenType::control;
  t->unk_id = 0;
  t->set_special(1, 2, -1);
  t->set_add(true, false);
  SLM_TRY(t->finalize().with_context(path));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace slm
