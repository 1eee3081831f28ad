// Messages between the player and its decoding worker (which also fetches the stream: streaming.ts).
import type { ViewGaussians } from "../src/index.js";
import type { FetchStats, Plan } from "./fetcher.js";
import type { ManifestReply } from "./manifest-request.js";

export type ToWorker =
  | {
      /** Fetch and decode `url` (absolute). `hold`: wait for a `go` before the LoDs after the first. */
      type: "load"; url: string; maxBytes?: number; maxLod?: number; maxSeconds?: number;
      startedAt: number; camera: number[] | null; hold: boolean;
      /** The page asks for the manifest and sends its answer (a `manifest` message). */
      manifestFromPage?: boolean;
    }
  | { type: "manifest"; reply: ManifestReply | null; error?: string }
  | { type: "go" }
  | { type: "stop" }
  | { type: "camera"; position: number[]; seq: number };

export type FromWorker =
  | { type: "plan"; plan: Plan; lodsPlanned: number; at: number }
  | {
      type: "header"; lods: number; headerBytes: number; background: number[] | null;
      origin: number[]; size: number; viewDistance: number | null;
      /** Where the Gaussians are evaluated from: the page's camera, else the encoder's suggested view,
       * else outside the scene's cube where a default camera stands. */
      camera: number[];
    }
  /** A LoD chunk is in (`at`: ms since the epoch) and its decoding begins. */
  | { type: "sent"; lod: number; offset: number; length: number; at: number; stats: FetchStats }
  | {
      type: "level"; lod: number; anchors: number; gaussians: ViewGaussians; camera: number[];
      decodeSeconds: number; generateSeconds: number;
      /** When the worker finished (ms since the epoch: performance.timeOrigin + performance.now()). */
      readyAt: number;
    }
  | { type: "view"; seq: number; camera: number[]; levels: ViewGaussians[]; seconds: number }
  /** Bytes are arriving (sent at most every few tens of milliseconds). */
  | { type: "progress"; stats: FetchStats }
  /** Fetching stopped on a problem (network, stale manifest, damaged chunk that came twice); the
   * chunks sent before it still arrive decoded, unless `workerStopped` (the worker itself failed). */
  | { type: "failed"; message: string; stats: FetchStats; workerStopped?: boolean }
  /** Every planned chunk was handed to the decoder, or fetching stopped. */
  | { type: "fetched"; stats: FetchStats }
  /** A chunk could not be decoded: loading stops there. */
  | { type: "error"; lod: number; message: string };

/** Where a player's default camera stands when the stream suggests no view: in front of the scene's
 * cube (origin corner, edge), at the header's view distance. */
export function defaultCamera(origin: number[], size: number, viewDistance: number | null): number[] {
  const c = origin.map((o) => o + size / 2);
  return [c[0], c[1], c[2] + (viewDistance ?? 1.5 * size)];
}
