// Times the web player against the formats users ship instead, in headless Chromium with Chromium's
// own network emulation (throughput and latency), served by `progs serve` on loopback.
//
//   node web/bench/player.mjs CONFIG.json OUT.json
//
// CONFIG: {dir, width, height, mbits: [5, 20], latency_ms, repeat, runs: [{name, kind: "progs"|"spz"|"sog",
// page, src, view}]}. Each run is loaded twice per bandwidth in a fresh browser context: "cold" (the
// page's scripts come over the emulated link too) and "warm" (a second visit: scripts from the HTTP
// cache, the scene's bytes over the link again); `repeat` times (default 1), each time in a new
// context. Before each visit the browser has drawn a WebGL frame and stood idle for 1.5 s. Times are
// seconds from navigation start.
import { readFileSync, writeFileSync } from "node:fs";
import { launch, serve } from "../test/browser.mjs";

const [configPath, outPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, "utf8"));
const server = await serve(config.dir);
const browser = await launch();

async function once(page, url, kind) {
  const t0 = Date.now();
  // the player's stream is fetched by its worker, whose requests are not in the page's Resource
  // Timing: their bytes (headers and body) come from Playwright, which sees the worker's requests too
  const src = new URL(url).searchParams.get("src");
  const workerSizes = [];
  const onFinished = (r) => {
    const path = new URL(r.url()).pathname;
    if (kind === "progs" && (path.endsWith(`/${src}`) || path.endsWith(`/${src}.json`))) workerSizes.push(r.sizes());
  };
  page.on("requestfinished", onFinished);
  await page.goto(url);
  const key = kind === "progs" ? "progs" : "bench";
  await page.waitForFunction((k) => window[k] && window[k].done && window[k].framesSinceChange >= 1 &&
    window[k].history.every((h) => h.shownSeconds !== null && h.drawnSeconds !== null && h.drawnSeconds !== undefined), key, { timeout: 900_000, polling: 50 });
  const s = await page.evaluate((k) => JSON.parse(JSON.stringify(window[k])), key);
  const marks = Object.fromEntries(await page.evaluate(() => performance.getEntriesByType("mark").map((m) => [m.name, m.startTime / 1000])));
  const nav = await page.evaluate(() => performance.getEntriesByType("navigation")[0]?.toJSON() ?? null);
  const wasm = await page.evaluate(() => performance.getEntriesByType("resource").find((r) => r.name.endsWith("/spark-internal.wasm"))?.responseEnd ?? null);
  page.off("requestfinished", onFinished);
  const workerBytes = (await Promise.all(workerSizes)).reduce((a, z) => a + z.responseBodySize + z.responseHeadersSize, 0);
  const transferred = await page.evaluate(() =>
    performance.getEntriesByType("resource").reduce((a, r) => a + (r.transferSize || 0), 0) +
    (performance.getEntriesByType("navigation")[0]?.transferSize ?? 0));
  return {
    error: s.error,
    first_image_s: s.firstImageSeconds,
    levels: s.history.map((h) => ({
      level: kind === "progs" ? h.lod : h.level, bytes: h.bytes,
      fetched_s: kind === "progs" ? marks[`progs:lod${h.lod}-fetched`] ?? null : h.fetchedSeconds,
      decoded_s: kind === "progs" ? h.readySeconds : h.decodedSeconds,
      arrived_s: h.seconds, shown_s: h.shownSeconds, drawn_s: h.drawnSeconds,
      ...(kind === "progs" ? { anchors: h.anchors, gaussians: h.gaussians } : {}),
    })),
    scripts_loaded_s: nav ? nav.domContentLoadedEventEnd / 1000 : null,
    renderer_wasm_loaded_s: wasm === null ? null : wasm / 1000, // Spark's WebAssembly, a file of its own
    bytes_over_the_link: transferred + workerBytes,
    wall_s: (Date.now() - t0) / 1000,
  };
}

// Each page starts in a browser whose GPU process is already up (a user's browser is running before
// they open a page): one WebGL frame first, so that the first format timed does not pay for it.
async function settle(page) {
  await page.goto("about:blank");
  await page.evaluate(() => new Promise((res) => {
    const gl = document.body.appendChild(document.createElement("canvas")).getContext("webgl2");
    gl.clearColor(0, 0, 0, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.finish();
    const info = gl.getExtension("WEBGL_debug_renderer_info");
    const renderer = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
    requestAnimationFrame(() => requestAnimationFrame(() => res(renderer)));
  })).then((r) => (webglRenderer ??= r));
  // and the previous page's frames have left the software rasterizer
  await new Promise((res) => setTimeout(res, 1500));
}

const results = [];
let webglRenderer = null; // what drew the frames: the WebGL renderer the page saw
const repeat = Math.max(1, config.repeat ?? 1);
const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number").sort((p, q) => p - q);
  return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : null;
};
for (const mbits of config.mbits) {
  for (const run of config.runs) {
    const visits = [];
    const errors = [];
    const v = run.view;
    const view = [...v.eye, ...v.target, ...v.up, v.fov_x].join(",");
    const url = `${server.url}${run.page}?src=${encodeURIComponent(run.src)}&view=${view}${run.kind === "progs" ? "&overlay=0" : `&kind=${run.kind}`}`;
    for (let k = 0; k < repeat; k++) {
      // a fresh context per pair of visits: an empty HTTP cache for the first
      const context = await browser.newContext({ viewport: { width: config.width, height: config.height } });
      const page = await context.newPage();
      page.on("pageerror", (e) => errors.push(e.message));
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", {
        offline: false, latency: config.latency_ms, downloadThroughput: (mbits * 1e6) / 8, uploadThroughput: (mbits * 1e6) / 8,
      });
      await settle(page);
      const cold = await once(page, url, run.kind);
      await settle(page);
      const warm = await once(page, url, run.kind);
      visits.push({ cold, warm });
      await context.close();
    }
    const entry = { name: run.name, kind: run.kind, mbits, cold: visits[0].cold, warm: visits[0].warm, page_errors: errors };
    if (repeat > 1) {
      // every visit, and the median of each time over them (`cold` and `warm` above are the first)
      entry.visits = visits;
      entry.median = Object.fromEntries(["cold", "warm"].map((w) => [w, {
        first_image_s: median(visits.map((x) => x[w].first_image_s)),
        last_fetched_s: median(visits.map((x) => x[w].levels.at(-1)?.fetched_s)),
        last_decoded_s: median(visits.map((x) => x[w].levels.at(-1)?.decoded_s)),
        last_shown_s: median(visits.map((x) => x[w].levels.at(-1)?.shown_s)),
        last_drawn_s: median(visits.map((x) => x[w].levels.at(-1)?.drawn_s)),
      }]));
    }
    results.push(entry);
    const warmLast = visits.map((x) => x.warm.levels.at(-1)?.shown_s?.toFixed(2)).join(", ");
    console.error(`${run.name} @ ${mbits} Mbit/s: first image ${visits[0].warm.first_image_s?.toFixed(2)} s warm, ${visits[0].cold.first_image_s?.toFixed(2)} s cold; last level ${warmLast} s warm`);
  }
}
await browser.close();
server.stop();
writeFileSync(outPath, JSON.stringify({ latency_ms: config.latency_ms, webgl_renderer: webglRenderer, results }, null, 1));
