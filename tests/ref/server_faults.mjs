// Fault tests against a running `slm serve`, over raw sockets:
//   malformed BASE_URL API_KEY       200 malformed requests from a table -> each a 4xx, then healthy
//   disconnect BASE_URL API_KEY N    N streaming clients hang up mid-stream -> zero busy slots
//   overflow BASE_URL API_KEY N      N concurrent streams against a small queue -> fast 503s
// Exits non-zero on failure.
import net from "node:net";

const [mode, base, apiKey, nArg] = process.argv.slice(2);
const url = new URL(base);
const auth = apiKey && apiKey !== "none" ? "Authorization: Bearer " + apiKey + "\r\n" : "";
let failures = 0;
function check(cond, what) {
  if (!cond) { failures++; console.log("FAIL " + what); }
}

// Sends raw bytes and resolves with {status, headers, body, ms} once the response is complete
// (by Content-Length) or the server closes; `onData` can abort early.
function raw(bytes, {onData, timeoutMs = 10000} = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(Number(url.port), url.hostname);
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (extra) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = buf.toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      const he = text.indexOf("\r\n\r\n");
      resolve({status: m ? Number(m[1]) : 0, head: he >= 0 ? text.slice(0, he) : text,
               body: he >= 0 ? buf.subarray(he + 4).toString("utf8") : "", ms: Date.now() - t0, ...extra});
    };
    const timer = setTimeout(() => finish({timeout: true}), timeoutMs);
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString("latin1");
      const he = text.indexOf("\r\n\r\n");
      if (onData && onData(text)) return finish({});
      if (he >= 0) {
        const cl = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, he));
        if (cl && buf.length >= he + 4 + Number(cl[1])) finish({});
      }
    });
    sock.on("end", () => finish({}));
    sock.on("error", () => finish({}));
    sock.write(bytes);
  });
}

function post(path, body, extra = "") {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}${extra}Content-Type: application/json\r\n` +
                                    `Content-Length: ${b.length}\r\n\r\n`), b]);
}

async function healthy() {
  const h = await raw("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  const c = await raw(post("/v1/completions", JSON.stringify({prompt: "Once", max_tokens: 3})));
  return h.status === 200 && c.status === 200 && JSON.parse(c.body).choices.length === 1;
}

function malformedTable() {
  const t = [];
  const H = "Host: x\r\n";
  // HTTP framing
  const lines = ["GET /\r\n\r\n", "GET / HTTP/1.1\n\n", "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
                 "GET  / HTTP/1.1\r\n" + H + "\r\n", "GET /a b HTTP/1.1\r\n" + H + "\r\n",
                 "GET http://x/ HTTP/1.1\r\n" + H + "\r\n", "G@T / HTTP/1.1\r\n" + H + "\r\n",
                 "GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\n" + H + H + "\r\n",
                 "GET / HTTP/1.1\r\n" + H + "X: a\r\n b\r\n\r\n", "GET / HTTP/1.1\r\n" + H + "NoColon\r\n\r\n",
                 "GET /" + "a".repeat(9000) + " HTTP/1.1\r\n" + H + "\r\n",
                 "GET / HTTP/1.1\r\n" + H + "X: " + "y".repeat(40000) + "\r\n\r\n",
                 "GET / HTTP/1.1\r\n" + H + Array.from({length: 80}, (_, i) => `X${i}: 1\r\n`).join("") + "\r\n",
                 "POST /v1/completions HTTP/1.1\r\n" + H + "Content-Length: abc\r\n\r\n",
                 "POST /v1/completions HTTP/1.1\r\n" + H + "Content-Length: -5\r\n\r\n",
                 "POST /v1/completions HTTP/1.1\r\n" + H + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                 "POST /v1/completions HTTP/1.1\r\n" + H + "Content-Length: 99999999999999999999999\r\n\r\n",
                 "POST /v1/completions HTTP/1.1\r\n" + H + "Content-Length: 2000000\r\n\r\n",
                 "POST /v1/completions HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 "POST /v1/completions HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
                 "GET / HTTP/1.1\r\n" + H + "X: a\x01b\r\n\r\n", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"];
  for (const l of lines) t.push(["http " + JSON.stringify(l.slice(0, 40)), Buffer.from(l, "latin1")]);
  // routes and methods
  for (const p of ["/nope", "/v1", "/v1/chat", "/v2/completions", "/v1/models/x", "/../etc/passwd", "/%00"]) {
    t.push(["route " + p, Buffer.from(`GET ${p} HTTP/1.1\r\n${H}\r\n`)]);
  }
  for (const [m, p] of [["DELETE", "/v1/completions"], ["GET", "/v1/chat/completions"], ["PUT", "/v1/models"],
                        ["POST", "/health"], ["POST", "/metrics"], ["PATCH", "/"], ["GET", "/v1/completions"],
                        ["POST", "/v1/models"]]) {
    t.push([`method ${m} ${p}`, Buffer.from(`${m} ${p} HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`)]);
  }
  // bodies
  const bodies = ["", "{", "}", "[]", "null", "1", "\"x\"", "{\"prompt\": }", "{\"prompt\": \"a\",}", "{'prompt': 'a'}",
                  "{\"prompt\": \"a\"} trailing", "[".repeat(100000), "{\"a\":".repeat(1000) + "1" + "}".repeat(1000),
                  "{\"prompt\": \"\\ud800\"}", "{\"prompt\": \"\\uZZZZ\"}", "{\"prompt\": NaN}", "{\"prompt\": 1e999999}"];
  const bad = [{prompt: 5}, {prompt: null}, {prompt: true}, {prompt: {}}, {prompt: [[1, 2], [3]]}, {prompt: ["a", "b"]},
               {prompt: [-1]}, {prompt: [1.5]}, {prompt: [99999999]}, {prompt: "a", max_tokens: 2.5}, {prompt: []},
               {prompt: "a", max_tokens: 0}, {prompt: "a", max_tokens: -1}, {prompt: "a", max_tokens: "5"},
               {prompt: "a", max_tokens: 1.5}, {prompt: "a", temperature: -1}, {prompt: "a", temperature: 2.5},
               {prompt: "a", temperature: "hot"}, {prompt: "a", top_p: 1.5}, {prompt: "a", top_p: -0.1},
               {prompt: "a", presence_penalty: 3}, {prompt: "a", frequency_penalty: -3}, {prompt: "a", seed: "x"},
               {prompt: "a", seed: 1.5}, {prompt: "a", stop: 5}, {prompt: "a", stop: [1]}, {prompt: "a", stop: ["a", "b", "c", "d", "e"]},
               {prompt: "a", stop: [""]}, {prompt: "a", stop: ["x".repeat(1000)]}, {prompt: "a", logit_bias: []},
               {prompt: "a", logit_bias: {"x": 1}}, {prompt: "a", logit_bias: {"1": "a"}}, {prompt: "a", logit_bias: {"1": 500}},
               {prompt: "a", logit_bias: {"-1": 1}}, {prompt: "a", logit_bias: {"99999999": 1}}, {prompt: "a", stream: "yes"},
               {prompt: "a", stream_options: {include_usage: true}}, {prompt: "a", stream: true, stream_options: 3},
               {prompt: "a", stream: true, stream_options: {include_usage: "y"}}, {prompt: "a", n: 2}, {prompt: "a", n: "1"},
               {prompt: "a", echo: true}, {prompt: "a", best_of: 3}, {prompt: "a", suffix: "x"}, {prompt: "a", logprobs: 5},
               {prompt: "a", model: 5}, {prompt: "a", response_format: {type: "json_object"}},
               {prompt: "a", top_k: -1}, {prompt: "a", min_p: 2}, {prompt: "a", repeat_penalty: 0}];
  for (const b of bodies) t.push(["body " + JSON.stringify(b.slice(0, 30)), post("/v1/completions", b)]);
  for (const b of bad) t.push(["completion " + JSON.stringify(b).slice(0, 60), post("/v1/completions", JSON.stringify(b))]);
  const msg = [{role: "user", content: "hi"}];
  const badChat = [{}, {messages: []}, {messages: "hi"}, {messages: [1]}, {messages: [{content: "x"}]}, {messages: [{role: 1, content: "x"}]},
                   {messages: [{role: "user", content: 5}]}, {messages: [{role: "user", content: [{type: "image_url"}]}]},
                   {messages: [{role: "user", content: [{type: "text"}]}]}, {messages: [{role: "user", content: [5]}]},
                   {messages: msg, n: 3}, {messages: msg, response_format: {type: "json_schema", json_schema: {}}},
                   {messages: msg, response_format: "json"}, {messages: msg, response_format: {type: "xml"}},
                   {messages: msg, tools: [{type: "function"}]}, {messages: msg, tools: 5}, {messages: msg, logprobs: true},
                   {messages: msg, max_completion_tokens: 0}, {messages: msg, temperature: null, top_p: "x"},
                   {messages: [{role: "user", content: "x ".repeat(5000)}]}];
  for (const b of badChat) t.push(["chat " + JSON.stringify(b).slice(0, 60), post("/v1/chat/completions", JSON.stringify(b))]);
  // invalid UTF-8 inside JSON strings
  for (const bytes of [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf]]) {
    const b = Buffer.concat([Buffer.from("{\"prompt\": \"a"), Buffer.from(bytes), Buffer.from("\"}")]);
    t.push(["utf8 " + bytes.map((x) => x.toString(16)).join(" "), post("/v1/completions", b)]);
    const c = Buffer.concat([Buffer.from("{\"messages\": [{\"role\": \"user\", \"content\": \"a"), Buffer.from(bytes),
                             Buffer.from("\"}]}")]);
    t.push(["chat utf8 " + bytes.map((x) => x.toString(16)).join(" "), post("/v1/chat/completions", c)]);
  }
  if (auth) {
    const noAuth = (p, b) => Buffer.from(`POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: ${b.length}\r\n\r\n${b}`);
    t.push(["no api key", noAuth("/v1/completions", "{\"prompt\": \"a\"}")]);
    t.push(["wrong api key", post("/v1/completions", "{\"prompt\": \"a\"}").toString("latin1").replace(apiKey, apiKey + "x")]);
    t.push(["basic auth", Buffer.from("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\n\r\n")]);
  }
  // Fill to 200 with wrong-typed values for every sampling field.
  const fields = ["temperature", "top_p", "max_tokens", "seed", "presence_penalty", "frequency_penalty", "stop",
                  "logit_bias", "stream", "n", "top_k", "min_p"];
  const values = [[], {}, "str", true, -1e300, [[1]], {"a": {"b": 1}}];
  for (let i = 0; t.length < 200; i++) {
    const f = fields[i % fields.length], v = values[Math.floor(i / fields.length) % values.length];
    const b = {prompt: "a"};
    b[f] = v;
    if (f === "stop" && (typeof v === "string")) continue;  // a string stop is valid
    if (f === "stream" && v === true) continue;  // valid
    if ((f === "stop" && Array.isArray(v) && !v.length) || (f === "logit_bias" && !Array.isArray(v) && typeof v === "object" &&
        !Object.keys(v).length)) continue;  // an empty list of stops and an empty bias map are valid
    if (f === "temperature" || f === "top_p" || f === "presence_penalty" || f === "frequency_penalty" || f === "min_p") {
      if (typeof v === "number") { t.push([`${f} ${v}`, post("/v1/completions", JSON.stringify(b))]); continue; }
    }
    if (f === "max_tokens" && v === -1e300) { t.push(["max_tokens -1e300", post("/v1/completions", JSON.stringify(b))]); continue; }
    if (typeof v === "number") continue;
    t.push([`${f} ${JSON.stringify(v)}`, post("/v1/completions", JSON.stringify(b))]);
  }
  return t.slice(0, 200);
}

if (mode === "malformed") {
  const table = malformedTable();
  check(table.length === 200, "table has 200 entries: " + table.length);
  let n4 = 0;
  for (const [name, bytes] of table) {
    const r = await raw(bytes);
    const ok = r.status >= 400 && r.status < 500;
    if (ok) n4++;
    check(ok, `${name} -> ${r.status} ${r.body.slice(0, 120)}`);
    if (ok && r.body.startsWith("{")) {
      let j = null;
      try { j = JSON.parse(r.body); } catch (e) { /* checked below */ }
      check(j && j.error && typeof j.error.message === "string" && "type" in j.error && "param" in j.error && "code" in j.error,
            `${name}: OpenAI error object`);
    }
  }
  check(await healthy(), "healthy after the table");
  console.log(JSON.stringify({requests: table.length, answered_4xx: n4}));
} else if (mode === "disconnect") {
  const n = Number(nArg || 500), wave = 50;
  const body = JSON.stringify({prompt: "Once upon a time", max_tokens: 100000, stream: true});
  let got = 0;
  for (let i = 0; i < n; i += wave) {
    const k = Math.min(wave, n - i);
    const rs = await Promise.all(Array.from({length: k}, () => raw(post("/v1/completions", body), {
      onData: (text) => text.includes("\"text\":\"") }))); // first token seen: hang up
    got += rs.filter((r) => r.status === 200 && !r.timeout).length;
  }
  check(got === n, `all ${n} streams started (${got})`);
  let busy = -1, queued = -1, disc = 0;
  for (let tries = 0; tries < 100; tries++) {
    const m = (await raw("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")).body;
    busy = Number(/^slm_busy_slots (\d+)$/m.exec(m)[1]);
    queued = Number(/^slm_queue_depth (\d+)$/m.exec(m)[1]);
    disc = Number(/^slm_client_disconnects_total (\d+)$/m.exec(m)[1]);
    if (busy === 0 && queued === 0 && disc >= n) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  check(busy === 0 && queued === 0, `zero busy slots and empty queue after the disconnects (busy ${busy}, queued ${queued})`);
  check(disc >= n, `disconnects counted: ${disc}`);
  check(await healthy(), "healthy after the disconnects");
  console.log(JSON.stringify({clients: n, busy_slots: busy, queue_depth: queued, disconnects: disc}));
} else if (mode === "overflow") {
  const n = Number(nArg || 16);
  const body = JSON.stringify({prompt: "Once upon a time", max_tokens: 100000, stream: true});
  const socks = [];
  const results = await Promise.all(Array.from({length: n}, () => raw(post("/v1/completions", body), {
    onData: (text) => text.includes("\r\n\r\n"), timeoutMs: 5000})));
  const r503 = results.filter((r) => r.status === 503);
  const r200 = results.filter((r) => r.status === 200);
  check(r503.length > 0 && r503.length + r200.length === n, `some 503s (${r503.length}), the rest 200 (${r200.length})`);
  check(r503.every((r) => /\r\nRetry-After: \d+/i.test(r.head)), "503s carry Retry-After");
  const slowest = Math.max(...r503.map((r) => r.ms));
  check(slowest < 1000, `503s are fast (slowest ${slowest} ms)`);
  console.log(JSON.stringify({requests: n, status_503: r503.length, status_200: r200.length, slowest_503_ms: slowest}));
  void socks;
} else {
  console.log("unknown mode " + mode);
  process.exit(2);
}
console.log(failures === 0 ? "ALL OK" : failures + " FAILURES");
process.exit(failures === 0 ? 0 : 1);
