// TokenizerTextDecoder: the generation loop's streaming detokenizer over a real Tokenizer.
// Its own file so that linking it does not pull in Session (see adapters.cpp).
#include "generate/generate.h"
#include "tokenizer/tokenizer.h"

namespace slm {

void TokenizerTextDecoder::push(int32_t id, std::string& out) {
  if (!started_) {
    // Only until the first visible token: put back the space StreamDecoder will strip. A space
    // is a whole character, so emitting it ahead of held-back bytes keeps the order right.
    const std::string piece = tok_.token_to_piece(id);
    if (!piece.empty()) {
      started_ = true;
      if (keep_space_ && tok_.strips_leading_space() && piece[0] == ' ') out.push_back(' ');
    }
  }
  out.append(stream_.push(id));
}
void TokenizerTextDecoder::flush(std::string& out) {
  out.append(stream_.flush());
}
bool TokenizerTextDecoder::is_eog(int32_t id) const {
  return tok_.is_eog(id);
}

}  // namespace slm
