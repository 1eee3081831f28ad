// FORMAT.md "The entropy model's exact path": hash-grid features, the context MLPs in exact
// float64 arithmetic, and each anchor's coding parameters (mean, scale bin, step).
import { exp, pow2, roundEven, softplus, tanh } from "./exactmath.js";
import { Arena, kernels, padTo } from "./wasm.js";

export interface ContextConfig {
  levels3d: number;
  res3d: [number, number];
  levels2d: number;
  res2d: [number, number];
  dim: number;
  log2Table3d: number;
  log2Table2d: number;
  hidden: number;
  qHidden: number;
  attrDims: [number, number, number];
  numLevels: number;
  q0: [number, number, number];
}

export function featureDim(c: ContextConfig): number {
  return c.dim * (c.levels3d + 3 * c.levels2d);
}

export function gridTableSizes(c: ContextConfig): [number, number] {
  return [c.levels3d * 2 ** c.log2Table3d * c.dim, c.levels2d * 3 * 2 ** c.log2Table2d * c.dim];
}

/** floor(lo · g^i + 1e-9), g = (hi / lo)^(1 / (n − 1)). */
export function resolutions(n: number, [lo, hi]: [number, number]): number[] {
  if (n === 1) return [lo];
  const g = (hi / lo) ** (1 / (n - 1));
  return Array.from({ length: n }, (_, i) => Math.floor(lo * g ** i + 1e-9));
}

// --------------------------------------------------------------------------- scale bins
export const OCTAVE_STEPS = [1.0, 1.0905077326652577, 1.189207115002721, 1.2968395546510096, 1.4142135623730951,
  1.5422108254079407, 1.681792830507429, 1.8340080864093424];
export const OCTAVE_THRESHOLDS = [1.0442737824274138, 1.1387886347566916, 1.241857812073484, 1.3542555469368927,
  1.4768261459394993, 1.6104903319492543, 1.7562521603732995, 1.9152065613971474];
export const NUM_SCALE_BINS = 128;
/** s_b = 2^(⌊b/8⌋ − 4) · S[b mod 8] */
export const SCALE_BINS = Float64Array.from({ length: NUM_SCALE_BINS }, (_, b) => OCTAVE_STEPS[b % 8] * pow2((b >> 3) - 4));
/** t_k = 2^(⌊k/8⌋ − 4) · M[k mod 8], k = 0..126 */
export const SCALE_THRESHOLDS = Float64Array.from({ length: NUM_SCALE_BINS - 1 }, (_, k) => OCTAVE_THRESHOLDS[k % 8] * pow2((k >> 3) - 4));

const binF64 = new Float64Array(1);
const binU32 = new Uint32Array(binF64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // the high word's index

/** The scale bin of a deviation σ > 0 (symbol units): how many thresholds are <= σ, that is 8 per
 * whole octave of σ's binary exponent above −4, plus the octave thresholds not above its mantissa. */
export function scaleBin(sigma: number): number {
  binF64[0] = sigma;
  const hi = binU32[HI];
  const e = ((hi >>> 20) & 0x7ff) - 1023;
  binU32[HI] = (hi & 0x800fffff) | 0x3ff00000; // the mantissa as a number in [1, 2)
  const m = binF64[0];
  let count = 8 * (e + 4);
  for (let k = 0; k < 8; k++) if (OCTAVE_THRESHOLDS[k] <= m) count++;
  return count < 0 ? 0 : count > NUM_SCALE_BINS - 1 ? NUM_SCALE_BINS - 1 : count;
}

/** The same count by search over the thresholds (for any σ). */
export function scaleBinBySearch(sigma: number): number {
  let lo = 0;
  let hi = SCALE_THRESHOLDS.length; // answer in [lo, hi]
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (SCALE_THRESHOLDS[mid] <= sigma) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// --------------------------------------------------------------------------- the model
const ACT_GRID = 2 ** -12;
const ACT_CLAMP = 2 ** 10;
const LEAKY = 1 / 64;
const MEAN_GRID = 2 ** -10;
const STEP_LEVELS = 4096;
const STEP_BASE = 512;
const STEP_LOG = 2.0794415416798357;
const SCALE_FLOOR = 1e-4;
const P1 = 2654435761 | 0;
const P2 = 805459861;

/** Σ a[ao + i] · b[bo + i], i < len, in four interleaved partial sums. Only for the exact path, where
 * every product and partial sum is exact (FORMAT.md), so the order cannot change a bit. */
export function exactDot(a: Float64Array, ao: number, b: Float64Array, bo: number, len: number): number {
  let v0 = 0, v1 = 0, v2 = 0, v3 = 0;
  let i = 0;
  for (; i + 3 < len; i += 4) {
    v0 += a[ao + i] * b[bo + i];
    v1 += a[ao + i + 1] * b[bo + i + 1];
    v2 += a[ao + i + 2] * b[bo + i + 2];
    v3 += a[ao + i + 3] * b[bo + i + 3];
  }
  for (; i < len; i++) v0 += a[ao + i] * b[bo + i];
  return v0 + v1 + (v2 + v3);
}

/** The kernels' channel-type masks [3, D + 2]: per attribute type, all-ones lanes on its channels. */
export function typeMasks(channelType: Uint8Array): Float64Array {
  const D = channelType.length;
  const masks = new Float64Array(3 * (D + 2));
  const bits = new BigInt64Array(masks.buffer);
  for (let j = 0; j < D; j++) bits[channelType[j] * (D + 2) + j] = -1n;
  return masks;
}

/** Anchors per call of a WebAssembly kernel (bounds its memory). */
export const CHUNK = 4096;

/** Where a level's coding parameters go in the kernels' memory (addresses): mean [n, D], bins u8
 * [n, D], step [n, 3], and shift [n, D] with a parent predictor (else 0). */
export interface LevelPointers {
  mean: number;
  bins: number;
  step: number;
  shift: number;
}

/** The coding parameters of one level's anchors. */
export interface LevelParams {
  n: number;
  mean: Float64Array; // [n, D] symbol units
  bins: Uint8Array; // [n, D]
  step: Float64Array; // [n, 3]
}

export class ContextModel {
  readonly F: number;
  readonly D: number;
  readonly H: number; // Hd + Hq
  private readonly res3: number[];
  private readonly res2: number[];
  private readonly T3: number;
  private readonly T2: number;
  private readonly w1own: Float64Array; // [H, F]: the own-feature half of both first layers
  private readonly w1parent: Float64Array; // [H, F]
  private readonly b1: Float64Array; // [H]
  private readonly w1level: Float64Array; // [numLevels, H]
  private readonly w2d: Float64Array; // [2D, Hd]
  private readonly b2d: Float64Array;
  private readonly w2q: Float64Array; // [Hq, 3]
  private readonly b2q: Float64Array;
  private readonly channelType: Uint8Array;
  private readonly wasm: Arena | null;
  private readonly Hp: number; // H, Dp2: padded to multiples of 8 for the kernels
  private readonly Dp2: number;
  private readonly ptr: Record<string, number> = {};
  private readonly unitExponents: number[]; // per first-layer unit: its tensor's exponent
  private Fe = 0; // the features padded to even, when the first layers run on 16-bit integers (0: float64)

  constructor(readonly cfg: ContextConfig, private readonly grid3: Float64Array, private readonly grid2: Float64Array,
              tensors: Map<string, { values: Float64Array; exponent: number }>, arena: Arena | null = kernels()) {
    const c = cfg;
    this.F = featureDim(c);
    this.D = c.attrDims[0] + c.attrDims[1] + c.attrDims[2];
    this.res3 = resolutions(c.levels3d, c.res3d);
    this.res2 = resolutions(c.levels2d, c.res2d);
    this.T3 = 2 ** c.log2Table3d;
    this.T2 = 2 ** c.log2Table2d;
    const Hd = c.hidden;
    const Hq = c.qHidden;
    const H = (this.H = Hd + Hq);
    const F = this.F;
    const fIn = 2 * F + c.numLevels;
    const t = (name: string) => tensors.get(`context.${name}`)!.values;
    const wd = t("mlp_d.0.weight"); // [Hd, fIn]
    const wq = t("mlp_q.0.weight"); // [Hq, fIn]
    const col = (k: number, j: number) => (k < Hd ? wd[k * fIn + j] : wq[(k - Hd) * fIn + j]);
    this.w1own = new Float64Array(H * F); // [H, F]: each unit's weights contiguous
    this.w1parent = new Float64Array(H * F); // [H, F]
    for (let f = 0; f < F; f++) {
      for (let k = 0; k < H; k++) {
        this.w1own[k * F + f] = col(k, f);
        this.w1parent[k * F + f] = col(k, F + f);
      }
    }
    this.w1level = new Float64Array(c.numLevels * H);
    for (let l = 0; l < c.numLevels; l++) for (let k = 0; k < H; k++) this.w1level[l * H + k] = col(k, 2 * F + l);
    const ed = tensors.get("context.mlp_d.0.weight")!.exponent;
    const eq = tensors.get("context.mlp_q.0.weight")!.exponent;
    this.unitExponents = Array.from({ length: H }, (_, k) => (k < Hd ? ed : eq));
    const bd = t("mlp_d.0.bias");
    const bq = t("mlp_q.0.bias");
    this.b1 = new Float64Array(H);
    for (let k = 0; k < H; k++) this.b1[k] = k < Hd ? bd[k] : bq[k - Hd];
    const D = this.D;
    this.w2d = t("mlp_d.2.weight"); // [2D, Hd]
    this.b2d = t("mlp_d.2.bias");
    const w2q = t("mlp_q.2.weight"); // [3, Hq]
    this.w2q = new Float64Array(Hq * 3);
    for (let k = 0; k < Hq; k++) for (let j = 0; j < 3; j++) this.w2q[k * 3 + j] = w2q[j * Hq + k];
    this.b2q = t("mlp_q.2.bias");
    this.channelType = new Uint8Array(D);
    let j = 0;
    for (let type = 0; type < 3; type++) for (let i = 0; i < c.attrDims[type]; i++) this.channelType[j++] = type;
    this.Hp = padTo(H, 8);
    this.Dp2 = padTo(2 * D, 8);
    // an arena (its own instance by default; a decoder shares one among its parts) runs the kernels
    this.wasm = c.dim % 2 === 0 && H > 0 ? arena : null;
    if (this.wasm) this.layOut(this.wasm);
  }

  /** Whether the WebAssembly kernels run this model. */
  get usesWasm(): boolean {
    return this.wasm !== null;
  }

  /** The kernels' permanent data: grids, transposed and padded weights. */
  private layOut(a: Arena): void {
    const { F, H, D, Hp, Dp2 } = this;
    const Hd = this.cfg.hidden;
    const transpose = (w: Float64Array, rows: number, cols: number, stride: number) => {
      const out = new Float64Array(cols * stride); // out[c, r] = w[r, c]
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * stride + r] = w[r * cols + c];
      return out;
    };
    a.reset(); // after the arena's permanent data so far (a shared arena: the header's scratch goes)
    const p = this.ptr;
    p.grid3 = a.putF64(this.grid3);
    p.grid2 = a.putF64(this.grid2);
    p.w1own = a.putF64(transpose(this.w1own, H, F, Hp));
    p.w1parent = a.putF64(transpose(this.w1parent, H, F, Hp));
    p.w2d = a.putF64(transpose(this.w2d, 2 * D, Hd, Dp2));
    const b2d = new Float64Array(Dp2);
    b2d.set(this.b2d);
    p.b2d = a.putF64(b2d);
    p.w2q = a.putF64(this.w2q);
    p.b2q = a.putF64(this.b2q);
    p.q0 = a.putF64(this.cfg.q0);
    p.types = a.putF64(typeMasks(this.channelType));
    p.zeros = a.putF64(new Float64Array(this.Hp));
    // the first layers' mantissas as 16-bit integers, where every sum of products fits 32 bits (F is
    // even: dim is)
    const Fe = F;
    const units = this.unitExponents;
    let maxM = 0;
    const mant = (w: Float64Array, k: number, f: number) => w[k * F + f] * 2 ** units[k];
    for (let k = 0; k < H; k++) {
      for (let f = 0; f < F; f++) maxM = Math.max(maxM, Math.abs(mant(this.w1own, k, f)), Math.abs(mant(this.w1parent, k, f)));
    }
    if (maxM <= 32767 && Fe * 4096 * maxM < 2 ** 31) {
      const pack = (w: Float64Array) => {
        const out = new Int16Array((Fe / 2) * Hp * 2); // [Fe / 2, Hp / 4, 8]
        for (let f = 0; f < F; f++) {
          for (let k = 0; k < H; k++) out[(f >> 1) * 2 * Hp + (k >> 2) * 8 + 2 * (k & 3) + (f & 1)] = mant(w, k, f);
        }
        return out;
      };
      const scale = new Float64Array(Hp);
      for (let k = 0; k < H; k++) scale[k] = 2 ** -(12 + units[k]);
      p.w1ownI = a.putI16(pack(this.w1own));
      p.w1parentI = a.putI16(pack(this.w1parent));
      p.scale1 = a.putF64(scale);
      this.Fe = Fe;
    }
    a.keep();
  }

  /** Snapped hash-grid features [n, F] of normalised positions pos [n, 3]. */
  features(pos: Float64Array, n: number): Float64Array {
    const F = this.F;
    const dim = this.cfg.dim;
    const out = new Float64Array(n * F);
    const a = this.wasm;
    if (a) {
      const L3 = this.res3.length;
      for (let s = 0; s < n; s += CHUNK) {
        const m = Math.min(CHUNK, n - s);
        a.reset();
        const pp = a.putF64(pos.subarray(3 * s, 3 * (s + m)));
        const op = a.alloc(8 * m * F);
        for (let g = 0; g < L3; g++) a.k.grid3(this.ptr.grid3 + 8 * g * this.T3 * dim, this.T3, dim, this.res3[g], pp, m, op, F, g * dim, 0, 0);
        for (let g = 0; g < this.res2.length; g++) {
          for (let pl = 0; pl < 3; pl++) {
            const t = g * 3 + pl;
            a.k.grid2(this.ptr.grid2 + 8 * t * this.T2 * dim, this.T2, dim, this.res2[g], pp, m, pl === 2 ? 1 : 0, pl === 0 ? 1 : 2,
                      op, F, L3 * dim + t * dim, 0, 0);
          }
        }
        out.set(a.f64.subarray(op >> 3, (op >> 3) + m * F), s * F);
      }
      return out;
    }
    const p2 = new Float64Array(2);
    const p = new Float64Array(3);
    const L3 = this.res3.length;
    for (let i = 0; i < n; i++) {
      p[0] = pos[3 * i];
      p[1] = pos[3 * i + 1];
      p[2] = pos[3 * i + 2];
      const o = i * F;
      for (let g = 0; g < L3; g++) this.interpolate(this.grid3, g * this.T3 * dim, this.T3, p, 3, this.res3[g], out, o + g * dim);
      for (let g = 0; g < this.res2.length; g++) {
        for (let pl = 0; pl < 3; pl++) {
          p2[0] = p[pl === 2 ? 1 : 0];
          p2[1] = p[pl === 0 ? 1 : 2];
          const tIdx = g * 3 + pl;
          this.interpolate(this.grid2, tIdx * this.T2 * dim, this.T2, p2, 2, this.res2[g], out, o + L3 * dim + tIdx * dim);
        }
      }
    }
    return out;
  }

  private readonly w = new Float64Array(6);
  private readonly cidx = new Float64Array(6);

  private interpolate(table: Float64Array, base: number, T: number, p: ArrayLike<number>, d: number, res: number,
                      out: Float64Array, o: number): void {
    const dim = this.cfg.dim;
    const w = this.w;
    const c = this.cidx;
    for (let k = 0; k < d; k++) {
      const x = p[k] * res;
      let b = Math.floor(x);
      if (b < 0) b = 0;
      if (b > res - 1) b = res - 1;
      const frac = x - b;
      w[2 * k] = 1 - frac;
      w[2 * k + 1] = frac;
      c[2 * k] = b;
      c[2 * k + 1] = b + 1;
    }
    const side = res + 1;
    const dense = (d === 3 ? side * side * side : side * side) <= T;
    for (let j = 0; j < dim; j++) out[o + j] = 0;
    for (let corner = 0; corner < 1 << d; corner++) {
      let wc = w[corner & 1];
      for (let k = 1; k < d; k++) wc = wc * w[2 * k + ((corner >> k) & 1)];
      let idx: number;
      if (dense) {
        idx = 0;
        let stride = 1;
        for (let k = 0; k < d; k++) {
          idx = idx + c[2 * k + ((corner >> k) & 1)] * stride;
          stride = stride * side;
        }
      } else {
        let h = c[corner & 1] | 0;
        h ^= Math.imul(c[2 + ((corner >> 1) & 1)], P1);
        if (d === 3) h ^= Math.imul(c[4 + ((corner >> 2) & 1)], P2);
        idx = h & (T - 1);
      }
      const row = base + idx * dim;
      for (let j = 0; j < dim; j++) out[o + j] = out[o + j] + wc * table[row + j];
    }
    for (let j = 0; j < dim; j++) out[o + j] = roundEven(out[o + j] / ACT_GRID) * ACT_GRID;
  }

  /** The first-layer terms [P, H] that the previous level's features h [P, F] contribute as
   * *parents*, for the rows that `parent` names (nobody reads the others: they stay 0, or hold the
   * same terms where the WebAssembly kernels compute every row). */
  parentTerms(h: Float64Array, P: number, parent: Int32Array): Float64Array {
    const F = this.F;
    const H = this.H;
    const out = new Float64Array(P * H);
    const done = new Uint8Array(P);
    const w = this.w1parent;
    const a = this.wasm;
    if (a) {
      // every row (nearly all are parents): one pass, no gathering
      const Hp = this.Hp;
      for (let s = 0; s < P; s += CHUNK) {
        const m = Math.min(CHUNK, P - s);
        a.reset();
        const xp = a.putF64(h.subarray(s * F, (s + m) * F));
        const op = a.alloc(8 * m * Hp);
        a.k.layer1(xp, m, F, this.ptr.w1parent, Hp, 0, H, 0, this.ptr.zeros, false, op);
        const o = a.f64;
        if (Hp === H) out.set(o.subarray(op >> 3, (op >> 3) + m * H), s * H);
        else for (let t = 0; t < m; t++) out.set(o.subarray((op >> 3) + t * Hp, (op >> 3) + t * Hp + H), (s + t) * H);
      }
      return out;
    }
    for (const pi of parent) {
      if (done[pi]) continue;
      done[pi] = 1;
      const ho = pi * F;
      for (let k = 0; k < H; k++) out[pi * H + k] = exactDot(h, ho, w, k * F, F);
    }
    return out;
  }

  /** The first layers' bias at a level: b1 plus the level's one-hot column (a sum of two fixed-point
   * values: exact). */
  private levelBias(level: number): Float64Array {
    const H = this.H;
    const bias = new Float64Array(this.b1);
    if (this.cfg.numLevels) {
      if (!(level >= 1 && level <= this.cfg.numLevels)) throw new Error(`level ${level} is outside the context model's levels`);
      for (let k = 0; k < H; k++) bias[k] = bias[k] + this.w1level[(level - 1) * H + k];
    }
    return bias;
  }

  /** A whole level in WebAssembly, slice by slice of anchors, without the features leaving the
   * kernels' memory: hash-grid features, coding parameters, the parent predictor's shifts and bins
   * (`pred`: its table [4, D + 1] and the previous level's values [P, D]), and, when
   * `wantTerms`, the terms [n, Hp] this level contributes to the next as parents (returned).
   * `prevTerms` [P, Hp] are the previous level's. Results go to the arena's addresses `out`: mean
   * [n, D], bins u8 [n, D], step [n, 3], shift [n, D] (with a predictor), each with one element of
   * slack (the level's data, held by the arena). The same bits as features(), parentTerms(),
   * codingParams() and applyPredictor(); with a predictor the context model's own bins, which it
   * replaces, are skipped (as they are without `withBins`). The coding parameters of the anchors
   * before `paramsFrom` (a multiple of 4096) are left to someone else (their terms are computed). */
  levelWasm(pos: Float64Array, n: number, level: number, prevTerms: Float64Array | null, parent: Int32Array | null,
            pred: { table: Float64Array; values: Float64Array } | null, wantTerms: boolean,
            out: LevelPointers, withBins = pred === null,
            paramsFrom = 0): Float64Array | null {
    const a = this.wasm;
    if (!a) throw new Error("levelWasm needs the WebAssembly kernels");
    const { F, H, D, Hp, Dp2, ptr } = this;
    const dim = this.cfg.dim;
    const L3 = this.res3.length;
    const bias = this.levelBias(level);
    const terms = wantTerms ? new Float64Array(n * Hp) : null;
    a.reset();
    const biasP = a.putF64(bias, H, Hp - H);
    a.f64.fill(0, (biasP >> 3) + H, (biasP >> 3) + Hp);
    const withParents = prevTerms !== null && parent !== null;
    const tp = withParents ? a.putF64(prevTerms) : 0;
    const pp = parent ? a.putI32(parent) : 0;
    const dloc = a.alloc(8 * (Dp2 + 2));
    const iq = a.alloc(8 * (D + 2));
    let predP = 0, typesP = 0, valuesP = 0, qs = 0, iqp = 0;
    if (pred) {
      if (!parent) throw new Error("a parent predictor at a level without parents");
      predP = a.putF64(pred.table);
      typesP = ptr.types;
      valuesP = a.putF64(pred.values);
      qs = a.alloc(8 * (D + 2));
      iqp = a.alloc(8 * (D + 2));
    }
    const Fe = this.Fe;
    const chunks = a.at;
    for (let s = 0; s < n; s += CHUNK) {
      const m = Math.min(CHUNK, n - s);
      a.rewind(chunks);
      const posP = a.putF64(pos.subarray(3 * s, 3 * (s + m)));
      // the features as 16-bit integers for the integer first layers, else as float64
      const h = Fe ? 0 : a.alloc(8 * m * F);
      const hq = Fe ? a.alloc(2 * m * Fe) : 0;
      for (let g = 0; g < L3; g++) {
        a.k.grid3(ptr.grid3 + 8 * g * this.T3 * dim, this.T3, dim, this.res3[g], posP, m, h, F, g * dim, hq, Fe);
      }
      for (let g = 0; g < this.res2.length; g++) {
        for (let pl = 0; pl < 3; pl++) {
          const t = g * 3 + pl;
          a.k.grid2(ptr.grid2 + 8 * t * this.T2 * dim, this.T2, dim, this.res2[g], posP, m, pl === 2 ? 1 : 0, pl === 0 ? 1 : 2,
                    h, F, L3 * dim + t * dim, hq, Fe);
        }
      }
      if (s >= paramsFrom) {
        const hid = a.alloc(8 * m * Hp);
        const rows = withParents ? pp + 4 * s : 0;
        if (Fe) {
          a.k.layer1i(hq, m, Fe, ptr.w1ownI, Hp, ptr.scale1, tp, Hp, rows, biasP, true, hid);
        } else a.k.layer1(h, m, F, ptr.w1own, Hp, tp, Hp, rows, biasP, true, hid);
        const mp = out.mean + 8 * s * D;
        const bp = out.bins + s * D;
        const sp = out.step + 24 * s;
        a.k.heads(hid, m, Hp, this.cfg.hidden, this.cfg.qHidden, ptr.w2d, Dp2, ptr.b2d, ptr.w2q, ptr.b2q, ptr.q0, ptr.types,
                  D, dloc, iq, mp, bp, sp, withBins);
        if (pred) a.k.predict(m, D, typesP, predP, mp, sp, valuesP, pp + 4 * s, qs, iqp, out.shift + 8 * s * D, bp);
      }
      if (terms) {
        const op = a.alloc(8 * m * Hp);
        if (Fe) a.k.layer1i(hq, m, Fe, ptr.w1parentI, Hp, ptr.scale1, 0, H, 0, ptr.zeros, false, op);
        else a.k.layer1(h, m, F, ptr.w1parent, Hp, 0, H, 0, ptr.zeros, false, op);
        terms.set(a.f64.subarray(op >> 3, (op >> 3) + m * Hp), s * Hp);
      }
    }
    return terms;
  }

  /** levelWasm()'s outputs for n anchors, allocated in the arena (mean, bins, step; shift with a
   * parent predictor), each with its element of slack. */
  levelPointers(n: number, withShift: boolean): LevelPointers {
    const a = this.wasm;
    if (!a) throw new Error("levelPointers needs the WebAssembly kernels");
    const D = this.D;
    return {
      mean: a.alloc(8 * (n * D + 1)), bins: a.alloc(n * D + 2), step: a.alloc(24 * n), shift: withShift ? a.alloc(8 * (n * D + 1)) : 0,
    };
  }

  /** levelWasm() without a parent predictor, its results copied out: the coding parameters of the
   * anchors from `from` on (mean, step and, with `withBins`, bins) and, with `wantTerms`, the terms
   * for the next level. */
  params(pos: Float64Array, n: number, level: number, prevTerms: Float64Array | null, parent: Int32Array | null,
         wantTerms: boolean, withBins: boolean, from = 0): { mean: Float64Array; step: Float64Array; bins: Uint8Array | null;
                                                          terms: Float64Array | null } {
    const a = this.wasm;
    if (!a) throw new Error("params needs the WebAssembly kernels");
    const D = this.D;
    a.reset();
    const lp = this.levelPointers(n, false);
    a.holdLevel();
    try {
      const terms = this.levelWasm(pos, n, level, prevTerms, parent, null, wantTerms, lp, withBins, from);
      return {
        mean: a.f64.slice((lp.mean >> 3) + from * D, (lp.mean >> 3) + n * D),
        step: a.f64.slice((lp.step >> 3) + 3 * from, (lp.step >> 3) + 3 * n),
        bins: withBins ? a.u8.slice(lp.bins + from * D, lp.bins + n * D) : null,
        terms,
      };
    } finally {
      a.releaseLevel();
    }
  }

  /** The terms [P, Hp] of parentTerms() in levelWasm()'s layout (rows padded to Hp with zeros). */
  paddedTerms(terms: Float64Array, P: number): Float64Array {
    const { H, Hp } = this;
    if (H === Hp) return terms;
    const out = new Float64Array(P * Hp);
    for (let i = 0; i < P; i++) out.set(terms.subarray(i * H, (i + 1) * H), i * Hp);
    return out;
  }

  /** The address of the channel-type masks in the kernels' memory (predict, dequant). */
  get typesPtr(): number {
    return this.ptr.types;
  }

  /** The first layers' width padded for the kernels (levelWasm()'s rows of terms). */
  get Hpad(): number {
    return this.Hp;
  }

  /** Coding parameters of a level's anchors from their features h [n, F] and their parents'
   * terms (`terms`[parent[i]] rows; null for roots). */
  codingParams(h: Float64Array, n: number, level: number, terms: Float64Array | null, parent: Int32Array | null): LevelParams {
    const F = this.F;
    const H = this.H;
    const D = this.D;
    const Hd = this.cfg.hidden;
    const Hq = this.cfg.qHidden;
    const bias = this.levelBias(level);
    const mean = new Float64Array(n * D);
    const bins = new Uint8Array(n * D);
    const step = new Float64Array(n * 3);
    if (this.wasm) {
      this.codingParamsWasm(this.wasm, h, n, bias, terms, parent, mean, bins, step);
      return { n, mean, bins, step };
    }
    const hid = new Float64Array(H);
    const dloc = new Float64Array(2 * D);
    const q0 = this.cfg.q0;
    const inv = new Float64Array(3);
    const { w1own, w2d, b2d, w2q, b2q, channelType } = this;
    for (let i = 0; i < n; i++) {
      // every product and partial sum below is exact (FORMAT.md), so any summation order gives these bits
      const ho = i * F;
      const to = terms && parent ? parent[i] * H : -1;
      for (let k = 0; k < H; k++) {
        let v = exactDot(h, ho, w1own, k * F, F);
        if (to >= 0) v = v + terms![to + k];
        v = v + bias[k];
        v = v >= 0 ? v : v * LEAKY;
        v = v < -ACT_CLAMP ? -ACT_CLAMP : v > ACT_CLAMP ? ACT_CLAMP : v;
        hid[k] = roundEven(v / ACT_GRID) * ACT_GRID;
      }
      for (let c = 0; c < 2 * D; c++) dloc[c] = b2d[c] + exactDot(hid, 0, w2d, c * Hd, Hd);
      for (let c = 0; c < 3; c++) {
        let t = 0;
        for (let k = 0; k < Hq; k++) t = t + hid[Hd + k] * w2q[k * 3 + c];
        t = t + b2q[c];
        let kk = roundEven(exp(tanh(t) * STEP_LOG) * STEP_BASE);
        if (kk < 1) kk = 1;
        if (kk > STEP_LEVELS) kk = STEP_LEVELS;
        const q = (q0[c] * kk) / STEP_BASE;
        step[i * 3 + c] = q;
        inv[c] = 1 / q;
      }
      for (let j = 0; j < D; j++) {
        const iq = inv[channelType[j]];
        mean[i * D + j] = roundEven(dloc[j] * iq * (1 / MEAN_GRID)) * MEAN_GRID;
        const sigma = (softplus(dloc[D + j]) + SCALE_FLOOR) * iq;
        bins[i * D + j] = scaleBin(sigma);
      }
    }
    return { n, mean, bins, step };
  }

  private codingParamsWasm(a: Arena, h: Float64Array, n: number, bias: Float64Array, terms: Float64Array | null,
                           parent: Int32Array | null, mean: Float64Array, bins: Uint8Array, step: Float64Array): void {
    const { F, H, D, Hp, Dp2, ptr } = this;
    a.reset();
    const biasP = a.putF64(bias, H, Hp - H);
    a.f64.fill(0, (biasP >> 3) + H, (biasP >> 3) + Hp);
    const tp = terms && parent ? a.putF64(terms, terms.length, Hp - H) : 0;
    const pp = terms && parent ? a.putI32(parent) : 0;
    const chunks = a.at;
    for (let s = 0; s < n; s += CHUNK) {
      const m = Math.min(CHUNK, n - s);
      a.rewind(chunks);
      const hp = a.putF64(h.subarray(s * F, (s + m) * F));
      const hid = a.alloc(8 * m * Hp);
      a.k.layer1(hp, m, F, ptr.w1own, Hp, tp, H, pp && pp + 4 * s, biasP, true, hid);
      const dloc = a.alloc(8 * (Dp2 + 2));
      const iq = a.alloc(8 * (D + 2));
      const mp = a.alloc(8 * (m * D + 1));
      const bp = a.alloc(m * D + 1);
      const sp = a.alloc(8 * m * 3);
      a.k.heads(hid, m, Hp, this.cfg.hidden, this.cfg.qHidden, ptr.w2d, Dp2, ptr.b2d, ptr.w2q, ptr.b2q, ptr.q0, ptr.types,
                D, dloc, iq, mp, bp, sp, true);
      mean.set(a.f64.subarray(mp >> 3, (mp >> 3) + m * D), s * D);
      bins.set(a.u8.subarray(bp, bp + m * D), s * D);
      step.set(a.f64.subarray(sp >> 3, (sp >> 3) + m * 3), s * 3);
    }
  }
}
