// FORMAT.md "Never-drawn Gaussians": the stream codes which Gaussians the encoder's rule hides; the
// decoder evaluates the opacity head from 18 probe cameras (exact integer arithmetic held in doubles)
// for the mask's context, then decodes the mask.
import { ByteReader } from "./bytes.js";
import { adaptiveSource } from "./rangecoder.js";
import { pow2, roundEven } from "./exactmath.js";
import { exactDot } from "./context.js";
import { Grid, Tensor } from "./header.js";
import { Arena, kernels, padTo } from "./wasm.js";

const MARGIN = 0.02;
const CONTEXT_FACE_SAMPLES = 1;
const BUCKET_EDGES = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0];
const RADII = [0.5, 1.0, 2.0];
const INPUT_SCALE = 4096; // inputs are snapped to multiples of 2^-12
const INPUT_LIMIT = 2 ** 20;
const HIDDEN_LIMIT = 2 ** 30;
const BITS = 12; // the rule's mantissas: at most 2047 in magnitude

/** Unit vectors [6·n², 3] through the centres of an n × n grid on each face of the cube. */
export function cubeSphereDirections(n: number): Float64Array {
  const t = Array.from({ length: n }, (_, i) => (i + 0.5) * (2.0 / n) - 1.0);
  const out = new Float64Array(6 * n * n * 3);
  let o = 0;
  for (let axis = 0; axis < 3; axis++) {
    for (const sign of [1.0, -1.0]) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const cols = [t[i], t[j]];
          cols.splice(axis, 0, sign);
          const norm = Math.sqrt(cols[0] * cols[0] + cols[1] * cols[1] + cols[2] * cols[2]);
          out[o++] = cols[0] / norm;
          out[o++] = cols[1] / norm;
          out[o++] = cols[2] / norm;
        }
      }
    }
  }
  return out;
}

/** Camera centres [6 n² · 3, 3]: c + dir · (r · d), r = 0.5, 1, 2, c the cube's centre (the mask's
 * context: n = 1, 18 cameras). */
export function probeCameras(grid: Grid, viewDistance: number | null, n = CONTEXT_FACE_SAMPLES): Float64Array {
  const centre = grid.origin.map((o) => o + grid.size / 2);
  const d = viewDistance ? viewDistance : 1.5 * grid.size;
  const dirs = cubeSphereDirections(n);
  const m = dirs.length / 3;
  const out = new Float64Array(RADII.length * dirs.length);
  let o = 0;
  for (const r of RADII) {
    const rd = r * d;
    for (let i = 0; i < m; i++) for (let k = 0; k < 3; k++) out[o++] = centre[k] + dirs[3 * i + k] * rd;
  }
  return out;
}

/** A tensor at 12-bit fixed point: e = the largest exponent <= 24 (>= 0) with max|w| · 2^e <= 2047
 * (24 for an all-zero tensor), m = clamp(round(w · 2^e), ±2047). */
export function fixedPoint12(values: Float64Array): { mant: Float64Array; e: number } {
  let M = 0;
  for (const v of values) M = Math.max(M, Math.abs(v));
  const limit = 2 ** (BITS - 1) - 1;
  let e = 24;
  if (M > 0) {
    while (e > 0 && M * pow2(e) > limit) e--;
  }
  const s = pow2(e);
  const mant = values.map((v) => Math.min(limit, Math.max(-limit, roundEven(v * s))));
  return { mant, e };
}

const snap = (x: number) => {
  const v = roundEven(x * INPUT_SCALE);
  return v < -INPUT_LIMIT ? -INPUT_LIMIT : v > INPUT_LIMIT ? INPUT_LIMIT : v;
};

/** The opacity head as integers (FORMAT.md, hidden rule step 3). */
export class HiddenRule {
  readonly K: number;
  private readonly H: number;
  private readonly F: number;
  private readonly dIn: number;
  private readonly w1: Float64Array; // [H, dIn] mantissas
  private readonly b1: Float64Array; // [H] in units of 2^-(12 + e1)
  private readonly e1: number;
  private readonly w2: Float64Array; // [K, H]
  private readonly b2: Float64Array; // [K] in units of 2^-(12 + e2)
  private readonly threshold: number;
  private readonly e2: number;
  private readonly wv: Float64Array; // [3, H] view weights, transposed
  private readonly wd: Float64Array; // [H]
  private readonly wasm: Arena | null;
  private readonly ptr: Record<string, number> = {};

  constructor(tensors: Map<string, Tensor>, featDim: number, private readonly levels: number,
              private readonly grid: Grid, private readonly cameras: Float64Array, arena: Arena | null = kernels()) {
    const t = (name: string) => tensors.get(`generator.mlp_opacity.${name}`)!;
    const w1 = t("0.weight");
    const w2 = t("2.weight");
    this.H = w1.shape[0];
    this.dIn = w1.shape[1];
    this.K = w2.shape[0];
    this.F = featDim;
    const l1 = fixedPoint12(w1.values);
    const l2 = fixedPoint12(w2.values);
    this.w1 = l1.mant;
    this.e1 = l1.e;
    this.w2 = l2.mant;
    const bias = (b: Float64Array, e: number) => {
      const bm = fixedPoint12(b);
      const s = pow2(BITS + e - bm.e);
      return bm.mant.map((m) => roundEven(m * s));
    };
    this.b1 = bias(t("0.bias").values, l1.e);
    this.b2 = bias(t("2.bias").values, l2.e);
    this.threshold = -MARGIN * pow2(BITS + l2.e);
    this.e2 = l2.e;
    this.wv = new Float64Array(3 * this.H);
    this.wd = new Float64Array(this.H);
    for (let k = 0; k < this.H; k++) {
      for (let a = 0; a < 3; a++) this.wv[a * this.H + k] = this.w1[k * this.dIn + featDim + a];
      this.wd[k] = this.w1[k * this.dIn + featDim + 3];
    }
    this.wasm = this.H > 0 && this.K > 0 ? arena : null;
    if (this.wasm) this.layOut(this.wasm);
  }

  /** The kernel's permanent data: weights transposed and padded (units to Hp, outputs to Kp). */
  private layOut(a: Arena): void {
    const { H, K, F, dIn } = this;
    const Hp = padTo(H, 8);
    const Kp = padTo(K, 8);
    const w1f = new Float64Array(F * Hp);
    const wv = new Float64Array(4 * Hp);
    const w2 = new Float64Array(Hp * Kp);
    const b2 = new Float64Array(Kp);
    for (let k = 0; k < H; k++) {
      for (let f = 0; f < F; f++) w1f[f * Hp + k] = this.w1[k * dIn + f];
      for (let c = 0; c < 4; c++) wv[c * Hp + k] = this.w1[k * dIn + F + c];
      for (let j = 0; j < K; j++) w2[k * Kp + j] = this.w2[j * H + k];
    }
    b2.set(this.b2);
    a.reset(); // after the arena's permanent data so far (a shared arena: the header's scratch goes)
    const p = this.ptr;
    p.w1f = a.putF64(w1f);
    p.wv = a.putF64(wv);
    p.w2 = a.putF64(w2);
    p.b2 = a.putF64(b2);
    p.cams = a.putF64(this.cameras);
    a.keep();
  }

  private bucketsWasm(a: Arena, keys: Int32Array, n: number, level: number, features: Float64Array, out: Int8Array): void {
    const { H, K, F, dIn, ptr } = this;
    const Hp = padTo(H, 8);
    const Kp = padTo(K, 8);
    const lcol = F + 4 + Math.min(Math.max(level - 1, 0), this.levels - 1);
    const lvl = new Float64Array(Hp);
    for (let k = 0; k < H; k++) lvl[k] = this.w1[k * dIn + lcol] * INPUT_SCALE + this.b1[k];
    const logit = pow2(BITS + this.e2);
    const geo = [...this.grid.origin, this.grid.size / 2 ** (this.grid.baseDepth + level - 1), this.grid.size,
      pow2(-this.e1), this.threshold, ...BUCKET_EDGES.map((e) => e * logit)];
    const CH = 4096;
    for (let s = 0; s < n; s += CH) {
      const m = Math.min(CH, n - s);
      a.reset();
      const lp = a.putF64(lvl);
      const gp = a.putF64(geo);
      const fp = a.putF64(features.subarray(s * F, (s + m) * F));
      const kp = a.putI32(keys.subarray(3 * s, 3 * (s + m)));
      const fixed = a.alloc(8 * Hp);
      const hbuf = a.alloc(8 * Hp);
      const on = a.alloc(4 * Hp);
      const hi = a.alloc(8 * Kp);
      const op = a.alloc(m * K);
      a.k.buckets(fp, kp, m, F, Hp, K, Kp, ptr.w1f, lp, ptr.wv, ptr.w2, ptr.b2, ptr.cams, this.cameras.length / 3, gp, fixed,
                  hbuf, on, hi, op);
      out.set(new Int8Array(a.u8.buffer, op, m * K), s * K);
    }
  }

  /** The mask's contexts [n, K] of a level's anchors (keys [n, 3], decoded features [n, F]): −1 where a
   * camera draws the Gaussian, else the bucket 0..6 of how far below −0.02 its highest logit stays. */
  buckets(keys: Int32Array, n: number, level: number, features: Float64Array): Int8Array {
    const { H, K, F, dIn, wv, wd, w2, b2, w1, b1 } = this;
    const out = new Int8Array(n * K);
    if (this.wasm) {
      this.bucketsWasm(this.wasm, keys, n, level, features, out);
      return out;
    }
    const cell = this.grid.size / 2 ** (this.grid.baseDepth + level - 1);
    const origin = this.grid.origin;
    const lcol = F + 4 + Math.min(Math.max(level - 1, 0), this.levels - 1);
    const fixed = new Float64Array(H);
    const h = new Float64Array(H);
    const on = new Int32Array(H);
    const highest = new Float64Array(K);
    const snapped = new Float64Array(F);
    const cams = this.cameras;
    const nc = cams.length / 3;
    const distScale = this.grid.size;
    const unit = pow2(-this.e1);
    const logit = pow2(BITS + this.e2); // one logit unit
    const edges = BUCKET_EDGES.map((e) => e * logit);
    for (let i = 0; i < n; i++) {
      for (let f = 0; f < F; f++) snapped[f] = snap(features[i * F + f]);
      for (let k = 0; k < H; k++) {
        const wo = k * dIn;
        fixed[k] = exactDot(snapped, 0, w1, wo, F) + w1[wo + lcol] * INPUT_SCALE + b1[k];
      }
      const px = origin[0] + (keys[3 * i] + 0.5) * cell;
      const py = origin[1] + (keys[3 * i + 1] + 0.5) * cell;
      const pz = origin[2] + (keys[3 * i + 2] + 0.5) * cell;
      highest.fill(-Infinity);
      for (let c = 0; c < nc; c++) {
        const x = px - cams[3 * c];
        const y = py - cams[3 * c + 1];
        const z = pz - cams[3 * c + 2];
        let dist = Math.sqrt(x * x + y * y + z * z);
        if (dist < 1e-8) dist = 1e-8;
        const v0 = snap(x / dist);
        const v1 = snap(y / dist);
        const v2 = snap(z / dist);
        const r = snap(dist / distScale);
        let nz = 0; // the active hidden units (ReLU leaves about half at 0)
        for (let k = 0; k < H; k++) {
          const pre = fixed[k] + v0 * wv[k] + v1 * wv[H + k] + v2 * wv[2 * H + k] + r * wd[k];
          if (pre > 0) {
            const hv = roundEven(pre * unit);
            h[nz] = hv > HIDDEN_LIMIT ? HIDDEN_LIMIT : hv;
            on[nz++] = k;
          }
        }
        for (let j = 0; j < K; j++) {
          let zj = b2[j];
          const wo = j * H;
          for (let t = 0; t < nz; t++) zj += h[t] * w2[wo + on[t]];
          if (zj > highest[j]) highest[j] = zj;
        }
      }
      for (let j = 0; j < K; j++) {
        const depth = this.threshold - highest[j];
        let b = -1;
        if (depth > 0) {
          b = 0;
          while (b < edges.length && edges[b] <= depth) b++;
        }
        out[i * K + j] = b;
      }
    }
    return out;
  }
}

/** The mask (1 = hidden) of the Gaussians whose context bucket is >= 0: a words stream, the bits
 * grouped by bucket, each bucket coded block-adaptively. */
export function decodeMask(r: ByteReader, buckets: Int8Array, coder: Arena | null = null): Uint8Array {
  const words = r.words();
  const hidden = new Uint8Array(buckets.length);
  let maxBucket = -1;
  for (const b of buckets) if (b > maxBucket) maxBucket = b;
  if (maxBucket < 0) return hidden;
  if (words.length === 0) throw r.fail("the hidden-Gaussian mask is empty");
  try {
    const dec = adaptiveSource(words, coder);
    for (let b = 0; b <= maxBucket; b++) {
      const pos: number[] = [];
      for (let i = 0; i < buckets.length; i++) if (buckets[i] === b) pos.push(i);
      const bits = dec.adaptive(pos.length, 2);
      for (let k = 0; k < pos.length; k++) hidden[pos[k]] = bits[k];
    }
  } catch (e) {
    throw r.fail(`the hidden-Gaussian mask does not decode (${(e as Error).message})`);
  }
  return hidden;
}
