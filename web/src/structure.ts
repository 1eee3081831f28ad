// FORMAT.md "LOD payload", structure: which voxels of level l hold anchors.
import { ByteReader, packedSize, unpackBits } from "./bytes.js";
import { decodeAdaptive, RangeDecoder } from "./rangecoder.js";

export const ROOTS = 0;
export const PARENT_INDEX = 1;
export const OCCUPANCY = 2;
export const METHOD_NAMES = ["roots", "parent-index", "occupancy"];

export interface LevelStructure {
  method: number;
  n: number;
  keys: Int32Array; // [n, 3]
  parent: Int32Array | null; // [n] index of each anchor's parent in the previous level
}

/** Morton code of a key as two exact doubles (bits 0..32 and 33..62), for comparisons. */
function mortonParts(x: number, y: number, z: number): [number, number] {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < 21; i++) {
    const bits = ((x >>> i) & 1) + 2 * ((y >>> i) & 1) + 4 * ((z >>> i) & 1);
    if (i < 11) lo += bits * 2 ** (3 * i);
    else hi += bits * 2 ** (3 * (i - 11));
  }
  return [hi, lo];
}

/** Smallest w with 2^w >= max(P, 2): ceil(log2(max(P, 2))). */
function indexWidth(P: number): number {
  let w = 1;
  while (2 ** w < P) w++;
  return w;
}

export function decodeStructure(r: ByteReader, level: number, parents: Int32Array | null, nParents: number,
                                baseDepth: number, maxAnchors: number): LevelStructure {
  const method = r.u8();
  const n = r.u32();
  if (n > maxAnchors) throw r.fail(`level ${level} claims ${n} anchors, more than the limit ${maxAnchors}`);
  if (level === 1) {
    if (method !== ROOTS) throw r.fail(`level 1 must code roots, found structure method ${method}`);
    const width = Math.max(baseDepth, 1);
    const v = unpackBits(r.raw(packedSize(3 * n, width)), 3 * n, width);
    const keys = Int32Array.from(v);
    let prev: [number, number] | null = null;
    for (let i = 0; i < n; i++) {
      const c = mortonParts(keys[3 * i], keys[3 * i + 1], keys[3 * i + 2]);
      if (prev && (c[0] < prev[0] || (c[0] === prev[0] && c[1] <= prev[1]))) {
        throw r.fail("root keys are not in strictly increasing Morton order (duplicates or corrupt)");
      }
      prev = c;
    }
    return { method, n, keys, parent: null };
  }
  const P = nParents;
  const pk = parents!;
  if (method === OCCUPANCY) {
    const blob = r.blob(r.remaining());
    if (blob.length % 4) throw r.fail("occupancy stream is not a whole number of words");
    const words = new Uint32Array(blob.length / 4);
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    for (let i = 0; i < words.length; i++) words[i] = dv.getUint32(4 * i, true);
    if (words.length === 0 && P) throw r.fail("empty occupancy stream");
    let occ: Uint8Array;
    try {
      occ = decodeAdaptive(new RangeDecoder(words), P, 256);
    } catch (e) {
      throw r.fail(`occupancy bytes do not decode (${(e as Error).message})`);
    }
    let total = 0;
    for (let i = 0; i < P; i++) for (let o = 0; o < 8; o++) total += (occ[i] >> o) & 1;
    if (total !== n) throw r.fail(`occupancy gives ${total} children but the chunk says ${n}`);
    const keys = new Int32Array(3 * n);
    const parent = new Int32Array(n);
    let c = 0;
    for (let i = 0; i < P; i++) {
      for (let o = 0; o < 8; o++) {
        if ((occ[i] >> o) & 1) {
          keys[3 * c] = 2 * pk[3 * i] + (o & 1);
          keys[3 * c + 1] = 2 * pk[3 * i + 1] + ((o >> 1) & 1);
          keys[3 * c + 2] = 2 * pk[3 * i + 2] + ((o >> 2) & 1);
          parent[c++] = i;
        }
      }
    }
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
