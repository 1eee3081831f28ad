// The WebAssembly SIMD kernels against their JavaScript twins: the exact-math functions and the scale
// bins on edge and random inputs, then whole streams (the conformance fixtures when
// PROGS_CONFORMANCE_DIR is set, and the committed GPU stream) decoded both ways, bit for bit.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { decode, exp, scaleBin, setLevelMemoryLimit, softplus, tanh, useWasm, wasmKernels } from "../dist/progs.mjs";

const bits = (typed) => new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);

function inputs() {
  const xs = [0, -0, 1e-300, -1e-300, 5e-324, 1e-12, 0.5, -0.5, 1, -1, 2.5, 20, -20, 36.7, -36.7, 699.9, 700, 701, -700,
    -701, -745, 1e6, -1e6, 1e300, -1e300, Math.LN2, 0.34657359027997264];
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < 20000; i++) xs.push((rnd() - 0.5) * 2 ** (rnd() * 24 - 12));
  for (let i = 0; i < 2000; i++) xs.push(Math.round((rnd() - 0.5) * 2 ** 20) * 2 ** -12); // on the activation grid
  if (xs.length % 2) xs.push(3);
  return Float64Array.from(xs);
}

test("WebAssembly SIMD is available here (Node 20)", () => {
  assert.ok(useWasm(true));
});

test("exp, softplus, tanh: kernels equal exactmath.ts bit for bit", () => {
  const a = wasmKernels();
  const x = inputs();
  const n = x.length;
  const xp = a.putF64(x);
  const op = a.alloc(8 * 3 * n);
  a.k.mathKernels(xp, n, op);
  const out = a.f64.slice(op >> 3, (op >> 3) + 3 * n);
  const want = new Float64Array(3 * n);
  for (let i = 0; i < n; i++) {
    want[i] = exp(x[i]);
    want[n + i] = softplus(x[i]);
    want[2 * n + i] = tanh(x[i]);
  }
  for (let i = 0; i < 3 * n; i++) if (!Object.is(out[i], want[i])) assert.fail(`${["exp", "softplus", "tanh"][Math.floor(i / n)]}(${x[i % n]}): ${out[i]} != ${want[i]}`);
});

test("scale bins: kernel equals scaleBin", () => {
  const a = wasmKernels();
  const x = inputs().map(Math.abs).map((v) => v || 1e-9);
  const extra = [1e-300, 5e-324, 0.0625, 0.06, 1, 2, 4095.9, 4096, 1e6, 1e300, Infinity, 1.0442737824274138, 1.0442737824274136];
  const all = Float64Array.from([...x, ...extra, ...(extra.length % 2 ? [1] : [])]);
  const sp = a.putF64(all);
  const op = a.alloc(all.length);
  a.k.scaleBins(sp, all.length, op);
  const out = a.u8.slice(op, op + all.length);
  for (let i = 0; i < all.length; i++) assert.equal(out[i], scaleBin(all[i]), `σ = ${all[i]}`);
});

function compareDecodes(data, name) {
  useWasm(false);
  const js = decode(data, { source: name });
  useWasm(true);
  const wa = decode(data, { source: name });
  assert.equal(js.decoder.context.usesWasm, false);
  assert.equal(wa.decoder.context.usesWasm, true);
  assertSameLevels(wa, js, name);
}

/** Two decodes of one stream: the same LoDs, problem and decoded anchors, bit for bit. */
function assertSameLevels(y0, x0, name) {
  assert.equal(y0.lodsDecoded, x0.lodsDecoded);
  assert.equal(y0.problem, x0.problem);
  for (let l = 0; l < x0.lodsDecoded; l++) {
    const x = x0.decoder.levels[l];
    const y = y0.decoder.levels[l];
    for (const k of ["keys", "values", "feature", "scaling", "offsets"]) assert.deepEqual(bits(y[k]), bits(x[k]), `${name} LoD ${l + 1} ${k}`);
    assert.deepEqual(y.hidden, x.hidden, `${name} LoD ${l + 1} hidden`);
  }
}

/** Decodes with each level in the kernels' memory (the default) and with levels alternately decoded
 * part by part (as a level too large for that memory is), which must give the same bits. */
function compareLevelPaths(data, name) {
  const whole = decode(data, { source: name });
  setLevelMemoryLimit((level) => (level % 2 ? 2 ** 30 : 0));
  let parts;
  try {
    parts = decode(data, { source: name });
  } finally {
    setLevelMemoryLimit(null);
  }
  assertSameLevels(parts, whole, name);
}

const gpu = new URL("../../benchmarks/results/gpu/h200_fox_6400.progs", import.meta.url);
test("GPU fox stream: WebAssembly and JavaScript decode the same bits", { skip: !existsSync(gpu) }, () => {
  compareDecodes(new Uint8Array(readFileSync(gpu)), "h200_fox_6400");
});

test("GPU fox stream: levels in the kernels' memory or part by part, the same bits", { skip: !existsSync(gpu) }, () => {
  compareLevelPaths(new Uint8Array(readFileSync(gpu)), "h200_fox_6400");
});

const DIR = process.env.PROGS_CONFORMANCE_DIR;
const names = DIR ? readdirSync(DIR).filter((f) => f.endsWith(".progs")).sort() : [];
for (const name of names) {
  test(`${name}: WebAssembly and JavaScript decode the same bits`, { timeout: 600_000 }, () => {
    compareDecodes(new Uint8Array(readFileSync(join(DIR, name))), name);
  });
}

for (const name of names) {
  test(`${name}: levels in the kernels' memory or part by part, the same bits`, { timeout: 600_000 }, () => {
    compareLevelPaths(new Uint8Array(readFileSync(join(DIR, name))), name);
  });
}
