// The embedded chat page. It reads the SSE stream with fetch + ReadableStream (EventSource
// cannot POST), counts content chunks as tokens (the server sends one chunk per token or less)
// and uses /v1/completions when the model has no chat template.
#include "serve/web_page.h"

namespace slm::serve {

namespace {

constexpr std::string_view k_page = R"SLMPAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>slm chat</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f6; color: #222; }
  header { background: #2d3142; color: #fff; padding: 10px 16px; display: flex; gap: 12px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; }
  #model { opacity: 0.8; font-size: 14px; }
  main { max-width: 820px; margin: 0 auto; padding: 12px; }
  #log { display: flex; flex-direction: column; gap: 8px; min-height: 300px; }
  .msg { padding: 8px 12px; border-radius: 8px; white-space: pre-wrap; line-height: 1.4; }
  .user { background: #dfe7fd; align-self: flex-end; max-width: 80%; }
  .assistant { background: #fff; border: 1px solid #ddd; align-self: flex-start; max-width: 90%; }
  .error { background: #fde2e1; }
  form { display: flex; gap: 8px; margin-top: 12px; }
  textarea { flex: 1; font: inherit; padding: 8px; min-height: 48px; }
  button { font: inherit; padding: 0 16px; }
  #settings { display: flex; gap: 12px; flex-wrap: wrap; font-size: 13px; margin-top: 8px; }
  #settings input { width: 80px; }
  #stats { font-size: 13px; color: #555; margin-top: 6px; min-height: 1em; }
</style>
</head>
<body>
<header><h1>slm chat</h1><span id="model">loading...</span></header>
<main>
  <div id="log"></div>
  <div id="stats"></div>
  <form id="form">
    <textarea id="input" placeholder="Type a message (Enter sends, Shift+Enter for a new line)"></textarea>
    <button id="send" type="submit">Send</button>
  </form>
  <div id="settings">
    <label>temperature <input id="temperature" type="number" step="0.1" min="0" max="2" value="0.7"></label>
    <label>max tokens <input id="max_tokens" type="number" min="1" value="256"></label>
    <label>API key <input id="api_key" type="password" style="width: 160px"></label>
    <label><input id="raw" type="checkbox"> plain completion</label>
    <button id="reset" type="button">Clear</button>
  </div>
</main>
<script>
"use strict";
const log = document.getElementById("log");
const input = document.getElementById("input");
const stats = document.getElementById("stats");
const send = document.getElementById("send");
let history = [];
let busy = false;

function add(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  log.appendChild(div);
  div.scrollIntoView({block: "end"});
  return div;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", {headers: authHeaders()});
    const j = await r.json();
    document.getElementById("model").textContent = j.data ? j.data[0].id : (j.error ? j.error.message : "");
  } catch (e) {
    document.getElementById("model").textContent = "server unreachable";
  }
}

function authHeaders() {
  const h = {"Content-Type": "application/json"};
  const key = document.getElementById("api_key").value;
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function submit(text) {
  busy = true;
  send.disabled = true;
  add("user", text);
  const out = add("assistant", "");
  out.dataset.done = "0";
  const raw = document.getElementById("raw").checked;
  const body = {
    stream: true,
    stream_options: {include_usage: true},
    temperature: Number(document.getElementById("temperature").value),
    max_tokens: Number(document.getElementById("max_tokens").value),
  };
  let url;
  if (raw) {
    url = "/v1/completions";
    body.prompt = text;
  } else {
    url = "/v1/chat/completions";
    history.push({role: "user", content: text});
    body.messages = history;
  }
  const t0 = performance.now();
  let first = 0, chunks = 0, reply = "", usage = null;
  try {
    const r = await fetch(url, {method: "POST", headers: authHeaders(), body: JSON.stringify(body)});
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error(j.error ? j.error.message : ("HTTP " + r.status));
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += decoder.decode(value, {stream: true});
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        if (j.usage) usage = j.usage;
        const c = j.choices && j.choices[0];
        if (!c) continue;
        const piece = raw ? (c.text || "") : ((c.delta && c.delta.content) || "");
        if (piece) {
          if (!first) first = performance.now();
          chunks++;
          reply += piece;
          out.textContent = reply;
          const secs = (performance.now() - first) / 1000;
          stats.textContent = chunks + " tokens" + (secs > 0 ? ", " + (chunks > 1 ? ((chunks - 1) / secs).toFixed(1) : "-") + " tokens/s" : "");
        }
      }
    }
    // Chunks can carry several tokens when the page lags; the usage chunk has the true count.
    if (usage) chunks = usage.completion_tokens;
    const total = (performance.now() - t0) / 1000;
    const gen = first ? (performance.now() - first) / 1000 : 0;
    const tps = chunks > 1 && gen > 0 ? ((chunks - 1) / gen).toFixed(1) : "-";
    stats.textContent = chunks + " tokens in " + total.toFixed(2) + " s, " + tps + " tokens/s, first token after " +
      (first ? ((first - t0) / 1000).toFixed(2) + " s" : "-");
    if (!raw) history.push({role: "assistant", content: reply});
  } catch (e) {
    out.classList.add("error");
    out.textContent = "Error: " + e.message;
    if (!raw) history.pop();
  }
  out.dataset.done = "1";
  busy = false;
  send.disabled = false;
  input.focus();
}

document.getElementById("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || busy) return;
  input.value = "";
  submit(text);
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    document.getElementById("form").requestSubmit();
  }
});
document.getElementById("reset").addEventListener("click", () => {
  history = [];
  log.textContent = "";
  stats.textContent = "";
});
loadModel();
</script>
</body>
</html>
)SLMPAGE";

}  // namespace

std::string_view chat_page_html() { return k_page; }

}  // namespace slm::serve
