// llama.cpp as an independent reference for slm bench, through node-llama-cpp's prebuilt CPU
// binaries: speed on the same GGUF files, and greedy tokens to compare with `slm run`.
//
//   node bench/llama_cpp.mjs bench MODEL.gguf [-t 2] [-p 128] [-n 64] [-r 5] [--seed 42]
//     -> one JSON object: prompt and generation tok/s (median, min, max, runs). Each run starts
//        from an empty KV cache, evaluates p random token ids in one call, then n single ids one
//        call at a time (no sampling: the same work slm bench times). One untimed warm-up run.
//   node bench/llama_cpp.mjs greedy MODEL.gguf --prompt TEXT [-n 32]
//     -> JSON {prompt_tokens, tokens, text}: greedy continuation (BOS + prompt, temperature 0).
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function parseArgs(argv) {
  const o = { mode: argv[0], model: argv[1], threads: 2, p: 128, n: 64, r: 5, seed: 42, prompt: "" };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    if (a === "-t" || a === "--threads") o.threads = Number(v), i++;
    else if (a === "-p") o.p = Number(v), i++;
    else if (a === "-n") o.n = Number(v), i++;
    else if (a === "-r") o.r = Number(v), i++;
    else if (a === "--seed") o.seed = Number(v), i++;
    else if (a === "--prompt") o.prompt = v, i++;
    else throw new Error(`unknown argument '${a}'`);
  }
  if (!["bench", "greedy"].includes(o.mode) || !o.model) {
    throw new Error("usage: llama_cpp.mjs bench|greedy MODEL.gguf [options] (see the file header)");
  }
  for (const k of ["threads", "p", "n", "r"]) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`-${k}: expected a non-negative integer`);
  }
  return o;
}

// A small seeded generator (mulberry32) so the token ids are the same every run.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function spread(v) {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length;
  const median = m === 0 ? 0 : m % 2 ? s[(m - 1) / 2] : 0.5 * (s[m / 2 - 1] + s[m / 2]);
  return { median, min: s[0] ?? 0, max: s[m - 1] ?? 0, runs: v };
}

const o = parseArgs(process.argv.slice(2));
const llama = await getLlama({ gpu: false, build: "never", maxThreads: o.threads || undefined,
                               logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0 });

if (o.mode === "bench") {
  const nCtx = o.p + o.n + 16;
  const ctx = await model.createContext({
    contextSize: nCtx, batchSize: Math.max(o.p, 1), sequences: 1,
    threads: o.threads,
  });
  const seq = ctx.getSequence();
  // n_vocab: the row count of token_embd (GGUF dims are innermost first).
  const tensors = model.fileInfo.fullTensorInfo ?? model.fileInfo.tensorInfo ?? [];
  const nVocab = tensors.find((t) => t.name === "token_embd.weight")?.dimensions?.[1];
  const rand = rng(o.seed);
  const vocab = Number(nVocab);
  if (!(vocab > 0)) throw new Error("cannot determine the vocabulary size");
  const ids = (k) => Array.from({ length: k }, () => Math.floor(rand() * vocab));
  const prompt = ids(o.p), gen = ids(o.n);
  const pp = [], tg = [];
  for (let rep = -1; rep < o.r; rep++) {
    await seq.clearHistory();
    if (o.p > 0) {
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt);
      const s = (performance.now() - t0) / 1000;
      if (rep >= 0) pp.push(o.p / s);
    }
    if (o.n > 0) {
      const t0 = performance.now();
      for (const t of gen) await seq.evaluateWithoutGeneratingNewTokens([t]);
      const s = (performance.now() - t0) / 1000;
      if (rep >= 0) tg.push(o.n / s);
    }
  }
  process.stdout.write(JSON.stringify({
    engine: "llama.cpp via node-llama-cpp", build: llama.buildType, threads: o.threads,
    n_prompt: o.p, n_gen: o.n, repetitions: o.r,
    prompt: { tok_s: spread(pp) }, gen: { tok_s: spread(tg) },
  }, null, 2) + "\n");
} else {
  const ctx = await model.createContext({ contextSize: 512, threads: { ideal: o.threads, min: o.threads } });
  const seq = ctx.getSequence();
  const bos = model.tokens.bos;
  const promptTokens = [...(bos != null ? [bos] : []), ...model.tokenize(o.prompt, false)];
  const out = [];
  for await (const t of seq.evaluate(promptTokens, { temperature: 0 })) {
    if (model.isEogToken(t)) break;
    out.push(t);
    if (out.length >= o.n) break;
  }
  process.stdout.write(JSON.stringify({
    prompt_tokens: promptTokens, tokens: out, text: model.detokenize(out, false, promptTokens),
  }) + "\n");
}
