// Little-endian, bounds-checked reading (FORMAT.md: "All integers are little-endian"), and CRC-32.
import { FormatError, Truncated } from "./errors.js";

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class ByteReader {
  readonly data: Uint8Array;
  pos = 0;
  private readonly view: DataView;

  /** `where` names the part in messages (e.g. "chunk LOD2"), `base` is the payload's offset in the file.
   * `partial`: `data` is only the first bytes of the part, so a read past its end throws `Truncated`
   * (more bytes are to come) instead of a plain FormatError. */
  constructor(data: Uint8Array, readonly where: string, readonly base = 0, readonly partial = false) {
    this.data = data;
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  fail(message: string): FormatError {
    return new FormatError(`${this.where} at byte ${this.base + this.pos}: ${message}`);
  }

  remaining(): number {
    return this.data.length - this.pos;
  }

  private need(n: number): void {
    if (n < 0 || n > this.remaining()) {
      if (this.partial && n >= 0) throw new Truncated(`${this.where}: ${n} more bytes are needed`);
      throw this.fail(`needs ${n} more bytes but only ${this.remaining()} remain (truncated or corrupt)`);
    }
  }

  u8(): number {
    this.need(1);
    return this.data[this.pos++];
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  raw(n: number): Uint8Array {
    this.need(n);
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A u32 length, then that many bytes (at most `limit`). */
  blob(limit: number): Uint8Array {
    const n = this.u32();
    // (on a prefix, a length past its end may be either: the whole part tells)
    if (this.partial && n > this.remaining()) throw new Truncated(`${this.where}: ${n} more bytes are needed`);
    if (n > limit) throw this.fail(`length ${n} exceeds the limit ${limit}`);
    return this.raw(n);
  }

  /** An array of u32 words: a u32 count, then the words. */
  words(): Uint32Array {
    const n = this.u32();
    if (n > Math.floor(this.remaining() / 4)) {
      if (this.partial) throw new Truncated(`${this.where}: ${4 * n} more bytes are needed`);
      throw this.fail(`element count ${n} exceeds the limit ${Math.floor(this.remaining() / 4)}`);
    }
    const out = new Uint32Array(n);
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(this.data.subarray(this.pos, this.pos + 4 * n));
    else for (let i = 0; i < n; i++) out[i] = this.view.getUint32(this.pos + 4 * i, true);
    this.pos += 4 * n;
    return out;
  }

  expectEnd(): void {
    if (this.remaining()) throw this.fail(`${this.remaining()} unexpected trailing bytes`);
  }
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC, as zlib) of the concatenation of `parts`. */
export function crc32(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** `count` unsigned values of `width` bits (<= 32), MSB-first, from `data` (which must hold them). */
export function unpackBits(data: Uint8Array, count: number, width: number): Float64Array {
  const out = new Float64Array(count);
  let bit = 0;
  for (let i = 0; i < count; i++) {
    let v = 0;
    for (let j = 0; j < width; j++, bit++) v = v * 2 + ((data[bit >>> 3] >>> (7 - (bit & 7))) & 1);
    out[i] = v;
  }
  return out;
}

export function packedSize(count: number, width: number): number {
  return Math.ceil((count * width) / 8);
}
