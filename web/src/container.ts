// FORMAT.md "Container": magic, version, then chunks `tag | length | payload | crc`.
import { ByteReader, crc32 } from "./bytes.js";
import { FormatError } from "./errors.js";

export const MAGIC = new Uint8Array([0x89, 0x50, 0x52, 0x4f, 0x47, 0x53, 0x0d, 0x0a]);
export const FORMAT_VERSION = 7;
export const PREAMBLE = 12;
export const CHUNK_OVERHEAD = 12;
export const MAX_HEAD = 2 ** 30;
export const MAX_LEVELS = 16;

export interface Chunk {
  tag: Uint8Array;
  name: string;
  offset: number; // of the chunk's tag in the file
  payload: Uint8Array;
}

export interface ScanResult {
  version: number;
  chunks: Chunk[];
  /** Why scanning stopped before the end of the data, if it did. */
  problem: string | null;
}

export function tagName(tag: Uint8Array): string {
  if (tag.length === 4 && tag[0] === 0x4c && tag[1] === 0x4f && tag[2] === 0x44) return `LOD${tag[3]}`;
  if (tag.every((b) => b >= 32 && b < 127)) return String.fromCharCode(...tag);
  return "0x" + Array.from(tag, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function isHeadTag(tag: Uint8Array): boolean {
  return tag[0] === 0x48 && tag[1] === 0x45 && tag[2] === 0x41 && tag[3] === 0x44;
}

export function isLodTag(tag: Uint8Array, level: number): boolean {
  return tag[0] === 0x4c && tag[1] === 0x4f && tag[2] === 0x44 && tag[3] === level;
}

/** Checks the magic bytes and the format version; returns the version. */
export function checkPreamble(data: Uint8Array, source = "stream"): number {
  const n = Math.min(data.length, MAGIC.length);
  for (let i = 0; i < n; i++) {
    if (data[i] !== MAGIC[i]) throw new FormatError(`${source}: not a progs stream (bad magic bytes)`);
  }
  if (data.length < PREAMBLE) throw new FormatError(`${source}: truncated before the end of the ${PREAMBLE}-byte preamble`);
  const version = data[8] | (data[9] << 8);
  if (version !== FORMAT_VERSION) {
    throw new FormatError(`${source}: unsupported format version ${version} (this decoder reads version ${FORMAT_VERSION})`);
  }
  return version;
}

/** The little-endian u32 at `pos`. */
export function u32At(data: Uint8Array, pos: number): number {
  return (data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16) | (data[pos + 3] << 24)) >>> 0;
}

/** Splits a (possibly truncated or damaged) stream into its intact chunks, in order; stops at the
 * first chunk that is incomplete or fails its CRC and says why in `problem`. */
export function scan(data: Uint8Array, source = "stream"): ScanResult {
  const version = checkPreamble(data, source);
  const { chunks, problem } = scanChunks(data.subarray(PREAMBLE), source, PREAMBLE);
  return { version, chunks, problem };
}

/** The intact chunks of bytes that hold whole chunks only (no preamble), e.g. a byte range fetched
 * from the chunk table; `base` is the first byte's offset in the file (for offsets and messages). */
export function scanChunks(data: Uint8Array, source = "stream", base = 0): { chunks: Chunk[]; problem: string | null } {
  const chunks: Chunk[] = [];
  let problem: string | null = null;
  let pos = 0;
  while (pos < data.length) {
    if (data.length - pos < 8) {
      problem = `${source}: truncated inside a chunk header at byte ${base + pos}`;
      break;
    }
    const tag = data.subarray(pos, pos + 4);
    const length = u32At(data, pos + 4);
    const name = tagName(tag);
    const present = Math.max(0, data.length - pos - CHUNK_OVERHEAD);
    if (length > present) {
      problem = `${source}: chunk ${name} at byte ${base + pos} is truncated (${length} payload bytes announced, ${present} present)`;
      break;
    }
    const payload = data.subarray(pos + 8, pos + 8 + length);
    if (crc32(tag, payload) !== u32At(data, pos + 8 + length)) {
      problem = `${source}: chunk ${name} at byte ${base + pos} fails its CRC32 check (corrupted)`;
      break;
    }
    chunks.push({ tag, name, offset: base + pos, payload });
    pos += length + CHUNK_OVERHEAD;
  }
  return { chunks, problem };
}

/** Preamble plus the whole HEAD chunk, in bytes, from the stream's first 20 bytes. */
export function headerLength(prefix: Uint8Array, source = "stream"): number {
  checkPreamble(prefix, source);
  if (prefix.length < PREAMBLE + 8) throw new FormatError(`${source}: truncated before the HEAD chunk's length`);
  if (!isHeadTag(prefix.subarray(PREAMBLE, PREAMBLE + 4))) throw new FormatError(`${source}: the first chunk must be HEAD`);
  const length = u32At(prefix, PREAMBLE + 4);
  if (length > MAX_HEAD) throw new FormatError(`${source}: chunk HEAD at byte ${PREAMBLE} announces an implausible ${length} bytes`);
  return PREAMBLE + length + CHUNK_OVERHEAD;
}

/** The LoD chunk sizes listed in the HEAD chunk's chunk table (FORMAT.md "HEAD payload"), from the
 * stream's first bytes (preamble plus the whole HEAD chunk, CRC checked), and the bytes up to the
 * first LoD chunk. A client planning its Range requests needs no more of the header; decoding checks
 * the rest of it. */
export function headChunkTable(header: Uint8Array, source = "stream"): { headerBytes: number; chunkSizes: number[] } {
  const { chunks, problem } = scan(header, source);
  const head = chunks[0];
  if (!head || !isHeadTag(head.tag)) throw new FormatError(problem ?? `${source}: the first chunk must be HEAD`);
  const r = new ByteReader(head.payload, "chunk HEAD", head.offset + 8);
  return { headerBytes: PREAMBLE + head.payload.length + CHUNK_OVERHEAD, chunkSizes: readChunkSizes(r) };
}

/** The HEAD payload's first field, the chunk table: n_lods:u8 (1..MAX_LEVELS), then each LoD chunk's size. */
export function readChunkSizes(r: ByteReader): number[] {
  const n = r.u8();
  if (n < 1 || n > MAX_LEVELS) throw r.fail(`chunk table lists ${n} LoDs (1..${MAX_LEVELS} allowed)`);
  const sizes: number[] = [];
  for (let i = 0; i < n; i++) sizes.push(r.u32());
  if (sizes.some((s) => s < CHUNK_OVERHEAD)) throw r.fail("chunk table lists a chunk shorter than its framing");
  return sizes;
}
