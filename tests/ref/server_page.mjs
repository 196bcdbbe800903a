// The chat page at / in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
// type a message, wait for the streamed reply and the tokens/s line, save a screenshot.
// Usage: node server_page.mjs BASE_URL SCREENSHOT.png. Exits non-zero on failure.
import {chromium} from "playwright-core";

const [base, shot] = process.argv.slice(2);
const browser = await chromium.launch({executablePath: "/usr/bin/chromium", headless: true,
                                       args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]});
let ok = false;
try {
  const page = await browser.newPage({viewport: {width: 900, height: 640}});
  const external = [];
  page.on("request", (req) => { if (!req.url().startsWith(base)) external.push(req.url()); });
  await page.goto(base + "/");
  await page.waitForFunction(() => document.getElementById("model").textContent !== "loading...");
  await page.fill("#temperature", "0");
  await page.fill("#max_tokens", "24");
  await page.fill("#input", "Tell me a story about a cat.");
  await page.press("#input", "Enter");
  // Watch the reply grow: more than one distinct length means it streamed.
  const lengths = new Set();
  const t0 = Date.now();
  for (;;) {
    const st = await page.evaluate(() => {
      const a = document.querySelector(".assistant");
      return a ? {len: a.textContent.length, done: a.dataset.done} : {len: -1, done: "0"};
    });
    lengths.add(st.len);
    if (st.done === "1") break;
    if (Date.now() - t0 > 30000) throw new Error("no reply within 30 s");
    await new Promise((r) => setTimeout(r, 5));
  }
  const reply = await page.textContent(".assistant");
  const stats = await page.textContent("#stats");
  const isError = await page.evaluate(() => document.querySelector(".assistant").classList.contains("error"));
  await page.screenshot({path: shot, fullPage: true});
  console.log(JSON.stringify({reply, stats, distinct_lengths: lengths.size, external}));
  ok = !isError && reply.length > 0 && /tokens\/s/.test(stats) && external.length === 0;
  if (!ok) console.log("FAIL reply/stats/external");
} finally {
  await browser.close();
}
process.exit(ok ? 0 : 1);
