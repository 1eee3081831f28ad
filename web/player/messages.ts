// Messages between the player and its decoding worker.
import type { ViewGaussians } from "../src/index.js";

export type ToWorker =
  | { type: "header"; bytes: Uint8Array; source: string; camera: number[] }
  | { type: "chunk"; bytes: Uint8Array; offset: number; lod: number; source: string }
  | { type: "camera"; position: number[]; seq: number };

export type FromWorker =
  | {
      type: "header"; lods: number; headerBytes: number; background: number[] | null;
      origin: number[]; size: number; viewDistance: number | null;
    }
  | {
      type: "level"; lod: number; anchors: number; gaussians: ViewGaussians; camera: number[];
      decodeSeconds: number; generateSeconds: number;
      /** When the worker finished (ms since the epoch: performance.timeOrigin + performance.now()). */
      readyAt: number;
    }
  | { type: "view"; seq: number; camera: number[]; levels: ViewGaussians[]; seconds: number }
  | { type: "error"; lod: number; message: string };
