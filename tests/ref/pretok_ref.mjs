// Reference side of the pre-tokenizer tests: a tokenizer.json with the gpt-2 vocabulary of a GGUF
// and one family's pre_tokenizer (from tests/data/pretokenizers.json), run by @huggingface/tokenizers.
//   node pretok_ref.mjs <vocab.gguf> <pretokenizers.json> <family>
//     stdin: JSON array of strings; stdout: JSON array of id arrays (no special tokens)
import { readFileSync } from "node:fs";
import { gguf } from "@huggingface/gguf";
import { Tokenizer } from "@huggingface/tokenizers";

const [file, defs, family] = process.argv.slice(2);
if (!family) {
  console.error("usage: pretok_ref.mjs <vocab.gguf> <pretokenizers.json> <family>");
  process.exit(2);
}
const entry = JSON.parse(readFileSync(defs, "utf8")).families[family];
if (!entry) {
  console.error(`family ${family} not in ${defs}`);
  process.exit(2);
}
// Hugging Face's Digits pre-tokenizer splits on Rust's char::is_numeric (all of \p{N}, e.g. "½"),
// tokenizers.js's only on ASCII \d, so Digits is run as the equivalent Split on \p{N}.
function rustDigits(p) {
  if (p && p.type === "Sequence") return { ...p, pretokenizers: p.pretokenizers.map(rustDigits) };
  if (p && p.type === "Digits") {
    return { type: "Split", pattern: { Regex: p.individual_digits ? "\\p{N}" : "\\p{N}+" },
             behavior: "Isolated", invert: false };
  }
  return p;
}
const { metadata: md } = await gguf(file, { allowLocalFile: true });
const tokens = md["tokenizer.ggml.tokens"];
const types = md["tokenizer.ggml.token_type"];
const vocab = {};
tokens.forEach((t, id) => { vocab[t] = id; });
// Control / user-defined tokens as added tokens, as in the other byte-level reference.
const added = [];
tokens.forEach((t, id) => {
  if (types[id] === 3 || types[id] === 4) {
    added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false,
                 normalized: false, special: types[id] === 3 });
  }
});
const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };
const json = {
  version: "1.0", truncation: null, padding: null, added_tokens: added, normalizer: null,
  pre_tokenizer: rustDigits(entry.pre_tokenizer),
  post_processor: byteLevel, decoder: byteLevel,
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
           end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
           vocab, merges: md["tokenizer.ggml.merges"] },
};
const tok = new Tokenizer(json, {});
const texts = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => tok.encode(t, { add_special_tokens: false }).ids)));
