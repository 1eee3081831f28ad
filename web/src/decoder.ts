// Composes the parts of FORMAT.md into an incremental decoder: the header first, then each LOD chunk
// as it arrives. A decoded LoD-k model is, bit for bit, what progs' Python decoder rebuilds.
import { ByteReader } from "./bytes.js";
import { CHUNK_OVERHEAD, isHeadTag, isLodTag, PREAMBLE, scan, tagName, u32At, Chunk } from "./container.js";
import { ContextModel, LevelParams, LevelPointers } from "./context.js";
import { decodeSymbols, decodeSymbolsAt } from "./attributes.js";
import { FormatError, Truncated } from "./errors.js";
import { decodeHeader, Header } from "./header.js";
import { decodeMask, HiddenRule, probeCameras } from "./hidden.js";
import { applyPredictor, ParentPredictor, predictorTable, readPredictor } from "./prediction.js";
import { Arena, kernels } from "./wasm.js";
import { decodeStructure, LevelStructure, METHOD_NAMES, voxelCentres } from "./structure.js";

export const MAX_ANCHORS = 2 ** 26;

/** One decoded level: its anchors in the decoder's order (Morton order). */
export interface DecodedLevel {
  level: number;
  count: number;
  keys: Int32Array; // [count, 3] voxel keys of this level
  positions: Float32Array; // [count, 3] the anchors' positions: their voxels' centres
  feature: Float32Array; // [count, featDim]
  scaling: Float32Array; // [count, 6] (log)
  offsets: Float32Array; // [count, nOffsets · 3]
  hidden: Uint8Array | null; // [count, nOffsets]: 1 = never drawn (null when the stream codes every offset)
  values: Float64Array; // [count, D] the decoded attributes before rounding to float32
  structureMethod: string;
  bytes: number; // the whole chunk, framing included
  seconds: number;
}

export class StreamDecoder {
  readonly header: Header;
  readonly headerBytes: number;
  readonly levels: DecodedLevel[] = [];
  readonly context: ContextModel;
  private readonly rule: HiddenRule | null;
  private readonly channelType: Uint8Array;
  private readonly coder: Arena | null; // the range decoding (and the predictor) in WebAssembly
  private prevFeatures: Float64Array | null = null; // the previous level's hash-grid features (JavaScript path)
  private prevTerms: Float64Array | null = null; // what the previous level contributes as parents (WebAssembly path)
  private total = 0;

  /** `head` is the HEAD chunk (scanned, CRC checked). */
  constructor(head: Chunk, readonly source = "stream") {
    if (!isHeadTag(head.tag)) throw new FormatError(`${source}: the first chunk must be HEAD`);
    const coder = kernels(); // one WebAssembly instance for the header, the context model, the mask and the range decoding
    this.header = decodeHeader(head.payload, head.offset, coder);
    this.headerBytes = PREAMBLE + head.payload.length + CHUNK_OVERHEAD;
    const h = this.header;
    this.context = new ContextModel(h.context, h.grid3, h.grid2, h.tensors, coder);
    this.rule = h.skipHidden
      ? new HiddenRule(h.tensors, h.generator.featDim, h.generator.levels, h.grid, probeCameras(h.grid, h.viewDistance), coder)
      : null;
    this.coder = coder;
    const D = this.context.D;
    this.channelType = new Uint8Array(D);
    const [f, s] = h.context.attrDims;
    for (let j = 0; j < D; j++) this.channelType[j] = j < f ? 0 : j < f + s ? 1 : 2;
  }

  /** Decodes a stream's header from its first bytes (at least preamble and HEAD chunk). */
  static fromBytes(data: Uint8Array, source = "stream"): StreamDecoder {
    const scanned = scan(data, source);
    if (!scanned.chunks.length) {
      throw new FormatError(`${scanned.problem ?? `${source}: no chunks`}; the header is needed to decode anything`);
    }
    return new StreamDecoder(scanned.chunks[0], source);
  }

  get lodsInStream(): number {
    return this.header.grid.levels;
  }

  get lodsDecoded(): number {
    return this.levels.length;
  }

  /** Decodes the next LOD chunk (already scanned and CRC checked) and returns its level. */
  decodeChunk(ch: Chunk): DecodedLevel {
    return this.finishChunk(this.beginChunk(ch), null);
  }

  /** The first part of decodeChunk: the chunk's framing, the level's octree structure and its parent
   * predictor. What the context model needs of a level (its keys and parents) is known from here on,
   * before the previous level's attributes are needed (ParallelStreamDecoder computes the context
   * model on another thread meanwhile). */
  beginChunk(ch: Chunk, level = this.levels.length + 1,
             prev: { keys: Int32Array; count: number } | null = this.levels[level - 2] ?? null, partial = false): PendingLevel {
    const t0 = performance.now();
    if (level > this.lodsInStream) throw new FormatError(`${this.source}: the stream has only ${this.lodsInStream} LoDs`);
    if (!isLodTag(ch.tag, level)) {
      throw new FormatError(`${this.source}: expected chunk LOD${level} at byte ${ch.offset} but found ${tagName(ch.tag)}`);
    }
    const { grid } = this.header;
    const ctx = this.context;
    const D = ctx.D;
    const r = new ByteReader(ch.payload, `chunk LOD${level}`, ch.offset + 8, partial);
    if (r.u8() !== level) throw r.fail(`chunk LOD${level} says it holds another level`);
    if (level > 1 && !prev) throw new Error(`LoD ${level} before LoD ${level - 1}`);
    const pendingPrev = prev && level > this.levels.length + 1 ? prev.count : 0; // begun, not yet finished
    const st = decodeStructure(r, level, prev ? prev.keys : null, prev ? prev.count : 0, grid.baseDepth,
                               MAX_ANCHORS - this.total - pendingPrev, this.coder);
    const n = st.n;
    const res = 2 ** (grid.baseDepth + level - 1);
    for (let i = 0; i < 3 * n; i++) {
      if (st.keys[i] < 0 || st.keys[i] >= res) throw r.fail(`voxel keys outside the level-${level} grid`);
    }
    const pos = voxelCentres(st.keys, res);
    // (the predictor's table follows the structure; the coding parameters come from neither's bytes)
    const predictor = readPredictor(r, level, D);
    if (predictor && (!prev || !st.parent)) throw r.fail("a parent predictor at a level without parents");
    const P = prev ? prev.count : 0;
    // a level and its parents' data in the WebAssembly memory, where they fit
    const wasmBytes = 8 * n * D * 6 + 8 * P * (D + ctx.Hpad) + 64 * n;
    const inWasm = ctx.usesWasm && this.coder !== null && wasmBytes <= levelMemoryLimit(level);
    return { ch, t0, level, r, st, res, pos, predictor, inWasm };
  }

  /** The rest of decodeChunk: the level's attributes, from the context model's parameters computed
   * here or, where `params` are given (and the level is decoded in WebAssembly), computed elsewhere
   * from the same keys: mean [n, D], step [n, 3], and the bins [n, D] unless the level has a parent
   * predictor. */
  finishChunk(pl: PendingLevel, params: ContextParams | null): DecodedLevel {
    const { level, r, st, pos, predictor } = pl;
    if (level !== this.levels.length + 1) throw new Error(`LoD ${level} finished out of order`);
    const prev = this.levels.length ? this.levels[this.levels.length - 1] : null;
    let out: LevelAttributes;
    if (pl.inWasm) {
      out = this.levelInWasm(r, this.coder!, st, level, pos, predictor, prev, params);
    } else {
      out = this.levelInJs(r, st, level, pos, predictor, prev);
    }
    return this.completeLevel(pl, out);
  }

  /** Records a level whose attributes are decoded. */
  private completeLevel(pl: PendingLevel, out: LevelAttributes): DecodedLevel {
    const { ch, t0, level, st, res } = pl;
    const grid = this.header.grid;
    const n = st.n;
    this.total += n;
    const positions = new Float32Array(3 * n);
    const cell = grid.size / res;
    const [ox, oy, oz] = grid.origin;
    for (let i = 0; i < 3 * n; i += 3) {
      positions[i] = ox + (st.keys[i] + 0.5) * cell;
      positions[i + 1] = oy + (st.keys[i + 1] + 0.5) * cell;
      positions[i + 2] = oz + (st.keys[i + 2] + 0.5) * cell;
    }
    const lv: DecodedLevel = {
      level, count: n, keys: st.keys, positions, ...out,
      structureMethod: METHOD_NAMES[st.method], bytes: ch.payload.length + CHUNK_OVERHEAD, seconds: (performance.now() - t0) / 1000,
    };
    this.levels.push(lv);
    return lv;
  }

  /** A level's attributes with every step in WebAssembly, its data held in the kernels' memory. */
  private levelInWasm(r: ByteReader, a: Arena, st: LevelStructure, level: number, pos: Float64Array,
                      predictor: ParentPredictor | null, prev: DecodedLevel | null, params: ContextParams | null): LevelAttributes {
    const s = this.wasmBegin(r, a, st, level, pos, predictor, prev, params);
    try {
      this.wasmFsAndMask(s, r);
      return this.wasmRest(s, r);
    } finally {
      a.releaseLevel();
    }
  }

  /** The first step of a level in WebAssembly: its data's place in the kernels' memory (held until
   * `releaseLevel`) and the context model's coding parameters there (computed here, or copied from
   * `params`). Needs none of the attribute bytes. */
  private wasmBegin(r: ByteReader, a: Arena, st: LevelStructure, level: number, pos: Float64Array,
                    predictor: ParentPredictor | null, prev: DecodedLevel | null, params: ContextParams | null): WasmLevel {
    const ctx = this.context;
    const n = st.n;
    if (level > 1 && prev && !this.prevTerms && this.prevFeatures && st.parent) {
      // the previous level took the JavaScript path
      this.prevTerms = ctx.paddedTerms(ctx.parentTerms(this.prevFeatures, prev.count, st.parent), prev.count);
    }
    this.prevFeatures = null;
    a.reset();
    const lp = ctx.levelPointers(n, predictor !== null);
    const symbols = a.alloc(8 * n * ctx.D);
    a.holdLevel();
    try {
      const pred = predictor && prev ? { table: predictorTable(predictor, ctx.D), values: prev.values } : null;
      if (params) this.paramsInto(a, params, n, st.parent, pred, lp);
      else this.prevTerms = ctx.levelWasm(pos, n, level, level > 1 ? this.prevTerms : null, st.parent, pred, level < this.lodsInStream, lp);
    } catch (e) {
      a.releaseLevel();
      throw r.fail((e as Error).message);
    }
    return { a, st, level, lp, symbols, pos: r.pos, fsDone: false, buckets: null, hidden: null, maskDone: false };
  }

  /** The features and scalings (stream `fs`), then the mask, from `r` (from `s.pos` on). Resumable: a
   * `Truncated` read leaves `s` at the last part done, to be called again with more bytes. */
  private wasmFsAndMask(s: WasmLevel, r: ByteReader): void {
    const { a, st, lp, symbols } = s;
    const n = st.n;
    const D = this.context.D;
    const F = this.header.generator.featDim;
    r.pos = s.pos;
    if (!s.fsDone) {
      decodeSymbolsAt(r, a, lp.bins, { n, D, off: 0, len: F + 6 }, symbols);
      s.fsDone = true;
      s.pos = r.pos;
    }
    if (this.rule && !s.maskDone) {
      if (!s.buckets) {
        const f64 = a.f64;
        const view = (p: number, len: number) => f64.subarray(p >> 3, (p >> 3) + len);
        const features = ruleFeatures(view(symbols, n * D), lp.shift ? view(lp.shift, n * D) : null, view(lp.mean, n * D),
                                      view(lp.step, 3 * n), n, D, F);
        s.buckets = this.rule.buckets(st.keys, n, s.level, features);
      }
      s.hidden = decodeMask(r, s.buckets, a);
      s.pos = r.pos;
    }
    s.maskDone = true;
  }

  /** The offsets (stream `o`) and the dequantised attributes: the level's last step. */
  private wasmRest(s: WasmLevel, r: ByteReader): LevelAttributes {
    const { a, st, lp, symbols, hidden } = s;
    const n = st.n;
    const D = this.context.D;
    const { featDim: F, nOffsets: K } = this.header.generator;
    const fs = F + 6;
    r.pos = s.pos;
    decodeSymbolsAt(r, a, lp.bins, hidden ? codedOffsets(n, K, D, fs, hidden) : { n, D, off: fs, len: D - fs }, symbols);
    r.expectEnd();
    a.reset();
    const t8 = a.putU8(this.channelType);
    const hp = hidden ? a.putU8(hidden) : 0;
    const vp = a.alloc(8 * n * D);
    const fp = a.alloc(4 * n * F);
    const sp = a.alloc(24 * n);
    const op = a.alloc(12 * n * K);
    a.k.dequant(n, D, F, K, this.context.typesPtr, t8, symbols, lp.shift, lp.mean, lp.step, hp, vp, fp, sp, op);
    const f32 = a.f32;
    return {
      values: a.f64.slice(vp >> 3, (vp >> 3) + n * D), feature: f32.slice(fp >> 2, (fp >> 2) + n * F),
      scaling: f32.slice(sp >> 2, (sp >> 2) + 6 * n), offsets: f32.slice(op >> 2, (op >> 2) + 3 * K * n), hidden,
    };
  }

  /** Starts decoding the next LoD chunk (at `offset` in the stream) before all of it has arrived:
   * `advanceChunk` with its first bytes does every part of the decoding those bytes allow (the octree
   * structure, the context model's coding parameters, the features and scalings, the mask), and
   * `finishChunkInProgress` with the whole chunk, scanned and CRC checked, does the rest. The level is
   * the one decodeChunk would give, bit for bit: the parts done early are kept only if the chunk's
   * payload starts with the bytes they were decoded from. */
  startChunk(offset: number): ChunkInProgress {
    return { level: this.levels.length + 1, offset, pl: null, steps: null, used: null, saved: null, idle: false };
  }

  /** `bytes`: the chunk's first bytes as they have arrived (framing included). Never throws: bytes
   * that do not decode leave the work to `finishChunkInProgress`, which reports the problem. */
  advanceChunk(c: ChunkInProgress, bytes: Uint8Array): void {
    if (c.idle || c.level !== this.levels.length + 1 || bytes.length < 8) return;
    const length = u32At(bytes, 4);
    const payload = bytes.subarray(8, Math.min(bytes.length, 8 + length));
    const where = `chunk LOD${c.level}`;
    try {
      if (!c.pl) {
        const tag = bytes.slice(0, 4);
        c.pl = this.beginChunk({ tag, name: tagName(tag), offset: c.offset, payload }, c.level, undefined, true);
        c.used = payload;
        if (!c.pl.inWasm) {
          c.idle = true;
          return;
        }
      }
      if (!c.steps) {
        const { st, level, pos, predictor } = c.pl;
        c.saved = { prevTerms: this.prevTerms, prevFeatures: this.prevFeatures };
        c.steps = this.wasmBegin(c.pl.r, this.coder!, st, level, pos, predictor, this.levels[level - 2] ?? null, null);
      }
      if (!c.steps.maskDone) {
        this.wasmFsAndMask(c.steps, new ByteReader(payload, where, c.offset + 8, true));
        c.used = payload;
      }
    } catch (e) {
      if (e instanceof Truncated) {
        if (c.steps && c.steps.fsDone) c.used = payload;
        return;
      }
      this.abandonChunk(c);
    }
  }

  /** The level of a chunk started with `startChunk`, from the whole chunk (scanned, CRC checked). */
  finishChunkInProgress(c: ChunkInProgress, ch: Chunk): DecodedLevel {
    const used = c.used;
    const same = used !== null && startsWith(ch.payload, used);
    if (!c.steps || !c.pl || !same) {
      this.abandonChunk(c);
      return this.decodeChunk(ch);
    }
    const t0 = performance.now();
    const s = c.steps;
    c.steps = null;
    c.saved = null;
    c.idle = true;
    try {
      const r = new ByteReader(ch.payload, `chunk LOD${c.level}`, ch.offset + 8);
      this.wasmFsAndMask(s, r);
      // (its `seconds`: the decoding left once the whole chunk was in)
      return this.completeLevel({ ...c.pl, ch, t0 }, this.wasmRest(s, r));
    } finally {
      s.a.releaseLevel();
    }
  }

  /** Gives up a chunk started early (its bytes stopped coming, or did not decode): the decoder is as
   * before `startChunk`. */
  abandonChunk(c: ChunkInProgress): void {
    if (c.steps) {
      c.steps.a.releaseLevel();
      c.steps = null;
    }
    if (c.saved) {
      this.prevTerms = c.saved.prevTerms;
      this.prevFeatures = c.saved.prevFeatures;
      c.saved = null;
    }
    c.idle = true;
  }

  /** The context model's coding parameters of the first `count` anchors of a begun level without
   * parents (LoD 1), computed here (ParallelStreamDecoder shares LoD 1 between its threads). */
  firstParams(pl: PendingLevel, count: number): ContextParams {
    if (!this.coder || !this.context.usesWasm || pl.st.parent || pl.predictor) {
      throw new Error("firstParams: a level without parents, in WebAssembly");
    }
    return this.context.params(pl.pos.subarray(0, 3 * count), count, pl.level, null, null, false, true);
  }

  /** Coding parameters computed elsewhere, copied to the level's addresses, with the parent
   * predictor applied here (it needs the previous level's values). */
  private paramsInto(a: Arena, p: ContextParams, n: number, parent: Int32Array | null,
                     pred: { table: Float64Array; values: Float64Array } | null, lp: LevelPointers): void {
    const D = this.context.D;
    if (p.mean.length !== n * D || p.step.length !== 3 * n || (!pred && (!p.bins || p.bins.length !== n * D))) {
      throw new Error("coding parameters of another size than the level");
    }
    a.f64.set(p.mean, lp.mean >> 3);
    a.f64.set(p.step, lp.step >> 3);
    if (!pred) {
      a.u8.set(p.bins!, lp.bins);
      return;
    }
    a.reset();
    const tp = a.putF64(pred.table);
    const vp = a.putF64(pred.values);
    const pp = a.putI32(parent!);
    const qs = a.alloc(8 * (D + 2));
    const iq = a.alloc(8 * (D + 2));
    for (let s = 0; s < n; s += 4096) { // in slices: a long call would keep running the engine's first-tier code
      a.k.predict(Math.min(4096, n - s), D, this.context.typesPtr, tp, lp.mean + 8 * s * D, lp.step + 24 * s, vp, pp + 4 * s, qs, iq,
                  lp.shift + 8 * s * D, lp.bins + s * D);
    }
  }

  /** A level's attributes in JavaScript (and WebAssembly kernels where available, one part at a time). */
  private levelInJs(r: ByteReader, st: LevelStructure, level: number, pos: Float64Array, predictor: ParentPredictor | null,
                    prev: DecodedLevel | null): LevelAttributes {
    const ctx = this.context;
    const D = ctx.D;
    const { featDim: F, nOffsets: K } = this.header.generator;
    const n = st.n;
    const fs = F + 6;
    let hPrev = this.prevFeatures;
    if (level > 1 && prev && !hPrev) {
      // the previous level took the WebAssembly path, which keeps no features: compute them again
      const res = 2 ** (this.header.grid.baseDepth + level - 2);
      hPrev = ctx.features(voxelCentres(prev.keys, res), prev.count);
    }
    this.prevTerms = null;
    const h = ctx.features(pos, n);
    let p: LevelParams;
    try {
      const terms = level > 1 && prev && st.parent ? ctx.parentTerms(hPrev!, prev.count, st.parent) : null;
      p = ctx.codingParams(h, n, level, terms, st.parent);
    } catch (e) {
      throw r.fail((e as Error).message);
    }
    const shift = predictor ? applyPredictor(predictor, p, this.channelType, st.parent!, prev!.values, this.coder) : null;
    this.prevFeatures = h;
    const fsSym = decodeSymbols(r, packColumns(p.bins, n, D, 0, fs), this.coder);
    const symbols = new Float64Array(n * D);
    unpackColumns(fsSym, n, D, 0, fs, symbols);
    let hidden: Uint8Array | null = null;
    if (this.rule) {
      const features = ruleFeatures(symbols, shift, p.mean, p.step, n, D, F);
      hidden = decodeMask(r, this.rule.buckets(st.keys, n, level, features), this.coder);
    }
    // the offsets of the coded Gaussians, anchor-major, then offset index, then x, y, z
    if (hidden) {
      const oIndex = codedOffsets(n, K, D, fs, hidden);
      const oBins = new Uint8Array(oIndex.length);
      for (let i = 0; i < oIndex.length; i++) oBins[i] = p.bins[oIndex[i]];
      const oSym = decodeSymbols(r, oBins, this.coder);
      for (let i = 0; i < oIndex.length; i++) symbols[oIndex[i]] = oSym[i];
    } else {
      unpackColumns(decodeSymbols(r, packColumns(p.bins, n, D, fs, D - fs), this.coder), n, D, fs, D - fs, symbols);
    }
    r.expectEnd();
    const values = new Float64Array(n * D);
    const feature = new Float32Array(n * F);
    const scaling = new Float32Array(n * 6);
    const offsets = new Float32Array(n * 3 * K);
    dequantize(symbols, shift, hidden, p.mean, p.step, this.channelType, n, F, K, values, feature, scaling, offsets);
    return { values, feature, scaling, offsets, hidden };
  }
}

/** A level whose attributes are being decoded in WebAssembly (its data held in the kernels' memory). */
interface WasmLevel {
  a: Arena;
  st: LevelStructure;
  level: number;
  lp: LevelPointers;
  symbols: number;
  /** Where in the payload the next part starts. */
  pos: number;
  fsDone: boolean;
  buckets: Int8Array | null;
  hidden: Uint8Array | null;
  maskDone: boolean;
}

/** A LoD chunk decoded while it arrives (StreamDecoder.startChunk). */
export interface ChunkInProgress {
  readonly level: number;
  /** The chunk's offset in the stream. */
  readonly offset: number;
  pl: PendingLevel | null;
  steps: WasmLevel | null;
  /** The payload bytes the parts done so far were decoded from (a prefix of the chunk's payload). */
  used: Uint8Array | null;
  /** The decoder's state before the first attribute step, restored when the chunk is abandoned. */
  saved: { prevTerms: Float64Array | null; prevFeatures: Float64Array | null } | null;
  /** Nothing more is done early (the bytes so far do not decode, or the level is not in WebAssembly). */
  idle: boolean;
}

/** A level between beginChunk() and finishChunk(). */
export interface PendingLevel {
  ch: Chunk;
  t0: number;
  level: number;
  r: ByteReader;
  st: LevelStructure;
  res: number;
  pos: Float64Array;
  predictor: ParentPredictor | null;
  /** Whether the level is decoded in WebAssembly (and can take coding parameters computed elsewhere). */
  inWasm: boolean;
}

/** The context model's coding parameters of a level: mean [n, D] (symbol units), step [n, 3], and
 * the bins [n, D] (null where a parent predictor replaces them). */
export interface ContextParams {
  mean: Float64Array;
  step: Float64Array;
  bins: Uint8Array | null;
}

interface LevelAttributes {
  values: Float64Array;
  feature: Float32Array;
  scaling: Float32Array;
  offsets: Float32Array;
  hidden: Uint8Array | null;
}

const LEVEL_MEMORY_LIMIT = 2 ** 30;
let levelMemoryLimit: (level: number) => number = () => LEVEL_MEMORY_LIMIT;

/** The most bytes of WebAssembly memory a level's data may take (2^30, or per level, or null for the
 * default) before the decoder decodes that level part by part instead, outside the kernels' memory
 * (tests: both ways give the same bits, and a stream may switch between them). */
export function setLevelMemoryLimit(limit: number | ((level: number) => number) | null): void {
  levelMemoryLimit = limit === null ? () => LEVEL_MEMORY_LIMIT : typeof limit === "number" ? () => limit : limit;
}

/** Whether `data` starts with the bytes of `prefix`. */
function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  const n = prefix.length;
  if (n > data.length) return false;
  if (data.byteOffset % 4 === prefix.byteOffset % 4) {
    // word by word where both are aligned alike
    let i = 0;
    while (i < n && (data.byteOffset + i) % 4) {
      if (data[i] !== prefix[i]) return false;
      i++;
    }
    const words = (n - i) >> 2;
    const a = new Uint32Array(data.buffer, data.byteOffset + i, words);
    const b = new Uint32Array(prefix.buffer, prefix.byteOffset + i, words);
    for (let k = 0; k < words; k++) if (a[k] !== b[k]) return false;
    i += 4 * words;
    for (; i < n; i++) if (data[i] !== prefix[i]) return false;
    return true;
  }
  for (let i = 0; i < n; i++) if (data[i] !== prefix[i]) return false;
  return true;
}

// The loops of decodeChunk live in small functions of their own: the engine optimises each once,
// where the one large function would be recompiled at every loop (a few calls, long loops).

/** Channels off..off + len of each of n rows of D, packed [n, len]. */
function packColumns(src: Uint8Array, n: number, D: number, off: number, len: number): Uint8Array {
  const out = new Uint8Array(n * len);
  for (let i = 0, o = 0; i < n; i++) for (let j = i * D + off, e = j + len; j < e; j++) out[o++] = src[j];
  return out;
}

/** The inverse: src [n, len] into channels off..off + len of out [n, D]. */
function unpackColumns(src: Float64Array, n: number, D: number, off: number, len: number, out: Float64Array): void {
  for (let i = 0, o = 0; i < n; i++) for (let j = i * D + off, e = j + len; j < e; j++) out[j] = src[o++];
}

/** The decoded features [n, F] (the mask's context input): (symbol + shift + mean) · q_f. */
function ruleFeatures(symbols: Float64Array, shift: Float64Array | null, mean: Float64Array, step: Float64Array, n: number,
                      D: number, F: number): Float64Array {
  const features = new Float64Array(n * F);
  for (let i = 0; i < n; i++) {
    const q = step[3 * i];
    for (let j = 0; j < F; j++) {
      const s = symbols[i * D + j] + (shift ? shift[i * D + j] : 0);
      features[i * F + j] = (s + mean[i * D + j]) * q;
    }
  }
  return features;
}

/** The channel indices of the coded offsets: anchor-major, then offset index, then x, y, z. */
function codedOffsets(n: number, K: number, D: number, fs: number, hidden: Uint8Array | null): Int32Array {
  const out = new Int32Array(n * 3 * K);
  let no = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < K; k++) {
      if (hidden && hidden[i * K + k]) continue;
      const c = i * D + fs + 3 * k;
      out[no++] = c;
      out[no++] = c + 1;
      out[no++] = c + 2;
    }
  }
  return out.subarray(0, no);
}

/** values = (residual + mean) · step per channel (residual = symbol + shift; 0 for a hidden Gaussian's
 * offsets), and their float32 parts: feature [n, F], scaling [n, 6], offsets [n, 3K]. */
function dequantize(symbols: Float64Array, shift: Float64Array | null, hidden: Uint8Array | null, mean: Float64Array,
                    step: Float64Array, types: Uint8Array, n: number, F: number, K: number, values: Float64Array,
                    feature: Float32Array, scaling: Float32Array, offsets: Float32Array): void {
  const D = types.length;
  const fs = F + 6;
  if (hidden) {
    for (let i = 0; i < n * K; i++) {
      if (!hidden[i]) continue;
      const c = Math.floor(i / K) * D + fs + 3 * (i % K); // a hidden Gaussian's residuals stay 0 (not its shift)
      symbols[c] = symbols[c + 1] = symbols[c + 2] = NaN;
    }
  }
  const K3 = 3 * K;
  for (let i = 0; i < n; i++) {
    const base = i * D;
    const q0 = step[3 * i], q1 = step[3 * i + 1], q2 = step[3 * i + 2];
    for (let j = 0; j < D; j++) {
      const t = types[j];
      const x = symbols[base + j];
      const r = x !== x ? 0 : shift ? x + shift[base + j] : x;
      const v = (r + mean[base + j]) * (t === 0 ? q0 : t === 1 ? q1 : q2);
      values[base + j] = v;
      if (j < F) feature[i * F + j] = v;
      else if (j < fs) scaling[i * 6 + j - F] = v;
      else offsets[i * K3 + j - fs] = v;
    }
  }
}

export interface DecodeResult {
  decoder: StreamDecoder;
  lodsDecoded: number;
  lodsInStream: number;
  /** Why decoding stopped before the last LoD (truncation, corruption), if it did. */
  problem: string | null;
}

/** Decodes the header and the first `maxLod` (default: every intact) LoD chunks of a stream. A
 * truncated or corrupted chunk ends decoding at the last intact LoD, and `problem` says why;
 * without an intact header it throws FormatError. */
export function decode(data: Uint8Array, options: { maxLod?: number; source?: string } = {}): DecodeResult {
  const source = options.source ?? "stream";
  const scanned = scan(data, source);
  if (!scanned.chunks.length) {
    throw new FormatError(`${scanned.problem ?? `${source}: the first chunk must be HEAD`}; the header is needed to decode anything`);
  }
  const dec = new StreamDecoder(scanned.chunks[0], source);
  const L = dec.lodsInStream;
  const want = options.maxLod === undefined ? L : Math.max(0, Math.min(options.maxLod, L));
  let problem = scanned.problem;
  const lodChunks = scanned.chunks.slice(1);
  for (const ch of lodChunks) {
    if (dec.lodsDecoded >= want) break;
    try {
      dec.decodeChunk(ch);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      problem = e.message;
      break;
    }
  }
  if (dec.lodsDecoded < want && problem === null && lodChunks.length < want) {
    problem = `${source}: stream ends after LoD ${dec.lodsDecoded} of ${L}`;
  }
  return { decoder: dec, lodsDecoded: dec.lodsDecoded, lodsInStream: L, problem };
}
