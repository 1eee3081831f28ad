// How the decoding worker fetches a stream (docs/STREAMING.md, "The web player"): the manifest (or,
// without one, the stream's first bytes and its HEAD chunk), then as few Range requests as the page
// allows, each LoD chunk handed on as soon as its last byte is in while the next keeps arriving.
//
// - With a manifest, the header and LoD 1 come in one request; without one, the header is read
//   first (its chunk table gives the LoDs' ranges).
// - The finer LoDs come in one request after LoD 1, once `hold` settles (player.html holds them
//   until Spark's WebAssembly has arrived, so that the first image's bytes have the link to
//   themselves). With nothing to wait for, a manifest's stream comes in one request from byte 0.
// - `maxSeconds` asks only for the LoDs expected to arrive in time at the throughput seen so far,
//   and stops before one that no longer would.
// Fetching runs in the worker, not on the page's thread: a page busy drawing (seconds per frame on
// software WebGL) delays neither the requests nor the chunks' hand-over to the decoder.
import type { Chunk } from "../src/container.js";
import { FormatError } from "../src/errors.js";
import { FetchStats, LodRange, lodsWithin, Manifest, Plan, scanChunk, StreamFetcher } from "./fetcher.js";
import type { ManifestReply } from "./manifest-request.js";

export interface FetchOptions {
  maxBytes?: number;
  maxLod?: number;
  maxSeconds?: number;
  /** When the page asked for the stream (ms since the epoch): `maxSeconds` counts from here. */
  startedAt: number;
}

export interface FetchHooks {
  /** The plan and the header's bytes (called once, before any chunk). */
  header(plan: Plan, lodsPlanned: number, bytes: Uint8Array): void;
  /** A LoD chunk's bytes and the chunk they hold (framing and CRC checked); throwing stops the load. */
  chunk(r: LodRange, bytes: Uint8Array, chunk: Chunk): void;
  /** The first bytes of a LoD chunk still arriving (not yet checked), each time more are in. */
  partial?(r: LodRange, bytes: Uint8Array): void;
  /** The manifest's answer when it was asked for elsewhere (the page asks while this worker starts). */
  manifest?: Promise<ManifestReply>;
  /** The LoDs after the first are asked for once this settles (null: at once). */
  hold: Promise<void> | null;
}

/** Milliseconds since the epoch, comparable across the page and its workers. */
export const now = (): number => performance.timeOrigin + performance.now();

/** Fetches the LoDs the options allow, handing each to `hooks.chunk` in order. Throws on a problem
 * (network, stale manifest, damaged chunk). */
export async function fetchStream(f: StreamFetcher, o: FetchOptions, hooks: FetchHooks): Promise<void> {
  const manifest: Manifest | null = await f.manifest(hooks.manifest);
  let plan: Plan | null = null;
  let budget = 0;
  let next = 0; // the first LoD (index) not handed over yet
  const streamUrl = manifest ? manifest.streamUrl : f.url;
  const deliver = async (i: number, bytes: Uint8Array): Promise<void> => {
    const r = plan!.lods[i];
    let { chunk } = scanChunk(bytes, streamUrl, r);
    if (!chunk) {
      // a chunk that fails its CRC is fetched once more, alone
      bytes = await f.range(streamUrl, r.offset, r.offset + r.length);
      const again = scanChunk(bytes, streamUrl, r);
      if (!again.chunk) throw new FormatError(again.problem!);
      chunk = again.chunk;
    }
    hooks.chunk(r, bytes, chunk);
    next = i + 1;
  };
  const elapsed = (): number => (now() - o.startedAt) / 1000;
  const rate = (): number => f.bytesReceived / Math.max(elapsed(), 1e-3); // bytes per second, so far
  if (manifest) {
    const budgetAhead = lodsWithin(manifest, o.maxBytes, o.maxLod);
    const together = hooks.hold || o.maxSeconds !== undefined ? Math.min(budgetAhead, 1) : budgetAhead;
    const bounds = [0, manifest.headerLength, ...manifest.lods.slice(0, together).map((r) => r.cumulativeBytes)];
    await f.pieces(streamUrl, bounds, async (i, bytes) => {
      if (i === 0) {
        plan = f.planFromHeader(bytes, streamUrl, manifest); // throws on a stale manifest
        budget = lodsWithin(plan, o.maxBytes, o.maxLod);
        hooks.header(plan, budget, bytes);
      } else {
        await deliver(i - 1, bytes);
      }
      return true;
    }, (i, bytes) => {
      if (i > 0 && plan) hooks.partial?.(plan.lods[i - 1], bytes);
    });
  } else {
    const header = await f.header(streamUrl);
    plan = f.planFromHeader(header, streamUrl, null);
    budget = lodsWithin(plan, o.maxBytes, o.maxLod);
    hooks.header(plan, budget, header);
  }
  const lods = plan!.lods;
  if (budget === 0 && lods.length) {
    throw new Error(o.maxBytes !== undefined && lods[0].cumulativeBytes > o.maxBytes
      ? `LoD 1 needs ${lods[0].cumulativeBytes} bytes, more than the budget of ${o.maxBytes}`
      : `maxLod is ${o.maxLod}: no LoD to fetch`);
  }
  const inTime = (first: number, last: number): boolean =>
    o.maxSeconds === undefined || lods[last].lod === 1 ||
    elapsed() + (lods[last].cumulativeBytes - lods[first].offset) / rate() <= o.maxSeconds;
  while (next < budget) {
    if (lods[next].lod > 1 && hooks.hold) {
      await hooks.hold;
      hooks.hold = null;
    }
    // while held, LoD 1 alone (without a manifest it has not come with the header)
    const cap = hooks.hold && lods[next].lod === 1 ? next + 1 : budget;
    let last = next - 1;
    while (last + 1 < cap && inTime(next, last + 1)) last++;
    if (last < next) break; // the next LoD would arrive too late
    const first = next;
    const bounds = [lods[first].offset, ...lods.slice(first, last + 1).map((r) => r.cumulativeBytes)];
    let onTime = true;
    await f.pieces(streamUrl, bounds, async (i, bytes) => {
      await deliver(first + i, bytes);
      // at the throughput seen by now, would the next LoD still arrive in time?
      if (first + i < last && !inTime(first + i + 1, first + i + 1)) onTime = false;
      return onTime;
    }, (i, bytes) => hooks.partial?.(lods[first + i], bytes));
    if (!onTime) break;
  }
}

/** A copy of the fetcher's statistics that can be posted to the page. */
export function fetchStats(f: StreamFetcher): FetchStats {
  return { bytesReceived: f.bytesReceived, requests: f.requests, ranges: f.ranges.map((r) => [r[0], r[1]]), etag: f.etag };
}
