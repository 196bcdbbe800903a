// Reference renderer for slm's Jinja tests: @huggingface/jinja.
//   node jinja_render.mjs TEMPLATE.jinja CONTEXT.json   prints the rendering (exit 1 on error)
//   node jinja_render.mjs --batch CASES.json             prints one JSON result per case
// CASES.json: {"now_ms": N?, "templates": {name: source}, "cases": [{"template": name,
// "context": {...}}]}. Results: [{"ok": true, "out_b64": ...} | {"ok": false, "error": ...}],
// the output as base64 of its UTF-8 bytes so that nothing is lost on the way.
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

function pinClock(nowMs) {
  // strftime_now() reads `new Date()`; pin it so both renderers format the same instant.
  const RealDate = Date;
  globalThis.Date = class extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(nowMs);
      else super(...args);
    }
    static now() {
      return nowMs;
    }
  };
}

const args = process.argv.slice(2);
if (args[0] === "--batch") {
  const spec = JSON.parse(readFileSync(args[1], "utf8"));
  if (spec.now_ms !== undefined) pinClock(spec.now_ms);
  const parsed = {};
  const results = [];
  for (const c of spec.cases) {
    try {
      if (!(c.template in parsed)) {
        try {
          parsed[c.template] = new Template(spec.templates[c.template]);
        } catch (e) {
          parsed[c.template] = e;
        }
      }
      const t = parsed[c.template];
      if (t instanceof Error) throw t;
      const out = t.render(c.context);
      results.push({ ok: true, out_b64: Buffer.from(out, "utf8").toString("base64") });
    } catch (e) {
      results.push({ ok: false, error: String(e && e.message ? e.message : e) });
    }
  }
  process.stdout.write(JSON.stringify(results));
} else if (args.length === 2) {
  const src = readFileSync(args[0], "utf8");
  const ctx = JSON.parse(readFileSync(args[1], "utf8"));
  try {
    process.stdout.write(new Template(src).render(ctx));
  } catch (e) {
    process.stderr.write(String(e && e.message ? e.message : e) + "\n");
    process.exit(1);
  }
} else {
  process.stderr.write("usage: jinja_render.mjs TEMPLATE CONTEXT | --batch CASES\n");
  process.exit(2);
}
