// The incremental API: header first, then each LOD chunk fetched on its own (as a player fetches
// byte ranges) decodes to the same anchors as the whole stream at once.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { decode, FormatError, headChunkTable, headerLength, scan, scanChunks, StreamDecoder } from "../dist/progs.mjs";

const DIR = process.env.PROGS_CONFORMANCE_DIR;
if (!DIR) throw new Error("PROGS_CONFORMANCE_DIR is not set");

test("chunk by chunk equals all at once", () => {
  const data = new Uint8Array(readFileSync(join(DIR, "l4_rule_predictors.progs")));
  const n = headerLength(data.subarray(0, 20));
  const dec = new StreamDecoder(scan(data.subarray(0, n)).chunks[0]);
  let offset = n;
  for (const size of dec.header.chunkSizes) {
    const bytes = data.slice(offset, offset + size);
    const { chunks, problem } = scanChunks(bytes, "s", offset);
    assert.equal(problem, null);
    dec.decodeChunk(chunks[0]);
    offset += size;
  }
  assert.equal(offset, data.length);
  const whole = decode(data).decoder;
  assert.equal(dec.lodsDecoded, whole.lodsDecoded);
  for (let i = 0; i < whole.levels.length; i++) {
    assert.deepEqual(dec.levels[i].feature, whole.levels[i].feature);
    assert.deepEqual(dec.levels[i].offsets, whole.levels[i].offsets);
  }
  // a damaged chunk is named with its offset in the file
  const bad = data.slice(n, n + dec.header.chunkSizes[0]);
  bad[20] ^= 4;
  assert.match(scanChunks(bad, "s", n).problem, new RegExp(`chunk LOD1 at byte ${n} fails its CRC32`));
});

test("a player plans its Range requests from the HEAD chunk alone, as the decoder reads it", () => {
  const names = readdirSync(DIR).filter((f) => f.endsWith(".progs"));
  assert.ok(names.length >= 5);
  for (const name of names) {
    const data = new Uint8Array(readFileSync(join(DIR, name)));
    const n = headerLength(data.subarray(0, 20), name);
    const dec = StreamDecoder.fromBytes(data.subarray(0, n), name);
    assert.deepEqual(headChunkTable(data.subarray(0, n), name), { headerBytes: dec.headerBytes, chunkSizes: dec.header.chunkSizes });
    assert.equal(n + dec.header.chunkSizes.reduce((a, b) => a + b, 0), data.length, name);
  }
  const data = new Uint8Array(readFileSync(join(DIR, names[0])));
  const n = headerLength(data.subarray(0, 20));
  const bad = data.slice(0, n);
  bad[40] ^= 1;
  assert.throws(() => headChunkTable(bad, "s.progs"), (e) => e instanceof FormatError && /chunk HEAD at byte 12 fails its CRC32/.test(e.message));
  assert.throws(() => headChunkTable(data.slice(0, n - 1), "s.progs"), (e) => e instanceof FormatError && /truncated/.test(e.message));
});
