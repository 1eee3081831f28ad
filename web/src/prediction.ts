// FORMAT.md "Parent predictor": a level's coding tables centred and scaled from its parents' values.
import { ByteReader } from "./bytes.js";
import { LevelParams, scaleBin, typeMasks } from "./context.js";
import { roundEven } from "./exactmath.js";
import { readWeights } from "./header.js";
import { Arena } from "./wasm.js";

export interface ParentPredictor {
  a: Float64Array;
  b: Float64Array;
  c: Float64Array;
  s: Float64Array;
}

const PARTS: [keyof ParentPredictor, number, number][] = [["a", 12, 4], ["b", 12, 4], ["c", 14, 1024], ["s", 14, 1024]];

/** `flag:u8` then, when 1, the table. */
export function readPredictor(r: ByteReader, level: number, D: number): ParentPredictor | null {
  const flag = r.u8();
  if (flag > 1 || (flag && level === 1)) throw r.fail(`invalid parent-predictor flag ${flag} at level ${level}`);
  if (!flag) return null;
  const out: Partial<ParentPredictor> = {};
  for (const [name, bits, limit] of PARTS) {
    const { mantissas, exponent } = readWeights(r, D, `parent predictor ${name}`);
    if (exponent > bits) throw r.fail(`parent predictor ${name} has exponent ${exponent} (at most ${bits})`);
    const scale = 2 ** -exponent;
    const v = mantissas.map((m) => m * scale);
    if (v.some((x) => Math.abs(x) > limit)) throw r.fail(`parent predictor ${name} out of range`);
    out[name] = v;
  }
  if (out.s!.some((x) => x <= 0)) throw r.fail("parent predictor has a deviation ≤ 0");
  return out as ParentPredictor;
}

/** Per anchor and channel: shift = round(μ · inv − m) with μ = (a·v + b·(m·q)) + c, and the bin of
 * s · inv (replacing the context model's bin). `values` are the previous level's decoded values [P, D]. */
export function applyPredictor(pred: ParentPredictor, p: LevelParams, channelType: Uint8Array, parent: Int32Array,
                               values: Float64Array, coder: Arena | null = null): Float64Array {
  const D = channelType.length;
  const shift = new Float64Array(p.n * D);
  if (coder && 8 * (values.length + 3 * p.n * D) < 2 ** 30) {
    predictWasm(coder, pred, p, channelType, parent, values, shift);
    return shift;
  }
  const { a, b, c, s } = pred;
  const { mean, step, bins } = p;
  const inv = new Float64Array(3);
  const binsOf: Uint8Array[] = [new Uint8Array(D), new Uint8Array(D), new Uint8Array(D)]; // per type: the bins of s_j · inv
  const cache = [new Map<number, Uint8Array>(), new Map<number, Uint8Array>(), new Map<number, Uint8Array>()];
  for (let i = 0; i < p.n; i++) {
    for (let t = 0; t < 3; t++) {
      const v = 1 / step[3 * i + t];
      inv[t] = v;
      let row = cache[t].get(v); // steps take at most 4096 values per type
      if (!row) {
        row = new Uint8Array(D);
        for (let j = 0; j < D; j++) if (channelType[j] === t) row[j] = scaleBin(s[j] * v);
        cache[t].set(v, row);
      }
      binsOf[t] = row;
    }
    const vo = parent[i] * D;
    const o = i * D;
    for (let j = 0; j < D; j++) {
      const t = channelType[j];
      const m = mean[o + j];
      const mu = a[j] * values[vo + j] + b[j] * (m * step[3 * i + t]) + c[j];
      shift[o + j] = roundEven(mu * inv[t] - m);
      bins[o + j] = binsOf[t][j];
    }
  }
  return shift;
}

/** The kernels' layout of a predictor: a, b, c, s as rows of D + 1. */
export function predictorTable(pred: ParentPredictor, D: number): Float64Array {
  const table = new Float64Array(4 * (D + 1));
  PARTS.forEach(([name], k) => table.set(pred[name], k * (D + 1)));
  return table;
}

function predictWasm(a: Arena, pred: ParentPredictor, p: LevelParams, types: Uint8Array, parent: Int32Array,
                     values: Float64Array, shift: Float64Array): void {
  const D = types.length;
  const n = p.n;
  a.reset();
  const tp = a.putF64(predictorTable(pred, D));
  const ty = a.putF64(typeMasks(types));
  const mp = a.putF64(p.mean);
  const sp = a.putF64(p.step);
  const vp = a.putF64(values);
  const pp = a.putI32(parent);
  const qs = a.alloc(8 * (D + 2));
  const iq = a.alloc(8 * (D + 2));
  const out = a.alloc(8 * (n * D + 1));
  const bp = a.alloc(n * D + 1);
  for (let s = 0; s < n; s += 4096) { // in slices: a long call would keep running the engine's first-tier code
    a.k.predict(Math.min(4096, n - s), D, ty, tp, mp + 8 * s * D, sp + 24 * s, vp, pp + 4 * s, qs, iq, out + 8 * s * D, bp + s * D);
  }
  shift.set(a.f64.subarray(out >> 3, (out >> 3) + n * D));
  p.bins.set(a.u8.subarray(bp, bp + n * D));
}
