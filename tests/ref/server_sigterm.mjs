// SIGTERM during streams: starts `slm serve`, opens N streaming completions, sends SIGTERM once
// every stream has produced text, and checks that each stream still ends well-formed (a finish
// chunk, then [DONE]) and that the process exits with code 0 within a few seconds.
// Usage: node server_sigterm.mjs SLM_EXE N -- SERVE_ARGS...
import {spawn} from "node:child_process";

const [exe, nArg, dashdash, ...serveArgs] = process.argv.slice(2);
const n = Number(nArg);
if (dashdash !== "--") { console.log("usage: server_sigterm.mjs SLM_EXE N -- SERVE_ARGS..."); process.exit(2); }
const child = spawn(exe, ["serve", "--port", "0", ...serveArgs], {stdio: ["ignore", "inherit", "pipe"]});
let stderr = "";
const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({code, signal})));
const port = await new Promise((resolve, reject) => {
  child.stderr.on("data", (d) => {
    stderr += d.toString();
    const m = /listening on http:\/\/[^:]+:(\d+)/.exec(stderr);
    if (m) resolve(Number(m[1]));
  });
  setTimeout(() => reject(new Error("no listening line: " + stderr)), 20000);
});
const base = "http://127.0.0.1:" + port;
for (let i = 0; i < 200; i++) {  // wait for the model
  const r = await fetch(base + "/health").catch(() => null);
  if (r && r.status === 200) break;
  await new Promise((r) => setTimeout(r, 50));
}
let started = 0;
let failures = 0;
const streams = Array.from({length: n}, async (_, i) => {
  const r = await fetch(base + "/v1/completions", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({prompt: "Once upon a time", max_tokens: 100000, ignore_eos: true, seed: i, stream: true})});
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let text = "", counted = false;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    text += dec.decode(value, {stream: true});
    if (!counted && text.includes("\"text\":\"")) { counted = true; started++; }
  }
  return text;
});
const t0 = Date.now();
while (started < n && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 20));
if (started < n) { console.log("FAIL only " + started + " streams started"); failures++; }
const tKill = Date.now();
child.kill("SIGTERM");
const texts = await Promise.all(streams);
const {code, signal} = await exited;
const secs = (Date.now() - tKill) / 1000;
for (const t of texts) {
  const events = t.split("\n\n").filter((e) => e.length);
  const last = events[events.length - 1];
  const fin = events.filter((e) => /"finish_reason":"[a-z]+"/.test(e)).length;
  if (last !== "data: [DONE]" || fin !== 1) { failures++; console.log("FAIL stream ended badly: ..." + t.slice(-200)); }
}
if (code !== 0) { failures++; console.log("FAIL exit code " + code + " signal " + signal + "\n" + stderr); }
if (secs > 10) { failures++; console.log("FAIL took " + secs + " s to exit"); }
console.log(JSON.stringify({streams: n, exit_code: code, seconds_to_exit: secs}));
console.log(failures === 0 ? "ALL OK" : failures + " FAILURES");
process.exit(failures === 0 ? 0 : 1);
