// The web player in a real browser (headless Chromium, software WebGL) against `progs serve` on
// loopback, with fixtures from tests/player_fixtures.py (PROGS_PLAYER_DIR): LoDs appear in order, the
// bytes fetched for each are exactly the manifest's ranges, each LoD on screen matches progs' own render of it
// from the same camera, a truncated stream stops at its last intact LoD with a message, and the page
// logs no errors.
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { launch, openPage, psnrAgainst, serve, settled, unavailable } from "./browser.mjs";

const DIR = process.env.PROGS_PLAYER_DIR;
const why = !DIR ? "PROGS_PLAYER_DIR is not set (scripts/test.sh writes the fixtures)" : unavailable();
// Measured on the fox stream at 240x320 (Spark in SwiftShader against progs' CPU rasterizer): 34.0 to
// 34.2 dB over LoDs 1, 3 and 5 (2026-12-06). The floor leaves room for another GL driver, not for a
// wrong camera, colour or Gaussian (those measured 21-23 dB).
const PSNR_FLOOR = 30;

let server;
let browser;
const info = DIR ? JSON.parse(readFileSync(join(DIR, "player.json"), "utf8")) : null;
const manifest = DIR ? JSON.parse(readFileSync(join(DIR, "fox.progs.json"), "utf8")) : null;

before(async () => {
  if (why) return;
  server = await serve(DIR);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

function viewParam(v) {
  return [...v.eye, ...v.target, ...v.up, v.fov_x].join(",");
}

test("plays every LoD in order from exactly the manifest's byte ranges, each as progs renders it", { skip: why ?? false }, async () => {
  const { page, errors, requests } = await openPage(browser, { width: info.width, height: info.height });
  await page.goto(`${server.url}player.html?src=${info.stream}&view=${viewParam(info.view)}&overlay=0`);
  await settled(page);
  const state = await page.evaluate(() => ({ ...window.progs }));
  assert.equal(state.error, null);
  assert.equal(state.lodShown, manifest.lods.length);
  assert.equal(state.lodsTotal, manifest.lods.length);
  assert.equal(state.bytesReceived, manifest.total_bytes);
  assert.deepEqual(state.history.map((h) => h.lod), manifest.lods.map((l) => l.lod));
  for (let i = 1; i < state.history.length; i++) assert.ok(state.history[i].seconds >= state.history[i - 1].seconds);
  assert.equal(state.anchors, manifest.lods.reduce((a, l) => a + l.anchors, 0));
  // each LoD went to the decoder as exactly the manifest's byte range
  assert.deepEqual(state.history.map((h) => [h.offset, h.length]), manifest.lods.map((l) => [l.offset, l.length]));
  // the stream's requests, nothing else: the header and LoD 1 in one, then the finer LoDs in one
  const ranges = requests.filter((r) => r.url.endsWith(`/${info.stream}`)).map((r) => r.range);
  const lod1End = manifest.lods[0].offset + manifest.lods[0].length;
  const expected = [`bytes=0-${lod1End - 1}`, `bytes=${lod1End}-${manifest.total_bytes - 1}`];
  assert.deepEqual(ranges, expected);
  // the first image's bytes first: Spark's WebAssembly is requested after LoD 1 and before LoD 2
  const order = requests.map((r) => (r.url.endsWith("/spark-internal.wasm") ? "wasm" : r.url.endsWith(`/${info.stream}`) ? r.range : null)).filter(Boolean);
  assert.deepEqual(order, [expected[0], "wasm", expected[1]]);
  for (const lod of info.lods) {
    await page.evaluate((k) => window.progs.showLod(k), lod.lod);
    await settled(page);
    const psnr = await psnrAgainst(page, `${server.url}${lod.reference}`);
    console.log(`LoD ${lod.lod}: ${psnr.toFixed(2)} dB against progs' render`);
    assert.ok(psnr > PSNR_FLOOR, `LoD ${lod.lod}: ${psnr.toFixed(2)} dB against progs' render (floor ${PSNR_FLOOR})`);
  }
  // a second camera: the Gaussians are evaluated again for it, as progs renders them from there
  await page.evaluate((v) => window.progs.setView({ eye: v.eye, target: v.target, up: v.up, fovX: v.fov_x }), info.second_view.view);
  await settled(page);
  const psnr = await psnrAgainst(page, `${server.url}${info.second_view.reference}`);
  console.log(`second view: ${psnr.toFixed(2)} dB against progs' render`);
  assert.ok(psnr > PSNR_FLOOR, `second view: ${psnr.toFixed(2)} dB against progs' render (floor ${PSNR_FLOOR})`);
  // a second visit: Spark's WebAssembly was compiled here before, so nothing is held back and the
  // whole stream comes in one request, each LoD still handed over as its manifest range
  requests.length = 0;
  await page.goto(`${server.url}player.html?src=${info.stream}&view=${viewParam(info.view)}&overlay=0`);
  await settled(page);
  const again = await page.evaluate(() => ({ ...window.progs }));
  assert.equal(again.error, null);
  assert.equal(again.lodShown, manifest.lods.length);
  assert.deepEqual(again.history.map((h) => [h.offset, h.length]), manifest.lods.map((l) => [l.offset, l.length]));
  assert.deepEqual(requests.filter((r) => r.url.endsWith(`/${info.stream}`)).map((r) => r.range), [`bytes=0-${manifest.total_bytes - 1}`]);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a truncated stream without a manifest shows its last intact LoD and says why", { skip: why ?? false }, async () => {
  const { page, errors, requests } = await openPage(browser, { width: info.width, height: info.height });
  await page.goto(`${server.url}player.html?src=${info.cut}`);
  await settled(page);
  const state = await page.evaluate(() => ({ ...window.progs }));
  assert.equal(state.lodShown, info.cut_last_lod);
  assert.match(state.error, /truncated|past the end/);
  assert.ok(await page.isVisible("#message"));
  assert.match(await page.textContent("#message"), /truncated|past the end/);
  // planned from the stream's first 20 bytes and its HEAD chunk
  const ranges = requests.filter((r) => r.url.endsWith(`/${info.cut}`)).map((r) => r.range);
  assert.deepEqual(ranges.slice(0, 2), ["bytes=0-19", `bytes=20-${info.header_bytes - 1}`]);
  // the only errors are the manifest's 404 and the request past the end of the cut file
  assert.ok(errors.every((e) => /404|416/.test(e)), errors.join("\n"));
  await page.close();
});

test("a missing stream is one clear message, not a blank page", { skip: why ?? false }, async () => {
  const { page } = await openPage(browser, { width: 320, height: 240 });
  await page.goto(`${server.url}player.html?src=nothing-here.progs`);
  await page.waitForFunction(() => window.progs && window.progs.done, null, { polling: 100 });
  const state = await page.evaluate(() => ({ ...window.progs }));
  assert.equal(state.lodShown, 0);
  assert.match(state.error, /nothing-here\.progs.*404/);
  await page.close();
});

/** The player opened from a static host whose copy of `file` is a broken upload (an HTML error page;
 * progs serve prefers the folder's file to its own), once `done(page)` holds; `check(page)` then runs. */
async function withBrokenUpload(file, done, check) {
  const site = mkdtempSync(join(tmpdir(), "progs-site-"));
  const local = await serve(site);
  try {
    for (const name of ["fox.progs", "fox.progs.json"]) copyFileSync(join(DIR, name), join(site, name));
    writeFileSync(join(site, file), "<html>not found</html>");
    const { page } = await openPage(browser, { width: 320, height: 240 });
    await page.goto(`${local.url}player.html?src=fox.progs`);
    await page.waitForFunction(done, null, { polling: 100, timeout: 120_000 });
    await check(page);
    assert.ok(await page.isVisible("#message"));
    await page.close();
  } finally {
    local.stop();
    rmSync(site, { recursive: true, force: true });
  }
}

test("a site whose renderer WebAssembly is damaged says so, not a blank page", { skip: why ?? false }, async () => {
  await withBrokenUpload("spark-internal.wasm", () => window.progs && window.progs.error, async (page) => {
    assert.match(await page.evaluate(() => window.progs.error), /renderer could not load its WebAssembly/);
  });
});

test("a site whose decoding worker cannot start says so and finishes, not a page that waits forever", { skip: why ?? false }, async () => {
  await withBrokenUpload("progs-worker.js", () => window.progs && window.progs.done, async (page) => {
    const state = await page.evaluate(() => ({ ...window.progs }));
    assert.equal(state.lodShown, 0);
    assert.match(state.error, /decoding worker/);
  });
});
