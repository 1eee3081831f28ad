// FORMAT.md "The entropy model's exact path", step 4: exp, log1p, softplus, tanh and the normal tail
// from IEEE-754 + − × / only, in a fixed order, so every machine gets the same bits.

const TWO52 = 4503599627370496;

/** Round half to even, as WebAssembly's `nearest` and torch.round (a zero keeps its sign). */
export function roundEven(x: number): number {
  if (!(Math.abs(x) < TWO52)) return x; // an integer already (or not finite)
  if (x > 0) return x + TWO52 - TWO52;
  if (x < 0) return -(-x + TWO52 - TWO52);
  return x;
}

/** 2^k for integers k in [−1022, 1023], each built from its exponent bits once. */
const POW2 = (() => {
  const view = new DataView(new ArrayBuffer(8));
  const out = new Float64Array(2046);
  for (let k = -1022; k <= 1023; k++) {
    view.setUint32(0, (k + 1023) * 1048576, false); // exponent field = k + 1023, high word
    view.setUint32(4, 0, false);
    out[k + 1022] = view.getFloat64(0, false);
  }
  return out;
})();

/** 2^k for an integer k in [−1022, 1023]. */
export function pow2(k: number): number {
  return POW2[k + 1022];
}

const LOG2E = 1.4426950408889634;
const LN2_HI = 6.9314718036912381649e-1;
const LN2_LO = 1.90821492927058770002e-10;
const ERFC_COEFFS = [
  -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223,
  0.17087277,
];
const INV_SQRT2 = 1 / Math.sqrt(2);

// exp's Taylor coefficients 1/i! and log1p's 1/(2n+1), as doubles
const E2 = 1 / 2, E3 = 1 / 6, E4 = 1 / 24, E5 = 1 / 120, E6 = 1 / 720, E7 = 1 / 5040;
const I1 = 1 / 3, I2 = 1 / 5, I3 = 1 / 7, I4 = 1 / 9, I5 = 1 / 11;

export function exp(x: number): number {
  if (x < -700) x = -700;
  if (x > 700) x = 700;
  const k = Math.floor(x * LOG2E + 0.5);
  const r = x - k * LN2_HI - k * LN2_LO;
  // Horner from the highest coefficient: ((c7·r + c6)·r + …)·r + c0
  const p = ((((((E7 * r + E6) * r + E5) * r + E4) * r + E3) * r + E2) * r + 1) * r + 1;
  return p * POW2[k + 1022];
}

/** log(1 + y) for y in [0, 1]. */
export function log1p(y: number): number {
  const u = y / (2 + y);
  const v = u * u;
  const s = ((((I5 * v + I4) * v + I3) * v + I2) * v + I1) * v + 1;
  return 2 * (u * s);
}

export function softplus(z: number): number {
  return (z > 0 ? z : 0) + log1p(exp(-Math.abs(z)));
}

export function tanh(x: number): number {
  const a = 1 - 2 / (exp(2 * Math.abs(x)) + 1);
  return x < 0 ? -a : a;
}

/** Q(z) = P(N(0, 1) > z), z >= 0. */
export function upperTail(z: number): number {
  const x = z * INV_SQRT2;
  const t = 1 / (1 + 0.5 * x);
  let p = ERFC_COEFFS[9];
  for (let i = 8; i >= 0; i--) p = p * t + ERFC_COEFFS[i];
  return 0.5 * (t * exp(-x * x + p));
}
