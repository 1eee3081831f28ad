#!/usr/bin/env node
// Times the JavaScript decoder on a stream: node web/bench/decode.mjs STREAM [--reps N] [--no-wasm] [--threads 2]
// Prints JSON: per repetition the seconds of the whole decode, the milliseconds from having the
// header's bytes to having LoD 1's anchors, and each LoD's seconds. Run in a fresh process, so the
// first repetition is the cold one (JIT warm-up and table building included). --no-wasm times the
// JavaScript fallback of the WebAssembly kernels; --threads 2 the ParallelStreamDecoder (the context
// model on a worker thread, started once: its start-up is in the cold repetition).
import { readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { ParallelStreamDecoder, scan, StreamDecoder, useWasm } from "../dist/progs.mjs";

const args = process.argv.slice(2);
const path = args[0];
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const reps = opt("--reps", 3);
const threads = opt("--threads", 1);
useWasm(!args.includes("--no-wasm"));
const data = new Uint8Array(readFileSync(path));
let worker = null;
let thread = null;
const runs = [];
for (let r = 0; r < reps; r++) {
  const t0 = performance.now();
  const s = scan(data);
  const lods = [];
  let firstMs = null;
  let t = performance.now();
  const onLevel = () => {
    const now = performance.now();
    lods.push((now - t) / 1000);
    t = now;
    if (firstMs === null) firstMs = now - t0;
  };
  if (threads > 1) {
    if (!worker) {
      worker = new Worker(new URL("../dist/progs-context-worker.mjs", import.meta.url));
      let handler = null;
      worker.on("message", (m) => handler?.(m));
      thread = { post: (m, transfer) => worker.postMessage(m, transfer), onMessage: (h) => (handler = h) };
    }
    const dec = new ParallelStreamDecoder(s.chunks[0], thread);
    t = performance.now();
    await dec.decodeChunks(s.chunks.slice(1), onLevel);
  } else {
    const dec = new StreamDecoder(s.chunks[0]);
    t = performance.now();
    for (const ch of s.chunks.slice(1)) {
      dec.decodeChunk(ch);
      onLevel();
    }
  }
  runs.push({ seconds: (performance.now() - t0) / 1000, header_to_lod1_ms: firstMs, lod_seconds: lods });
}
await worker?.terminate();
const anchors = [];
let wasm;
{
  const s = scan(data);
  const dec = new StreamDecoder(s.chunks[0]);
  wasm = dec.context.usesWasm;
  for (const ch of s.chunks.slice(1)) anchors.push(dec.decodeChunk(ch).count);
}
process.stdout.write(JSON.stringify({ node: process.version, wasm, threads, anchors, runs }) + "\n");
