// FORMAT.md "LOD payload", attributes: per scale bin a frequency table over r = −T..T plus escape;
// symbols grouped by bin; escaped residuals in uniform digits.
import { ByteReader } from "./bytes.js";
import { SCALE_BINS } from "./context.js";
import { upperTail } from "./exactmath.js";
import { FormatError } from "./errors.js";
import { FrequencyTable, frequencies, RangeDecoder, uniform } from "./rangecoder.js";
import { Arena } from "./wasm.js";

const MAX_RANGE = 2 ** 20;
const TAIL_SIGMAS = 6.0;
const ESCAPE_PROBABILITY = 2 ** -20;
const MIN_PROBABILITY = 1e-12;
const DIGIT = 4096;

export interface BinTable {
  T: number;
  table: FrequencyTable;
}

const binTables: (BinTable | undefined)[] = [];

/** Bin b's table: weights over r = −T..T then the escape symbol, T = ceil(6 s_b) + 1. */
export function binTable(b: number): BinTable {
  let t = binTables[b];
  if (t) return t;
  const s = SCALE_BINS[b];
  const T = Math.ceil(TAIL_SIGMAS * s) + 1;
  const tail = new Float64Array(T + 1);
  for (let i = 0; i <= T; i++) tail[i] = upperTail((i + 0.5) / s);
  const w = new Float64Array(2 * T + 2);
  for (let i = 0; i < T; i++) {
    let p = tail[i] - tail[i + 1];
    if (p < MIN_PROBABILITY) p = MIN_PROBABILITY;
    w[T + 1 + i] = p; // r = i + 1
    w[T - 1 - i] = p; // r = −(i + 1)
  }
  let centre = 1 - 2 * tail[0];
  if (centre < MIN_PROBABILITY) centre = MIN_PROBABILITY;
  w[T] = centre;
  let escape = 2 * tail[T];
  if (escape < ESCAPE_PROBABILITY) escape = ESCAPE_PROBABILITY;
  w[2 * T + 1] = escape;
  t = { T, table: frequencies(w) };
  binTables[b] = t;
  return t;
}

const uniforms = new Map<number, FrequencyTable>();
function uniformTable(n: number): FrequencyTable {
  let t = uniforms.get(n);
  if (!t) {
    t = uniform(n);
    uniforms.set(n, t);
  }
  return t;
}

/** One stream `R:u32 | words`: the residuals of symbols whose scale bins are `bins` (any order of
 * anchors and channels, flattened), grouped by bin as the format says. With `coder`, the range
 * decoding runs in WebAssembly (same symbols, same errors). */
export function decodeSymbols(r: ByteReader, bins: Uint8Array, coder: Arena | null = null): Float64Array {
  const R = r.u32();
  if (R > MAX_RANGE) throw r.fail(`escaped residual range ${R} exceeds ${MAX_RANGE}`);
  const words = r.words();
  const n = bins.length;
  const out = new Float64Array(n);
  if (n === 0) return out;
  if (words.length === 0) throw r.fail("attribute data is empty");
  if (coder) {
    try {
      decodeWasm(coder, R, words, bins, out);
    } catch (e) {
      throw r.fail(`attribute symbols do not decode (${(e as Error).message})`);
    }
    return out;
  }
  const counts = new Int32Array(256);
  for (let i = 0; i < n; i++) counts[bins[i]]++;
  const start = new Int32Array(256);
  for (let b = 1; b < 256; b++) start[b] = start[b - 1] + counts[b - 1];
  const order = new Int32Array(n); // stable: index order within a bin
  const fill = start.slice();
  for (let i = 0; i < n; i++) order[fill[bins[i]]++] = i;
  const escaped: number[] = [];
  try {
    const dec = new RangeDecoder(words);
    for (let b = 0; b < 256; b++) {
      const c = counts[b];
      if (!c) continue;
      if (b >= SCALE_BINS.length) throw new FormatError(`scale bin ${b} out of range`);
      const { T, table } = binTable(b);
      const esc = 2 * T + 1;
      for (let k = start[b], e = start[b] + c; k < e; k++) {
        const s = dec.decode(table);
        const i = order[k];
        if (s === esc) {
          escaped.push(i);
          out[i] = 0;
        } else out[i] = s - T;
      }
    }
    if (escaped.length) {
      if (R === 0) throw new FormatError("escaped residuals but no escape range");
      escaped.sort((a, b) => a - b);
      const size = 2 * R + 1;
      const high = size <= DIGIT ? null : uniformTable(Math.floor((2 * R) / DIGIT) + 1);
      const low = uniformTable(size <= DIGIT ? size : DIGIT);
      for (const i of escaped) {
        const v = high ? dec.decode(high) * DIGIT + dec.decode(low) : dec.decode(low);
        if (Math.abs(v - R) > R) throw new FormatError("escaped residual outside its announced range");
        out[i] = v - R;
      }
    }
  } catch (e) {
    throw r.fail(`attribute symbols do not decode (${(e as Error).message})`);
  }
  return out;
}

/** A table's cdf and bucket starts, copied into the arena for one call (a few kB per table; a level's
 * data sits above the permanent part, so nothing can be added to it). */
function tableIn(a: Arena, t: FrequencyTable): number[] {
  return [a.putU32(t.cdf), a.putU32(t.start)];
}

function escapeTables(R: number): [FrequencyTable | null, FrequencyTable] {
  const size = 2 * R + 1;
  return [size <= DIGIT ? null : uniformTable(Math.floor((2 * R) / DIGIT) + 1), uniformTable(size <= DIGIT ? size : DIGIT)];
}

/** Symbols per kernel call. */
const SLICE = 65536;

function decodeWasm(a: Arena, R: number, words: Uint32Array, bins: Uint8Array, out: Float64Array): void {
  const n = bins.length;
  a.reset();
  const bp = a.putU8(bins);
  const op = a.alloc(8 * n);
  a.holdLevel(); // (the tables go after this call's data)
  try {
    decodeAt(a, R, words, bp, { n, D: 1, off: 0, len: 1 }, n, op);
    out.set(a.f64.subarray(op >> 3, (op >> 3) + n));
  } finally {
    a.releaseLevel();
  }
}

/** Which symbols of a level's bins [n, D] a stream holds: the channels off..off + len of every anchor,
 * or the (ascending) indices idx. */
export type SymbolSelection = { n: number; D: number; off: number; len: number } | Int32Array;

/** decodeSymbols for a level whose data an arena holds (Arena.holdLevel): the bins are at address
 * `bins` [n, D] and each decoded residual goes to the float64 array at `out` under its index there. */
export function decodeSymbolsAt(r: ByteReader, a: Arena, bins: number, sel: SymbolSelection, out: number): void {
  const R = r.u32();
  if (R > MAX_RANGE) throw r.fail(`escaped residual range ${R} exceeds ${MAX_RANGE}`);
  const words = r.words();
  const m = sel instanceof Int32Array ? sel.length : sel.n * sel.len;
  if (m === 0) return;
  if (words.length === 0) throw r.fail("attribute data is empty");
  try {
    decodeAt(a, R, words, bins, sel, m, out);
  } catch (e) {
    throw r.fail(`attribute symbols do not decode (${(e as Error).message})`);
  }
}

function decodeAt(a: Arena, R: number, words: Uint32Array, bins: number, sel: SymbolSelection, m: number, out: number): void {
  a.reset();
  const cp = a.alloc(1024);
  const idx = sel instanceof Int32Array ? a.putI32(sel) : 0;
  if (sel instanceof Int32Array) a.k.countIdx(bins, idx, m, cp);
  else a.k.countCols(bins, sel.n, sel.D, sel.off, sel.len, cp);
  const counts = a.i32.slice(cp >> 2, (cp >> 2) + 256);
  const tabs: number[][] = [];
  for (let b = 0; b < 256; b++) {
    if (!counts[b]) continue;
    if (b >= SCALE_BINS.length) throw new FormatError(`scale bin ${b} out of range`);
    const { T, table } = binTable(b);
    tabs[b] = [...tableIn(a, table), table.n, T];
  }
  const esc = R ? escapeTables(R) : null;
  const escPtrs = esc ? esc.map((t) => (t ? tableIn(a, t) : [0, 0])) : null;
  const order = a.alloc(4 * m);
  const fill = a.alloc(1024);
  if (sel instanceof Int32Array) a.k.groupIdx(bins, idx, m, cp, fill, order);
  else a.k.groupCols(bins, sel.n, sel.D, sel.off, sel.len, cp, fill, order);
  const ep = a.alloc(4 * m);
  a.k.rdStart(a.putU32(words), words.length);
  let ne = 0;
  for (let b = 0, k = 0; b < 256; k += counts[b++]) {
    if (!counts[b]) continue;
    const [cdf, start, nsym, T] = tabs[b];
    for (let k0 = k, end = k + counts[b]; k0 < end; k0 += SLICE) {
      ne = a.k.decodeBin(order, k0, Math.min(end, k0 + SLICE), cdf, start, nsym, T, out, ep, ne);
      if (ne < 0) throw new FormatError("invalid range-coder data");
    }
  }
  if (!ne) return;
  if (!esc || !escPtrs) throw new FormatError("escaped residuals but no escape range");
  const escaped = a.i32.slice(ep >> 2, (ep >> 2) + ne).sort();
  const sym = (t: FrequencyTable, p: number[]) => {
    const s = a.k.rdDecode(p[0], p[1], t.n);
    if (s < 0) throw new FormatError("invalid range-coder data");
    return s;
  };
  const [high, low] = esc;
  const o = out >> 3;
  for (const i of escaped) {
    const v = high ? sym(high, escPtrs[0]) * DIGIT + sym(low, escPtrs[1]) : sym(low, escPtrs[1]);
    if (Math.abs(v - R) > R) throw new FormatError("escaped residual outside its announced range");
    a.f64[o + i] = v - R;
  }
}
