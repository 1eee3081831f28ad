// FORMAT.md "Range coding": integer frequency tables from weights, and the range decoder
// (64-bit state, 32-bit words, 24-bit frequencies). 64-bit quantities are held as two 32-bit
// halves in doubles, so every operation below is exact.
import { FormatError } from "./errors.js";
import { Arena } from "./wasm.js";

export const PRECISION = 24;
export const TOTAL = 2 ** PRECISION;
const TWO32 = 4294967296;
const MAX_SYMBOLS = 2 ** 22;

/** A table of integer frequencies: symbol s has [cdf[s], cdf[s + 1]), cdf[n] = 2^24. */
export class FrequencyTable {
  readonly n: number;
  readonly cdf: Uint32Array;
  readonly start: Uint32Array; // for each 2^12 bucket of quantiles, the symbol it starts in

  constructor(cdf: Uint32Array) {
    this.cdf = cdf;
    this.n = cdf.length - 1;
    const buckets = 4096;
    this.start = new Uint32Array(buckets + 1);
    let s = 0;
    for (let b = 0; b <= buckets; b++) {
      const q = b * 4096; // first quantile of bucket b
      while (s < this.n - 1 && cdf[s + 1] <= q) s++;
      this.start[b] = s;
    }
  }

  /** The symbol whose interval holds quantile q (0 <= q < 2^24). */
  symbol(q: number): number {
    const cdf = this.cdf;
    const b = q >>> 12;
    let lo = this.start[b];
    let hi = this.start[b + 1];
    if (hi < this.n - 1) hi++;
    // cdf[lo] <= q < cdf[hi + 1]
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (cdf[mid] <= q) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/** The format's rule: S and C_i are sequential float64 sums, k = (2^24 − n) / S,
 * left_i = floor(C_i · k) + i, left_n = 2^24. */
export function frequencies(weights: ArrayLike<number>): FrequencyTable {
  const n = weights.length;
  if (n < 2 || n >= MAX_SYMBOLS) throw new FormatError(`a frequency table needs 2..2^22 weights, got ${n}`);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i];
    if (!(w >= 0) || !Number.isFinite(w)) throw new FormatError("a frequency table needs finite non-negative weights");
    total += w;
  }
  if (!(total > 0)) throw new FormatError("a frequency table needs a positive weight");
  const k = (TOTAL - n) / total;
  const cdf = new Uint32Array(n + 1);
  let c = 0;
  for (let i = 0; i < n; i++) {
    cdf[i] = Math.floor(c * k) + i;
    c += weights[i];
  }
  cdf[n] = TOTAL;
  return new FrequencyTable(cdf);
}

export function uniform(n: number): FrequencyTable {
  return frequencies(new Float64Array(n).fill(1));
}

/** The range decoder of one stream of u32 words. It keeps D = point − lower and the range R,
 * each as high and low 32-bit halves. */
export class RangeDecoder {
  private dh: number;
  private dl: number;
  private rh = TWO32 - 1;
  private rl = TWO32 - 1;
  private next: number;
  private hi = 0; // scratch results of mul()
  private lo = 0;

  constructor(private readonly words: Uint32Array) {
    this.dh = words.length > 0 ? words[0] : 0;
    this.dl = words.length > 1 ? words[1] : 0;
    this.next = 2;
  }

  /** hi:lo = a · b for a < 2^40, b <= 2^24 (the product is below 2^64). */
  private mul(a: number, b: number): void {
    const ah = Math.floor(a / 16777216);
    const al = a - ah * 16777216;
    const x = al * b; // < 2^48
    const y = ah * b; // < 2^40
    const yh = Math.floor(y / 256);
    const s = (y - yh * 256) * 16777216 + x; // < 2^49
    const carry = Math.floor(s / TWO32);
    this.lo = s - carry * TWO32;
    this.hi = yh + carry;
  }

  /** Decodes one symbol of `table`; a quantile outside the table is corrupt data. */
  decode(table: FrequencyTable): number {
    const scale = this.rh * 256 + (this.rl >>> 24); // R >> 24, below 2^40
    let q = Math.floor((this.dh * TWO32 + this.dl) / scale);
    if (q > TOTAL) throw new FormatError("invalid range-coder data");
    // exact remainder D − q·scale, correcting q where the float quotient was off by one
    this.mul(scale, q);
    let remh = this.dh - this.hi;
    let reml = this.dl - this.lo;
    if (reml < 0) {
      reml += TWO32;
      remh -= 1;
    }
    let rem = remh * TWO32 + reml; // exact: |D − q·scale| is below 2^41 here
    if (rem < 0) {
      q -= 1;
      rem += scale;
    } else if (rem >= scale) {
      q += 1;
      rem -= scale;
    }
    if (rem < 0 || rem >= scale) throw new FormatError("invalid range-coder data");
    if (q >= TOTAL) throw new FormatError("invalid range-coder data");
    const s = table.symbol(q);
    const left = table.cdf[s];
    const freq = table.cdf[s + 1] - left;
    // D = rem + scale · (q − left); R = scale · freq
    this.mul(scale, q - left);
    let dl = this.lo + (rem % TWO32);
    let dh = this.hi + Math.floor(rem / TWO32);
    if (dl >= TWO32) {
      dl -= TWO32;
      dh += 1;
    }
    this.mul(scale, freq);
    if (this.hi === 0) {
      // R < 2^32: shift in the next word (D < R, so its high half is 0)
      this.rh = this.lo;
      this.rl = 0;
      this.dh = dl;
      this.dl = this.next < this.words.length ? this.words[this.next] : 0;
      this.next++;
    } else {
      this.rh = this.hi;
      this.rl = this.lo;
      this.dh = dh;
      this.dl = dl;
    }
    return s;
  }
}

/** `count` symbols coded block-adaptively: blocks of 64, 128, 256, … symbols, block k with the table
 * of the symbol counts of blocks 0..k−1 plus one (the occupancy bytes, the hidden-Gaussian mask). */
export function decodeAdaptive(dec: RangeDecoder, count: number, nSymbols: number): Uint8Array {
  const out = new Uint8Array(count);
  const counts = new Float64Array(nSymbols).fill(1);
  for (let s = 0, size = 64; s < count; s += size, size *= 2) {
    const e = Math.min(count, s + size);
    const table = frequencies(counts);
    for (let i = s; i < e; i++) out[i] = dec.decode(table);
    for (let i = s; i < e; i++) counts[out[i]] += 1;
  }
  return out;
}

/** Block-adaptive symbols (decodeAdaptive) from one stream of words, one run after another. */
export interface AdaptiveSource {
  adaptive(count: number, nSymbols: number): Uint8Array;
}

/** The range decoder of `words` for decodeAdaptive runs: in WebAssembly with an arena (which it then
 * holds until its last run), else in JavaScript. */
export function adaptiveSource(words: Uint32Array, a: Arena | null): AdaptiveSource {
  if (!a) {
    const dec = new RangeDecoder(words);
    return { adaptive: (count, nSymbols) => decodeAdaptive(dec, count, nSymbols) };
  }
  a.reset();
  a.k.rdStart(a.putU32(words), words.length);
  const base = a.at;
  return {
    adaptive(count: number, nSymbols: number): Uint8Array {
      a.rewind(base);
      const out = a.alloc(count);
      const counts = a.alloc(8 * nSymbols);
      const cdf = a.alloc(4 * (nSymbols + 1));
      const start = a.alloc(4 * 4097);
      if (a.k.adaptive(count, nSymbols, out, counts, cdf, start) < 0) throw new FormatError("invalid range-coder data");
      return a.u8.slice(out, out + count);
    },
  };
}

/** `count` symbols of one table (values below 256) from a stream of words, in WebAssembly with an arena. */
export function decodeRun(words: Uint32Array, table: FrequencyTable, count: number, a: Arena | null): Uint8Array {
  if (!a || table.n > 256) {
    const out = new Uint8Array(count);
    const dec = new RangeDecoder(words);
    for (let i = 0; i < count; i++) out[i] = dec.decode(table);
    return out;
  }
  a.reset();
  a.k.rdStart(a.putU32(words), words.length);
  const cdf = a.putU32(table.cdf);
  const start = a.putU32(table.start);
  const out = a.alloc(count);
  if (a.k.decodeRun(count, cdf, start, table.n, out) < 0) throw new FormatError("invalid range-coder data");
  return a.u8.slice(out, out + count);
}
