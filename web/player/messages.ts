// Messages between the player and its decoding worker.
import type { ViewGaussians } from "../src/index.js";

export type ToWorker =
  | { type: "header"; bytes: Uint8Array; source: string; camera: number[] | null }
  | { type: "chunk"; bytes: Uint8Array; offset: number; lod: number; source: string }
  | { type: "camera"; position: number[]; seq: number };

export type FromWorker =
  | {
      type: "header"; lods: number; headerBytes: number; background: number[] | null;
      origin: number[]; size: number; viewDistance: number | null;
      /** Where the Gaussians are evaluated from: the camera sent with the header, else outside the
       * scene's cube where a default camera stands. */
      camera: number[];
    }
  | {
      type: "level"; lod: number; anchors: number; gaussians: ViewGaussians; camera: number[];
      decodeSeconds: number; generateSeconds: number;
      /** When the worker finished (ms since the epoch: performance.timeOrigin + performance.now()). */
      readyAt: number;
    }
  | { type: "view"; seq: number; camera: number[]; levels: ViewGaussians[]; seconds: number }
  | { type: "error"; lod: number; message: string };

/** Where a player's default camera stands when the stream suggests no view: in front of the scene's
 * cube (origin corner, edge), at the header's view distance. */
export function defaultCamera(origin: number[], size: number, viewDistance: number | null): number[] {
  const c = origin.map((o) => o + size / 2);
  return [c[0], c[1], c[2] + (viewDistance ?? 1.5 * size)];
}
