// llama.cpp (node-llama-cpp's prebuilt CPU binary) as the consumer of GGUF files slm exports:
// prompt tokenization and greedy continuation, to compare token ids with slm's.
//
//   node greedy.mjs MODEL.gguf N PROMPT...
//     -> JSON [{prompt_tokens, tokens}, ...], one per PROMPT: BOS (if the model adds one) +
//        tokenize(PROMPT) without special-token parsing, then up to N greedy tokens, stopping
//        before an end-of-generation token. Each prompt starts from an empty KV cache.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, nArg, ...prompts] = process.argv.slice(2);
const n = Number(nArg);
if (!modelPath || !Number.isInteger(n) || n < 0 || prompts.length === 0) {
  process.stderr.write("usage: node greedy.mjs MODEL.gguf N PROMPT...\n");
  process.exit(2);
}
// build: "never" = the prebuilt binary or an error; nothing is downloaded or compiled here.
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const ctx = await model.createContext({ contextSize: 256, threads: 1 });
const seq = ctx.getSequence();
const bos = model.tokens.bos;
const results = [];
for (const prompt of prompts) {
  await seq.clearHistory();
  const promptTokens = [...(bos != null && model.tokens.shouldPrependBosToken ? [bos] : []), ...model.tokenize(prompt, false)];
  const out = [];
  if (n > 0) {
    for await (const t of seq.evaluate(promptTokens, { temperature: 0 })) {
      if (model.isEogToken(t)) break;
      out.push(t);
      if (out.length >= n) break;
    }
  }
  results.push({ prompt_tokens: promptTokens, tokens: out });
}
process.stdout.write(JSON.stringify(results) + "\n");
await llama.dispose();
