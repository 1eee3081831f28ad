// A LoD chunk decoded while it arrives (StreamDecoder.startChunk / advanceChunk /
// finishChunkInProgress, what the player's worker does as a Range response streams in) gives the
// level that decodeChunk gives from the whole chunk, bit for bit, wherever the bytes stop between
// calls; bytes that change before the chunk is complete (a damaged transfer, fetched again) or that
// stop coming leave the decoder as it was.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { scan, setLevelMemoryLimit, StreamDecoder } from "../dist/progs.mjs";

const DIR = process.env.PROGS_CONFORMANCE_DIR;
if (!DIR) throw new Error("PROGS_CONFORMANCE_DIR is not set");

const FIELDS = ["keys", "positions", "feature", "scaling", "offsets", "values", "hidden"];

function assertSameLevel(got, want, what) {
  assert.equal(got.level, want.level, what);
  assert.equal(got.count, want.count, what);
  for (const k of FIELDS) {
    if (want[k] === null) {
      assert.equal(got[k], null, `${what}: ${k}`);
      continue;
    }
    assert.equal(got[k].length, want[k].length, `${what}: ${k}`);
    // bit for bit (NaN included, -0 apart from 0)
    const a = new Uint8Array(got[k].buffer, got[k].byteOffset, got[k].byteLength);
    const b = new Uint8Array(want[k].buffer, want[k].byteOffset, want[k].byteLength);
    assert.ok(Buffer.compare(a, b) === 0, `${what}: ${k} differs`);
  }
}

function streams() {
  const names = readdirSync(DIR).filter((f) => f.endsWith(".progs") && !f.startsWith("above_rule_limit"));
  assert.ok(names.length >= 5);
  return names.map((name) => {
    const data = new Uint8Array(readFileSync(join(DIR, name)));
    const s = scan(data, name);
    assert.equal(s.problem, null, name);
    return { name, data, head: s.chunks[0], lods: s.chunks.slice(1) };
  });
}

/** The chunk's bytes as they sit in the stream (framing and CRC included). */
const chunkBytes = (data, ch) => data.subarray(ch.offset, ch.offset + ch.payload.length + 12);

test("a chunk decoded as its bytes arrive equals the chunk decoded whole, wherever the bytes stop", () => {
  let early = 0;
  let levels = 0;
  for (const { name, data, head, lods } of streams()) {
    for (const parts of [7, 61]) {
      const whole = new StreamDecoder(head, name);
      const arriving = new StreamDecoder(head, name);
      for (const ch of lods) {
        const want = whole.decodeChunk(ch);
        const bytes = chunkBytes(data, ch);
        const c = arriving.startChunk(ch.offset);
        let doneBeforeEnd = false;
        for (let k = 1; k < parts; k++) {
          arriving.advanceChunk(c, bytes.subarray(0, Math.floor((k * bytes.length) / parts)));
          doneBeforeEnd ||= c.steps !== null && c.steps.maskDone;
        }
        if (doneBeforeEnd) early++;
        levels++;
        assertSameLevel(arriving.finishChunkInProgress(c, ch), want, `${name} ${ch.name} in ${parts} parts`);
      }
    }
  }
  // the attributes before the offsets were decoded early for most levels (not only at the end)
  assert.ok(early >= levels / 2, `${early} of ${levels} levels had their features decoded before their last byte`);
});

test("bytes that change before the chunk is complete, or stop coming, leave the decoder as it was", () => {
  const { name, data, head, lods } = streams().find((s) => s.lods.length >= 4 && s.name.startsWith("l4_rule"));
  const whole = new StreamDecoder(head, name);
  const want = lods.map((ch) => whole.decodeChunk(ch));
  const dec = new StreamDecoder(head, name);
  for (const [i, ch] of lods.entries()) {
    const bytes = chunkBytes(data, ch);
    if (i === 1) {
      // a damaged first transfer whose features and mask still decode, to other values: one bit
      // flipped in the features' stream, found by trying; then the whole chunk, intact (fetched again)
      const probe = new StreamDecoder(head, name);
      probe.decodeChunk(lods[0]);
      const t = probe.startChunk(ch.offset);
      probe.advanceChunk(t, bytes.subarray(0, bytes.length - 1));
      assert.ok(t.steps.maskDone);
      const fsStart = 8 + t.pl.r.pos; // the features' stream, in the chunk's bytes
      const maskEnd = 8 + t.steps.pos; // where the offsets' stream starts
      probe.abandonChunk(t);
      let used = null;
      for (let j = fsStart + 16; j < maskEnd && !used; j += 5) {
        const damaged = bytes.slice();
        damaged[j] ^= 1;
        const other = new StreamDecoder(head, name);
        other.decodeChunk(lods[0]);
        let lv = null;
        try {
          lv = other.decodeChunk({ ...ch, payload: damaged.subarray(8, 8 + ch.payload.length) });
        } catch {
          continue;
        }
        if (Buffer.compare(Buffer.from(lv.values.buffer), Buffer.from(want[i].values.buffer)) === 0) continue;
        const trial = new StreamDecoder(head, name);
        trial.decodeChunk(lods[0]);
        const c = trial.startChunk(ch.offset);
        trial.advanceChunk(c, damaged.subarray(0, maskEnd));
        if (c.steps && c.steps.maskDone) used = { trial, c };
      }
      assert.ok(used, "a one-bit change that decodes to other values");
      // the level is the intact chunk's, not one from the damaged bytes
      assertSameLevel(used.trial.finishChunkInProgress(used.c, ch), want[i], `${name} ${ch.name} after other bytes`);
      // bytes that do not decode at all
      const c = dec.startChunk(ch.offset);
      const damaged = bytes.slice();
      for (let j = Math.floor(bytes.length * 0.3); j < Math.floor(bytes.length * 0.6); j += 97) damaged[j] ^= 0x5a;
      for (let k = 1; k < 20; k++) dec.advanceChunk(c, damaged.subarray(0, Math.floor((k * damaged.length) / 20)));
      assertSameLevel(dec.finishChunkInProgress(c, ch), want[i], `${name} ${ch.name} after damaged bytes`);
    } else if (i === 2) {
      // a transfer that stopped: the chunk is given up, then decoded whole when it comes again
      const c = dec.startChunk(ch.offset);
      for (let k = 1; k < 10; k++) dec.advanceChunk(c, bytes.subarray(0, Math.floor((k * bytes.length) / 10)));
      assert.ok(c.steps !== null, "the context model and features were decoded early");
      dec.abandonChunk(c);
      assertSameLevel(dec.decodeChunk(ch), want[i], `${name} ${ch.name} after an abandoned start`);
    } else {
      const c = dec.startChunk(ch.offset);
      dec.advanceChunk(c, bytes.subarray(0, bytes.length - 1));
      assertSameLevel(dec.finishChunkInProgress(c, ch), want[i], `${name} ${ch.name}`);
    }
  }
  // garbage as a chunk's first bytes is not an error until the chunk is complete
  const fresh = new StreamDecoder(head, name);
  const c = fresh.startChunk(lods[0].offset);
  const junk = new Uint8Array(4000).map((_, j) => (j * 131 + 7) & 255);
  for (let k = 1; k <= 8; k++) fresh.advanceChunk(c, junk.subarray(0, k * 500));
  assertSameLevel(fresh.finishChunkInProgress(c, lods[0]), want[0], `${name} LoD 1 after junk`);
});

test("levels decoded outside the WebAssembly memory are decoded once complete", () => {
  const { name, data, head, lods } = streams().find((s) => s.name.startsWith("l4_rule"));
  const whole = new StreamDecoder(head, name);
  const want = lods.map((ch) => whole.decodeChunk(ch));
  setLevelMemoryLimit((level) => (level % 2 ? 0 : 2 ** 30)); // odd levels part by part, in JavaScript
  try {
    const dec = new StreamDecoder(head, name);
    for (const [i, ch] of lods.entries()) {
      const bytes = chunkBytes(data, ch);
      const c = dec.startChunk(ch.offset);
      for (let k = 1; k < 12; k++) dec.advanceChunk(c, bytes.subarray(0, Math.floor((k * bytes.length) / 12)));
      assert.equal(c.steps === null, i % 2 === 0, `${ch.name}: attributes decoded early only in WebAssembly`);
      if (i % 2 === 1) {
        // given up after a level decoded in JavaScript, then decoded whole: what it had of that level is back
        dec.abandonChunk(c);
        assertSameLevel(dec.decodeChunk(ch), want[i], `${name} ${ch.name} after an abandoned start`);
        continue;
      }
      assertSameLevel(dec.finishChunkInProgress(c, ch), want[i], `${name} ${ch.name}`);
    }
  } finally {
    setLevelMemoryLimit(null);
  }
});
