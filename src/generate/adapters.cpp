// Adapters from the real Session / Tokenizer / Model to the generation and perplexity cores.
// Kept apart from the cores so their tests link without a model or tokenizer implementation.
#include <algorithm>

#include "generate/generate.h"
#include "generate/perplexity.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace slm {

Expected<std::span<const float>> SessionLogits::forward(std::span<const int32_t> tokens,
                                                        bool all_logits) {
  return session_.forward(tokens, all_logits);
}
void SessionLogits::truncate(int64_t n) {
  session_.truncate(n);
}
int64_t SessionLogits::n_ctx() const {
  return session_.n_ctx();
}
int64_t SessionLogits::n_past() const {
  return session_.n_past();
}

Expected<GenerateResult> generate(Session& session, const Tokenizer& tok,
                                  std::span<const int32_t> prompt, const GenerateOptions& opts,
                                  const TextCallback& on_text) {
  SessionLogits source(session);
  TokenizerTextDecoder decoder(tok, !opts.strip_leading_space);
  return generate(source, decoder, prompt, opts, on_text);
}

Expected<GenerateResult> generate(Session& session, const Model& model,
                                  std::span<const int32_t> prompt, const GenerateOptions& opts,
                                  const TextCallback& on_text) {
  if (!model.has_tokenizer()) return error("generate: the model has no tokenizer");
  GenerateOptions o = opts;
  for (int32_t id : model.extra_eos_ids()) {
    if (std::find(o.extra_eos.begin(), o.extra_eos.end(), id) == o.extra_eos.end()) {
      o.extra_eos.push_back(id);
    }
  }
  return generate(session, model.tokenizer(), prompt, o, on_text);
}

Expected<PerplexityResult> perplexity(Session& session, const Tokenizer& tok, std::string_view text,
                                      const PerplexityOptions& opts) {
  // llama.cpp tokenizes the whole text once with the model's special-token rules; a model that
  // appends EOS would put it at the very end, which the protocol does not expect.
  if (tok.add_eos()) {
    return error(
        "perplexity: the tokenizer appends EOS to every text; the llama.cpp perplexity "
        "protocol assumes it does not");
  }
  const std::vector<int32_t> tokens = tok.encode(text, /*add_special=*/true,
                                                 /*parse_special=*/false);
  PerplexityOptions o = opts;
  o.bos_id = tok.add_bos() ? tok.bos_id() : -1;
  SessionLogits source(session);
  return perplexity(source, tokens, o);
}

}  // namespace slm
