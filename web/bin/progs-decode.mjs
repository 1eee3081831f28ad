#!/usr/bin/env node
// progs-decode STREAM [--lod K] [--anchors OUT.json] [--ply OUT.ply]: decode a progs stream with the
// JavaScript decoder; --ply writes the LoD's plain 3D Gaussians (SH degree 3) as an INRIA PLY.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { decode, FormatError, splatsToPly, toSplats } from "../dist/progs.mjs";

const USAGE = "usage: progs-decode STREAM [--lod K] [--anchors OUT.json] [--ply OUT.ply]";

function fail(message) {
  process.stderr.write(`progs-decode: ${message}\n`);
  process.exit(2);
}

function parse(argv) {
  const out = { stream: null, lod: undefined, anchors: null, ply: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--lod" || a === "--anchors" || a === "--ply") {
      const v = argv[++i];
      if (v === undefined) fail(`${a} needs a value\n${USAGE}`);
      if (a === "--lod") {
        if (!/^\d+$/.test(v) || Number(v) < 1) fail(`--lod must be a whole number >= 1, got ${v}`);
        out.lod = Number(v);
      } else if (a === "--anchors") out.anchors = v;
      else out.ply = v;
    } else if (a === "-h" || a === "--help") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (a.startsWith("-")) fail(`unknown option ${a}\n${USAGE}`);
    else if (out.stream === null) out.stream = a;
    else fail(`unexpected argument ${a}\n${USAGE}`);
  }
  if (out.stream === null) fail(USAGE);
  return out;
}

function writeAtomic(path, data) {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    fail(`${path}: cannot write (${e.code ?? e.message})`);
  }
}

/** float32 values as the shortest decimal that parses back to the same float32. */
function f32(arr) {
  return Array.from(arr, (v) => {
    for (let p = 1; p <= 9; p++) {
      const s = v.toPrecision(p);
      if (Math.fround(Number(s)) === v) return Number(s);
    }
    return v;
  });
}

const args = parse(process.argv.slice(2));
let data;
try {
  data = new Uint8Array(readFileSync(args.stream));
} catch (e) {
  fail(`${args.stream}: cannot read (${e.code ?? e.message})`);
}
let result;
try {
  result = decode(data, { maxLod: args.lod, source: basename(args.stream) });
} catch (e) {
  if (e instanceof FormatError) fail(e.message);
  fail(`${args.stream}: ${e.message}`);
}
const { decoder, lodsDecoded, lodsInStream, problem } = result;
if (problem) process.stderr.write(`warning: ${problem}; decoded LoD ${lodsDecoded} of ${lodsInStream}\n`);
const anchors = decoder.levels.reduce((a, l) => a + l.count, 0);
process.stdout.write(`${args.stream}: LoD ${lodsDecoded} of ${lodsInStream}, ${anchors} anchors, header ${decoder.headerBytes} bytes\n`);
if (args.anchors) {
  const cat = (key) => decoder.levels.flatMap((l) => Array.from(l[key]));
  const out = {
    lods: lodsDecoded,
    count: anchors,
    keys: cat("keys"),
    levels: decoder.levels.flatMap((l) => new Array(l.count).fill(l.level)),
    feature: f32(decoder.levels.flatMap((l) => Array.from(l.feature))),
    scaling: f32(decoder.levels.flatMap((l) => Array.from(l.scaling))),
    offsets: f32(decoder.levels.flatMap((l) => Array.from(l.offsets))),
    hidden: decoder.header.skipHidden ? cat("hidden") : null,
  };
  writeAtomic(args.anchors, JSON.stringify(out));
}
if (args.ply) {
  const splats = toSplats(decoder, lodsDecoded);
  writeAtomic(args.ply, splatsToPly(splats));
  process.stdout.write(`${args.ply}: ${splats.count} Gaussians (LoD ${lodsDecoded})\n`);
}
