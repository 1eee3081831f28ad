// Fetches a progs stream piece by piece with HTTP Range requests, as docs/STREAMING.md describes:
// the manifest (or, without one, the stream's first bytes and its HEAD chunk's chunk table), then
// byte ranges that may span several chunks, each chunk handed on as soon as its last byte is in
// (streaming.ts chooses the ranges). Each chunk is checked (framing and CRC32) before it is handed
// on; a connection that drops mid-response is resumed from the first missing byte, a chunk that fails
// its CRC is fetched once more on its own, and If-Range with the stream's ETag makes a file replaced
// on the server mid-load an error instead of a splice of two versions.
// Only the container's framing is read here (no decoder).
import { FormatError } from "../src/errors.js";
import { Chunk, headChunkTable, headerLength, scanChunks } from "../src/container.js";
import { isManifestUrl, ManifestReply, manifestUrlOf, requestManifest } from "./manifest-request.js";

export interface LodRange {
  lod: number;
  offset: number;
  length: number;
  cumulativeBytes: number;
  anchors: number | null;
}

/** A camera the encoder suggests: eye, target, up (world), horizontal field of view in degrees. */
export interface SuggestedView {
  eye: number[];
  target: number[];
  up: number[];
  fovX: number;
}

export interface Plan {
  streamUrl: string;
  totalBytes: number;
  headerLength: number;
  lods: LodRange[];
  source: "manifest" | "header";
  view: SuggestedView | null;
}

export class FetchError extends Error {}

const RETRIES = 3;
const STALL_MS = 20_000;

function vec3(v: unknown): number[] | null {
  return Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number" && Number.isFinite(x)) ? v : null;
}

function readView(v: unknown): SuggestedView | null {
  if (!v || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  const eye = vec3(o.eye), target = vec3(o.target), up = vec3(o.up);
  const fovX = typeof o.fov_x === "number" && o.fov_x > 1 && o.fov_x < 179 ? o.fov_x : null;
  return eye && target && up && fovX ? { eye, target, up, fovX } : null;
}

/** What a client may read from a stream's manifest before fetching anything else. */
export interface Manifest {
  manifestUrl: string;
  streamUrl: string;
  headerLength: number;
  lods: LodRange[];
  view: SuggestedView | null;
}

/** Fetch statistics: bytes of the stream received, requests made, the byte ranges that completed. */
export interface FetchStats {
  bytesReceived: number;
  requests: number;
  /** Every Range request's bytes: [first byte, last byte + 1] (a request stopped early: what arrived). */
  ranges: [number, number][];
  etag: string | null;
}

function count(v: unknown): number | null {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : null;
}

export class StreamFetcher implements FetchStats {
  etag: string | null = null;
  bytesReceived = 0;
  requests = 0;
  readonly ranges: [number, number][] = [];
  /** Called with every piece of a response as it arrives (its length in bytes). */
  onBytes: ((n: number) => void) | null = null;
  readonly url: string;

  /** `stallMs`: a response that brings no byte for this long is dropped and resumed (default 20 s). */
  constructor(url: string, private readonly signal?: AbortSignal, private readonly stallMs = STALL_MS) {
    this.url = new URL(url, location.href).href;
  }

  /** The stream's manifest (`url` + `.json`, or `url` itself when it names one); null when the stream
   * has none (its ranges then come from its own first bytes: `planFromHeader`). `asked`: the answer
   * to a request for it made elsewhere (the page's), instead of asking here. */
  async manifest(asked?: Promise<ManifestReply>): Promise<Manifest | null> {
    const manifestUrl = manifestUrlOf(this.url);
    let m: Record<string, unknown>;
    try {
      const r = await (asked ?? requestManifest(manifestUrl, this.signal));
      this.requests++;
      if (!r.ok) {
        if (isManifestUrl(this.url)) throw new FetchError(`${manifestUrl}: HTTP ${r.status}`);
        return null;
      }
      m = JSON.parse(r.text) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof FetchError || isManifestUrl(this.url)) throw e;
      return null; // no manifest (or not JSON): plan from the stream itself
    }
    if (m.format !== "progs" || typeof m.stream !== "string") throw new FetchError(`${manifestUrl}: not a progs manifest`);
    const headerLength = count((m.header as { length?: unknown } | undefined)?.length);
    if (headerLength === null || headerLength <= 20) throw new FetchError(`${manifestUrl}: the manifest gives no header length`);
    const listed = Array.isArray(m.lods) ? (m.lods as Record<string, unknown>[]) : [];
    const lods: LodRange[] = [];
    let end = headerLength;
    for (const [i, l] of listed.entries()) {
      const offset = count(l?.offset), length = count(l?.length);
      if (offset !== end || length === null || length === 0) {
        throw new FetchError(`${manifestUrl}: LoD ${i + 1}'s byte range is missing or does not follow the one before`);
      }
      end = offset + length;
      lods.push({ lod: i + 1, offset, length, cumulativeBytes: end, anchors: count(l.anchors) });
    }
    return { manifestUrl, streamUrl: new URL(m.stream, manifestUrl).href, headerLength, lods, view: readView(m.view) };
  }

  /** The plan from the stream's header (preamble and HEAD chunk, CRC checked): the LoD chunks' byte
   * ranges, checked against the manifest's when there is one. */
  planFromHeader(header: Uint8Array, streamUrl: string, manifest: Manifest | null): Plan {
    const staleManifest = () => new FetchError(`${manifest!.manifestUrl}: the manifest does not match ${streamUrl} (stale manifest?)`);
    if (manifest && headerLength(header, streamUrl) !== manifest.headerLength) throw staleManifest();
    const { headerBytes, chunkSizes } = headChunkTable(header, streamUrl);
    const lods: LodRange[] = [];
    let offset = headerBytes;
    chunkSizes.forEach((length, i) => {
      lods.push({ lod: i + 1, offset, length, cumulativeBytes: offset + length, anchors: null });
      offset += length;
    });
    if (manifest) {
      const listed = manifest.lods;
      const stale = manifest.headerLength !== headerBytes || listed.length !== lods.length ||
        listed.some((m, i) => m.offset !== lods[i].offset || m.length !== lods[i].length);
      if (stale) throw staleManifest();
      listed.forEach((m, i) => (lods[i].anchors = m.anchors));
    }
    return {
      streamUrl, totalBytes: offset, headerLength: headerBytes, lods,
      source: manifest ? "manifest" : "header", view: manifest?.view ?? null,
    };
  }

  /** The stream's header without a manifest: its first 20 bytes, then the rest of its HEAD chunk. */
  async header(streamUrl: string): Promise<Uint8Array> {
    const first = await this.range(streamUrl, 0, 20);
    const n = headerLength(first, streamUrl);
    return n > 20 ? concat(first, await this.range(streamUrl, 20, n)) : first;
  }

  /** Bytes [bounds[0], bounds[n]) in one Range request. `onPiece(i, bytes)` gets bytes
   * [bounds[i], bounds[i + 1]) as soon as the last of them has arrived, in order, while the rest
   * keeps arriving; it returns false to stop there (the rest is not read). `onPartial(i, bytes)`, if
   * given, sees the first bytes of the piece still arriving each time more of them are in (a view:
   * bytes already seen never change). */
  async pieces(url: string, bounds: number[], onPiece: (i: number, bytes: Uint8Array) => boolean | Promise<boolean>,
               onPartial?: (i: number, bytes: Uint8Array) => void): Promise<void> {
    const start = bounds[0];
    let next = 0;
    await this.range(url, start, bounds[bounds.length - 1], async (have, buf) => {
      while (next < bounds.length - 1 && bounds[next + 1] - start <= have) {
        const i = next++;
        if (!(await onPiece(i, buf.slice(bounds[i] - start, bounds[i + 1] - start)))) return false;
      }
      if (onPartial && next < bounds.length - 1 && have > bounds[next] - start) {
        onPartial(next, buf.subarray(bounds[next] - start, have));
      }
      return true;
    });
  }

  /** Bytes [start, end) of `url`, resumed from the first missing byte if the connection drops.
   * `onProgress(have, bytes)` is called as they arrive; when it returns false the response is
   * cancelled and what had arrived is returned. */
  async range(url: string, start: number, end: number,
              onProgress?: (have: number, bytes: Uint8Array) => boolean | Promise<boolean>): Promise<Uint8Array> {
    const out = new Uint8Array(end - start);
    let have = 0;
    let failures = 0;
    let stopped = false;
    while (have < out.length && !stopped) {
      const headers: Record<string, string> = { Range: `bytes=${start + have}-${end - 1}` };
      if (this.etag) headers["If-Range"] = this.etag;
      let resp: Response;
      try {
        resp = await fetch(url, { headers, signal: this.signal, cache: "no-store" });
        this.requests++;
      } catch (e) {
        if (this.signal?.aborted || ++failures > RETRIES) throw new FetchError(`${url}: ${(e as Error).message}`);
        continue;
      }
      if (resp.status === 416) throw new FetchError(`${url}: bytes ${start + have}-${end - 1} are past the end of the file (truncated stream?)`);
      if (resp.status !== 206 && resp.status !== 200) throw new FetchError(`${url}: HTTP ${resp.status}`);
      const etag = resp.headers.get("ETag");
      const strong = etag !== null && !etag.startsWith("W/");
      // another strong ETag, or the whole file under any other (a host answers If-Range so when the
      // tag no longer matches): the file was replaced since the first response
      if (this.etag && etag !== this.etag && (strong || resp.status === 200)) {
        throw new FetchError(`${url} changed on the server while it was loading; reload the page`);
      }
      if (strong) this.etag = etag;
      // a server that ignores Range sends the whole file from byte 0
      let skip = resp.status === 200 ? start + have : 0;
      const reader = resp.body!.getReader();
      const before = have;
      for (;;) {
        let part: ReadableStreamReadResult<Uint8Array>;
        // a connection that stalls (no byte for STALL_MS) is dropped and resumed like one that breaks
        let stall: ReturnType<typeof setTimeout> | undefined;
        try {
          part = await Promise.race([
            reader.read(),
            new Promise<never>((_, reject) => (stall = setTimeout(() => reject(new Error("stalled")), this.stallMs))),
          ]);
        } catch (e) {
          if (this.signal?.aborted) throw e;
          void reader.cancel().catch(() => undefined);
          break; // dropped or stalled mid-body: the loop asks for the rest
        } finally {
          clearTimeout(stall);
        }
        if (part.done) break;
        let v = part.value;
        if (skip) {
          const s = Math.min(skip, v.length);
          v = v.subarray(s);
          skip -= s;
        }
        const n = Math.min(v.length, out.length - have);
        out.set(v.subarray(0, n), have);
        have += n;
        this.bytesReceived += n;
        if (n) this.onBytes?.(n);
        let more = true;
        try {
          if (onProgress && n) more = await onProgress(have, out);
        } catch (e) {
          void reader.cancel().catch(() => undefined);
          throw e;
        }
        if (!more) stopped = true;
        if (stopped || (have >= out.length && resp.status !== 206)) {
          void reader.cancel().catch(() => undefined); // not needed (stopped, or the server sent the whole file)
          break;
        }
      }
      if (!stopped && have < out.length && have === before && ++failures > RETRIES) {
        throw new FetchError(`${url}: the server ended the response at byte ${start + have} of ${end} (truncated stream?)`);
      }
    }
    this.ranges.push([start, start + have]);
    return have === out.length ? out : out.subarray(0, have);
  }
}

/** `bytes` (fetched from `r`'s range of `url`) as one intact chunk (framing and CRC checked), or why
 * they are not one. */
export function scanChunk(bytes: Uint8Array, url: string, r: LodRange): { chunk: Chunk | null; problem: string | null } {
  const { chunks, problem } = scanChunks(bytes, url, r.offset);
  if (chunks.length === 1 && !problem) return { chunk: chunks[0], problem: null };
  return { chunk: null, problem: problem ?? `${url}: bytes ${r.offset}-${r.offset + r.length - 1} are not one chunk` };
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** How many LoDs to fetch: those within `maxBytes` (header included) and `maxLod`. */
export function lodsWithin(plan: Pick<Plan, "lods">, maxBytes?: number, maxLod?: number): number {
  let n = 0;
  for (const r of plan.lods) {
    if (maxBytes !== undefined && r.cumulativeBytes > maxBytes) break;
    if (maxLod !== undefined && r.lod > maxLod) break;
    n = r.lod;
  }
  return n;
}
