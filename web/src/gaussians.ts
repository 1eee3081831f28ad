// The neural Gaussians a decoded model draws from one camera, as progs' own renderer makes them
// (Scaffold-GS style): per anchor the three MLP heads of the header see the anchor's feature, the
// view direction, the camera distance and the anchor's level; each offset whose opacity is positive
// becomes one Gaussian. What the viewer draws therefore matches `progs render` of the same LoD from
// the same camera, not an approximation fitted over many views (that is what `toSplats` gives).
//
// The part of the first layer that does not depend on the camera (feature and level terms) is
// computed once per anchor, so a new camera position costs 4 input columns plus the output layers.
import { DecodedLevel } from "./decoder.js";
import { Header } from "./header.js";

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
  }

  get levels(): number {
    return this.states.length;
  }

  /** Adds the next decoded level (levels arrive in order: 1, 2, …). */
  addLevel(lv: DecodedLevel): void {
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
