#!/usr/bin/env node
// Times the JavaScript decoder on a stream: node web/bench/decode.mjs STREAM [--reps N] [--no-wasm]
// Prints JSON: per repetition the seconds of the whole decode, the milliseconds from having the
// header's bytes to having LoD 1's anchors, and each LoD's seconds. Run in a fresh process, so the
// first repetition is the cold one (JIT warm-up and table building included). --no-wasm times the
// JavaScript fallback of the WebAssembly kernels.
import { readFileSync } from "node:fs";
import { scan, StreamDecoder, useWasm } from "../dist/progs.mjs";

const args = process.argv.slice(2);
const path = args[0];
const reps = args.includes("--reps") ? Number(args[args.indexOf("--reps") + 1]) : 3;
useWasm(!args.includes("--no-wasm"));
const data = new Uint8Array(readFileSync(path));
const runs = [];
for (let r = 0; r < reps; r++) {
  const t0 = performance.now();
  const s = scan(data);
  const dec = new StreamDecoder(s.chunks[0]);
  const lods = [];
  let firstMs = null;
  for (const ch of s.chunks.slice(1)) {
    const t = performance.now();
    dec.decodeChunk(ch);
    lods.push((performance.now() - t) / 1000);
    if (firstMs === null) firstMs = performance.now() - t0;
  }
  runs.push({ seconds: (performance.now() - t0) / 1000, header_to_lod1_ms: firstMs, lod_seconds: lods });
}
const anchors = [];
let wasm;
{
  const s = scan(data);
  const dec = new StreamDecoder(s.chunks[0]);
  wasm = dec.context.usesWasm;
  for (const ch of s.chunks.slice(1)) anchors.push(dec.decodeChunk(ch).count);
}
process.stdout.write(JSON.stringify({ node: process.version, wasm, anchors, runs }) + "\n");
