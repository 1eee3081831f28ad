// Malformed chunks that pass their CRC (bytes changed, CRC recomputed) end in a FormatError or decode;
// never another exception, never a hang.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { crc32, decode, FormatError, scan } from "../dist/progs.mjs";

const DIR = process.env.PROGS_CONFORMANCE_DIR;
if (!DIR) throw new Error("PROGS_CONFORMANCE_DIR is not set");

function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

for (const name of ["l3_plain", "l4_rule_predictors"]) {
  test(`${name}: 150 CRC-valid corruptions`, { timeout: 1_800_000 }, () => {
    const data = new Uint8Array(readFileSync(join(DIR, `${name}.progs`)));
    const chunks = scan(data).chunks;
    const rand = rng(name.length * 7919);
    let errors = 0;
    for (let t = 0; t < 150; t++) {
      const ch = chunks[Math.floor(rand() * chunks.length)];
      const mod = data.slice();
      const start = ch.offset + 8;
      const len = ch.payload.length;
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) mod[start + Math.floor(rand() * len)] ^= 1 << Math.floor(rand() * 8);
      const crc = crc32(mod.subarray(ch.offset, ch.offset + 4), mod.subarray(start, start + len));
      new DataView(mod.buffer).setUint32(start + len, crc, true);
      try {
        decode(mod);
      } catch (e) {
        assert.ok(e instanceof FormatError, `trial ${t}: ${e && e.stack}`);
        errors++;
      }
    }
    assert.ok(errors > 0);
  });
}
