// AssemblyScript: the exact float64 kernels of the decoder (FORMAT.md "The entropy model's exact path"
// and "Never-drawn Gaussians"), compiled to WebAssembly SIMD by `npm run build` and embedded in the
// bundle. Every kernel performs, per output value, the operations of its JavaScript twin in
// web/src (context.ts, exactmath.ts, hidden.ts) in the same order where the order matters (hash-grid
// interpolation, exp, log1p, tanh), with f64x2 lanes holding independent values. Dot products whose
// products and partial sums are all exact (the MLPs, the mask's integer head) are summed in another
// order, which cannot change a bit. No fused multiply-add anywhere. Pointers are byte offsets into
// this module's memory, which the JavaScript side (src/wasm.ts) lays out. The last section (the
// player's neural Gaussians, src/gaussians.ts) is plain float32 and is exempt from all this.

const P1: i32 = <i32>2654435761;
const P2: i32 = 805459861;
const ACT_GRID: f64 = 1.0 / 4096.0;
const ACT_CLAMP: f64 = 1024.0;
const LEAKY: f64 = 1.0 / 64.0;
const MEAN_GRID: f64 = 1.0 / 1024.0;
const STEP_LEVELS: f64 = 4096.0;
const STEP_BASE: f64 = 512.0;
const STEP_LOG: f64 = 2.0794415416798357;
const SCALE_FLOOR: f64 = 1e-4;

const LOG2E: f64 = 1.4426950408889634;
const LN2_HI: f64 = 6.9314718036912381649e-1;
const LN2_LO: f64 = 1.90821492927058770002e-10;
const E2: f64 = 1.0 / 2.0;
const E3: f64 = 1.0 / 6.0;
const E4: f64 = 1.0 / 24.0;
const E5: f64 = 1.0 / 120.0;
const E6: f64 = 1.0 / 720.0;
const E7: f64 = 1.0 / 5040.0;
const I1: f64 = 1.0 / 3.0;
const I2: f64 = 1.0 / 5.0;
const I3: f64 = 1.0 / 7.0;
const I4: f64 = 1.0 / 9.0;
const I5: f64 = 1.0 / 11.0;
const M0: f64 = 1.0442737824274138;
const M1: f64 = 1.1387886347566916;
const M2: f64 = 1.241857812073484;
const M3: f64 = 1.3542555469368927;
const M4: f64 = 1.4768261459394993;
const M5: f64 = 1.6104903319492543;
const M6: f64 = 1.7562521603732995;
const M7: f64 = 1.9152065613971474;

/** The first byte the JavaScript side may use. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}

// ----------------------------------------------------------------------------- exact math, 2 lanes
@inline function splat(x: f64): v128 {
  return f64x2.splat(x);
}

/** exactmath.ts exp: clamp, k = floor(x·log2e + 0.5), Cody–Waite reduction, degree-7 Horner, p · 2^k. */
@inline function expv(x0: v128): v128 {
  // pmax(a, b) = a < b ? b : a and pmin(a, b) = b < a ? b : a are the JavaScript comparisons exactly
  // (one instruction each, where min/max carry NaN and signed-zero rules)
  const x = f64x2.pmin(f64x2.pmax(x0, splat(-700.0)), splat(700.0));
  const k = f64x2.floor(f64x2.add(f64x2.mul(x, splat(LOG2E)), splat(0.5)));
  const r = f64x2.sub(f64x2.sub(x, f64x2.mul(k, splat(LN2_HI))), f64x2.mul(k, splat(LN2_LO)));
  let p = f64x2.add(f64x2.mul(splat(E7), r), splat(E6));
  p = f64x2.add(f64x2.mul(p, r), splat(E5));
  p = f64x2.add(f64x2.mul(p, r), splat(E4));
  p = f64x2.add(f64x2.mul(p, r), splat(E3));
  p = f64x2.add(f64x2.mul(p, r), splat(E2));
  p = f64x2.add(f64x2.mul(p, r), splat(1.0));
  p = f64x2.add(f64x2.mul(p, r), splat(1.0));
  // 2^k from its exponent bits (k is in [-1010, 1010]: a normal number): k + 2^52 + 1023 is exact and
  // holds 1023 + k in its low mantissa bits, which a shift moves into the exponent field
  const two = i64x2.shl(f64x2.add(k, splat(4503599627371519.0)), 52);
  return f64x2.mul(p, two);
}

/** log1p(y), y in [0, 1]. */
@inline function log1pv(y: v128): v128 {
  const u = f64x2.div(y, f64x2.add(splat(2.0), y));
  const v = f64x2.mul(u, u);
  let s = f64x2.add(f64x2.mul(splat(I5), v), splat(I4));
  s = f64x2.add(f64x2.mul(s, v), splat(I3));
  s = f64x2.add(f64x2.mul(s, v), splat(I2));
  s = f64x2.add(f64x2.mul(s, v), splat(I1));
  s = f64x2.add(f64x2.mul(s, v), splat(1.0));
  return f64x2.mul(splat(2.0), f64x2.mul(u, s));
}

/** max(z, 0) + log1p(exp(−|z|)) */
@inline function softplusv(z: v128): v128 {
  return f64x2.add(f64x2.pmax(splat(0.0), z), log1pv(expv(f64x2.neg(f64x2.abs(z)))));
}

/** ±(1 − 2 / (exp(2|x|) + 1)) */
@inline function tanhv(x: v128): v128 {
  const a = f64x2.sub(splat(1.0), f64x2.div(splat(2.0), f64x2.add(expv(f64x2.mul(splat(2.0), f64x2.abs(x))), splat(1.0))));
  return v128.bitselect(f64x2.neg(a), a, f64x2.lt(x, splat(0.0)));
}

function expScalar(x: f64): f64 {
  return f64x2.extract_lane(expv(splat(x)), 0);
}

function tanhScalar(x: f64): f64 {
  return f64x2.extract_lane(tanhv(splat(x)), 0);
}

@inline function clampBin(c: i64): i32 {
  return c < 0 ? 0 : c > 127 ? 127 : <i32>c;
}

/** Scale bins of two deviations σ > 0: 8 per octave of the binary exponent above −4, plus the
 * octave thresholds not above the mantissa, clamped to 0..127 (context.ts scaleBin). */
@inline function binsv(sigma: v128, out: usize): void {
  const e = i64x2.sub(v128.and(i64x2.shr_u(sigma, 52), i64x2.splat(0x7ff)), i64x2.splat(1023));
  const m = v128.or(v128.and(sigma, i64x2.splat(0x000fffffffffffff)), i64x2.splat(0x3ff0000000000000));
  let c = i64x2.shl(i64x2.add(e, i64x2.splat(4)), 3);
  c = i64x2.sub(c, f64x2.le(splat(M0), m));
  c = i64x2.sub(c, f64x2.le(splat(M1), m));
  c = i64x2.sub(c, f64x2.le(splat(M2), m));
  c = i64x2.sub(c, f64x2.le(splat(M3), m));
  c = i64x2.sub(c, f64x2.le(splat(M4), m));
  c = i64x2.sub(c, f64x2.le(splat(M5), m));
  c = i64x2.sub(c, f64x2.le(splat(M6), m));
  c = i64x2.sub(c, f64x2.le(splat(M7), m));
  store<u8>(out, <u8>clampBin(i64x2.extract_lane(c, 0)));
  store<u8>(out + 1, <u8>clampBin(i64x2.extract_lane(c, 1)));
}

/** The scale bins of sigma[0..n) into out (u8), n even. */
export function scaleBins(sigma: usize, n: i32, out: usize): void {
  for (let j = 0; j < n; j += 2) binsv(v128.load(sigma + (<usize>j << 3)), out + <usize>j);
}

/** exp, softplus and tanh of x[0..n) into out [3n], n even (tests). */
export function mathKernels(x: usize, n: i32, out: usize): void {
  const nb = <usize>n << 3;
  for (let j: usize = 0; j < nb; j += 16) {
    const v = v128.load(x + j);
    v128.store(out + j, expv(v));
    v128.store(out + nb + j, softplusv(v));
    v128.store(out + 2 * nb + j, tanhv(v));
  }
}

// ----------------------------------------------------------------------------- hash grid
@inline function snapGrid(v: v128): v128 {
  // round(v / 2^-12) · 2^-12; v · 4096 is exactly v / 2^-12
  return f64x2.mul(f64x2.nearest(f64x2.mul(v, splat(4096.0))), splat(ACT_GRID));
}

@inline function axisBase(x: f64, res: f64): f64 {
  let b = floor(x);
  if (b < 0) b = 0;
  if (b > res - 1) b = res - 1;
  return b;
}

/** a + w0·r0[j] + w1·r1[j] + w2·r2[j] + w3·r3[j], in that order (corners in order). */
@inline function corners4(a: v128, w0: f64, w1: f64, w2: f64, w3: f64, r0: usize, r1: usize, r2: usize, r3: usize): v128 {
  a = f64x2.add(a, f64x2.mul(splat(w0), v128.load(r0)));
  a = f64x2.add(a, f64x2.mul(splat(w1), v128.load(r1)));
  a = f64x2.add(a, f64x2.mul(splat(w2), v128.load(r2)));
  return f64x2.add(a, f64x2.mul(splat(w3), v128.load(r3)));
}

/** Two snapped features (multiples of 2^-12 in [-1, 1]) as the integers value · 2^12, i16, at p. */
@inline function store16(p: usize, v: v128): void {
  const x = i32x4.trunc_sat_f64x2_s_zero(f64x2.mul(v, splat(4096.0)));
  v128.store32_lane(p, i16x8.narrow_i32x4_s(x, x), 0);
}

/** One 3D level: trilinear interpolation of table (T rows of dim values) at positions pos [n, 3],
 * snapped, into out[i·F + o + j] (unless out is 0), and, unless q16 is 0, as integers (value · 2^12)
 * into the i16 q16[i·Fe + o + j]. dim even. */
export function grid3(table: usize, T: i32, dim: i32, res: i32, pos: usize, n: i32, out: usize, F: i32, o: i32,
                      q16: usize, Fe: i32): void {
  const side = res + 1;
  const dense = <i64>side * <i64>side * <i64>side <= <i64>T;
  const rf = <f64>res;
  const mask = T - 1;
  const rowBytes = <usize>dim << 3;
  for (let i = 0; i < n; i++) {
    const p = pos + <usize>i * 24;
    const x = load<f64>(p) * rf;
    const y = load<f64>(p, 8) * rf;
    const z = load<f64>(p, 16) * rf;
    const bx = axisBase(x, rf);
    const by = axisBase(y, rf);
    const bz = axisBase(z, rf);
    const fx = x - bx, fy = y - by, fz = z - bz;
    const gx = 1 - fx, gy = 1 - fy, gz = 1 - fz;
    const w0 = gx * gy * gz, w1 = fx * gy * gz, w2 = gx * fy * gz, w3 = fx * fy * gz;
    const w4 = gx * gy * fz, w5 = fx * gy * fz, w6 = gx * fy * fz, w7 = fx * fy * fz;
    const cx = <i32>bx, cy = <i32>by, cz = <i32>bz;
    let i0: i32, i1: i32, i2: i32, i3: i32, i4: i32, i5: i32, i6: i32, i7: i32;
    if (dense) {
      const s2 = side * side;
      i0 = cx + cy * side + cz * s2;
      i1 = i0 + 1;
      i2 = i0 + side;
      i3 = i2 + 1;
      i4 = i0 + s2;
      i5 = i4 + 1;
      i6 = i4 + side;
      i7 = i6 + 1;
    } else {
      const hx0 = cx, hx1 = cx + 1;
      const hy0 = cy * P1, hy1 = (cy + 1) * P1;
      const hz0 = cz * P2, hz1 = (cz + 1) * P2;
      i0 = (hx0 ^ hy0 ^ hz0) & mask;
      i1 = (hx1 ^ hy0 ^ hz0) & mask;
      i2 = (hx0 ^ hy1 ^ hz0) & mask;
      i3 = (hx1 ^ hy1 ^ hz0) & mask;
      i4 = (hx0 ^ hy0 ^ hz1) & mask;
      i5 = (hx1 ^ hy0 ^ hz1) & mask;
      i6 = (hx0 ^ hy1 ^ hz1) & mask;
      i7 = (hx1 ^ hy1 ^ hz1) & mask;
    }
    const r0 = table + <usize>i0 * rowBytes, r1 = table + <usize>i1 * rowBytes;
    const r2 = table + <usize>i2 * rowBytes, r3 = table + <usize>i3 * rowBytes;
    const r4 = table + <usize>i4 * rowBytes, r5 = table + <usize>i5 * rowBytes;
    const r6 = table + <usize>i6 * rowBytes, r7 = table + <usize>i7 * rowBytes;
    const dst = out + ((<usize>i * <usize>F + <usize>o) << 3);
    const d16 = q16 + ((<usize>i * <usize>Fe + <usize>o) << 1);
    for (let j: usize = 0; j < <usize>dim << 3; j += 16) {
      const a = corners4(splat(0.0), w0, w1, w2, w3, r0 + j, r1 + j, r2 + j, r3 + j);
      const v = snapGrid(corners4(a, w4, w5, w6, w7, r4 + j, r5 + j, r6 + j, r7 + j));
      if (out) v128.store(dst + j, v);
      if (q16) store16(d16 + (j >> 2), v);
    }
  }
}

/** One 2D level and plane: bilinear interpolation at (pos[3i + a0], pos[3i + a1]). */
export function grid2(table: usize, T: i32, dim: i32, res: i32, pos: usize, n: i32, a0: i32, a1: i32,
                      out: usize, F: i32, o: i32, q16: usize, Fe: i32): void {
  const side = res + 1;
  const dense = <i64>side * <i64>side <= <i64>T;
  const rf = <f64>res;
  const mask = T - 1;
  const rowBytes = <usize>dim << 3;
  for (let i = 0; i < n; i++) {
    const p = pos + <usize>i * 24;
    const x = load<f64>(p + (<usize>a0 << 3)) * rf;
    const y = load<f64>(p + (<usize>a1 << 3)) * rf;
    const bx = axisBase(x, rf);
    const by = axisBase(y, rf);
    const fx = x - bx, fy = y - by;
    const gx = 1 - fx, gy = 1 - fy;
    const w0 = gx * gy, w1 = fx * gy, w2 = gx * fy, w3 = fx * fy;
    const cx = <i32>bx, cy = <i32>by;
    let i0: i32, i1: i32, i2: i32, i3: i32;
    if (dense) {
      i0 = cx + cy * side;
      i1 = i0 + 1;
      i2 = i0 + side;
      i3 = i2 + 1;
    } else {
      const hy0 = cy * P1, hy1 = (cy + 1) * P1;
      i0 = (cx ^ hy0) & mask;
      i1 = ((cx + 1) ^ hy0) & mask;
      i2 = (cx ^ hy1) & mask;
      i3 = ((cx + 1) ^ hy1) & mask;
    }
    const r0 = table + <usize>i0 * rowBytes, r1 = table + <usize>i1 * rowBytes;
    const r2 = table + <usize>i2 * rowBytes, r3 = table + <usize>i3 * rowBytes;
    const dst = out + ((<usize>i * <usize>F + <usize>o) << 3);
    const d16 = q16 + ((<usize>i * <usize>Fe + <usize>o) << 1);
    for (let j: usize = 0; j < <usize>dim << 3; j += 16) {
      const v = snapGrid(corners4(splat(0.0), w0, w1, w2, w3, r0 + j, r1 + j, r2 + j, r3 + j));
      if (out) v128.store(dst + j, v);
      if (q16) store16(d16 + (j >> 2), v);
    }
  }
}

// ----------------------------------------------------------------------------- MLPs
/** dst[0..8) = init[0..8) + Σ_k x[k] · w[k·stride + 0..8) over k < K (stride in bytes). The
 * products and partial sums of the context MLPs are exact, so this order gives their bits. */
@inline function matvec8(x: usize, K: i32, w: usize, stride: usize, init: usize, dst: usize): void {
  let a0 = v128.load(init), a1 = v128.load(init, 16), a2 = v128.load(init, 32), a3 = v128.load(init, 48);
  let wp = w;
  for (let k = 0; k < K; k++) {
    const xv = v128.load64_splat(x + (<usize>k << 3));
    a0 = f64x2.add(a0, f64x2.mul(xv, v128.load(wp)));
    a1 = f64x2.add(a1, f64x2.mul(xv, v128.load(wp, 16)));
    a2 = f64x2.add(a2, f64x2.mul(xv, v128.load(wp, 32)));
    a3 = f64x2.add(a3, f64x2.mul(xv, v128.load(wp, 48)));
    wp += stride;
  }
  v128.store(dst, a0);
  v128.store(dst, a1, 16);
  v128.store(dst, a2, 32);
  v128.store(dst, a3, 48);
}

@inline function activate(v0: v128): v128 {
  const v = v128.bitselect(v0, f64x2.mul(v0, splat(LEAKY)), f64x2.ge(v0, splat(0.0)));
  return snapGrid(f64x2.pmin(f64x2.pmax(v, splat(-ACT_CLAMP)), splat(ACT_CLAMP)));
}

/** The first layer of both context MLPs for anchors 0..n: h [n, F] · w [F, Hp] + bias [Hp] (+ the row
 * parent[i] of terms [·, H] unless terms = 0; lanes past H are padding), then, when act, LeakyReLU,
 * clamp and snap → out [n, Hp]; Hp a multiple of 8. Without act and with a zero bias: the parents' terms. */
export function layer1(h: usize, n: i32, F: i32, w: usize, Hp: i32, terms: usize, H: i32, parent: usize, bias: usize,
                       act: bool, out: usize): void {
  const hb = <usize>Hp << 3;
  for (let i = 0; i < n; i++) {
    const dst = out + <usize>i * hb;
    for (let ko: usize = 0; ko < hb; ko += 64) matvec8(h + ((<usize>i * <usize>F) << 3), F, w + ko, hb, bias + ko, dst + ko);
    if (terms) {
      const tr = terms + ((<usize>load<i32>(parent + (<usize>i << 2)) * <usize>H) << 3);
      for (let ko: usize = 0; ko < hb; ko += 16) v128.store(dst + ko, f64x2.add(v128.load(dst + ko), v128.load(tr + ko)));
    }
    if (act) for (let ko: usize = 0; ko < hb; ko += 16) v128.store(dst + ko, activate(v128.load(dst + ko)));
  }
}

/** layer1 with 16-bit integer products (WebAssembly's i32x4.dot_i16x8_s: eight products per
 * instruction, where float64 lanes hold two): the features as integers hq i16 [n, Fe] (value · 2^12,
 * |·| ≤ 2^12; Fe even), the weights' mantissas wq i16 [Fe / 2, Hp / 4, 8] (per input pair and output
 * quad, the pair's two weights of each output side by side), scale f64 [Hp] = 2^-(12 + the unit's
 * exponent). The caller checks that no sum can leave i32 (Fe · 2^12 · max|m| < 2^31), so each sum
 * is exact and, scaled, equals layer1's float64 sum bit for bit; bias, terms and activation as
 * there. Hp a multiple of 8. */
export function layer1i(hq: usize, n: i32, Fe: i32, wq: usize, Hp: i32, scale: usize, terms: usize, H: i32,
                        parent: usize, bias: usize, act: bool, out: usize): void {
  const pairStride = <usize>Hp << 2; // bytes per input pair: Hp / 4 quads of 16 bytes
  const pairs = Fe >> 1;
  for (let i = 0; i < n; i++) {
    const dst = out + ((<usize>i * <usize>Hp) << 3);
    const xr = hq + ((<usize>i * <usize>Fe) << 1);
    const tr = terms ? terms + ((<usize>load<i32>(parent + (<usize>i << 2)) * <usize>H) << 3) : 0;
    for (let o: usize = 0; o < <usize>Hp; o += 8) {
      let a0 = i32x4.splat(0), a1 = i32x4.splat(0);
      let wp = wq + (o << 2);
      for (let p = 0; p < pairs; p++) {
        const xv = v128.load32_splat(xr + (<usize>p << 2));
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(xv, v128.load(wp)));
        a1 = i32x4.add(a1, i32x4.dot_i16x8_s(xv, v128.load(wp, 16)));
        wp += pairStride;
      }
      const d = dst + (o << 3);
      const sc = scale + (o << 3);
      const bi = bias + (o << 3);
      let v0 = f64x2.add(f64x2.mul(f64x2.convert_low_i32x4_s(a0), v128.load(sc)), v128.load(bi));
      let v1 = f64x2.add(f64x2.mul(f64x2.convert_low_i32x4_s(v128.shuffle<i32>(a0, a0, 2, 3, 0, 1)), v128.load(sc, 16)),
                         v128.load(bi, 16));
      let v2 = f64x2.add(f64x2.mul(f64x2.convert_low_i32x4_s(a1), v128.load(sc, 32)), v128.load(bi, 32));
      let v3 = f64x2.add(f64x2.mul(f64x2.convert_low_i32x4_s(v128.shuffle<i32>(a1, a1, 2, 3, 0, 1)), v128.load(sc, 48)),
                         v128.load(bi, 48));
      if (tr) {
        const t = tr + (o << 3);
        v0 = f64x2.add(v0, v128.load(t));
        v1 = f64x2.add(v1, v128.load(t, 16));
        v2 = f64x2.add(v2, v128.load(t, 32));
        v3 = f64x2.add(v3, v128.load(t, 48));
      }
      if (act) {
        v0 = activate(v0);
        v1 = activate(v1);
        v2 = activate(v2);
        v3 = activate(v3);
      }
      v128.store(d, v0);
      v128.store(d, v1, 16);
      v128.store(d, v2, 32);
      v128.store(d, v3, 48);
    }
  }
}

/** The second layers and the coding parameters. hid [n, Hp] (units 0..Hd of MLP_d, then Hq of
 * MLP_q); w2 [Hd, Dp2] (Dp2 >= 2D a multiple of 8), b2 [Dp2]; w2q [Hq, 3], b2q [3]; q0 [3];
 * types [3, D + 2]: per attribute type, all-ones lanes on its channels. Scratch: dloc [Dp2 + 2], iq [D + 2]. Out: mean
 * [n, D] (+1 slack), bins u8 [n, D] (+1; untouched unless withBins), step [n, 3]. */
export function heads(hid: usize, n: i32, Hp: i32, Hd: i32, Hq: i32, w2: usize, Dp2: i32, b2: usize, w2q: usize,
                      b2q: usize, q0: usize, types: usize, D: i32, dloc: usize, iq: usize, mean: usize,
                      bins: usize, step: usize, withBins: bool): void {
  // without bins (a parent predictor replaces them) only the means' half of the second layer is needed
  const outBytes: usize = withBins ? <usize>Dp2 << 3 : <usize>((D + 7) & ~7) << 3;
  for (let i = 0; i < n; i++) {
    const hr = hid + ((<usize>i * <usize>Hp) << 3);
    for (let co: usize = 0; co < outBytes; co += 64) matvec8(hr, Hd, w2 + co, <usize>Dp2 << 3, b2 + co, dloc + co);
    // the step per attribute type
    const qr = hr + (<usize>Hd << 3);
    let inv0: f64 = 0, inv1: f64 = 0, inv2: f64 = 0;
    for (let c = 0; c < 3; c++) {
      let t: f64 = 0;
      for (let k = 0; k < Hq; k++) t = t + load<f64>(qr + (<usize>k << 3)) * load<f64>(w2q + (<usize>(k * 3 + c) << 3));
      t = t + load<f64>(b2q + (<usize>c << 3));
      let kk = nearest<f64>(expScalar(tanhScalar(t) * STEP_LOG) * STEP_BASE);
      if (kk < 1) kk = 1;
      if (kk > STEP_LEVELS) kk = STEP_LEVELS;
      const q = (load<f64>(q0 + (<usize>c << 3)) * kk) / STEP_BASE;
      store<f64>(step + ((<usize>i * 3 + <usize>c) << 3), q);
      const v = 1 / q;
      if (c == 0) inv0 = v;
      else if (c == 1) inv1 = v;
      else inv2 = v;
    }
    // 1/q per channel: the type masks (types [3, D + 2] of 0 / all-ones lanes) select the step
    const iv0 = splat(inv0), iv1 = splat(inv1), iv2 = splat(inv2);
    const tb = <usize>(D + 2) << 3;
    for (let jo: usize = 0; jo < <usize>D << 3; jo += 16) {
      const sel = v128.or(v128.and(v128.load(types + jo), iv0), v128.and(v128.load(types + tb + jo), iv1));
      v128.store(iq + jo, v128.or(sel, v128.and(v128.load(types + 2 * tb + jo), iv2)));
    }
    const mo = mean + ((<usize>i * <usize>D) << 3);
    const bo = bins + <usize>i * <usize>D;
    const dev = dloc + (<usize>D << 3);
    for (let j = 0; j < D; j += 2) {
      const jo = <usize>j << 3;
      const iqv = v128.load(iq + jo);
      const m = f64x2.mul(f64x2.nearest(f64x2.mul(f64x2.mul(v128.load(dloc + jo), iqv), splat(1.0 / MEAN_GRID))),
                          splat(MEAN_GRID));
      v128.store(mo + jo, m);
      if (withBins) {
        const sigma = f64x2.mul(f64x2.add(softplusv(v128.load(dev + jo)), splat(SCALE_FLOOR)), iqv);
        binsv(sigma, bo + <usize>j);
      }
    }
  }
}

// ----------------------------------------------------------------------------- the mask's context
@inline function snapInput(x: f64): f64 {
  const v = nearest<f64>(x * 4096.0);
  return v < -1048576.0 ? -1048576.0 : v > 1048576.0 ? 1048576.0 : v;
}

/** hidden.ts HiddenRule.buckets for anchors 0..n. feat [n, F] decoded features; keys i32 [n, 3];
 * w1f [F, Hp] and wv [4, Hp] (view x, y, z, distance) mantissas, lvl [Hp] = level column · 2^12 +
 * bias; w2 [Hp, Kp] (Kp a multiple of 8), b2 [Kp]; cams [nc, 3]; geo [origin x y z, cell, size,
 * unit, threshold, edges 0..5]. Scratch: fixed [Hp], hbuf [Hp], on i32 [Hp], hi [Kp]. Out i8 [n, K]. */
export function buckets(feat: usize, keys: usize, n: i32, F: i32, Hp: i32, K: i32, Kp: i32, w1f: usize, lvl: usize,
                        wv: usize, w2: usize, b2: usize, cams: usize, nc: i32, geo: usize, fixed: usize,
                        hbuf: usize, on: usize, hi: usize, out: usize): void {
  const ox = load<f64>(geo), oy = load<f64>(geo, 8), oz = load<f64>(geo, 16);
  const cell = load<f64>(geo, 24), size = load<f64>(geo, 32), unit = load<f64>(geo, 40);
  const threshold = load<f64>(geo, 48);
  const hb = <usize>Hp << 3;
  const kb = <usize>Kp << 3;
  for (let i = 0; i < n; i++) {
    const fr = feat + ((<usize>i * <usize>F) << 3);
    for (let k: usize = 0; k < hb; k += 16) v128.store(fixed + k, v128.load(lvl + k));
    for (let f = 0; f < F; f++) {
      const xv = splat(snapInput(load<f64>(fr + (<usize>f << 3))));
      let wp = w1f + ((<usize>f * <usize>Hp) << 3);
      for (let k: usize = 0; k < hb; k += 16) {
        v128.store(fixed + k, f64x2.add(v128.load(fixed + k), f64x2.mul(xv, v128.load(wp + k))));
      }
    }
    const kr = keys + <usize>i * 12;
    const px = ox + (<f64>load<i32>(kr) + 0.5) * cell;
    const py = oy + (<f64>load<i32>(kr, 4) + 0.5) * cell;
    const pz = oz + (<f64>load<i32>(kr, 8) + 0.5) * cell;
    for (let j: usize = 0; j < kb; j += 16) v128.store(hi + j, splat(-Infinity));
    for (let c = 0; c < nc; c++) {
      const cp = cams + <usize>c * 24;
      const x = px - load<f64>(cp), y = py - load<f64>(cp, 8), z = pz - load<f64>(cp, 16);
      let dist = sqrt<f64>(x * x + y * y + z * z);
      if (dist < 1e-8) dist = 1e-8;
      const v0 = splat(snapInput(x / dist)), v1 = splat(snapInput(y / dist)), v2 = splat(snapInput(z / dist));
      const vr = splat(snapInput(dist / size));
      let nz = 0;
      for (let k: usize = 0; k < hb; k += 16) {
        let pre = v128.load(fixed + k);
        pre = f64x2.add(pre, f64x2.mul(v0, v128.load(wv + k)));
        pre = f64x2.add(pre, f64x2.mul(v1, v128.load(wv + hb + k)));
        pre = f64x2.add(pre, f64x2.mul(v2, v128.load(wv + 2 * hb + k)));
        pre = f64x2.add(pre, f64x2.mul(vr, v128.load(wv + 3 * hb + k)));
        const h = f64x2.pmin(f64x2.nearest(f64x2.mul(pre, splat(unit))), splat(1073741824.0));
        const p0 = f64x2.extract_lane(pre, 0), p1 = f64x2.extract_lane(pre, 1);
        const ki = <i32>(k >> 3);
        // the active units, compacted without branches
        store<f64>(hbuf + (<usize>nz << 3), f64x2.extract_lane(h, 0));
        store<i32>(on + (<usize>nz << 2), ki);
        nz += <i32>(p0 > 0);
        store<f64>(hbuf + (<usize>nz << 3), f64x2.extract_lane(h, 1));
        store<i32>(on + (<usize>nz << 2), ki + 1);
        nz += <i32>(p1 > 0);
      }
      for (let jb: usize = 0; jb < kb; jb += 64) {
        let a0 = v128.load(b2 + jb), a1 = v128.load(b2 + jb, 16);
        let a2 = v128.load(b2 + jb, 32), a3 = v128.load(b2 + jb, 48);
        for (let t = 0; t < nz; t++) {
          const hv = v128.load64_splat(hbuf + (<usize>t << 3));
          const wp = w2 + <usize>load<i32>(on + (<usize>t << 2)) * kb + jb;
          a0 = f64x2.add(a0, f64x2.mul(hv, v128.load(wp)));
          a1 = f64x2.add(a1, f64x2.mul(hv, v128.load(wp, 16)));
          a2 = f64x2.add(a2, f64x2.mul(hv, v128.load(wp, 32)));
          a3 = f64x2.add(a3, f64x2.mul(hv, v128.load(wp, 48)));
        }
        const d = hi + jb;
        v128.store(d, f64x2.pmax(v128.load(d), a0));
        v128.store(d, f64x2.pmax(v128.load(d, 16), a1), 16);
        v128.store(d, f64x2.pmax(v128.load(d, 32), a2), 32);
        v128.store(d, f64x2.pmax(v128.load(d, 48), a3), 48);
      }
    }
    const o = out + <usize>i * <usize>K;
    for (let j = 0; j < K; j++) {
      const depth = threshold - load<f64>(hi + (<usize>j << 3));
      let b = -1;
      if (depth > 0) {
        b = 0;
        while (b < 6 && load<f64>(geo + (<usize>(7 + b) << 3)) <= depth) b++;
      }
      store<i8>(o + <usize>j, <i8>b);
    }
  }
}

// ----------------------------------------------------------------------------- range decoding
// FORMAT.md "Range coding" with native 64-bit integers: D = point − lower, R = range.
let rdD: u64 = 0;
let rdR: u64 = 0;
let rdWords: usize = 0;
let rdCount: i32 = 0;
let rdNext: i32 = 0;

@inline function rdWord(i: i32): u64 {
  return i < rdCount ? <u64>load<u32>(rdWords + (<usize>i << 2)) : 0;
}

/** Starts decoding the u32 words [n] at words. */
export function rdStart(words: usize, n: i32): void {
  rdWords = words;
  rdCount = n;
  rdD = (rdWord(0) << 32) | rdWord(1);
  rdR = 0xffffffffffffffff;
  rdNext = 2;
}

/** One symbol of the table (cdf u32 [nsym + 1], start u32 [4097]: per 2^12 quantiles the symbol
 * they start in); −1 where the data are corrupt. */
@inline function rdSymbol(cdf: usize, start: usize, nsym: i32): i32 {
  const scale = rdR >> 24;
  // q = D div scale: a float64 quotient (off by at most one below 2^25) corrected exactly; a 64-bit
  // integer division costs several times more. Every conversion is a signed one (one instruction):
  // D >> 1 < 2^63, and the quotient is checked below 2^24 before it becomes an integer.
  const qf = floor((<f64><i64>(rdD >> 1) * 2.0) / <f64><i64>scale);
  if (qf > 16777216.0) return -1;
  let q = <u64><i64>qf;
  const prod = q * scale;
  if (prod > rdD) q--;
  else if (rdD - prod >= scale) q++;
  if (q >= 16777216) return -1;
  const qi = <u32>q;
  const b = <usize>(qi >> 12);
  let lo = load<u32>(start + (b << 2));
  let hi = load<u32>(start + (b << 2), 4);
  if (lo != hi) {
    // (where a bucket starts and ends in one symbol, all its quantiles are that symbol's)
    if (hi < <u32>(nsym - 1)) hi++;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      const up = load<u32>(cdf + (<usize>mid << 2)) <= qi;
      lo = select<u32>(mid, lo, up);
      hi = select<u32>(hi, mid - 1, up);
    }
  }
  const left = <u64>load<u32>(cdf + (<usize>lo << 2));
  const freq = <u64>load<u32>(cdf + (<usize>lo << 2), 4) - left;
  rdD -= scale * left;
  rdR = scale * freq;
  if (rdR < 0x100000000) {
    rdR <<= 32;
    rdD = (rdD << 32) | rdWord(rdNext);
    rdNext++;
  }
  return <i32>lo;
}

export function rdDecode(cdf: usize, start: usize, nsym: i32): i32 {
  return rdSymbol(cdf, start, nsym);
}

/** fill[b] = Σ counts[b'] over b' < b: where each bin's symbols start in the decoding order. */
@inline function binStarts(counts: usize, fill: usize): void {
  let acc = 0;
  for (let b: usize = 0; b < 256; b++) {
    store<i32>(fill + (b << 2), acc);
    acc += load<i32>(counts + (b << 2));
  }
}

/** The symbol counts per bin, counts i32 [256], of the symbols at i·D + off + j (j < len) of bins u8 [n, D]. */
export function countCols(bins: usize, n: i32, D: i32, off: i32, len: i32, counts: usize): void {
  memory.fill(counts, 0, 1024);
  for (let i = 0; i < n; i++) {
    const row = bins + <usize>i * <usize>D + <usize>off;
    for (let j = 0; j < len; j++) {
      const c = counts + (<usize>load<u8>(row + <usize>j) << 2);
      store<i32>(c, load<i32>(c) + 1);
    }
  }
}

/** The same symbols' order of decoding: grouped by bin (ascending), index order inside a bin, from
 * their counts into order i32 (their indices into bins, i·D + off + j). Scratch: fill i32 [256]. */
export function groupCols(bins: usize, n: i32, D: i32, off: i32, len: i32, counts: usize, fill: usize, order: usize): void {
  binStarts(counts, fill);
  for (let i = 0; i < n; i++) {
    const base = i * D + off;
    for (let j = 0; j < len; j++) {
      const f = fill + (<usize>load<u8>(bins + <usize>(base + j)) << 2);
      const k = load<i32>(f);
      store<i32>(order + (<usize>k << 2), base + j);
      store<i32>(f, k + 1);
    }
  }
}

/** countCols over the symbols at idx i32 [m] (ascending indices into bins). */
export function countIdx(bins: usize, idx: usize, m: i32, counts: usize): void {
  memory.fill(counts, 0, 1024);
  for (let t = 0; t < m; t++) {
    const c = counts + (<usize>load<u8>(bins + <usize>load<i32>(idx + (<usize>t << 2))) << 2);
    store<i32>(c, load<i32>(c) + 1);
  }
}

/** groupCols over the symbols at idx: order gets their indices into bins. */
export function groupIdx(bins: usize, idx: usize, m: i32, counts: usize, fill: usize, order: usize): void {
  binStarts(counts, fill);
  for (let t = 0; t < m; t++) {
    const i = load<i32>(idx + (<usize>t << 2));
    const f = fill + (<usize>load<u8>(bins + <usize>i) << 2);
    const k = load<i32>(f);
    store<i32>(order + (<usize>k << 2), i);
    store<i32>(f, k + 1);
  }
}

/** decoder.ts dequantize: per anchor i and channel j, values = (r + mean) · q_type(j) with r = symbol +
 * shift (symbol alone without shift = 0), r = 0 for the offsets of a hidden Gaussian (hidden u8 [n, K],
 * or 0); and the values as float32: feature [n, F], scaling [n, 6], offsets [n, 3K] (D = F + 6 + 3K,
 * even). types: the f64 masks [3, D + 2] of heads (its two rows' slack lanes are 0); types8 u8 [D];
 * step [n, 3]. */
export function dequant(n: i32, D: i32, F: i32, K: i32, types: usize, types8: usize, symbols: usize, shift: usize, mean: usize,
                        step: usize, hidden: usize, values: usize, feature: usize, scaling: usize, offsets: usize): void {
  const fs = F + 6;
  const K3 = 3 * K;
  const tb = <usize>(D + 2) << 3;
  for (let i = 0; i < n; i++) {
    const row = (<usize>i * <usize>D) << 3;
    const st = step + <usize>i * 24;
    const q0 = load<f64>(st), q1 = load<f64>(st, 8), q2 = load<f64>(st, 16);
    const v0 = splat(q0), v1 = splat(q1), v2 = splat(q2);
    // two channels at a time (D even), the step picked by the type masks
    for (let jo: usize = 0; jo < <usize>D << 3; jo += 16) {
      const q = v128.or(v128.or(v128.and(v128.load(types + jo), v0), v128.and(v128.load(types + tb + jo), v1)),
                        v128.and(v128.load(types + 2 * tb + jo), v2));
      let r = v128.load(symbols + row + jo);
      if (shift) r = f64x2.add(r, v128.load(shift + row + jo));
      v128.store(values + row + jo, f64x2.mul(f64x2.add(r, v128.load(mean + row + jo)), q));
    }
    if (hidden) {
      // a hidden Gaussian's offset residuals are 0 (not its shift)
      const hr = hidden + <usize>i * <usize>K;
      for (let k = 0; k < K; k++) {
        if (!load<u8>(hr + <usize>k)) continue;
        for (let c = 0; c < 3; c++) {
          const j = fs + 3 * k + c;
          const o = row + (<usize>j << 3);
          store<f64>(values + o, (0 + load<f64>(mean + o)) * q2s(load<u8>(types8 + <usize>j), q0, q1, q2));
        }
      }
    }
    const vr = values + row;
    const fo = feature + ((<usize>i * <usize>F) << 2);
    for (let j = 0; j < F; j++) store<f32>(fo + (<usize>j << 2), <f32>load<f64>(vr + (<usize>j << 3)));
    const so = scaling + <usize>i * 24;
    for (let j = 0; j < 6; j++) store<f32>(so + (<usize>j << 2), <f32>load<f64>(vr + (<usize>(F + j) << 3)));
    const oo = offsets + ((<usize>i * <usize>K3) << 2);
    for (let j = 0; j < K3; j++) store<f32>(oo + (<usize>j << 2), <f32>load<f64>(vr + (<usize>(fs + j) << 3)));
  }
}

@inline function q2s(t: u8, q0: f64, q1: f64, q2: f64): f64 {
  return t == 0 ? q0 : t == 1 ? q1 : q2;
}

/** The residuals of the symbols order[k0..k1) (one scale bin: table cdf, start, nsym, centre T):
 * out f64 [n] gets r = symbol − T, or 0 for an escape, whose index is appended to esc i32 at ne.
 * Returns the new number of escapes, or −1 where the data are corrupt. (Called in slices: a long
 * call would keep running the engine's first-tier code.) */
export function decodeBin(order: usize, k0: i32, k1: i32, cdf: usize, start: usize, nsym: i32, T: i32, out: usize,
                          esc: usize, ne: i32): i32 {
  const e = 2 * T + 1;
  const Tf = <f64>T;
  for (let k = k0; k < k1; k++) {
    const s = rdSymbol(cdf, start, nsym);
    if (s < 0) return -1;
    const i = <usize>load<i32>(order + (<usize>k << 2));
    if (s == e) {
      store<i32>(esc + (<usize>ne << 2), <i32>i);
      ne++;
      store<f64>(out + (i << 3), 0);
    } else store<f64>(out + (i << 3), <f64>s - Tf);
  }
  return ne;
}

// ----------------------------------------------------------------------------- parent predictor
/** prediction.ts applyPredictor for anchors 0..n: per channel μ = (a·v + b·(m·q)) + c with v the
 * parent's value (prev [·, D], parent i32 [n]), shift = round(μ · (1/q) − m) → shift [n, D] (+1),
 * and the bin of s · (1/q) → bins u8 [n, D] (+1). pred [4, D + 1] = a, b, c, s; types f64 masks [3, D + 2]
 * as in heads. Scratch: qs, iq [D + 2]. */
export function predict(n: i32, D: i32, types: usize, pred: usize, mean: usize, step: usize, prev: usize, parent: usize,
                        qs: usize, iq: usize, shift: usize, bins: usize): void {
  const db = <usize>(D + 1) << 3;
  // types [3, D + 2]: per attribute type, all-ones lanes on its channels (as heads); qs, iq scratch
  const tb = <usize>(D + 2) << 3;
  for (let i = 0; i < n; i++) {
    const st = step + <usize>i * 24;
    const q0 = load<f64>(st), q1 = load<f64>(st, 8), q2 = load<f64>(st, 16);
    const v0 = splat(q0), v1 = splat(q1), v2 = splat(q2);
    const w0 = splat(1 / q0), w1 = splat(1 / q1), w2 = splat(1 / q2);
    for (let jo: usize = 0; jo < <usize>D << 3; jo += 16) {
      const m0 = v128.load(types + jo), m1 = v128.load(types + tb + jo), m2 = v128.load(types + 2 * tb + jo);
      v128.store(qs + jo, v128.or(v128.or(v128.and(m0, v0), v128.and(m1, v1)), v128.and(m2, v2)));
      v128.store(iq + jo, v128.or(v128.or(v128.and(m0, w0), v128.and(m1, w1)), v128.and(m2, w2)));
    }
    const row = <usize>i * <usize>D;
    const vr = prev + ((<usize>load<i32>(parent + (<usize>i << 2)) * <usize>D) << 3);
    for (let j = 0; j < D; j += 2) {
      const jo = <usize>j << 3;
      const m = v128.load(mean + (row << 3) + jo);
      const q = v128.load(qs + jo);
      const iv = v128.load(iq + jo);
      const ab = f64x2.add(f64x2.mul(v128.load(pred + jo), v128.load(vr + jo)),
                           f64x2.mul(v128.load(pred + db + jo), f64x2.mul(m, q)));
      const mu = f64x2.add(ab, v128.load(pred + 2 * db + jo));
      v128.store(shift + (row << 3) + jo, f64x2.nearest(f64x2.sub(f64x2.mul(mu, iv), m)));
      binsv(f64x2.mul(v128.load(pred + 3 * db + jo), iv), bins + row + <usize>j);
    }
  }
}

/** rangecoder.ts frequencies(): the table of weights w f64 [n] into cdf u32 [n + 1] and its bucket
 * starts u32 [4097]. */
function buildTable(w: usize, n: i32, cdf: usize, start: usize): void {
  let total: f64 = 0;
  for (let i = 0; i < n; i++) total += load<f64>(w + (<usize>i << 3));
  const k = (16777216.0 - <f64>n) / total;
  let c: f64 = 0;
  for (let i = 0; i < n; i++) {
    store<u32>(cdf + (<usize>i << 2), <u32>(floor(c * k) + <f64>i));
    c += load<f64>(w + (<usize>i << 3));
  }
  store<u32>(cdf + (<usize>n << 2), 16777216);
  let s = 0;
  for (let b = 0; b <= 4096; b++) {
    const q = <u32>b << 12;
    while (s < n - 1 && load<u32>(cdf + (<usize>(s + 1) << 2)) <= q) s++;
    store<u32>(start + (<usize>b << 2), <u32>s);
  }
}

/** rangecoder.ts decodeAdaptive: count symbols of nsym values coded block-adaptively (blocks of 64,
 * 128, … with the table of the counts so far, plus one) into out u8 [count]. Scratch: counts f64
 * [nsym], cdf u32 [nsym + 1], start u32 [4097]. Returns −1 where the data are corrupt. */
export function adaptive(count: i32, nsym: i32, out: usize, counts: usize, cdf: usize, start: usize): i32 {
  for (let i = 0; i < nsym; i++) store<f64>(counts + (<usize>i << 3), 1.0);
  for (let s = 0, size = 64; s < count; s += size, size *= 2) {
    const e = min(count, s + size);
    buildTable(counts, nsym, cdf, start);
    for (let i = s; i < e; i++) {
      const sym = rdSymbol(cdf, start, nsym);
      if (sym < 0) return -1;
      store<u8>(out + <usize>i, <u8>sym);
    }
    for (let i = s; i < e; i++) {
      const c = counts + (<usize>load<u8>(out + <usize>i) << 3);
      store<f64>(c, load<f64>(c) + 1.0);
    }
  }
  return 0;
}

/** count symbols of one table (cdf, start, nsym as in rdSymbol) into out u8 [count]; −1 where the
 * data are corrupt. */
export function decodeRun(count: i32, cdf: usize, start: usize, nsym: i32, out: usize): i32 {
  for (let i = 0; i < count; i++) {
    const s = rdSymbol(cdf, start, nsym);
    if (s < 0) return -1;
    store<u8>(out + <usize>i, <u8>s);
  }
  return 0;
}

// ----------------------------------------------------------------------------- neural Gaussians (float32)
// The player's Gaussians from one camera (src/gaussians.ts): plain float32 arithmetic, for display, so
// these need not give the bits of their JavaScript twin (which rounds to float32 at the end), only
// agree within float32 rounding. Layouts: Hp = hidden units padded to 4; W = 3·Hp padded to 16 (the
// three heads' first layers side by side: opacity, colour, covariance).

/** dst[0..16) = init[0..16) + Σ_j x[j] · w[j·stride + 0..16) over j < n (float32; stride in bytes). */
@inline function matvec16f(x: usize, n: i32, w: usize, stride: usize, init: usize, dst: usize): void {
  let a0 = v128.load(init), a1 = v128.load(init, 16), a2 = v128.load(init, 32), a3 = v128.load(init, 48);
  let wp = w;
  for (let j = 0; j < n; j++) {
    const xv = v128.load32_splat(x + (<usize>j << 2));
    a0 = f32x4.add(a0, f32x4.mul(xv, v128.load(wp)));
    a1 = f32x4.add(a1, f32x4.mul(xv, v128.load(wp, 16)));
    a2 = f32x4.add(a2, f32x4.mul(xv, v128.load(wp, 32)));
    a3 = f32x4.add(a3, f32x4.mul(xv, v128.load(wp, 48)));
    wp += stride;
  }
  v128.store(dst, a0);
  v128.store(dst, a1, 16);
  v128.store(dst, a2, 32);
  v128.store(dst, a3, 48);
}

/** out[i·W + c] = bias[c] + Σ_j feat[i·F + j] · w[j·W + c]: the first layers' camera-independent terms
 * (feature and level columns) of anchors 0..n; W a multiple of 16. */
export function gaussFixed(feat: usize, n: i32, F: i32, w: usize, W: i32, bias: usize, out: usize): void {
  const wb = <usize>W << 2;
  for (let i = 0; i < n; i++) {
    const fr = feat + ((<usize>i * <usize>F) << 2);
    const dst = out + <usize>i * wb;
    for (let co: usize = 0; co < wb; co += 64) matvec16f(fr, F, w + co, wb, bias + co, dst + co);
  }
}

/** out[i] = exp(x[i]), i < n (float32). */
export function expf32(x: usize, n: i32, out: usize): void {
  for (let i = 0; i < n; i++) store<f32>(out + (<usize>i << 2), Mathf.exp(load<f32>(x + (<usize>i << 2))));
}

/** One head's hidden layer for an anchor: dst[0..Hp) = ReLU(fixed + Σ_r in_r · wv[r·W + ·]). */
@inline function hiddenf(fixed: usize, wv: usize, wb: usize, Hp: i32, i0: v128, i1: v128, i2: v128, i3: v128,
                         dst: usize): void {
  const zero = f32x4.splat(0);
  for (let c: usize = 0; c < <usize>Hp << 2; c += 16) {
    let v = f32x4.add(v128.load(fixed + c), f32x4.mul(i0, v128.load(wv + c)));
    v = f32x4.add(v, f32x4.mul(i1, v128.load(wv + wb + c)));
    v = f32x4.add(v, f32x4.mul(i2, v128.load(wv + 2 * wb + c)));
    v = f32x4.add(v, f32x4.mul(i3, v128.load(wv + 3 * wb + c)));
    v128.store(dst + c, f32x4.max(v, zero));
  }
}

@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

@inline function sigmoidf(x: f32): f32 {
  return <f32>1 / (<f32>1 + Mathf.exp(-x));
}

/** The Gaussians of anchors 0..n seen from the camera centre (cx, cy, cz); returns how many (offsets
 * whose opacity is positive, in anchor then offset order).
 * fixed [n, W] (gaussFixed), wv [4, W] (the view direction and distance columns), pos [n, 3],
 * offs [n, K·3], scl [n, 6] (exp of the scaling: offset scale, then base scale); wo [Hp, Ko] the
 * opacity head's second layer transposed (Ko a multiple of 16), bo [Ko]; w2 [K, 10, Hp] per offset
 * its 3 colour rows then its 7 covariance rows, b2 [K, 10]. Scratch: hid [3·Hp], raw [Ko].
 * Out: means [·, 3], scales [·, 3], quats [·, 4] (w, x, y, z), opac [·], colors [·, 3]. */
export function gaussGenerate(n: i32, fixed: usize, W: i32, Hp: i32, wv: usize, pos: usize, cx: f64, cy: f64, cz: f64,
                              distScale: f64, wo: usize, bo: usize, Ko: i32, K: i32, w2: usize, b2: usize,
                              offs: usize, scl: usize, hid: usize, raw: usize, means: usize, scales: usize,
                              quats: usize, opac: usize, colors: usize): i32 {
  const wb = <usize>W << 2;
  const hb = <usize>Hp << 2;
  const kb = <usize>Ko << 2;
  const hCo = hid + hb, hCv = hid + 2 * hb;
  let g: usize = 0;
  for (let i = 0; i < n; i++) {
    const pp = pos + <usize>i * 12;
    const px = load<f32>(pp), py = load<f32>(pp, 4), pz = load<f32>(pp, 8);
    const vx = <f64>px - cx, vy = <f64>py - cy, vz = <f64>pz - cz;
    const dist = Math.max(Math.sqrt(vx * vx + vy * vy + vz * vz), 1e-8);
    const i0 = f32x4.splat(<f32>(vx / dist)), i1 = f32x4.splat(<f32>(vy / dist)), i2 = f32x4.splat(<f32>(vz / dist));
    const i3 = f32x4.splat(<f32>(dist / distScale));
    const fr = fixed + <usize>i * wb;
    hiddenf(fr, wv, wb, Hp, i0, i1, i2, i3, hid);
    // opacity: Ko outputs, 16 at a time
    for (let co: usize = 0; co < kb; co += 64) matvec16f(hid, Hp, wo + co, kb, bo + co, raw + co);
    let any = false;
    for (let k = 0; k < K; k++) if (load<f32>(raw + (<usize>k << 2)) > 0) any = true;
    if (!any) continue;
    hiddenf(fr + hb, wv + hb, wb, Hp, i0, i1, i2, i3, hCo);
    hiddenf(fr + 2 * hb, wv + 2 * hb, wb, Hp, i0, i1, i2, i3, hCv);
    const sp = scl + <usize>i * 24;
    const op = offs + <usize>i * <usize>K * 12;
    for (let k = 0; k < K; k++) {
      const o = load<f32>(raw + (<usize>k << 2));
      if (!(o > 0)) continue;
      // the offset's 3 colour and 7 covariance rows
      const z = f32x4.splat(0);
      let c0 = z, c1 = z, c2 = z, v0 = z, v1 = z, v2 = z, v3 = z, v4 = z, v5 = z, v6 = z;
      const rw = w2 + <usize>k * 10 * hb;
      for (let j: usize = 0; j < hb; j += 16) {
        const hc = v128.load(hCo + j), hv = v128.load(hCv + j);
        const r = rw + j;
        c0 = f32x4.add(c0, f32x4.mul(hc, v128.load(r)));
        c1 = f32x4.add(c1, f32x4.mul(hc, v128.load(r + hb)));
        c2 = f32x4.add(c2, f32x4.mul(hc, v128.load(r + 2 * hb)));
        v0 = f32x4.add(v0, f32x4.mul(hv, v128.load(r + 3 * hb)));
        v1 = f32x4.add(v1, f32x4.mul(hv, v128.load(r + 4 * hb)));
        v2 = f32x4.add(v2, f32x4.mul(hv, v128.load(r + 5 * hb)));
        v3 = f32x4.add(v3, f32x4.mul(hv, v128.load(r + 6 * hb)));
        v4 = f32x4.add(v4, f32x4.mul(hv, v128.load(r + 7 * hb)));
        v5 = f32x4.add(v5, f32x4.mul(hv, v128.load(r + 8 * hb)));
        v6 = f32x4.add(v6, f32x4.mul(hv, v128.load(r + 9 * hb)));
      }
      const bp = b2 + <usize>k * 40;
      store<f32>(opac + (g << 2), Mathf.tanh(o));
      const cp = colors + g * 12;
      store<f32>(cp, sigmoidf(hsum(c0) + load<f32>(bp)));
      store<f32>(cp, sigmoidf(hsum(c1) + load<f32>(bp, 4)), 4);
      store<f32>(cp, sigmoidf(hsum(c2) + load<f32>(bp, 8)), 8);
      const ok = op + <usize>k * 12;
      const mp = means + g * 12;
      store<f32>(mp, px + load<f32>(ok) * load<f32>(sp));
      store<f32>(mp, py + load<f32>(ok, 4) * load<f32>(sp, 4), 4);
      store<f32>(mp, pz + load<f32>(ok, 8) * load<f32>(sp, 8), 8);
      const sc = scales + g * 12;
      store<f32>(sc, load<f32>(sp, 12) * sigmoidf(hsum(v0) + load<f32>(bp, 12)));
      store<f32>(sc, load<f32>(sp, 16) * sigmoidf(hsum(v1) + load<f32>(bp, 16)), 4);
      store<f32>(sc, load<f32>(sp, 20) * sigmoidf(hsum(v2) + load<f32>(bp, 20)), 8);
      const q0 = hsum(v3) + load<f32>(bp, 24), q1 = hsum(v4) + load<f32>(bp, 28);
      const q2 = hsum(v5) + load<f32>(bp, 32), q3 = hsum(v6) + load<f32>(bp, 36);
      const nq = Math.max(Math.sqrt(<f64>q0 * q0 + <f64>q1 * q1 + <f64>q2 * q2 + <f64>q3 * q3), 1e-8);
      const qp = quats + (g << 4);
      store<f32>(qp, <f32>(q0 / nq));
      store<f32>(qp, <f32>(q1 / nq), 4);
      store<f32>(qp, <f32>(q2 / nq), 8);
      store<f32>(qp, <f32>(q3 / nq), 12);
      g++;
    }
  }
  return <i32>g;
}
