#!/usr/bin/env node
// Times NeuralGaussians (the player's per-camera Gaussians) on a stream:
//   node web/bench/gaussians.mjs STREAM [--reps N] [--no-wasm]
// Decodes the stream once, then per repetition builds a NeuralGaussians, adds every level and
// generates every level from a camera outside the scene (milliseconds of each, summed over levels).
// Prints JSON. --no-wasm times the JavaScript fallback of the WebAssembly kernels.
import { readFileSync } from "node:fs";
import { NeuralGaussians, scan, StreamDecoder, useWasm } from "../dist/progs.mjs";

const args = process.argv.slice(2);
const path = args[0];
const reps = args.includes("--reps") ? Number(args[args.indexOf("--reps") + 1]) : 5;
useWasm(!args.includes("--no-wasm"));
const data = new Uint8Array(readFileSync(path));
const s = scan(data);
const dec = new StreamDecoder(s.chunks[0]);
const levels = s.chunks.slice(1).map((ch) => dec.decodeChunk(ch));
const grid = dec.header.grid;
const c = grid.origin.map((o) => o + grid.size / 2);
const camera = [c[0] + 0.3 * grid.size, c[1] + 0.2 * grid.size, c[2] + 1.5 * grid.size];
const runs = [];
let counts, wasm;
for (let r = 0; r < reps; r++) {
  const t0 = performance.now();
  const ng = new NeuralGaussians(dec.header);
  wasm = ng.usesWasm;
  for (const lv of levels) ng.addLevel(lv);
  const t1 = performance.now();
  counts = [];
  for (let i = 0; i < ng.levels; i++) counts.push(ng.generate(i, camera).count);
  const t2 = performance.now();
  runs.push({ add_level_ms: t1 - t0, generate_ms: t2 - t1 });
}
const best = (k) => Math.min(...runs.map((x) => x[k]));
process.stdout.write(JSON.stringify({
  node: process.version, wasm, anchors: levels.map((l) => l.count), gaussians: counts,
  best_add_level_ms: best("add_level_ms"), best_generate_ms: best("generate_ms"), runs,
}) + "\n");
