// The WebAssembly SIMD kernels (web/wasm/kernels.ts, embedded in the bundle at build time) and the
// memory each user lays out in its own instance. Compiled synchronously on first use; where
// WebAssembly SIMD is unavailable (or synchronous compilation is refused, as on a browser's main
// thread for modules this size), `kernels()` gives null and the decoder runs its JavaScript twins,
// which give the same bits.
import wasmBytes from "../dist/kernels.wasm";

export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  scaleBins(sigma: number, n: number, out: number): void;
  mathKernels(x: number, n: number, out: number): void;
  grid3(table: number, T: number, dim: number, res: number, pos: number, n: number, out: number, F: number, o: number,
        q16: number, Fe: number): void;
  grid2(table: number, T: number, dim: number, res: number, pos: number, n: number, a0: number, a1: number, out: number,
        F: number, o: number, q16: number, Fe: number): void;
  layer1(h: number, n: number, F: number, w: number, Hp: number, terms: number, H: number, parent: number, bias: number,
         act: boolean, out: number): void;
  layer1i(hq: number, n: number, Fe: number, wq: number, Hp: number, scale: number, terms: number, H: number,
          parent: number, bias: number, act: boolean, out: number): void;
  heads(hid: number, n: number, Hp: number, Hd: number, Hq: number, w2: number, Dp2: number, b2: number, w2q: number,
        b2q: number, q0: number, types: number, D: number, dloc: number, iq: number, mean: number, bins: number,
        step: number, withBins: boolean): void;
  buckets(feat: number, keys: number, n: number, F: number, Hp: number, K: number, Kp: number, w1f: number, lvl: number,
          wv: number, w2: number, b2: number, cams: number, nc: number, geo: number, fixed: number, hbuf: number,
          on: number, hi: number, out: number): void;
  predict(n: number, D: number, types: number, pred: number, mean: number, step: number, prev: number, parent: number,
          qs: number, iq: number, shift: number, bins: number): void;
  rdStart(words: number, n: number): void;
  decodeRun(count: number, cdf: number, start: number, nsym: number, out: number): number;
  adaptive(count: number, nsym: number, out: number, counts: number, cdf: number, start: number): number;
  rdDecode(cdf: number, start: number, nsym: number): number;
  countCols(bins: number, n: number, D: number, off: number, len: number, counts: number): void;
  groupCols(bins: number, n: number, D: number, off: number, len: number, counts: number, fill: number, order: number): void;
  countIdx(bins: number, idx: number, m: number, counts: number): void;
  groupIdx(bins: number, idx: number, m: number, counts: number, fill: number, order: number): void;
  dequant(n: number, D: number, F: number, K: number, types: number, types8: number, symbols: number, shift: number, mean: number,
          step: number, hidden: number, values: number, feature: number, scaling: number, offsets: number): void;
  decodeBin(order: number, k0: number, k1: number, cdf: number, start: number, nsym: number, T: number, out: number,
            esc: number, ne: number): number;
  gaussFixed(feat: number, n: number, F: number, w: number, W: number, bias: number, out: number): void;
  expf32(x: number, n: number, out: number): void;
  gaussGenerate(n: number, fixed: number, W: number, Hp: number, wv: number, pos: number, cx: number, cy: number,
                cz: number, distScale: number, wo: number, bo: number, Ko: number, K: number, w2: number, b2: number,
                offs: number, scl: number, hid: number, raw: number, means: number, scales: number, quats: number,
                opac: number, colors: number): number;
}

let enabled = true;
let compiled: WebAssembly.Module | null | undefined;

/** Turns the WebAssembly kernels off (false) or back on for decoders created afterwards (tests,
 * benchmarks); returns whether they are available. */
export function useWasm(on: boolean): boolean {
  enabled = on;
  return kernelModule() !== null;
}

function kernelModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null;
    try {
      if (typeof WebAssembly === "object" && WebAssembly.validate(wasmBytes)) compiled = new WebAssembly.Module(wasmBytes);
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** A fresh instance (its own memory), or null when the JavaScript path must run. */
export function kernels(): Arena | null {
  if (!enabled) return null;
  const m = kernelModule();
  if (!m) return null;
  try {
    return new Arena(new WebAssembly.Instance(m, {}).exports as unknown as KernelExports);
  } catch {
    return null;
  }
}

/** Bump allocation in an instance's memory: `keep()` marks the permanent part (weights), `reset()`
 * frees everything after it. Views are refreshed whenever the memory grows. */
export class Arena {
  private top: number;
  private mark: number;
  private floor: number; // = mark, or the end of a held level's data
  private buf: ArrayBuffer | null = null;
  private f64v!: Float64Array;
  private i32v!: Int32Array;
  private u8v!: Uint8Array;
  private f32v!: Float32Array;

  constructor(readonly k: KernelExports) {
    this.top = this.mark = this.floor = k.heapBase();
  }

  alloc(bytes: number): number {
    const p = (this.top + 15) & ~15;
    this.top = p + bytes + 16; // 16 bytes of slack: kernels may touch one lane past an odd end
    const need = this.top - this.k.memory.buffer.byteLength;
    if (need > 0) this.k.memory.grow(Math.ceil(need / 65536));
    return p;
  }

  /** Makes everything allocated so far permanent. */
  keep(): void {
    if (this.floor !== this.mark) throw new Error("keep() while a level's data is held");
    this.mark = this.floor = this.top;
  }

  /** Frees everything after the permanent part and a held level's data. */
  reset(): void {
    this.top = this.floor;
  }

  /** Keeps what was allocated since the last reset (a level's data) through later resets, until
   * releaseLevel(). */
  holdLevel(): void {
    this.floor = this.top;
  }

  releaseLevel(): void {
    this.floor = this.top = this.mark;
  }


  /** Where the next allocation goes; `rewind(at)` frees everything allocated since. */
  get at(): number {
    return this.top;
  }

  rewind(at: number): void {
    this.top = at;
  }

  private views(): void {
    const b = this.k.memory.buffer;
    if (b !== this.buf) {
      this.buf = b;
      this.f64v = new Float64Array(b);
      this.i32v = new Int32Array(b);
      this.u8v = new Uint8Array(b);
      this.f32v = new Float32Array(b);
    }
  }

  get f64(): Float64Array {
    this.views();
    return this.f64v;
  }

  get i32(): Int32Array {
    this.views();
    return this.i32v;
  }

  get u8(): Uint8Array {
    this.views();
    return this.u8v;
  }

  get f32(): Float32Array {
    this.views();
    return this.f32v;
  }

  /** Copies the float32 `a` in; returns its address. */
  putF32(a: Float32Array): number {
    const p = this.alloc(4 * a.length);
    this.f32.set(a, p >> 2);
    return p;
  }

  /** Copies `a` (or its first `n` elements) in; returns its address. */
  putF64(a: ArrayLike<number>, n = a.length, extra = 0): number {
    const p = this.alloc(8 * (n + extra));
    const v = this.f64;
    if (a instanceof Float64Array) v.set(n === a.length ? a : a.subarray(0, n), p >> 3);
    else for (let i = 0; i < n; i++) v[(p >> 3) + i] = a[i];
    return p;
  }

  putU32(a: Uint32Array): number {
    const p = this.alloc(4 * a.length);
    new Uint32Array(this.k.memory.buffer, p, a.length).set(a);
    return p;
  }

  putI32(a: Int32Array): number {
    const p = this.alloc(4 * a.length);
    this.i32.set(a, p >> 2);
    return p;
  }

  putI16(a: Int16Array): number {
    const p = this.alloc(2 * a.length);
    new Int16Array(this.k.memory.buffer, p, a.length).set(a);
    return p;
  }

  putU8(a: Uint8Array): number {
    const p = this.alloc(a.length);
    this.u8.set(a, p);
    return p;
  }
}

/** n rounded up to a multiple of m. */
export function padTo(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}
