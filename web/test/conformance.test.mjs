// Conformance: every stream that tests/conformance_fixtures.py wrote (in this test run) decodes in
// JavaScript to exactly the anchors the Python decoder gives, and every damaged copy ends where
// Python's ends (or fails as Python's fails), never with a crash or a hang.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { crc32, decode, FormatError } from "../dist/progs.mjs";

const DIR = process.env.PROGS_CONFORMANCE_DIR;
if (!DIR) throw new Error("PROGS_CONFORMANCE_DIR is not set: run `python tests/conformance_fixtures.py DIR` first (scripts/test.sh does)");
const names = readdirSync(DIR).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)).sort();

test("the fixture set is complete", () => {
  for (const want of ["l3_plain", "l4_rule_predictors", "l5_level_context", "l4_small_fit", "l3_wide_generator", "l4_all_offsets"]) assert.ok(names.includes(want), want);
});

test("the fixtures code the roots both ways (verbatim keys and occupancy)", () => {
  const first = names.map((n) => JSON.parse(readFileSync(join(DIR, `${n}.json`), "utf8")).structure_methods[0]);
  assert.ok(first.includes("roots") && first.includes("root occupancy"), JSON.stringify(first));
});

function bytesOf(typed) {
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

for (const name of names) {
  const info = JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8"));
  const data = new Uint8Array(readFileSync(join(DIR, `${name}.progs`)));

  test(`${name}: anchors bit-identical to the Python decoder`, { timeout: 1_800_000 }, () => {
    const expected = new Uint8Array(readFileSync(join(DIR, `${name}.anchors.bin`)));
    const r = decode(data, { source: name });
    assert.equal(r.problem, null);
    assert.equal(r.lodsDecoded, info.lods);
    const levels = r.decoder.levels;
    assert.deepEqual(levels.map((l) => l.count), info.anchors_per_lod);
    assert.deepEqual(levels.map((l) => l.structureMethod), info.structure_methods);
    const N = info.anchors;
    const F = info.feat_dim;
    const K = info.n_offsets;
    const cat = (key, Type, width) => {
      const out = new Type(N * width);
      let o = 0;
      for (const l of levels) {
        out.set(key === "levels" ? new Type(l.count).fill(l.level) : l[key], o);
        o += l.count * width;
      }
      return out;
    };
    const parts = [cat("keys", Int32Array, 3), cat("levels", Int32Array, 1), cat("feature", Float32Array, F),
      cat("scaling", Float32Array, 6), cat("offsets", Float32Array, 3 * K)];
    let o = 0;
    for (const [i, part] of parts.entries()) {
      const got = bytesOf(part);
      const want = expected.subarray(o, o + got.length);
      o += got.length;
      const first = got.findIndex((b, j) => b !== want[j]);
      assert.equal(first, -1, `${["keys", "levels", "feature", "scaling", "offsets"][i]} differ at byte ${first}`);
    }
    assert.equal(o, expected.length);
    if (info.skip_hidden) assert.ok(levels.every((l) => l.hidden !== null));
  });

  test(`${name}: damaged copies stop where Python stops`, { timeout: 1_800_000 }, () => {
    for (const c of info.damaged) {
      let mod = data;
      if ("truncate" in c) mod = data.subarray(0, c.truncate);
      if ("flip" in c) {
        mod = data.slice();
        mod[c.flip] ^= 1 << c.bit;
      }
      if ("fix_crc" in c) { // a flip with its chunk's CRC made valid again
        const [off, n] = c.fix_crc;
        const crc = crc32(mod.subarray(off, off + 4), mod.subarray(off + 8, off + 8 + n));
        new DataView(mod.buffer, mod.byteOffset).setUint32(off + 8 + n, crc, true);
      }
      const what = JSON.stringify({ truncate: c.truncate, flip: c.flip, bit: c.bit, fix_crc: c.fix_crc });
      if (c.python.error) {
        assert.throws(() => decode(mod, { source: name }), FormatError, what);
        continue;
      }
      const r = decode(mod, { source: name });
      assert.equal(r.lodsDecoded, c.python.lods, what);
      assert.equal(r.problem === null, c.python.problem === null, what);
    }
  });
}
