// Neural anchors → plain 3D Gaussians (what `progs decode --distill 0` writes): each anchor's MLPs
// evaluated from 64 cameras on a sphere around the scene; per Gaussian the view-averaged opacity,
// scale and rotation, and SH colours fitted by weighted least squares. Float64 throughout; Python's
// export (float32 MLPs) agrees within float32 rounding.
import { StreamDecoder } from "./decoder.js";

export const SH_C0 = 0.28209479177387814;
const SH_C1 = 0.4886025119029199;
const SH_C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396];
const SH_C3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
  1.445305721320277, -0.5900435899266435];
const MIN_OPACITY = 1 / 255;
const RIDGE = 1e-3;

/** Plain Gaussians, Gaussian-major: SH coefficients as [count, B − 1, 3] after the DC term. */
export interface Splats {
  count: number;
  shDegree: number;
  means: Float32Array; // [count, 3]
  shDc: Float32Array; // [count, 3]
  shRest: Float32Array; // [count, B − 1, 3]
  opacityLogits: Float32Array; // [count]
  logScales: Float32Array; // [count, 3]
  quats: Float32Array; // [count, 4] w, x, y, z
}

function shBasis(x: number, y: number, z: number, degree: number, out: Float64Array): void {
  out[0] = SH_C0;
  if (degree < 1) return;
  out[1] = -SH_C1 * y;
  out[2] = SH_C1 * z;
  out[3] = -SH_C1 * x;
  if (degree < 2) return;
  const xx = x * x, yy = y * y, zz = z * z;
  out[4] = SH_C2[0] * x * y;
  out[5] = SH_C2[1] * y * z;
  out[6] = SH_C2[2] * (2 * zz - xx - yy);
  out[7] = SH_C2[3] * x * z;
  out[8] = SH_C2[4] * (xx - yy);
  if (degree < 3) return;
  out[9] = SH_C3[0] * y * (3 * xx - yy);
  out[10] = SH_C3[1] * x * y * z;
  out[11] = SH_C3[2] * y * (4 * zz - xx - yy);
  out[12] = SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy);
  out[13] = SH_C3[4] * x * (4 * zz - xx - yy);
  out[14] = SH_C3[5] * z * (xx - yy);
  out[15] = SH_C3[6] * x * (xx - 3 * yy);
}

/** Solves A X = B in place (A [n, n] symmetric positive definite, B [n, 3]) by Cholesky. */
function solve(A: Float64Array, B: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j];
    for (let k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
    d = Math.sqrt(Math.max(d, 1e-300));
    A[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j];
      for (let k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = s / d;
    }
  }
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) {
      let s = B[i * 3 + c];
      for (let k = 0; k < i; k++) s -= A[i * n + k] * B[k * 3 + c];
      B[i * 3 + c] = s / A[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = B[i * 3 + c];
      for (let k = i + 1; k < n; k++) s -= A[k * n + i] * B[k * 3 + c];
      B[i * 3 + c] = s / A[i * n + i];
    }
  }
}

/** Camera centres on the sphere of radius d around the cube's centre (a Fibonacci lattice). */
export function sphereCameras(origin: number[], size: number, viewDistance: number | null, count: number): Float64Array {
  const d = viewDistance ? viewDistance : 1.5 * size;
  const out = new Float64Array(3 * count);
  const golden = Math.PI * (3 - Math.sqrt(5));
  for (let i = 0; i < count; i++) {
    const t = i + 0.5;
    const z = 1 - (2 * t) / count;
    const r = Math.sqrt(Math.max(1 - z * z, 0));
    const phi = t * golden;
    const dir = [r * Math.cos(phi), r * Math.sin(phi), z];
    for (let k = 0; k < 3; k++) out[3 * i + k] = origin[k] + size / 2 + d * dir[k];
  }
  return out;
}

interface Mlp {
  w1: Float64Array; // [H, dIn]
  b1: Float64Array;
  w2: Float64Array; // [out, H]
  b2: Float64Array;
  out: number;
}

/** The Gaussians of LoDs 1..lod of a decoded stream, SH colours of degree `shDegree`. */
export function toSplats(decoder: StreamDecoder, lod = decoder.lodsDecoded, shDegree = 3, directions = 64): Splats {
  const { header } = decoder;
  const { grid, generator } = header;
  const F = generator.featDim;
  const K = generator.nOffsets;
  const L = generator.levels;
  const H = generator.hidden;
  const dIn = F + 4 + L;
  const B = (shDegree + 1) ** 2;
  if (directions < B) throw new Error(`${directions} views cannot determine ${B} SH coefficients`);
  const mlp = (name: string, out: number): Mlp => {
    const t = (s: string) => header.tensors.get(`generator.${name}.${s}`)!.values;
    return { w1: t("0.weight"), b1: t("0.bias"), w2: t("2.weight"), b2: t("2.bias"), out };
  };
  const heads = [mlp("mlp_opacity", K), mlp("mlp_color", 3 * K), mlp("mlp_cov", 7 * K)];
  const cams = sphereCameras(grid.origin, grid.size, header.viewDistance, directions);
  const D = directions;
  const centre = grid.origin.map((o) => o + grid.size / 2);
  const dView = header.viewDistance ? header.viewDistance : 1.5 * grid.size;
  const distScale = grid.size;
  const levels = decoder.levels.slice(0, lod);
  const total = levels.reduce((a, l) => a + l.count, 0) * K;
  const means = new Float32Array(3 * total), shDc = new Float32Array(3 * total);
  const shRest = new Float32Array(3 * (B - 1) * total), opac = new Float32Array(total);
  const logScales = new Float32Array(3 * total), quats = new Float32Array(4 * total);
  let count = 0;
  // scratch
  const fixedPart = heads.map(() => new Float64Array(H));
  const hid = new Float64Array(H);
  const outs = heads.map((h) => new Float64Array((D + 1) * h.out)); // per view (and the canonical one)
  const dirs = new Float64Array(3 * D);
  const basis = new Float64Array(D * B);
  const b = new Float64Array(B);
  const gram = new Float64Array(B * B);
  const rhs = new Float64Array(B * 3);
  const inp = new Float64Array(4);
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  for (const lv of levels) {
    const cell = grid.size / 2 ** (grid.baseDepth + lv.level - 1);
    const oneHot = Math.min(Math.max(lv.level - 1, 0), L - 1);
    for (let i = 0; i < lv.count; i++) {
      const x = [0, 1, 2].map((a) => Math.fround(grid.origin[a] + (lv.keys[3 * i + a] + 0.5) * cell));
      const f = lv.feature.subarray(i * F, (i + 1) * F);
      heads.forEach((h, hi) => {
        const fp = fixedPart[hi];
        for (let k = 0; k < H; k++) {
          let v = h.b1[k] + h.w1[k * dIn + F + 4 + oneHot];
          for (let j = 0; j < F; j++) v += f[j] * h.w1[k * dIn + j];
          fp[k] = v;
        }
      });
      // views 0..D−1 from the sphere's cameras, view D the canonical one (from outside, through the anchor)
      for (let c = 0; c <= D; c++) {
        let vx: number, vy: number, vz: number;
        if (c < D) {
          vx = x[0] - cams[3 * c];
          vy = x[1] - cams[3 * c + 1];
          vz = x[2] - cams[3 * c + 2];
        } else {
          const rel = [x[0] - centre[0], x[1] - centre[1], x[2] - centre[2]];
          const norm = Math.hypot(rel[0], rel[1], rel[2]);
          const dir = norm > 1e-9 ? rel.map((r) => r / norm) : [0, 0, 1];
          const reach = Math.max(norm, dView);
          vx = x[0] - (centre[0] + dir[0] * reach);
          vy = x[1] - (centre[1] + dir[1] * reach);
          vz = x[2] - (centre[2] + dir[2] * reach);
        }
        const dist = Math.max(Math.hypot(vx, vy, vz), 1e-8);
        inp[0] = vx / dist;
        inp[1] = vy / dist;
        inp[2] = vz / dist;
        inp[3] = dist / distScale;
        if (c < D) {
          const n = Math.max(Math.hypot(vx, vy, vz), 1e-9);
          dirs[3 * c] = vx / n;
          dirs[3 * c + 1] = vy / n;
          dirs[3 * c + 2] = vz / n;
        }
        heads.forEach((h, hi) => {
          if (c === D && hi !== 2) return; // the canonical view only aligns rotations
          const fp = fixedPart[hi];
          for (let k = 0; k < H; k++) {
            const o = k * dIn + F;
            const v = fp[k] + inp[0] * h.w1[o] + inp[1] * h.w1[o + 1] + inp[2] * h.w1[o + 2] + inp[3] * h.w1[o + 3];
            hid[k] = v > 0 ? v : 0;
          }
          const out = outs[hi];
          for (let j = 0; j < h.out; j++) {
            let v = h.b2[j];
            for (let k = 0; k < H; k++) v += hid[k] * h.w2[j * H + k];
            out[c * h.out + j] = hi === 0 ? Math.tanh(v) : hi === 1 ? sigmoid(v) : v;
          }
        });
      }
      for (let c = 0; c < D; c++) shBasis(dirs[3 * c], dirs[3 * c + 1], dirs[3 * c + 2], shDegree, basis.subarray(c * B, (c + 1) * B));
      const s = lv.scaling.subarray(i * 6, i * 6 + 6);
      const [op, col, cov] = outs;
      for (let k = 0; k < K; k++) {
        let wsum = 0;
        for (let c = 0; c < D; c++) wsum += Math.max(op[c * K + k], 0);
        const opacity = wsum / D;
        if (!(opacity > MIN_OPACITY)) continue;
        const g = count++;
        for (let a = 0; a < 3; a++) means[3 * g + a] = x[a] + lv.offsets[i * 3 * K + 3 * k + a] * Math.exp(s[a]);
        // scale and rotation: opacity-weighted averages (rotations aligned to the canonical view's)
        const sc = [0, 0, 0];
        const q = [0, 0, 0, 0];
        const qr = cov.subarray(D * 7 * K + 7 * k + 3, D * 7 * K + 7 * k + 7);
        const nr = Math.max(Math.hypot(qr[0], qr[1], qr[2], qr[3]), 1e-8);
        for (let c = 0; c < D; c++) {
          const wn = Math.max(op[c * K + k], 0) / wsum;
          const o = c * 7 * K + 7 * k;
          for (let a = 0; a < 3; a++) sc[a] += sigmoid(cov[o + a]) * wn;
          const nq = Math.max(Math.hypot(cov[o + 3], cov[o + 4], cov[o + 5], cov[o + 6]), 1e-8);
          let dot = 0;
          for (let a = 0; a < 4; a++) dot += (cov[o + 3 + a] / nq) * (qr[a] / nr);
          const sign = dot < 0 ? -1 : 1;
          for (let a = 0; a < 4; a++) q[a] += (cov[o + 3 + a] / nq) * sign * wn;
        }
        for (let a = 0; a < 3; a++) logScales[3 * g + a] = Math.log(Math.max(Math.exp(s[3 + a]) * sc[a], 1e-12));
        const nq = Math.max(Math.hypot(q[0], q[1], q[2], q[3]), 1e-8);
        for (let a = 0; a < 4; a++) quats[4 * g + a] = q[a] / nq;
        const oc = Math.min(Math.max(opacity, 1e-6), 1 - 1e-6);
        opac[g] = Math.log(oc / (1 - oc));
        // SH colours: weighted least squares with a small ridge on degree >= 1
        gram.fill(0);
        rhs.fill(0);
        for (let c = 0; c < D; c++) {
          const w = Math.max(op[c * K + k], 0);
          if (w === 0) continue;
          for (let u = 0; u < B; u++) b[u] = basis[c * B + u];
          for (let u = 0; u < B; u++) {
            const bu = b[u] * w;
            for (let v = 0; v <= u; v++) gram[u * B + v] += bu * b[v];
            for (let a = 0; a < 3; a++) rhs[u * 3 + a] += bu * (col[c * 3 * K + 3 * k + a] - 0.5);
          }
        }
        for (let u = 0; u < B; u++) {
          for (let v = u + 1; v < B; v++) gram[u * B + v] = gram[v * B + u];
          gram[u * B + u] += Math.max(wsum, 1e-8) * (u === 0 ? 1e-6 : RIDGE) + 1e-10;
        }
        solve(gram, rhs, B);
        for (let a = 0; a < 3; a++) shDc[3 * g + a] = rhs[a];
        for (let u = 1; u < B; u++) for (let a = 0; a < 3; a++) shRest[(g * (B - 1) + u - 1) * 3 + a] = rhs[u * 3 + a];
      }
    }
  }
  return {
    count, shDegree, means: means.slice(0, 3 * count), shDc: shDc.slice(0, 3 * count),
    shRest: shRest.slice(0, 3 * (B - 1) * count), opacityLogits: opac.slice(0, count),
    logScales: logScales.slice(0, 3 * count), quats: quats.slice(0, 4 * count),
  };
}

/** The splats as a binary little-endian INRIA-layout PLY (x y z nx ny nz f_dc_* f_rest_* opacity
 * scale_* rot_*; f_rest channel-major, as 3DGS trainers write it). */
export function splatsToPly(sp: Splats): Uint8Array {
  const R = sp.shRest.length / Math.max(sp.count, 1) / 3; // coefficients after the DC term
  const names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"];
  for (let i = 0; i < 3 * R; i++) names.push(`f_rest_${i}`);
  names.push("opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3");
  const head = `ply\nformat binary_little_endian 1.0\nelement vertex ${sp.count}\n${names.map((n) => `property float ${n}\n`).join("")}end_header\n`;
  const headBytes = new TextEncoder().encode(head);
  const row = names.length;
  const body = new Float32Array(sp.count * row);
  for (let g = 0; g < sp.count; g++) {
    const o = g * row;
    body.set(sp.means.subarray(3 * g, 3 * g + 3), o);
    body.set(sp.shDc.subarray(3 * g, 3 * g + 3), o + 6);
    for (let a = 0; a < 3; a++) for (let u = 0; u < R; u++) body[o + 9 + a * R + u] = sp.shRest[(g * R + u) * 3 + a];
    body[o + 9 + 3 * R] = sp.opacityLogits[g];
    body.set(sp.logScales.subarray(3 * g, 3 * g + 3), o + 10 + 3 * R);
    body.set(sp.quats.subarray(4 * g, 4 * g + 4), o + 13 + 3 * R);
  }
  const out = new Uint8Array(headBytes.length + body.byteLength);
  out.set(headBytes, 0);
  const view = new DataView(out.buffer, headBytes.length);
  for (let i = 0; i < body.length; i++) view.setFloat32(4 * i, body[i], true);
  return out;
}
