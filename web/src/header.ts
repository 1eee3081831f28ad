// FORMAT.md "HEAD payload": chunk table, configuration, Golomb–Rice MLP weights, hash-grid bits.
import { ByteReader } from "./bytes.js";
import { readChunkSizes } from "./container.js";
import { FormatError } from "./errors.js";
import { ContextConfig, featureDim, gridTableSizes } from "./context.js";
import { decodeRun, frequencies } from "./rangecoder.js";
import { Arena } from "./wasm.js";

export const MAX_TENSOR = 1 << 24;
const MAX_GRID_RES = 1 << 20; // hash-grid resolutions
const MAX_RICE_K = 24;
const MAX_QUOTIENT = 1 << 16;
const MAX_EXPONENT = 24;
const MAX_GRID_BITS = 1 << 28;
const MAX_DEPTH = 21;

export interface Grid {
  origin: [number, number, number];
  size: number;
  baseDepth: number;
  levels: number;
}

export interface GeneratorConfig {
  featDim: number;
  nOffsets: number;
  levels: number;
  hidden: number;
}

/** A header tensor: integers m with value m · 2^-exponent. */
export interface Tensor {
  name: string;
  shape: number[];
  mantissas: Float64Array;
  exponent: number;
  values: Float64Array;
}

/** The configuration under the names progs' Python decoder gives it (`Header.config`). */
export interface Config {
  format: "progs";
  grid: { origin: [number, number, number]; size: number; base_depth: number; levels: number };
  generator: { feat_dim: number; n_offsets: number; levels: number; hidden: number };
  context: Record<string, number | number[]>;
  cull_margin: number;
  background: [number, number, number] | null;
  view_distance: number | null;
  skip_hidden: boolean;
}

export interface Header {
  config: Config;
  grid: Grid;
  generator: GeneratorConfig;
  context: ContextConfig;
  chunkSizes: number[];
  tensors: Map<string, Tensor>;
  /** Hash-grid tables as ±1: 3D [levels3d · 2^log2T3 · dim], then 2D [levels2d · 3 · 2^log2T2 · dim]. */
  grid3: Float64Array;
  grid2: Float64Array;
  skipHidden: boolean;
  viewDistance: number | null;
  background: number[] | null;
  cullMargin: number;
}

/** Golomb–Rice: `count` zigzagged integers with parameter k, MSB-first bits. */
export function riceDecode(data: Uint8Array, k: number, count: number): Float64Array {
  if (k < 0 || k > MAX_RICE_K) throw new Error(`Rice parameter ${k} out of range`);
  const out = new Float64Array(count);
  const nbits = data.length * 8;
  let pos = 0;
  const bit = (i: number) => (data[i >>> 3] >>> (7 - (i & 7))) & 1;
  for (let i = 0; i < count; i++) {
    let z = pos;
    while (z < nbits && bit(z) === 1) {
      z++;
      if (z - pos > MAX_QUOTIENT) throw new Error("truncated or corrupt Rice code");
    }
    if (z >= nbits || z + 1 + k > nbits) throw new Error("truncated or corrupt Rice code");
    let low = 0;
    for (let j = 0; j < k; j++) low = low * 2 + bit(z + 1 + j);
    const u = (z - pos) * 2 ** k + low;
    out[i] = u % 2 === 0 ? u / 2 : -(u + 1) / 2;
    pos = z + 1 + k;
  }
  if (nbits - pos >= 8) throw new Error("Rice code has trailing data");
  for (let j = pos; j < nbits; j++) if (bit(j)) throw new Error("Rice code has trailing data");
  return out;
}

/** `exponent:u8 | k:u8 | code:blob` of `count` values (a header tensor's data or a predictor vector). */
export function readWeights(r: ByteReader, count: number, name: string): { mantissas: Float64Array; exponent: number } {
  const exponent = r.u8();
  const k = r.u8();
  if (exponent > MAX_EXPONENT) throw r.fail(`tensor '${name}' has exponent ${exponent} (at most ${MAX_EXPONENT})`);
  const data = r.blob(Math.floor((count * (MAX_RICE_K + 2)) / 8) + 8 + MAX_QUOTIENT / 8);
  try {
    return { mantissas: riceDecode(data, k, count), exponent };
  } catch (e) {
    throw r.fail(`tensor '${name}': ${(e as Error).message}`);
  }
}

function readTensor(r: ByteReader, name: string, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n > MAX_TENSOR) throw r.fail(`tensor '${name}' has ${n} elements, more than the limit ${MAX_TENSOR}`);
  const { mantissas, exponent } = readWeights(r, n, name);
  const scale = 2 ** -exponent;
  const values = mantissas.map((m) => m * scale);
  return { name, shape, mantissas, exponent, values };
}

/** The configuration's fixed fields (FORMAT.md "HEAD payload"), as the decoder's typed parts and as
 * `config`, the dictionary progs' Python decoder gives (same keys). */
function readConfig(r: ByteReader, levels: number): { config: Config; grid: Grid; generator: GeneratorConfig; context: ContextConfig } {
  const finite = (v: number, what: string) => {
    if (!Number.isFinite(v)) throw r.fail(`configuration: ${what} is not a finite number`);
    return v;
  };
  const three = (what: string) => [0, 1, 2].map(() => finite(r.f64(), what)) as [number, number, number];
  const grid: Grid = { origin: three("the octree origin"), size: finite(r.f64(), "the octree size"), baseDepth: r.u8(), levels };
  const generator: GeneratorConfig = { featDim: r.u16(), nOffsets: r.u16(), levels: r.u8(), hidden: r.u16() };
  const levels3d = r.u8();
  const res3d: [number, number] = [r.u32(), r.u32()];
  const levels2d = r.u8();
  const res2d: [number, number] = [r.u32(), r.u32()];
  const context: ContextConfig = {
    levels3d, res3d, levels2d, res2d, dim: r.u8(), log2Table3d: r.u8(), log2Table2d: r.u8(), hidden: r.u16(),
    qHidden: r.u16(), numLevels: r.u8(), q0: three("a base step"),
    attrDims: [generator.featDim, 6, 3 * generator.nOffsets],
  };
  const cullMargin = finite(r.f64(), "the cull margin");
  const vd = finite(r.f64(), "the view distance");
  const flag = r.u8();
  if (flag > 1) throw r.fail(`configuration: background flag ${flag} (0 or 1)`);
  const background = flag ? three("the background") : null;
  const skip = r.u8();
  if (skip > 1) throw r.fail(`configuration: skip_hidden ${skip} (0 or 1)`);
  const config: Config = {
    format: "progs",
    grid: { origin: grid.origin, size: grid.size, base_depth: grid.baseDepth, levels },
    generator: { feat_dim: generator.featDim, n_offsets: generator.nOffsets, levels: generator.levels, hidden: generator.hidden },
    context: {
      levels_3d: levels3d, res_3d: res3d, levels_2d: levels2d, res_2d: res2d, dim: context.dim,
      log2_table_3d: context.log2Table3d, log2_table_2d: context.log2Table2d, hidden: context.hidden,
      q_hidden: context.qHidden, num_levels: context.numLevels, q0: context.q0, attr_dims: context.attrDims,
    },
    cull_margin: cullMargin, background, view_distance: vd > 0 ? vd : null, skip_hidden: skip === 1,
  };
  return { config, grid, generator, context };
}

/** The header's tensors in stream order (FORMAT.md "HEAD payload"): name → shape. */
function headerTensors(gen: GeneratorConfig, ctx: ContextConfig): Map<string, number[]> {
  const dIn = gen.featDim + 4 + gen.levels;
  const H = gen.hidden;
  const K = gen.nOffsets;
  const out = new Map<string, number[]>();
  for (const [head, width] of [["mlp_opacity", K], ["mlp_color", 3 * K], ["mlp_cov", 7 * K]] as const) {
    out.set(`generator.${head}.0.weight`, [H, dIn]);
    out.set(`generator.${head}.0.bias`, [H]);
    out.set(`generator.${head}.2.weight`, [width, H]);
    out.set(`generator.${head}.2.bias`, [width]);
  }
  const fIn = 2 * featureDim(ctx) + ctx.numLevels;
  const D = ctx.attrDims[0] + ctx.attrDims[1] + ctx.attrDims[2];
  for (const [mlp, hidden, width] of [["mlp_d", ctx.hidden, 2 * D], ["mlp_q", ctx.qHidden, 3]] as const) {
    out.set(`context.${mlp}.0.weight`, [hidden, fIn]);
    out.set(`context.${mlp}.0.bias`, [hidden]);
    out.set(`context.${mlp}.2.weight`, [width, hidden]);
    out.set(`context.${mlp}.2.bias`, [width]);
  }
  return out;
}

/** Parses a HEAD payload; `offset` is the chunk's byte offset in the file (for messages). */
export function decodeHeader(payload: Uint8Array, offset: number, coder: Arena | null = null): Header {
  const r = new ByteReader(payload, "chunk HEAD", offset + 8);
  const chunkSizes = readChunkSizes(r);
  const { config, grid, generator, context } = readConfig(r, chunkSizes.length);
  if (!(grid.size > 0)) throw new FormatError(`chunk HEAD at byte ${offset}: invalid configuration (octree size must be positive)`);
  if (grid.baseDepth + grid.levels - 1 > MAX_DEPTH) throw new FormatError(`chunk HEAD at byte ${offset}: invalid configuration (octree too deep)`);
  const genValues = [generator.featDim, generator.nOffsets, generator.levels, generator.hidden];
  if (genValues.some((v) => !(v > 0 && v <= 4096))) {
    throw new FormatError(`chunk HEAD at byte ${offset}: configuration out of range`);
  }
  if (generator.levels < grid.levels) {
    throw new FormatError(`chunk HEAD at byte ${offset}: the generator takes ${generator.levels} levels, the grid has ${grid.levels}`);
  }
  if (context.numLevels !== 0 && context.numLevels !== grid.levels) {
    throw new FormatError(`chunk HEAD at byte ${offset}: the context model takes ${context.numLevels} levels, the grid has ${grid.levels}`);
  }
  const c = context;
  const resOk = [...c.res3d, ...c.res2d].every((v) => v >= 1 && v <= MAX_GRID_RES);
  const q0Ok = c.q0.every((q) => q >= 2 ** -24 && q <= 2 ** 24);
  if (!resOk || !q0Ok || c.log2Table3d > 20 || c.log2Table2d > 20 || c.levels3d > 32 || c.levels2d > 16 || c.levels3d + c.levels2d < 1 || !(c.dim >= 1 && c.dim <= 16) ||
      !(c.hidden >= 1 && c.hidden <= 4096) || !(c.qHidden >= 1 && c.qHidden <= 4096)) {
    throw new FormatError(`chunk HEAD at byte ${offset}: invalid configuration (context model configuration out of range)`);
  }
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of headerTensors(generator, context)) tensors.set(name, readTensor(r, name, shape));
  const [n3, n2] = gridTableSizes(context);
  const bits = readGridBits(r, n3 + n2, coder);
  r.expectEnd();
  const grid3 = new Float64Array(n3);
  const grid2 = new Float64Array(n2);
  for (let i = 0; i < n3; i++) grid3[i] = bits[i] ? 1 : -1;
  for (let i = 0; i < n2; i++) grid2[i] = bits[n3 + i] ? 1 : -1;
  return {
    config, grid, generator, context, chunkSizes, tensors, grid3, grid2,
    skipHidden: config.skip_hidden, viewDistance: config.view_distance, background: config.background,
    cullMargin: config.cull_margin,
  };
}

/** Hash grid: n_bits, n_ones, then the bits range-coded with the table of weights (n_bits − ones, ones). */
function readGridBits(r: ByteReader, expected: number, coder: Arena | null): Uint8Array {
  const nBits = r.u32();
  const ones = r.u32();
  if (nBits !== expected || ones > nBits || nBits > MAX_GRID_BITS) {
    throw r.fail(`hash grid has ${nBits} bits, the configuration needs ${expected}`);
  }
  const words = r.words();
  let bits: Uint8Array;
  let count = 0;
  try {
    bits = decodeRun(words, frequencies(nBits ? [nBits - ones, ones] : [1, 1]), nBits, coder);
    for (let i = 0; i < nBits; i++) count += bits[i];
  } catch (e) {
    throw r.fail(`hash grid bits do not decode (${(e as Error).message})`);
  }
  if (count !== ones) throw r.fail("hash grid bits do not match their announced count");
  return bits;
}
