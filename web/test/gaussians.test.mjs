// NeuralGaussians (src/gaussians.ts: the Gaussians the player draws from one camera) against progs'
// own `model.generate(camera, lod=2, cull=False)` (tests/gaussians_fixtures.py writes it next to the
// player fixtures; PROGS_PLAYER_DIR), through the WebAssembly kernels and the JavaScript fallback; and
// the two paths against each other on every level of the committed GPU stream from a few cameras.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { NeuralGaussians, scan, StreamDecoder, useWasm } from "../dist/progs.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const STREAM = join(repo, "benchmarks", "results", "gpu", "h200_fox_6400.progs");
const dir = process.env.PROGS_PLAYER_DIR;
const fixture = dir && existsSync(join(dir, "gaussians.json")) ? JSON.parse(readFileSync(join(dir, "gaussians.json"), "utf8")) : null;
const ARRAYS = { means: 3, scales: 3, quats: 4, opacities: 1, colors: 3 };

function decodeLevels(path) {
  const s = scan(new Uint8Array(readFileSync(path)));
  const dec = new StreamDecoder(s.chunks[0]);
  return { header: dec.header, levels: s.chunks.slice(1).map((ch) => dec.decodeChunk(ch)) };
}

/** NeuralGaussians of `levels` with the kernels on or off; every level's Gaussians from `camera`. */
function generate(header, levels, wasm, camera, upTo = levels.length) {
  const avail = useWasm(wasm);
  try {
    const ng = new NeuralGaussians(header);
    assert.equal(ng.usesWasm, wasm && avail);
    for (const lv of levels) ng.addLevel(lv);
    return Array.from({ length: upTo }, (_, i) => ng.generate(i, camera));
  } finally {
    useWasm(true);
  }
}

function concat(gs) {
  const out = { count: gs.reduce((s, g) => s + g.count, 0) };
  for (const [name, d] of Object.entries(ARRAYS)) {
    const a = new Float32Array(d * out.count);
    let o = 0;
    for (const g of gs) {
      a.set(g[name], o);
      o += g[name].length;
    }
    out[name] = a;
  }
  return out;
}

/** Largest |got − want| / max(1, |want|) per array (the same count required). */
function compare(got, want, tol, what) {
  assert.equal(got.count, want.count, `${what}: Gaussian count`);
  const worst = {};
  for (const name of Object.keys(ARRAYS)) {
    const a = got[name], b = want[name];
    assert.equal(a.length, b.length, `${what}: ${name} length`);
    let w = 0, at = -1;
    for (let i = 0; i < a.length; i++) {
      const e = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]));
      if (!(e <= w)) {
        w = e;
        at = i;
      }
    }
    worst[name] = w;
    assert.ok(w <= tol, `${what}: ${name}[${at}] = ${a[at]}, expected ${b[at]} (error ${w} > ${tol})`);
  }
  return worst;
}

const decoded = existsSync(STREAM) ? decodeLevels(STREAM) : null;

test("NeuralGaussians: WebAssembly SIMD kernels and the JavaScript fallback agree on every level", { skip: !decoded && "no stream" }, (t) => {
  assert.ok(useWasm(true), "WebAssembly SIMD is available here (Node 20)");
  const { header, levels } = decoded;
  const { origin, size } = header.grid;
  const c = origin.map((o) => o + size / 2);
  const cameras = [
    [c[0] + 0.3 * size, c[1] + 0.2 * size, c[2] + 1.5 * size],
    [c[0] - 2 * size, c[1] + 0.1 * size, c[2] - 0.4 * size],
    [c[0] + 0.05 * size, c[1] - 0.1 * size, c[2] + 0.02 * size], // inside the scene
  ];
  for (const cam of cameras) {
    const w = generate(header, levels, true, cam), j = generate(header, levels, false, cam);
    for (let i = 0; i < levels.length; i++) {
      const worst = compare(w[i], j[i], 1e-5, `camera ${cam.map((v) => v.toFixed(2))}, level ${i + 1}`);
      if (i === levels.length - 1) t.diagnostic(`${w[i].count} Gaussians, worst ${JSON.stringify(worst)}`);
    }
  }
});

for (const wasm of [true, false]) {
  test(`NeuralGaussians (${wasm ? "WebAssembly" : "JavaScript"}) = progs' model.generate(lod=${fixture?.lod}, cull=False)`,
    { skip: !fixture && "set PROGS_PLAYER_DIR to tests/gaussians_fixtures.py's output" }, (t) => {
      const { header, levels } = decodeLevels(join(repo, fixture.stream));
      const got = concat(generate(header, levels, wasm, fixture.camera, fixture.lod));
      const want = { count: fixture.count };
      for (const [name, d] of Object.entries(ARRAYS)) {
        const b = readFileSync(join(dir, fixture.files[name]));
        want[name] = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
        assert.equal(want[name].length, d * fixture.count);
      }
      const worst = compare(got, want, 1e-4, wasm ? "WebAssembly" : "JavaScript");
      t.diagnostic(`${got.count} Gaussians, worst ${JSON.stringify(worst)}`);
    });
}
