// Parts of the format checked on their own: the scale-bin shortcut against the definition, the
// frequency-table rule's invariants.
import assert from "node:assert/strict";
import { test } from "node:test";
import { frequencies, scaleBin, scaleBinBySearch, SCALE_THRESHOLDS } from "../dist/progs.mjs";

function neighbours(x) {
  const f = new Float64Array([x]);
  const u = new BigUint64Array(f.buffer);
  const out = [x];
  for (const d of [-1n, 1n]) {
    u[0] += d;
    out.push(f[0]);
    u[0] -= d;
  }
  return out;
}

test("the scale bin from exponent and mantissa equals the count of thresholds", () => {
  const xs = [1e-300, 5e-324, 1e-5, 0.06, 1, 2, 3.5, 4095.9, 4096, 1e6, 1e300, Infinity];
  for (const t of SCALE_THRESHOLDS) xs.push(...neighbours(t), ...neighbours(2 * t));
  let s = 12345;
  for (let i = 0; i < 20000; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    xs.push(2 ** ((s / 2 ** 32) * 24 - 8));
  }
  for (const x of xs) assert.equal(scaleBin(x), scaleBinBySearch(x), String(x));
});

test("frequency tables: every symbol >= 1, total 2^24, the rule's left edges", () => {
  for (const w of [[0, 1], [1, 0], [3, 5, 0, 0, 7], Array.from({ length: 5000 }, (_, i) => (i % 7) * 0.25)]) {
    const t = frequencies(w);
    assert.equal(t.cdf[0], 0);
    assert.equal(t.cdf[w.length], 2 ** 24);
    for (let i = 0; i < w.length; i++) assert.ok(t.cdf[i + 1] > t.cdf[i]);
    let c = 0;
    const total = w.reduce((a, b) => a + b, 0);
    const k = (2 ** 24 - w.length) / total;
    for (let i = 0; i < w.length; i++) {
      assert.equal(t.cdf[i], Math.floor(c * k) + i);
      c += w[i];
    }
    for (let q = 0; q < 2 ** 24; q += 4099) {
      const s = t.symbol(q);
      assert.ok(t.cdf[s] <= q && q < t.cdf[s + 1]);
    }
  }
  assert.throws(() => frequencies([0, 0]));
  assert.throws(() => frequencies([1]));
});
