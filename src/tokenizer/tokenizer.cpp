// Tokenizer front end: special-token partitioning, text rules, dispatch to the SPM / BPE /
// WordPiece engines, piece tables, whole-sequence decode and the streaming decoder.
#include <algorithm>
#include <cstdio>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace slm {

std::string_view Tokenizer::kind_name() const {
  switch (kind_) {
    case TokenizerKind::spm: return "spm";
    case TokenizerKind::bpe: return "bpe";
    case TokenizerKind::wpm: return "wpm";
  }
  return "?";
}

bool Tokenizer::is_eog(int32_t id) const {
  return id >= 0 && std::find(eog_.begin(), eog_.end(), id) != eog_.end();
}

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = token_to_id_.find(std::string(text));
  return it == token_to_id_.end() ? -1 : it->second;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (piece.empty()) continue;
    if (first && strip_leading_space_ && piece[0] == ' ') piece.erase(0, 1);
    first = false;
    out += piece;
  }
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  std::string piece = tok_.token_to_piece(id);
  if (piece.empty()) return {};
  if (first_ && tok_.strips_leading_space() && piece[0] == ' ') piece.erase(0, 1);
  first_ = false;
  pending_ += piece;
  // Emit everything that further bytes cannot change; keep a trailing incomplete character.
  const size_t n = tok::utf8_stable_prefix(pending_);
  std::string out = tok::utf8_sanitize(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = tok::utf8_sanitize(pending_);
  pending_.clear();
  return out;
}

namespace tok {
namespace {

bool parse_byte_token(std::string_view t, int* value) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return false;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = t[static_cast<size_t>(k)];
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (d < 0) return false;
    v = v * 16 + d;
  }
  *value = v;
  return true;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

constexpr std::string_view k_space_marker = "\xe2\x96\x81";  // U+2581 "▁"

}  // namespace

int32_t TokenizerImpl::lookup(std::string_view text) const {
  auto it = token_to_id_.find(std::string(text));
  return it == token_to_id_.end() ? -1 : it->second;
}

Status TokenizerImpl::finalize() {
  const size_t n = tokens_.size();
  if (n == 0) return error("tokenizer: empty vocabulary");
  if (n > static_cast<size_t>(INT32_MAX)) return error("tokenizer: vocabulary too large");
  if (types_.size() != n) types_.resize(n, TokenType::normal);
  if (!scores.empty() && scores.size() != n) {
    return error("tokenizer: %zu scores for %zu tokens", scores.size(), n);
  }
  auto valid = [&](int32_t& id) {
    if (id < 0 || static_cast<size_t>(id) >= n) id = -1;
  };
  valid(bos_), valid(eos_), valid(eot_), valid(unk_id), valid(pad_id), valid(sep_id),
      valid(cls_id), valid(mask_id);

  token_to_id_.clear();
  token_to_id_.reserve(n);
  byte_ids_.fill(-1);
  split_specials_.clear();
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    if (types_[i] != TokenType::unused || !tokens_[i].empty()) token_to_id_[tokens_[i]] = id;
    int b = 0;
    if (parse_byte_token(tokens_[i], &b) && byte_ids_[static_cast<size_t>(b)] < 0 &&
        (types_[i] == TokenType::byte || kind_ == TokenizerKind::spm || byte_fallback)) {
      byte_ids_[static_cast<size_t>(b)] = id;
      if (types_[i] == TokenType::normal) types_[i] = TokenType::byte;
    }
    const TokenType t = types_[i];
    if ((t == TokenType::control || t == TokenType::user_defined || t == TokenType::unknown) &&
        !tokens_[i].empty()) {
      split_specials_.push_back(id);
    }
  }
  std::stable_sort(split_specials_.begin(), split_specials_.end(), [&](int32_t a, int32_t b) {
    return tokens_[static_cast<size_t>(a)].size() > tokens_[static_cast<size_t>(b)].size();
  });

  // Decoded bytes of every token.
  pieces_.assign(n, std::string());
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = tokens_[i];
    std::string& p = pieces_[i];
    switch (types_[i]) {
      case TokenType::control:
      case TokenType::unknown:
      case TokenType::unused:
        break;  // rendered only on request
      case TokenType::byte: {
        int b = 0;
        if (parse_byte_token(t, &b)) p = std::string(1, static_cast<char>(b));
        break;
      }
      case TokenType::user_defined:
        p = t;
        break;
      case TokenType::normal:
        if (byte_level) {
          for (size_t k = 0; k < t.size();) {
            const size_t start = k;
            const uint32_t cp = utf8_next(t, k);
            const int b = unicode_to_byte(cp);
            if (b >= 0) {
              p += static_cast<char>(b);
            } else {
              p.append(t, start, k - start);
            }
          }
        } else if (kind_ == TokenizerKind::wpm) {
          const std::string& ip = wpm.initial_prefix;
          const std::string& cp = wpm.continuation_prefix;
          if (!cp.empty() && t.compare(0, cp.size(), cp) == 0) {
            p = t.substr(cp.size());
          } else if (!ip.empty() && t.compare(0, ip.size(), ip) == 0) {
            p.assign(1, ' ');
            p.append(t, ip.size(), std::string::npos);
          } else if (ip.empty()) {
            p.assign(1, ' ');
            p.append(t);
          } else {
            p = t;
          }
        } else {
          p = t;
          replace_all(p, k_space_marker, " ");
        }
        break;
    }
  }

  // End of generation: EOS, EOT, and the end-of-turn markers of common chat formats.
  eog_.clear();
  if (eos_ >= 0) eog_.push_back(eos_);
  if (eot_ >= 0 && eot_ != eos_) eog_.push_back(eot_);
  static const char* const k_eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>",
                                            "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                                            "<EOT>", "<|eom_id|>", "<｜end▁of▁sentence｜>"};
  for (const char* text : k_eog_texts) {
    const int32_t id = lookup(text);
    if (id < 0 || is_eog(id)) continue;
    const TokenType t = types_[static_cast<size_t>(id)];
    if (t == TokenType::control || t == TokenType::user_defined) eog_.push_back(id);
  }
  return Status();
}

std::string TokenizerImpl::token_to_piece(int32_t id, bool render_special) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return {};
  const auto i = static_cast<size_t>(id);
  const TokenType t = types_[i];
  if (render_special &&
      (t == TokenType::control || t == TokenType::unknown || t == TokenType::unused)) {
    return tokens_[i];
  }
  return pieces_[i];
}

void TokenizerImpl::push_bytes(std::string_view bytes, std::vector<int32_t>& out) const {
  for (char c : bytes) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id >= 0) {
      out.push_back(id);
    } else if (unk_id >= 0) {
      out.push_back(unk_id);
    }
  }
}

void TokenizerImpl::encode_fragment(std::string_view raw, bool first,
                                    std::vector<int32_t>& out) const {
  std::string s;
  if (text.nfkc) {
    s = normalize_nfkc(raw);
  } else if (text.nfc) {
    s = normalize_nfc(raw);
  } else {
    s.assign(raw);
  }
  if (text.byte_prefix_space && (s.empty() || s[0] != ' ')) s.insert(0, 1, ' ');
  if (text.prefix_space && (first || !text.prefix_first_only)) s.insert(0, 1, ' ');
  if (text.escape_spaces) replace_all(s, " ", k_space_marker);
  if (s.empty()) return;
  if (kind_ == TokenizerKind::wpm) {
    encode_wpm(s, out);
  } else if (merge_by_score) {
    encode_spm(s, out);
  } else {
    encode_bpe(s, out);
  }
}

std::vector<int32_t> TokenizerImpl::encode(std::string_view input, bool add_special,
                                           bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);

  // Split special-token strings out of the text, longest token first: each occurrence becomes
  // its id and the text around it stays raw.
  struct Fragment {
    std::string_view text;
    int32_t id;  // -1: raw text
  };
  std::vector<Fragment> frags;
  if (!input.empty()) frags.push_back({input, -1});
  for (int32_t sid : split_specials_) {
    const TokenType t = types_[static_cast<size_t>(sid)];
    if (!parse_special && t != TokenType::user_defined) continue;
    const std::string& st = tokens_[static_cast<size_t>(sid)];
    std::vector<Fragment> next;
    bool changed = false;
    for (const Fragment& f : frags) {
      if (f.id >= 0 || f.text.size() < st.size()) {
        next.push_back(f);
        continue;
      }
      size_t pos = 0;
      for (size_t hit; (hit = f.text.find(st, pos)) != std::string_view::npos;
           pos = hit + st.size()) {
        if (hit > pos) next.push_back({f.text.substr(pos, hit - pos), -1});
        next.push_back({{}, sid});
        changed = true;
      }
      if (pos < f.text.size()) next.push_back({f.text.substr(pos), -1});
    }
    if (changed) frags.swap(next);
  }

  bool first = true;
  for (const Fragment& f : frags) {
    if (f.id >= 0) {
      out.push_back(f.id);
    } else {
      encode_fragment(f.text, first, out);
    }
    first = false;
  }
  if (add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

}  // namespace tok
}  // namespace slm
