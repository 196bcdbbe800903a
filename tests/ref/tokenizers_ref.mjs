// Reference side of the tokenizer.json tests: builds a Hugging Face tokenizer.json from a
// vocab-only GGUF (read with @huggingface/gguf) and tokenizes with @huggingface/tokenizers.
//   node tokenizers_ref.mjs build <file.gguf> <family> <out tokenizer.json>
//   node tokenizers_ref.mjs encode <tokenizer.json>   (stdin: JSON array of strings; stdout:
//     {"plain": ids without special tokens, "special": ids with them} per string)
import { readFileSync, writeFileSync } from "node:fs";
import { gguf } from "@huggingface/gguf";
import { Tokenizer } from "@huggingface/tokenizers";

const TYPE_CONTROL = 3;
const TYPE_USER_DEFINED = 4;

function addedTokens(tokens, types) {
  const added = [];
  tokens.forEach((t, id) => {
    if (types[id] === TYPE_CONTROL || types[id] === TYPE_USER_DEFINED) {
      added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false,
                   normalized: false, special: types[id] === TYPE_CONTROL });
    }
  });
  return added;
}

function byteLevelJson(md, family) {
  const tokens = md["tokenizer.ggml.tokens"];
  const types = md["tokenizer.ggml.token_type"];
  const vocab = {};
  tokens.forEach((t, id) => { vocab[t] = id; });
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  // StarCoder's tokenizer.json has Digits(individual_digits) before ByteLevel. The Rust library
  // splits on char::is_numeric (all of \p{N}, e.g. "½"), but tokenizers.js's Digits only on
  // ASCII \d, so the same split is written as the equivalent Split \p{N} Isolated.
  const digits = { type: "Split", pattern: { Regex: "\\p{N}" }, behavior: "Isolated", invert: false };
  const pre = family === "starcoder"
    ? { type: "Sequence", pretokenizers: [digits, byteLevel] }
    : byteLevel;
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: addedTokens(tokens, types),
    normalizer: null,
    pre_tokenizer: pre,
    post_processor: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
             vocab, merges: md["tokenizer.ggml.merges"] },
  };
}

// GGUF spells BERT word-initial pieces "▁x" and continuations "x"; tokenizer.json spells them
// "x" and "##x". Control tokens ([CLS], [SEP], ...) keep their text.
function wordPieceJson(md) {
  const tokens = md["tokenizer.ggml.tokens"];
  const types = md["tokenizer.ggml.token_type"];
  const vocab = {};
  tokens.forEach((t, id) => {
    let name = t;
    if (types[id] !== TYPE_CONTROL) name = t.startsWith("\u2581") ? t.slice(1) : "##" + t;
    if (!(name in vocab)) vocab[name] = id;
  });
  const unk = tokens[md["tokenizer.ggml.unknown_token_id"]];
  const cls = tokens[md["tokenizer.ggml.cls_token_id"]];
  const sep = tokens[md["tokenizer.ggml.seperator_token_id"]];
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: addedTokens(tokens, types),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true,
                  strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
               { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
             { SpecialToken: { id: sep, type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } },
             { SpecialToken: { id: sep, type_id: 1 } }],
      special_tokens: {
        [cls]: { id: cls, ids: [vocab[cls]], tokens: [cls] },
        [sep]: { id: sep, ids: [vocab[sep]], tokens: [sep] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: unk, continuing_subword_prefix: "##",
             max_input_chars_per_word: 100, vocab },
  };
}

// SentencePiece BPE as a tokenizer.json (the way Hugging Face converts Llama 2): merges are
// every split of a piece into two pieces, ordered by the merged piece's score (highest first),
// then by the parts' ids; byte_fallback covers characters outside the vocabulary.
function sentencePieceJson(md) {
  const tokens = md["tokenizer.ggml.tokens"];
  const scores = md["tokenizer.ggml.scores"];
  const types = md["tokenizer.ggml.token_type"];
  const vocab = {};
  tokens.forEach((t, id) => { if (!(t in vocab)) vocab[t] = id; });
  const merges = [];
  tokens.forEach((t, id) => {
    if (types[id] !== 1) return;
    const chars = Array.from(t);
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join(""), r = chars.slice(k).join("");
      if (l in vocab && r in vocab) merges.push([scores[id], vocab[l], vocab[r], l, r]);
    }
  });
  merges.sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2]);
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: addedTokens(tokens, types),
    normalizer: { type: "Sequence", normalizers: [
      { type: "Prepend", prepend: "\u2581" },
      { type: "Replace", pattern: { String: " " }, content: "\u2581" }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Sequence", decoders: [
      { type: "Replace", pattern: { String: "\u2581" }, content: " " },
      { type: "ByteFallback" }, { type: "Fuse" },
      { type: "Strip", content: " ", start: 1, stop: 0 }] },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false,
             vocab, merges: merges.map((m) => [m[3], m[4]]) },
  };
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "build") {
  const [file, family, out] = args;
  const { metadata } = await gguf(file, { allowLocalFile: true });
  const model = metadata["tokenizer.ggml.model"];
  const json = model === "bert" ? wordPieceJson(metadata)
    : model === "llama" ? sentencePieceJson(metadata) : byteLevelJson(metadata, family);
  writeFileSync(out, JSON.stringify(json));
} else if (mode === "encode") {
  const json = JSON.parse(readFileSync(args[0], "utf8"));
  const tok = new Tokenizer(json, {});
  const texts = JSON.parse(readFileSync(0, "utf8"));
  const plain = texts.map((t) => tok.encode(t, { add_special_tokens: false }).ids);
  const special = texts.map((t) => tok.encode(t, { add_special_tokens: true }).ids);
  process.stdout.write(JSON.stringify({ plain, special }));
} else {
  console.error("usage: tokenizers_ref.mjs build <gguf> <family> <out> | encode <json>");
  process.exit(2);
}
