// FORMAT.md "LOD payload", structure: which voxels of level l hold anchors.
import { ByteReader, packedSize, unpackBits } from "./bytes.js";
import { adaptiveSource } from "./rangecoder.js";
import { Arena } from "./wasm.js";

export const ROOTS = 0;
export const PARENT_INDEX = 1;
export const OCCUPANCY = 2;
export const ROOT_OCCUPANCY = 3;
export const METHOD_NAMES = ["roots", "parent-index", "occupancy", "root occupancy"];

export interface LevelStructure {
  method: number;
  n: number;
  keys: Int32Array; // [n, 3]
  parent: Int32Array | null; // [n] index of each anchor's parent in the previous level
}

/** Bits 0..9 of v spread to every third bit (0, 3, …, 27). */
function spread10(v: number): number {
  v &= 0x3ff;
  v = (v | (v << 16)) & 0x030000ff;
  v = (v | (v << 8)) & 0x0300f00f;
  v = (v | (v << 4)) & 0x030c30c3;
  return (v | (v << 2)) & 0x09249249;
}

/** Morton code bits 30k..30k+29 of a key (k = 0, 1, 2: coordinates' bits 10k..10k+9). */
function mortonPart(x: number, y: number, z: number, k: number): number {
  const s = 10 * k;
  return (spread10(x >>> s) | (spread10(y >>> s) << 1) | (spread10(z >>> s) << 2)) >>> 0;
}

/** Whether key a comes strictly before key b in Morton order (keys below 2^30). */
function mortonBefore(k: Int32Array, a: number, b: number): boolean {
  for (let part = 2; part >= 0; part--) {
    const pa = mortonPart(k[3 * a], k[3 * a + 1], k[3 * a + 2], part);
    const pb = mortonPart(k[3 * b], k[3 * b + 1], k[3 * b + 2], part);
    if (pa !== pb) return pa < pb;
  }
  return false;
}

/** Smallest w with 2^w >= max(P, 2): ceil(log2(max(P, 2))). */
function indexWidth(P: number): number {
  let w = 1;
  while (2 ** w < P) w++;
  return w;
}

/** The voxels' centres in the grid cube [0, 1]^3, (key + 0.5) / res (exact): the context model's
 * positions [n, 3] of a level whose grid has res cells a side. */
export function voxelCentres(keys: Int32Array, res: number): Float64Array {
  const pos = new Float64Array(keys.length);
  for (let i = 0; i < keys.length; i++) pos[i] = (keys[i] + 0.5) / res;
  return pos;
}

/** A blob of u32 words (a range-coder stream). */
function occupancyWords(r: ByteReader): Uint32Array {
  const blob = r.blob(r.remaining());
  if (blob.length % 4) throw r.fail("occupancy stream is not a whole number of words");
  const words = new Uint32Array(blob.length / 4);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  for (let i = 0; i < words.length; i++) words[i] = dv.getUint32(4 * i, true);
  return words;
}

/** The children of P cells (keys [P, 3]) from their occupancy bytes, in canonical order (cells in
 * order, octants ascending), and each child's cell index; `limit`: the most children accepted (the
 * message names `what`). */
function childrenOf(r: ByteReader, cells: Int32Array, occ: Uint8Array, P: number, limit: number,
                    what: string): { keys: Int32Array; parent: Int32Array } {
  let total = 0;
  for (let i = 0; i < P; i++) for (let o = 0; o < 8; o++) total += (occ[i] >> o) & 1;
  if (total > limit) throw r.fail(`${what} gives ${total} children, more than the chunk's ${limit}`);
  const keys = new Int32Array(3 * total);
  const parent = new Int32Array(total);
  let c = 0;
  for (let i = 0; i < P; i++) {
    for (let o = 0; o < 8; o++) {
      if ((occ[i] >> o) & 1) {
        keys[3 * c] = 2 * cells[3 * i] + (o & 1);
        keys[3 * c + 1] = 2 * cells[3 * i + 1] + ((o >> 1) & 1);
        keys[3 * c + 2] = 2 * cells[3 * i + 2] + ((o >> 2) & 1);
        parent[c++] = i;
      }
    }
  }
  return { keys, parent };
}

/** Level 1 by root occupancy: from the one cell at depth 0, per depth the occupancy bytes of that
 * depth's cells (Morton order), each depth block-adaptive from a fresh model, in one stream. */
function decodeRootOccupancy(r: ByteReader, n: number, baseDepth: number, coder: Arena | null): Int32Array {
  const words = occupancyWords(r);
  let cells: Int32Array = new Int32Array(3);
  const source = adaptiveSource(words, coder);
  for (let d = 0; d < baseDepth; d++) {
    const P = cells.length / 3;
    let occ: Uint8Array;
    try {
      occ = source.adaptive(P, 256);
    } catch (e) {
      throw r.fail(`root occupancy bytes do not decode (${(e as Error).message})`);
    }
    cells = childrenOf(r, cells, occ, P, n, `root occupancy at depth ${d + 1}`).keys;
  }
  if (cells.length / 3 !== n) throw r.fail(`root occupancy gives ${cells.length / 3} roots but the chunk says ${n}`);
  return cells;
}

export function decodeStructure(r: ByteReader, level: number, parents: Int32Array | null, nParents: number,
                                baseDepth: number, maxAnchors: number, coder: Arena | null = null): LevelStructure {
  const method = r.u8();
  const n = r.u32();
  if (n > maxAnchors) throw r.fail(`level ${level} claims ${n} anchors, more than the limit ${maxAnchors}`);
  if (level === 1) {
    if (method === ROOT_OCCUPANCY) return { method, n, keys: decodeRootOccupancy(r, n, baseDepth, coder), parent: null };
    if (method !== ROOTS) throw r.fail(`level 1 must code roots, found structure method ${method}`);
    const width = Math.max(baseDepth, 1);
    const v = unpackBits(r.raw(packedSize(3 * n, width)), 3 * n, width);
    const keys = Int32Array.from(v);
    for (let i = 1; i < n; i++) {
      if (!mortonBefore(keys, i - 1, i)) throw r.fail("root keys are not in strictly increasing Morton order (duplicates or corrupt)");
    }
    return { method, n, keys, parent: null };
  }
  const P = nParents;
  const pk = parents!;
  if (method === OCCUPANCY) {
    const words = occupancyWords(r);
    if (words.length === 0 && P) throw r.fail("empty occupancy stream");
    let occ: Uint8Array;
    try {
      occ = adaptiveSource(words, coder).adaptive(P, 256);
    } catch (e) {
      throw r.fail(`occupancy bytes do not decode (${(e as Error).message})`);
    }
    const { keys, parent } = childrenOf(r, pk, occ, P, n, "occupancy");
    if (parent.length !== n) throw r.fail(`occupancy gives ${parent.length} children but the chunk says ${n}`);
    return { method, n, keys, parent };
  }
  if (method === PARENT_INDEX) {
    const width = indexWidth(P);
    const v = unpackBits(r.raw(packedSize(n, width + 3)), n, width + 3);
    const keys = new Int32Array(3 * n);
    const parent = new Int32Array(n);
    let prevSlot = -1;
    for (let c = 0; c < n; c++) {
      const pi = Math.floor(v[c] / 8);
      const o = v[c] % 8;
      if (pi >= P) throw r.fail(`parent index ${pi} out of range (level ${level - 1} has ${P} anchors)`);
      const slot = pi * 8 + o;
      if (slot <= prevSlot) throw r.fail("children are not in canonical order (duplicate or corrupt parent indices)");
      prevSlot = slot;
      keys[3 * c] = 2 * pk[3 * pi] + (o & 1);
      keys[3 * c + 1] = 2 * pk[3 * pi + 1] + ((o >> 1) & 1);
      keys[3 * c + 2] = 2 * pk[3 * pi + 2] + ((o >> 2) & 1);
      parent[c] = pi;
    }
    return { method, n, keys, parent };
  }
  throw r.fail(`unknown structure method ${method} at level ${level}`);
}
