// How the player's worker fetches a stream (web/player/streaming.ts, fetcher.ts), in Node against
// `progs serve` behind a proxy that can misbehave the way networks and hosts do: the requests it
// makes, the budget options, a connection dropped mid-response (resumed from the first missing
// byte), a damaged chunk (fetched once more, alone), a file replaced mid-load and a stale manifest.
import assert from "node:assert/strict";
import http from "node:http";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { PROGS, serve } from "./browser.mjs";

const DIR = process.env.PROGS_PLAYER_DIR;
const why = !DIR ? "PROGS_PLAYER_DIR is not set (scripts/test.sh writes the fixtures)" : !existsSync(PROGS) ? `no progs command at ${PROGS}` : null;

let site, server, proxy, lib;
let fault = null; // (req, body) => what the proxy does with the next stream response
const log = []; // the stream's requests through the proxy: their Range headers
const file = DIR ? new Uint8Array(readFileSync(join(DIR, "fox.progs"))) : null;
const manifest = DIR ? JSON.parse(readFileSync(join(DIR, "fox.progs.json"), "utf8")) : null;

before(async () => {
  if (why) return;
  site = mkdtempSync(join(tmpdir(), "progs-fetch-"));
  for (const name of ["fox.progs", "fox.progs.json"]) copyFileSync(join(DIR, name), join(site, name));
  // manifests written for other encodings of the stream: ranges that follow each other, but not this file's
  for (const [name, shift] of [["stale", 4], ["stale-short", -4]]) {
    const stale = JSON.parse(JSON.stringify(manifest));
    stale.header.length += shift;
    let at = stale.header.length;
    for (const l of stale.lods) (l.offset = at), (at += l.length);
    stale.lods[stale.lods.length - 1].length -= shift;
    writeFileSync(join(site, `${name}.progs.json`), JSON.stringify({ ...stale, stream: "fox.progs" }));
  }
  server = await serve(site);
  const upstream = new URL(server.url);
  proxy = http.createServer((req, res) => {
    const isStream = req.url.endsWith("/fox.progs");
    if (isStream) log.push(req.headers.range ?? null);
    const f = isStream ? fault : null;
    if (f?.ignoreRange) delete req.headers.range; // a host that always sends the whole file
    // the host now has another file: the tag the client holds no longer matches
    if (f?.replaced && req.headers["if-range"]) req.headers["if-range"] = '"another-file"';
    const up = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (u) => {
      const headers = { ...u.headers };
      if (f?.headers) Object.assign(headers, f.headers);
      res.writeHead(u.statusCode, headers);
      const parts = [];
      u.on("data", (d) => parts.push(d));
      u.on("end", () => {
        let body = Buffer.concat(parts);
        const start = Number(/bytes (\d+)-/.exec(u.headers["content-range"] ?? "")?.[1] ?? 0);
        if (f?.flip !== undefined && f.flip >= start && f.flip < start + body.length) {
          body = Buffer.from(body);
          body[f.flip - start] ^= 0x40;
          if (f.once) fault = null;
        }
        if (f?.pauseAt !== undefined) {
          // the bytes up to pauseAt, then the rest once the test says so
          fault = null;
          const cut = f.pauseAt - start;
          res.write(body.subarray(0, cut));
          f.until.then(() => res.end(body.subarray(cut)));
          return;
        }
        if (f?.stallAfter !== undefined) {
          fault = null;
          res.write(body.subarray(0, f.stallAfter)); // and nothing more, the connection left open
          return;
        }
        if (f?.cutAfter !== undefined) {
          // a replaced file: the next response is the new file, under its own ETag
          fault = f.replaced ? { replaced: true, headers: { etag: '"another-file"' } } : null;
          res.write(body.subarray(0, f.cutAfter), () => res.socket.end());
          return;
        }
        res.end(body);
      });
    });
    up.on("error", (e) => res.destroy(e));
    req.pipe(up);
  });
  await new Promise((res) => proxy.listen(0, "127.0.0.1", res));
  // the worker's fetching code as the player bundles it
  const out = join(site, "streaming.mjs");
  await build({
    stdin: { contents: 'export * from "./streaming.ts"; export { StreamFetcher } from "./fetcher.ts";', resolveDir: new URL("../player/", import.meta.url).pathname, loader: "ts" },
    bundle: true, format: "esm", outfile: out, logLevel: "warning",
  });
  globalThis.location = { href: `http://127.0.0.1:${proxy.address().port}/` };
  lib = { ...(await import(pathToFileURL(out).href)) };
});

after(() => {
  proxy?.closeAllConnections();
  proxy?.close();
  server?.stop();
  if (site) rmSync(site, { recursive: true, force: true });
});

/** Fetches `src` as the player's worker does; returns what it handed over and the requests it made. */
async function load(src, options = {}, hold = null, stallMs = undefined, partial = undefined) {
  log.length = 0;
  const { StreamFetcher, fetchStream } = lib;
  const f = new StreamFetcher(src, undefined, stallMs);
  const got = { header: null, lodsPlanned: 0, chunks: [], error: null, fetcher: f };
  try {
    await fetchStream(f, { startedAt: performance.timeOrigin + performance.now(), ...options }, {
      hold,
      partial,
      header(plan, lodsPlanned, bytes) {
        got.header = bytes;
        got.lodsPlanned = lodsPlanned;
      },
      chunk(r, bytes) {
        got.chunks.push(r);
        assert.deepEqual(bytes, file.subarray(r.offset, r.offset + r.length), `LoD ${r.lod}'s bytes`);
      },
    });
  } catch (e) {
    got.error = e.message;
  }
  got.requests = log.slice();
  return got;
}

const range = (a, b) => `bytes=${a}-${b - 1}`;
const lodEnd = (k) => manifest.lods[k - 1].offset + manifest.lods[k - 1].length;

test("a chunk's first bytes are handed over while the rest is on its way", { skip: why ?? false }, async () => {
  const lod3 = manifest.lods[2];
  const pauseAt = lod3.offset + Math.floor(lod3.length / 2);
  let release;
  const until = new Promise((res) => (release = res));
  fault = { pauseAt, until };
  const seen = new Map();
  const done = load("fox.progs", {}, null, 120_000, (r, bytes) => {
    assert.deepEqual(bytes, file.subarray(r.offset, r.offset + bytes.length), `LoD ${r.lod}'s first bytes`);
    assert.ok(bytes.length < r.length && bytes.length > (seen.get(r.lod) ?? 0), `LoD ${r.lod}: ${bytes.length} bytes`);
    seen.set(r.lod, bytes.length);
    // the rest is sent only once LoD 3's first half has been handed over
    if (r.lod === 3 && r.offset + bytes.length === pauseAt) release();
  });
  let timer;
  const got = await Promise.race([done, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("LoD 3's first half was never handed over")), 120_000)))]);
  clearTimeout(timer);
  assert.equal(got.error, null);
  assert.equal(got.chunks.length, manifest.lods.length);
  assert.equal(seen.get(3), pauseAt - lod3.offset);
});

test("with a manifest and nothing to wait for: the whole stream in one request, each LoD as its range", { skip: why ?? false }, async () => {
  const got = await load("fox.progs");
  assert.equal(got.error, null);
  assert.deepEqual(got.header, file.subarray(0, manifest.header.length));
  assert.deepEqual(got.chunks.map((r) => [r.offset, r.length]), manifest.lods.map((l) => [l.offset, l.length]));
  assert.deepEqual(got.requests, [range(0, manifest.total_bytes)]);
  assert.equal(got.fetcher.bytesReceived, manifest.total_bytes);
});

/** A hold that records the requests made by the time it is waited on, and settles on `release()`. */
function recordingHold() {
  let release;
  const settled = new Promise((res) => (release = res));
  const hold = { seen: null, release, then: (res, rej) => ((hold.seen ??= log.slice()), settled.then(res, rej)) };
  return hold;
}

test("held after LoD 1: the header and LoD 1 in one request, the finer LoDs in one more once released", { skip: why ?? false }, async () => {
  const hold = recordingHold();
  const done = load("fox.progs", {}, hold);
  hold.release();
  const got = await done;
  assert.equal(got.error, null);
  // nothing past LoD 1 had been asked for when the hold was waited on
  assert.deepEqual(hold.seen, [range(0, lodEnd(1))]);
  assert.deepEqual(got.requests, [range(0, lodEnd(1)), range(lodEnd(1), manifest.total_bytes)]);
  assert.equal(got.chunks.length, manifest.lods.length);
});

test("maxBytes and maxLod fetch no byte past the budget; maxSeconds 0 stops after LoD 1", { skip: why ?? false }, async () => {
  let got = await load("fox.progs", { maxBytes: lodEnd(3) + 10 });
  assert.equal(got.error, null);
  assert.equal(got.lodsPlanned, 3);
  assert.deepEqual(got.requests, [range(0, lodEnd(3))]);
  got = await load("fox.progs", { maxLod: 2 });
  assert.deepEqual(got.requests, [range(0, lodEnd(2))]);
  assert.deepEqual(got.chunks.map((r) => r.lod), [1, 2]);
  got = await load("fox.progs", { maxSeconds: 0 });
  assert.equal(got.error, null);
  assert.deepEqual(got.requests, [range(0, lodEnd(1))]);
  assert.deepEqual(got.chunks.map((r) => r.lod), [1]);
  got = await load("fox.progs", { maxBytes: 100 });
  assert.match(got.error, /LoD 1 needs \d+ bytes, more than the budget of 100/);
  got = await load("fox.progs", { maxLod: 0 });
  assert.match(got.error, /maxLod is 0: no LoD to fetch/);
});

test("without a manifest: the first 20 bytes, the rest of the header, then the LoDs (LoD 1 alone while held)", { skip: why ?? false }, async () => {
  rmSync(join(site, "fox.progs.json"));
  try {
    let got = await load("fox.progs");
    assert.equal(got.error, null);
    const header = [range(0, 20), range(20, manifest.header.length)];
    assert.deepEqual(got.requests, [...header, range(manifest.header.length, manifest.total_bytes)]);
    assert.equal(got.chunks.length, manifest.lods.length);
    const hold = recordingHold();
    const done = load("fox.progs", {}, hold);
    hold.release();
    got = await done;
    assert.equal(got.error, null);
    assert.deepEqual(hold.seen, [...header, range(manifest.header.length, lodEnd(1))]);
    assert.deepEqual(got.requests, [...header, range(manifest.header.length, lodEnd(1)), range(lodEnd(1), manifest.total_bytes)]);
  } finally {
    copyFileSync(join(DIR, "fox.progs.json"), join(site, "fox.progs.json"));
  }
});

test("a connection dropped mid-response is resumed from the first missing byte", { skip: why ?? false }, async () => {
  fault = { cutAfter: lodEnd(3) + 1000 };
  const got = await load("fox.progs");
  assert.equal(got.error, null);
  assert.equal(got.chunks.length, manifest.lods.length);
  assert.equal(got.requests.length, 2);
  const resumedAt = Number(/bytes=(\d+)-/.exec(got.requests[1])[1]);
  assert.ok(resumedAt > lodEnd(1) && resumedAt <= lodEnd(3) + 1000, got.requests.join(" "));
  assert.equal(got.requests[1], range(resumedAt, manifest.total_bytes));
  assert.equal(got.fetcher.bytesReceived, manifest.total_bytes);
});

test("a connection that stalls mid-response is dropped and resumed", { skip: why ?? false }, async () => {
  // the proxy sends the first bytes at once and then nothing: only that silence outlasts 2 s
  fault = { stallAfter: lodEnd(2) + 500 };
  const got = await load("fox.progs", {}, null, 2000);
  assert.equal(got.error, null);
  assert.equal(got.chunks.length, manifest.lods.length);
  assert.equal(got.requests.length, 2, got.requests.join(" "));
  const resumedAt = Number(/bytes=(\d+)-/.exec(got.requests[1])[1]);
  assert.ok(resumedAt > lodEnd(1) && resumedAt <= lodEnd(2) + 500, got.requests.join(" "));
});

test("a chunk that fails its CRC is fetched once more on its own; twice is an error naming it", { skip: why ?? false }, async () => {
  const lod3 = manifest.lods[2];
  fault = { flip: lod3.offset + 100, once: true };
  let got = await load("fox.progs");
  assert.equal(got.error, null);
  assert.deepEqual(got.requests, [range(0, manifest.total_bytes), range(lod3.offset, lodEnd(3))]);
  assert.equal(got.chunks.length, manifest.lods.length);
  fault = { flip: lod3.offset + 100 };
  got = await load("fox.progs");
  fault = null;
  assert.match(got.error, /CRC/);
  assert.deepEqual(got.requests, [range(0, manifest.total_bytes), range(lod3.offset, lodEnd(3))]);
  assert.deepEqual(got.chunks.map((r) => r.lod), [1, 2]);
});

test("a host that ignores Range: the whole file each time, the bytes asked for taken from it", { skip: why ?? false }, async () => {
  fault = { ignoreRange: true };
  const hold = recordingHold();
  const done = load("fox.progs", {}, hold);
  hold.release();
  const got = await done;
  fault = null;
  assert.equal(got.error, null);
  assert.equal(got.chunks.length, manifest.lods.length);
  assert.equal(got.requests.length, 2);
});

test("a stream replaced on the server mid-load is an error, not a splice of two files", { skip: why ?? false }, async () => {
  // the connection drops after LoD 2; the resumed request carries If-Range with the first response's
  // ETag, and the host, whose file has changed since, answers with all of its new file
  fault = { cutAfter: lodEnd(2), replaced: true };
  const got = await load("fox.progs");
  fault = null;
  assert.match(got.error, /fox\.progs changed on the server while it was loading; reload the page/);
  assert.deepEqual(got.chunks.map((r) => r.lod), [1, 2]); // what arrived before the drop, of one file
});

test("a manifest that does not describe the stream is named stale", { skip: why ?? false }, async () => {
  for (const name of ["stale", "stale-short"]) {
    const got = await load(`${name}.progs.json`);
    assert.match(got.error, new RegExp(`${name}\\.progs\\.json: the manifest does not match .*fox\\.progs \\(stale manifest\\?\\)`));
    assert.deepEqual(got.chunks, []);
  }
});
