// The official `openai` npm client against a running `slm serve`: chat and completions,
// streaming and not, stop sequences, seed determinism, and errors as the client's error types.
// Usage: node server_openai.mjs BASE_URL API_KEY MODEL_ID [CONTEXT]. Exits non-zero on failure.
import OpenAI from "openai";

const [base, apiKey, modelId, ctxArg] = process.argv.slice(2);
const context = Number(ctxArg || 512);
const client = new OpenAI({baseURL: base + "/v1", apiKey, maxRetries: 0, timeout: 60000});
let failures = 0;
function check(cond, what) {
  if (!cond) {
    failures++;
    console.log("FAIL " + what);
  } else {
    console.log("ok   " + what);
  }
}
async function expectError(promise, cls, status, what) {
  try {
    await promise;
    check(false, what + ": expected " + cls.name);
  } catch (e) {
    check(e instanceof cls && e.status === status, what + ": " + (e.constructor ? e.constructor.name : e) +
      " " + e.status + " " + (e.error ? JSON.stringify(e.error) : e.message));
    return e;
  }
}

const messages = [{role: "system", content: "You are brief."}, {role: "user", content: "Tell me a story."}];

// models
const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === modelId, "models.list gives " + modelId);

// chat, non-streaming, greedy
const c1 = await client.chat.completions.create({model: modelId, messages, max_tokens: 16, temperature: 0});
const t1 = c1.choices[0].message.content;
check(c1.object === "chat.completion" && c1.choices.length === 1, "chat completion object");
check(typeof t1 === "string" && t1.length > 0, "chat text non-empty: " + JSON.stringify(t1));
check(c1.choices[0].message.role === "assistant", "assistant role");
check(["stop", "length"].includes(c1.choices[0].finish_reason), "finish_reason " + c1.choices[0].finish_reason);
check(c1.usage.completion_tokens >= 1 && c1.usage.completion_tokens <= 16, "usage.completion_tokens <= max_tokens");
check(c1.usage.prompt_tokens > 0 && c1.usage.total_tokens === c1.usage.prompt_tokens + c1.usage.completion_tokens,
      "usage totals add up");

// chat, streaming: same text as non-streaming for the same greedy request
const stream = await client.chat.completions.create({model: modelId, messages, max_tokens: 16, temperature: 0,
                                                     stream: true, stream_options: {include_usage: true}});
let st = "", roleSeen = false, finish = null, usage = null, chunks = 0;
for await (const ch of stream) {
  chunks++;
  if (ch.usage) usage = ch.usage;
  if (!ch.choices.length) continue;
  const d = ch.choices[0].delta;
  if (d.role === "assistant") roleSeen = true;
  if (d.content) st += d.content;
  if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
}
check(roleSeen, "stream starts with the assistant role");
check(st === t1, "streamed text equals the non-streamed text: " + JSON.stringify(st));
check(finish === c1.choices[0].finish_reason, "stream finish_reason " + finish);
check(usage && usage.completion_tokens === c1.usage.completion_tokens && usage.prompt_tokens === c1.usage.prompt_tokens,
      "usage chunk matches: " + JSON.stringify(usage));

// seeds: same seed, same text; sampled requests
const s1 = await client.chat.completions.create({model: modelId, messages, max_tokens: 24, temperature: 1, seed: 1234});
const s2 = await client.chat.completions.create({model: modelId, messages, max_tokens: 24, temperature: 1, seed: 1234});
check(s1.choices[0].message.content === s2.choices[0].message.content, "same seed, same text");
let differs = false;
for (let seed = 1; seed <= 5 && !differs; seed++) {
  const s3 = await client.chat.completions.create({model: modelId, messages, max_tokens: 24, temperature: 1, seed});
  differs = s3.choices[0].message.content !== s1.choices[0].message.content;
}
check(differs, "some other seed gives another text");

// completions, non-streaming and streaming
const p = "Once upon a time";
const k1 = await client.completions.create({model: modelId, prompt: p, max_tokens: 20, temperature: 0});
const kt = k1.choices[0].text;
check(k1.object === "text_completion" && kt.length > 0, "completion text: " + JSON.stringify(kt));
const ks = await client.completions.create({model: modelId, prompt: p, max_tokens: 20, temperature: 0, stream: true});
let kst = "";
for await (const ch of ks) kst += ch.choices.length ? ch.choices[0].text : "";
check(kst === kt, "streamed completion equals non-streamed");

// stop sequences: cut the greedy continuation at a substring of itself
if (kt.length >= 8) {
  const stop = kt.slice(Math.floor(kt.length / 2), Math.floor(kt.length / 2) + 3);
  const expect = kt.slice(0, kt.indexOf(stop));
  const k2 = await client.completions.create({model: modelId, prompt: p, max_tokens: 20, temperature: 0, stop: [stop]});
  check(k2.choices[0].text === expect && k2.choices[0].finish_reason === "stop",
        "stop " + JSON.stringify(stop) + " cuts to " + JSON.stringify(k2.choices[0].text));
  const k3 = await client.completions.create({model: modelId, prompt: p, max_tokens: 20, temperature: 0, stop,
                                              stream: true});
  let k3t = "", k3f = null;
  for await (const ch of k3) {
    if (!ch.choices.length) continue;
    k3t += ch.choices[0].text;
    if (ch.choices[0].finish_reason) k3f = ch.choices[0].finish_reason;
  }
  check(k3t === expect && k3f === "stop", "streamed stop never shows the stop text: " + JSON.stringify(k3t));
} else {
  check(false, "greedy completion too short for the stop test");
}

// max_tokens beyond the context is capped, not refused
const big = await client.completions.create({model: modelId, prompt: p, max_tokens: 1000000, temperature: 0});
check(big.usage.completion_tokens <= context, "max_tokens capped to the context");

// errors surface as the client's error types
await expectError(client.chat.completions.create({model: modelId, messages, n: 2}), OpenAI.BadRequestError, 400, "n = 2");
const rf = await expectError(client.chat.completions.create({model: modelId, messages, response_format: {type: "json_object"}}),
                             OpenAI.BadRequestError, 400, "response_format json_object");
check(rf && /not supported yet/.test(rf.message), "JSON mode says not supported yet");
const te = await expectError(client.chat.completions.create({model: modelId, messages, temperature: 5}),
                             OpenAI.BadRequestError, 400, "temperature 5");
check(te && te.param === "temperature", "the error names param temperature");
const long = await expectError(client.completions.create({model: modelId, prompt: "word ".repeat(context * 2)}),
                               OpenAI.BadRequestError, 400, "prompt longer than the context");
check(long && long.message.includes(String(context)), "the error names the context limit");
await expectError(client.chat.completions.create({model: modelId, messages: "hi"}), OpenAI.BadRequestError, 400,
                  "messages of the wrong type");
await expectError(client.completions.create({model: modelId, prompt: p, logit_bias: {"abc": 1}}), OpenAI.BadRequestError,
                  400, "logit_bias key not a token id");
await expectError(client.get("/nope"), OpenAI.NotFoundError, 404, "unknown route");
await expectError(client.embeddings.create({model: modelId, input: "x"}), OpenAI.InternalServerError, 501, "embeddings 501");
if (apiKey !== "none") {
  const bad = new OpenAI({baseURL: base + "/v1", apiKey: apiKey + "x", maxRetries: 0});
  await expectError(bad.models.list(), OpenAI.AuthenticationError, 401, "wrong API key");
}

// a prompt given as token ids
const first = await client.completions.create({model: modelId, prompt: [1, 400, 401], max_tokens: 1, temperature: 0});
check(first.choices[0].text.length > 0, "token-id prompt works");

console.log(failures === 0 ? "ALL OK" : failures + " FAILURES");
process.exit(failures === 0 ? 0 : 1);
