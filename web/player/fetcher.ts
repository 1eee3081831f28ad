// Fetches a progs stream piece by piece with HTTP Range requests, as docs/STREAMING.md describes:
// the manifest (or, without one, the stream's first bytes and its HEAD chunk's chunk table), the
// header, then one request per LoD chunk. Each chunk is checked (framing and CRC32) before it is
// handed on; a connection that drops mid-chunk is resumed from the first missing byte, a chunk that
// fails its CRC is fetched once more, and If-Range with the stream's ETag makes a file replaced on the
// server mid-load an error instead of a splice of two versions.
// Only the container's framing is read here (no decoder): the page's boot script fetches with it.
import { FormatError } from "../src/errors.js";
import { headChunkTable, headerLength, scanChunks } from "../src/container.js";

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

function isManifestUrl(url: string): boolean {
  return new URL(url, location.href).pathname.endsWith(".json");
}

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

export class StreamFetcher {
  etag: string | null = null;
  bytesReceived = 0;
  requests = 0;
  /** Every Range request that completed: [first byte, last byte + 1]. */
  readonly ranges: [number, number][] = [];
  private readonly url: string;

  constructor(url: string, private readonly signal?: AbortSignal) {
    this.url = new URL(url, location.href).href;
  }

  /** Finds the byte ranges: from the manifest when there is one, else from the stream's header. */
  async plan(): Promise<{ plan: Plan; header: Uint8Array }> {
    let manifest: Record<string, unknown> | null = null;
    let streamUrl = this.url;
    const manifestUrl = isManifestUrl(this.url) ? this.url : `${this.url}.json`;
    try {
      const r = await fetch(manifestUrl, { signal: this.signal, cache: "no-cache" });
      this.requests++;
      if (r.ok) {
        manifest = (await r.json()) as Record<string, unknown>;
        if (manifest.format !== "progs" || typeof manifest.stream !== "string") {
          throw new FetchError(`${manifestUrl}: not a progs manifest`);
        }
        streamUrl = new URL(manifest.stream, manifestUrl).href;
      } else if (isManifestUrl(this.url)) {
        throw new FetchError(`${manifestUrl}: HTTP ${r.status}`);
      }
    } catch (e) {
      if (e instanceof FetchError || isManifestUrl(this.url)) throw e;
      manifest = null; // no manifest (or not JSON): plan from the stream itself
    }
    const target = streamUrl;
    let header: Uint8Array;
    if (manifest) {
      const h = manifest.header as { length?: unknown } | undefined;
      const length = typeof h?.length === "number" ? h.length : 0;
      if (!(length > 20)) throw new FetchError(`${manifestUrl}: the manifest gives no header length`);
      header = await this.range(target, 0, length);
    } else {
      const first = await this.range(target, 0, 20);
      const n = headerLength(first, target);
      header = n > 20 ? concat(first, await this.range(target, 20, n)) : first;
    }
    const { headerBytes, chunkSizes } = headChunkTable(header, target); // checks the HEAD chunk's CRC
    const lods: LodRange[] = [];
    let offset = headerBytes;
    chunkSizes.forEach((length, i) => {
      lods.push({ lod: i + 1, offset, length, cumulativeBytes: offset + length, anchors: null });
      offset += length;
    });
    if (manifest) {
      const listed = Array.isArray(manifest.lods) ? (manifest.lods as Record<string, unknown>[]) : [];
      const stale = listed.length !== lods.length || listed.some((m, i) => m.offset !== lods[i].offset || m.length !== lods[i].length);
      if (stale) throw new FetchError(`${manifestUrl}: the manifest does not match ${target} (stale manifest?)`);
      listed.forEach((m, i) => (lods[i].anchors = typeof m.anchors === "number" ? m.anchors : null));
    }
    return {
      plan: {
        streamUrl: target, totalBytes: offset, headerLength: headerBytes, lods,
        source: manifest ? "manifest" : "header", view: manifest ? readView(manifest.view) : null,
      },
      header,
    };
  }

  /** One LoD chunk, framing and CRC checked (fetched again once if the CRC fails). `nearEnd` is
   * called once, when the bytes still to come would take about one round trip at the response's
   * throughput: the moment to ask for the next chunk, so that the link does not idle between them. */
  async chunk(url: string, r: LodRange, nearEnd?: () => void): Promise<Uint8Array> {
    for (let attempt = 0; ; attempt++) {
      const bytes = await this.range(url, r.offset, r.offset + r.length, nearEnd);
      const { chunks, problem } = scanChunks(bytes, url, r.offset);
      if (chunks.length === 1 && !problem) return bytes;
      if (attempt >= 1) throw new FormatError(problem ?? `${url}: bytes ${r.offset}-${r.offset + r.length - 1} are not one chunk`);
    }
  }

  /** Bytes [start, end) of `url`, resumed from the first missing byte if the connection drops. */
  async range(url: string, start: number, end: number, nearEnd?: () => void): Promise<Uint8Array> {
    const out = new Uint8Array(end - start);
    let have = 0;
    let failures = 0;
    let notify = nearEnd;
    while (have < out.length) {
      const headers: Record<string, string> = { Range: `bytes=${start + have}-${end - 1}` };
      if (this.etag) headers["If-Range"] = this.etag;
      let resp: Response;
      const asked = performance.now();
      try {
        resp = await fetch(url, { headers, signal: this.signal, cache: "no-store" });
        this.requests++;
      } catch (e) {
        if (this.signal?.aborted || ++failures > RETRIES) throw new FetchError(`${url}: ${(e as Error).message}`);
        continue;
      }
      if (resp.status === 200 && this.etag) {
        throw new FetchError(`${url} changed on the server while it was loading; reload the page`);
      }
      if (resp.status === 416) throw new FetchError(`${url}: bytes ${start}-${end - 1} are past the end of the file (truncated stream?)`);
      if (resp.status !== 206 && resp.status !== 200) throw new FetchError(`${url}: HTTP ${resp.status}`);
      const etag = resp.headers.get("ETag");
      if (etag && !etag.startsWith("W/")) {
        if (this.etag && etag !== this.etag) throw new FetchError(`${url} changed on the server while it was loading; reload the page`);
        this.etag = etag;
      }
      // a server that ignores Range sends the whole file from byte 0
      let skip = resp.status === 200 ? start + have : 0;
      const answered = performance.now();
      const roundTrip = answered - asked;
      const reader = resp.body!.getReader();
      const before = have;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          let v = value;
          if (skip) {
            const s = Math.min(skip, v.length);
            v = v.subarray(s);
            skip -= s;
          }
          const n = Math.min(v.length, out.length - have);
          out.set(v.subarray(0, n), have);
          have += n;
          this.bytesReceived += n;
          if (notify) {
            const rate = (have - before) / Math.max(performance.now() - answered, 1); // bytes per ms
            if (out.length - have <= rate * roundTrip) {
              notify();
              notify = undefined;
            }
          }
          if (have >= out.length && resp.status !== 206) {
            await reader.cancel(); // the server sent the whole file: the rest is not needed
            break;
          }
        }
      } catch (e) {
        if (this.signal?.aborted) throw e;
        // dropped mid-body: the loop asks for the rest
      }
      if (have < out.length && have === before && ++failures > RETRIES) {
        throw new FetchError(`${url}: the server ended the response at byte ${start + have} of ${end} (truncated stream?)`);
      }
    }
    notify?.();
    this.ranges.push([start, end]);
    return out;
  }
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** How many LoDs to fetch: those within `maxBytes` (header included) and `maxLod`. */
export function lodsWithin(plan: Plan, maxBytes?: number, maxLod?: number): number {
  let n = 0;
  for (const r of plan.lods) {
    if (maxBytes !== undefined && r.cumulativeBytes > maxBytes) break;
    if (maxLod !== undefined && r.lod > maxLod) break;
    n = r.lod;
  }
  return n;
}
