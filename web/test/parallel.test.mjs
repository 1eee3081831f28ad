// ParallelStreamDecoder (the context model on a worker thread) decodes the same anchors as
// StreamDecoder, bit for bit, and stops where decode() stops on a damaged stream.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { decode, ParallelStreamDecoder, scan } from "../dist/progs.mjs";

function bits(a) {
  return a === null ? null : Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

let worker = null;
let handler = null;
function thread() {
  if (!worker) {
    worker = new Worker(new URL("../dist/progs-context-worker.mjs", import.meta.url));
    worker.on("message", (m) => handler?.(m));
  }
  return { post: (m, transfer) => worker.postMessage(m, transfer), onMessage: (h) => (handler = h) };
}

after(() => worker?.terminate());

async function compare(data, name) {
  const want = decode(data, { source: name });
  const s = scan(data, name);
  const par = new ParallelStreamDecoder(s.chunks[0], thread(), name);
  const seen = [];
  const { problem } = await par.decodeChunks(s.chunks.slice(1), (lv) => seen.push(lv.level));
  assert.equal(par.levels.length, want.lodsDecoded, `${name}: LoDs decoded`);
  assert.deepEqual(seen, want.decoder.levels.map((l) => l.level));
  if (want.problem && !(s.problem && want.problem === s.problem)) assert.ok(problem, `${name}: a problem reported`);
  for (let l = 0; l < want.lodsDecoded; l++) {
    const x = want.decoder.levels[l];
    const y = par.levels[l];
    for (const k of ["keys", "values", "feature", "scaling", "offsets"]) assert.deepEqual(bits(y[k]), bits(x[k]), `${name} LoD ${l + 1} ${k}`);
    assert.deepEqual(y.hidden, x.hidden, `${name} LoD ${l + 1} hidden`);
  }
}

const gpu = new URL("../../benchmarks/results/gpu/h200_fox_6400.progs", import.meta.url);
test("GPU fox stream: two threads decode the same bits as one", { skip: !existsSync(gpu) }, async () => {
  const data = new Uint8Array(readFileSync(gpu));
  await compare(data, "h200_fox_6400");
  await compare(data.subarray(0, Math.floor(data.length * 0.6)), "h200_fox_6400 (cut)");
});

const DIR = process.env.PROGS_CONFORMANCE_DIR;
const names = DIR ? readdirSync(DIR).filter((f) => f.endsWith(".progs")).sort() : [];
for (const name of names) {
  test(`${name}: two threads decode the same bits as one`, { timeout: 600_000 }, async () => {
    await compare(new Uint8Array(readFileSync(join(DIR, name))), name);
  });
}
