// TokenizerTextDecoder: the generation loop's streaming detokenizer over a real Tokenizer.
// Its own file so that linking it does not pull in Session (see adapters.cpp).
#include "generate/generate.h"
#include "tokenizer/tokenizer.h"

namespace slm {

void TokenizerTextDecoder::push(int32_t id, std::string& out) { out.append(stream_.push(id)); }
void TokenizerTextDecoder::flush(std::string& out) { out.append(stream_.flush()); }
bool TokenizerTextDecoder::is_eog(int32_t id) const { return tok_.is_eog(id); }

}  // namespace slm
