// The neural Gaussians a decoded model draws from one camera, as progs' own renderer makes them
// (Scaffold-GS style): per anchor the three MLP heads of the header see the anchor's feature, the
// view direction, the camera distance and the anchor's level; each offset whose opacity is positive
// becomes one Gaussian. What the viewer draws therefore matches `progs render` of the same LoD from
// the same camera, not an approximation fitted over many views (that is what `toSplats` gives).
//
// The part of the first layer that does not depend on the camera (feature and level terms) is
// computed once per anchor, so a new camera position costs 4 input columns plus the output layers.
//
// Both parts run as WebAssembly SIMD kernels (wasm/kernels.ts: gaussFixed, gaussGenerate) where
// available, with every level's anchors and first-layer terms kept in the instance's memory; the
// JavaScript below is their fallback (`useWasm(false)`, no SIMD). The kernels compute in float32 and
// agree with it within float32 rounding, not bit for bit: these Gaussians are for display.
import { DecodedLevel } from "./decoder.js";
import { Header } from "./header.js";
import { Arena, kernels, padTo } from "./wasm.js";

/** Gaussians seen from one camera: linear scales, unit quaternions (w, x, y, z), RGB in [0, 1]. */
export interface ViewGaussians {
  count: number;
  means: Float32Array; // [count, 3]
  scales: Float32Array; // [count, 3]
  quats: Float32Array; // [count, 4] w, x, y, z
  opacities: Float32Array; // [count] in (0, 1]
  colors: Float32Array; // [count, 3]
}

interface Head {
  w1: Float32Array; // [H, dIn]
  b1: Float32Array;
  w2: Float32Array; // [out, H]
  b2: Float32Array;
}

interface LevelState {
  level: DecodedLevel;
  fixed: Float32Array; // [count, 3 heads, H] first-layer terms that do not depend on the camera
  offsetScale: Float32Array; // [count, 3] exp(scaling[0:3])
  baseScale: Float32Array; // [count, 3] exp(scaling[3:6])
}

/** A level's anchors in the kernels' memory (addresses). */
interface WasmLevel {
  count: number;
  fixed: number; // [count, W]
  pos: number; // [count, 3]
  offs: number; // [count, K·3]
  scl: number; // [count, 6] exp(scaling)
}

/** The weights in the kernels' memory, laid out as gaussGenerate and gaussFixed read them. */
interface WasmModel {
  a: Arena;
  Hp: number; // hidden units padded to 4
  W: number; // 3·Hp padded to 16: the three heads' first layers side by side
  Ko: number; // K padded to 16
  w1f: number; // [F, W] feature columns
  wv: number; // [4, W] view direction and distance columns
  bias: Float32Array[]; // per level (one-hot): [W] first-layer bias + that level's column
  wo: number; // [Hp, Ko] the opacity head's second layer, transposed
  bo: number; // [Ko]
  w2: number; // [K, 10, Hp] per offset 3 colour rows then 7 covariance rows
  b2: number; // [K, 10]
  hid: number; // scratch [3·Hp]
  raw: number; // scratch [Ko]
  levels: WasmLevel[];
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export class NeuralGaussians {
  readonly F: number;
  readonly K: number;
  readonly H: number;
  readonly L: number;
  readonly dIn: number;
  readonly distScale: number;
  private readonly heads: Head[];
  private readonly states: LevelState[] = [];
  // scratch, reused across anchors
  private readonly hid: Float32Array[];
  private readonly opac: Float32Array;
  private readonly wasm: WasmModel | null;

  constructor(header: Header) {
    const g = header.generator;
    this.F = g.featDim;
    this.K = g.nOffsets;
    this.H = g.hidden;
    this.L = g.levels;
    this.dIn = this.F + 4 + this.L;
    this.distScale = header.grid.size;
    const t = (name: string, part: string) => Float32Array.from(header.tensors.get(`generator.${name}.${part}`)!.values);
    this.heads = ["mlp_opacity", "mlp_color", "mlp_cov"].map((n) => ({
      w1: t(n, "0.weight"), b1: t(n, "0.bias"), w2: t(n, "2.weight"), b2: t(n, "2.bias"),
    }));
    this.hid = this.heads.map(() => new Float32Array(this.H));
    this.opac = new Float32Array(this.K);
    const a = kernels();
    this.wasm = a ? this.loadWeights(a) : null;
  }

  /** Whether the WebAssembly kernels do the work (else the JavaScript fallback). */
  get usesWasm(): boolean {
    return this.wasm !== null;
  }

  get levels(): number {
    return this.wasm ? this.wasm.levels.length : this.states.length;
  }

  private loadWeights(a: Arena): WasmModel {
    const { F, K, H, L, dIn } = this;
    const Hp = padTo(H, 4), W = padTo(3 * Hp, 16), Ko = padTo(K, 16);
    const w1f = new Float32Array(F * W), wv = new Float32Array(4 * W);
    const bias = Array.from({ length: L }, () => new Float32Array(W));
    this.heads.forEach(({ w1, b1 }, hi) => {
      for (let k = 0; k < H; k++) {
        const c = hi * Hp + k, row = k * dIn;
        for (let j = 0; j < F; j++) w1f[j * W + c] = w1[row + j];
        for (let r = 0; r < 4; r++) wv[r * W + c] = w1[row + F + r];
        for (let l = 0; l < L; l++) bias[l][c] = b1[k] + w1[row + F + 4 + l];
      }
    });
    const [op, co, cv] = this.heads;
    const wo = new Float32Array(Hp * Ko), bo = new Float32Array(Ko);
    const w2 = new Float32Array(K * 10 * Hp), b2 = new Float32Array(K * 10);
    for (let k = 0; k < K; k++) {
      bo[k] = op.b2[k];
      for (let j = 0; j < H; j++) wo[j * Ko + k] = op.w2[k * H + j];
      for (let c = 0; c < 10; c++) {
        const [head, r] = c < 3 ? [co, 3 * k + c] : [cv, 7 * k + c - 3];
        b2[k * 10 + c] = head.b2[r];
        for (let j = 0; j < H; j++) w2[(k * 10 + c) * Hp + j] = head.w2[r * H + j];
      }
    }
    const m: WasmModel = {
      a, Hp, W, Ko, bias, w1f: a.putF32(w1f), wv: a.putF32(wv), wo: a.putF32(wo), bo: a.putF32(bo),
      w2: a.putF32(w2), b2: a.putF32(b2), hid: a.alloc(4 * 3 * Hp), raw: a.alloc(4 * Ko), levels: [],
    };
    a.f32.fill(0, m.hid >> 2, (m.hid >> 2) + 3 * Hp);
    a.keep();
    return m;
  }

  private addLevelWasm(m: WasmModel, lv: DecodedLevel): void {
    const { a } = m;
    const n = lv.count, F = this.F, K = this.K;
    const fixed = a.alloc(4 * n * m.W);
    const pos = a.putF32(lv.positions.subarray(0, 3 * n));
    const offs = a.putF32(lv.offsets.subarray(0, 3 * K * n));
    const scl = a.putF32(lv.scaling.subarray(0, 6 * n));
    a.k.expf32(scl, 6 * n, scl);
    a.keep();
    const at = a.at;
    const feat = a.putF32(lv.feature.subarray(0, F * n));
    const bias = a.putF32(m.bias[Math.min(Math.max(lv.level - 1, 0), this.L - 1)]);
    a.k.gaussFixed(feat, n, F, m.w1f, m.W, bias, fixed);
    a.rewind(at);
    m.levels.push({ count: n, fixed, pos, offs, scl });
  }

  private generateWasm(m: WasmModel, index: number, camera: ArrayLike<number>): ViewGaussians {
    const { a } = m;
    const st = m.levels[index];
    const cap = st.count * this.K;
    const at = a.at;
    const means = a.alloc(12 * cap), scales = a.alloc(12 * cap), quats = a.alloc(16 * cap);
    const opac = a.alloc(4 * cap), colors = a.alloc(12 * cap);
    const g = a.k.gaussGenerate(st.count, st.fixed, m.W, m.Hp, m.wv, st.pos, camera[0], camera[1], camera[2],
      this.distScale, m.wo, m.bo, m.Ko, this.K, m.w2, m.b2, st.offs, st.scl, m.hid, m.raw, means, scales, quats, opac,
      colors);
    const f = a.f32;
    const out = (p: number, d: number) => f.slice(p >> 2, (p >> 2) + d * g);
    const res = { count: g, means: out(means, 3), scales: out(scales, 3), quats: out(quats, 4), opacities: out(opac, 1),
      colors: out(colors, 3) };
    a.rewind(at);
    return res;
  }

  /** Adds the next decoded level (levels arrive in order: 1, 2, …). */
  addLevel(lv: DecodedLevel): void {
    if (this.wasm) return this.addLevelWasm(this.wasm, lv);
    const { F, H, dIn, L } = this;
    const n = lv.count;
    const fixed = new Float32Array(n * 3 * H);
    const oneHot = F + 4 + Math.min(Math.max(lv.level - 1, 0), L - 1);
    for (let i = 0; i < n; i++) {
      const fo = i * F;
      for (let hi = 0; hi < 3; hi++) {
        const { w1, b1 } = this.heads[hi];
        const base = (i * 3 + hi) * H;
        for (let k = 0; k < H; k++) {
          const row = k * dIn;
          let v = b1[k] + w1[row + oneHot];
          for (let j = 0; j < F; j++) v += lv.feature[fo + j] * w1[row + j];
          fixed[base + k] = v;
        }
      }
    }
    const offsetScale = new Float32Array(3 * n);
    const baseScale = new Float32Array(3 * n);
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < 3; a++) {
        offsetScale[3 * i + a] = Math.exp(lv.scaling[6 * i + a]);
        baseScale[3 * i + a] = Math.exp(lv.scaling[6 * i + 3 + a]);
      }
    }
    this.states.push({ level: lv, fixed, offsetScale, baseScale });
  }

  /** The Gaussians of level `index` (0-based) seen from a camera centred at `camera`. */
  generate(index: number, camera: ArrayLike<number>): ViewGaussians {
    if (this.wasm) return this.generateWasm(this.wasm, index, camera);
    const st = this.states[index];
    const { K, H, F, dIn, distScale } = this;
    const lv = st.level;
    const n = lv.count;
    const [op, co, cv] = this.heads;
    const [hOp, hCo, hCv] = this.hid;
    const cap = n * K;
    const means = new Float32Array(3 * cap), scales = new Float32Array(3 * cap), quats = new Float32Array(4 * cap);
    const opacities = new Float32Array(cap), colors = new Float32Array(3 * cap);
    const opac = this.opac;
    const cx = camera[0], cy = camera[1], cz = camera[2];
    let g = 0;
    for (let i = 0; i < n; i++) {
      const px = lv.positions[3 * i], py = lv.positions[3 * i + 1], pz = lv.positions[3 * i + 2];
      const vx = px - cx, vy = py - cy, vz = pz - cz;
      const dist = Math.max(Math.hypot(vx, vy, vz), 1e-8);
      const i0 = vx / dist, i1 = vy / dist, i2 = vz / dist, i3 = dist / distScale;
      const hidden = (head: Head, out: Float32Array, hi: number) => {
        const base = (i * 3 + hi) * H;
        const w1 = head.w1;
        for (let k = 0; k < H; k++) {
          const o = k * dIn + F;
          const v = st.fixed[base + k] + i0 * w1[o] + i1 * w1[o + 1] + i2 * w1[o + 2] + i3 * w1[o + 3];
          out[k] = v > 0 ? v : 0;
        }
      };
      hidden(op, hOp, 0);
      let any = false;
      for (let k = 0; k < K; k++) {
        let v = op.b2[k];
        for (let j = 0; j < H; j++) v += hOp[j] * op.w2[k * H + j];
        opac[k] = Math.tanh(v);
        if (opac[k] > 0) any = true;
      }
      if (!any) continue;
      hidden(co, hCo, 1);
      hidden(cv, hCv, 2);
      for (let k = 0; k < K; k++) {
        if (!(opac[k] > 0)) continue;
        opacities[g] = opac[k];
        for (let c = 0; c < 3; c++) {
          const r = 3 * k + c;
          let v = co.b2[r];
          for (let j = 0; j < H; j++) v += hCo[j] * co.w2[r * H + j];
          colors[3 * g + c] = sigmoid(v);
        }
        const cov = [0, 0, 0, 0, 0, 0, 0];
        for (let c = 0; c < 7; c++) {
          const r = 7 * k + c;
          let v = cv.b2[r];
          for (let j = 0; j < H; j++) v += hCv[j] * cv.w2[r * H + j];
          cov[c] = v;
        }
        for (let a = 0; a < 3; a++) {
          means[3 * g + a] = lv.positions[3 * i + a] + lv.offsets[i * 3 * K + 3 * k + a] * st.offsetScale[3 * i + a];
          scales[3 * g + a] = st.baseScale[3 * i + a] * sigmoid(cov[a]);
        }
        const nq = Math.max(Math.hypot(cov[3], cov[4], cov[5], cov[6]), 1e-8);
        for (let a = 0; a < 4; a++) quats[4 * g + a] = cov[3 + a] / nq;
        g++;
      }
    }
    return {
      count: g, means: means.slice(0, 3 * g), scales: scales.slice(0, 3 * g), quats: quats.slice(0, 4 * g),
      opacities: opacities.slice(0, g), colors: colors.slice(0, 3 * g),
    };
  }
}
