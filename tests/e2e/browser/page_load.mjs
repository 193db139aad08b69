// Loads of the runs page in headless Chromium (playwright-core), each with an empty
// cache (a new browser context), signed in with the session cookies given.
//
// Reads a plan (JSON) on stdin: {chromium, nodeModules, origin, prefix, experimentId,
// cookies: {name: value}, loads}. Prints one JSON object a load:
//   {"event": "load", "fcpMs": N, "shownMs": N, "transferBytes": N, "bodyBytes": N,
//    "scripts": [{"url", "encoding", "transferBytes", "bodyBytes"}]}
// fcpMs: first contentful paint; shownMs: until the runs table shows the runs;
// transferBytes: what crossed the network (headers and, compressed or not, bodies);
// bodyBytes: the same responses decoded.
import { createRequire } from "node:module";
import path from "node:path";

const plan = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => resolve(text));
}));
const { chromium } = createRequire(path.join(plan.nodeModules, "/"))("playwright-core");
const host = new URL(plan.origin).hostname;
const browser = await chromium.launch({
  executablePath: plan.chromium,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    `--host-resolver-rules=MAP ${host} 127.0.0.1`,
  ],
});
try {
  for (let i = 0; i < plan.loads; i++) {
    const context = await browser.newContext({
      ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 },
    });
    await context.addCookies(Object.entries(plan.cookies).map(([name, value]) => (
      { name, value, domain: host, path: "/", secure: true, httpOnly: true })));
    const page = await context.newPage();
    const encodings = new Map();
    page.on("response", (response) => {
      encodings.set(response.url(), response.headers()["content-encoding"] || "identity");
    });
    const started = Date.now();
    await page.goto(`${plan.origin}${plan.prefix}/#/experiments/${plan.experimentId}/runs`);
    await page.getByText(/matching runs?/).waitFor({ timeout: 60_000 });
    const shownMs = Date.now() - started;
    const timing = await page.evaluate(() => {
      const fcp = performance.getEntriesByName("first-contentful-paint")[0];
      const entries = [...performance.getEntriesByType("navigation"),
                       ...performance.getEntriesByType("resource")];
      return {
        fcpMs: fcp ? fcp.startTime : null,
        entries: entries.map((e) => ({ url: e.name, type: e.initiatorType,
                                       transferBytes: e.transferSize, bodyBytes: e.decodedBodySize })),
      };
    });
    const sum = (key) => timing.entries.reduce((total, e) => total + e[key], 0);
    const scripts = timing.entries
      .filter((e) => e.type === "script" || e.url.endsWith(".js"))
      .map((e) => ({ ...e, encoding: encodings.get(e.url) || "unknown" }));
    process.stdout.write(JSON.stringify({
      event: "load", fcpMs: timing.fcpMs, shownMs, transferBytes: sum("transferBytes"),
      bodyBytes: sum("bodyBytes"), scripts,
    }) + "\n");
    await context.close();
  }
} finally {
  await browser.close();
}
