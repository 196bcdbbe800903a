// Load test against a running `slm serve`: for each client count, that many concurrent streaming
// completions; every stream must be well-formed SSE (JSON chunks, one finish_reason, a usage
// chunk, then [DONE]). Prints one JSON line per count with aggregate generated tokens/s.
// Usage: node server_load.mjs BASE_URL API_KEY MAX_TOKENS COUNTS (e.g. 1,2,4,8,16,32)
const [base, apiKey, maxArg, countsArg] = process.argv.slice(2);
const maxTokens = Number(maxArg || 32);
const counts = (countsArg || "1,2,4,8,16,32").split(",").map(Number);
let failures = 0;

async function one(i) {
  const headers = {"Content-Type": "application/json"};
  if (apiKey && apiKey !== "none") headers.Authorization = "Bearer " + apiKey;
  const r = await fetch(base + "/v1/completions", {method: "POST", headers, body: JSON.stringify({
    prompt: "Once upon a time", max_tokens: maxTokens, temperature: 0.8, seed: i, ignore_eos: true,
    stream: true, stream_options: {include_usage: true}})});
  if (r.status !== 200) throw new Error("HTTP " + r.status + " " + (await r.text()));
  if (!/^text\/event-stream/.test(r.headers.get("content-type"))) throw new Error("content-type " + r.headers.get("content-type"));
  const text = await r.text();
  if (!text.endsWith("\n\n")) throw new Error("stream does not end with a blank line");
  const events = text.slice(0, -2).split("\n\n");
  if (events[events.length - 1] !== "data: [DONE]") throw new Error("no [DONE] at the end");
  let finishes = 0, usage = null, pieces = 0;
  for (const e of events.slice(0, -1)) {
    if (!e.startsWith("data: ")) throw new Error("not a data event: " + e.slice(0, 80));
    const j = JSON.parse(e.slice(6));
    if (j.error) throw new Error("error event " + JSON.stringify(j.error));
    if (j.usage) usage = j.usage;
    if (j.choices.length && j.choices[0].finish_reason) finishes++;
    if (j.choices.length && j.choices[0].text) pieces++;
  }
  if (finishes !== 1) throw new Error(finishes + " finish chunks");
  if (!usage) throw new Error("no usage chunk");
  if (usage.completion_tokens < 1) throw new Error("no tokens");
  return usage.completion_tokens;
}

await one(0);  // warm-up (first-use allocations), not measured
for (const n of counts) {
  const t0 = performance.now();
  const res = await Promise.allSettled(Array.from({length: n}, (_, i) => one(i)));
  const secs = (performance.now() - t0) / 1000;
  const errors = res.filter((r) => r.status === "rejected");
  for (const e of errors.slice(0, 3)) console.log("FAIL " + e.reason);
  failures += errors.length;
  const tokens = res.filter((r) => r.status === "fulfilled").reduce((a, r) => a + r.value, 0);
  console.log(JSON.stringify({clients: n, errors: errors.length, tokens, seconds: Number(secs.toFixed(3)),
                              tok_s: Number((tokens / secs).toFixed(1))}));
}
console.log(failures === 0 ? "ALL OK" : failures + " FAILURES");
process.exit(failures === 0 ? 0 : 1);
