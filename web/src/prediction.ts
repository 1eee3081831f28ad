// FORMAT.md "Parent predictor": a level's coding tables centred and scaled from its parents' values.
import { ByteReader } from "./bytes.js";
import { LevelParams, scaleBin } from "./context.js";
import { roundEven } from "./exactmath.js";
import { readWeights } from "./header.js";

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
    if (exponent !== bits) throw r.fail(`parent predictor ${name} has exponent ${exponent} (expected ${bits})`);
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
                               values: Float64Array): Float64Array {
  const D = channelType.length;
  const shift = new Float64Array(p.n * D);
  for (let i = 0; i < p.n; i++) {
    const inv = [1 / p.step[3 * i], 1 / p.step[3 * i + 1], 1 / p.step[3 * i + 2]];
    const vo = parent[i] * D;
    for (let j = 0; j < D; j++) {
      const t = channelType[j];
      const m = p.mean[i * D + j];
      const mu = pred.a[j] * values[vo + j] + pred.b[j] * (m * p.step[3 * i + t]) + pred.c[j];
      shift[i * D + j] = roundEven(mu * inv[t] - m);
      p.bins[i * D + j] = scaleBin(pred.s[j] * inv[t]);
    }
  }
  return shift;
}
