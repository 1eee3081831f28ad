// The player's worker: fetches the stream (streaming.ts), decodes the header and each LoD chunk as
// it arrives, and evaluates the Gaussians every decoded level draws from the current camera (again
// for every level when the camera moves).
import { ChunkInProgress, NeuralGaussians, StreamDecoder, ViewGaussians } from "../src/index.js";
import { StreamFetcher } from "./fetcher.js";
import { defaultCamera, FromWorker, ToWorker } from "./messages.js";
import { fetchStats, fetchStream, now } from "./streaming.js";
import type { ManifestReply } from "./manifest-request.js";

let decoder: StreamDecoder | null = null;
// the LoD chunk still arriving, whose decoding has begun with its first bytes
let arriving: ChunkInProgress | null = null;
let gaussians: NeuralGaussians | null = null;
let camera: number[] = [0, 0, 0];
let pendingView: { seq: number } | null = null;
let go: (() => void) | null = null;
let manifestReply: { resolve: (r: ManifestReply) => void; reject: (e: Error) => void } | null = null;
const abort = new AbortController();

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);

function buffers(g: ViewGaussians): Transferable[] {
  return [g.means.buffer, g.scales.buffer, g.quats.buffer, g.opacities.buffer, g.colors.buffer];
}

function regenerate(seq: number): void {
  if (!gaussians) return;
  const t0 = performance.now();
  const levels: ViewGaussians[] = [];
  for (let i = 0; i < gaussians.levels; i++) levels.push(gaussians.generate(i, camera));
  post({ type: "view", seq, camera: camera.slice(), levels, seconds: (performance.now() - t0) / 1000 }, levels.flatMap(buffers));
}

/** Decoding failed: reported as the LoD's error, and fetching stops. */
class DecodeError extends Error {
  constructor(readonly lod: number, message: string) {
    super(message);
  }
}

async function load(m: Extract<ToWorker, { type: "load" }>): Promise<void> {
  const f = new StreamFetcher(m.url, abort.signal);
  let lastProgress = 0;
  f.onBytes = () => {
    const t = performance.now();
    if (t - lastProgress < 50) return;
    lastProgress = t;
    post({ type: "progress", stats: fetchStats(f) });
  };
  const hold = m.hold ? new Promise<void>((res) => (go = res)) : null;
  const manifest = m.manifestFromPage
    ? new Promise<ManifestReply>((resolve, reject) => (manifestReply = { resolve, reject }))
    : undefined;
  try {
    await fetchStream(f, m, {
      hold,
      manifest,
      header(plan, lodsPlanned, bytes) {
        post({ type: "plan", plan, lodsPlanned, at: now() });
        try {
          decoder = StreamDecoder.fromBytes(bytes, plan.streamUrl);
        } catch (e) {
          throw new DecodeError(0, (e as Error).message);
        }
        gaussians = new NeuralGaussians(decoder.header);
        const h = decoder.header;
        camera = m.camera ?? plan.view?.eye.slice() ?? defaultCamera(h.grid.origin, h.grid.size, h.viewDistance);
        post({
          type: "header", lods: decoder.lodsInStream, headerBytes: decoder.headerBytes,
          background: h.background, origin: h.grid.origin, size: h.grid.size, viewDistance: h.viewDistance,
          camera: camera.slice(),
        });
      },
      partial(r, bytes) {
        // what a chunk's first bytes allow is decoded while the rest arrives
        if (!decoder || abort.signal.aborted) return;
        if (arriving && arriving.offset !== r.offset) {
          decoder.abandonChunk(arriving);
          arriving = null;
        }
        arriving ??= decoder.startChunk(r.offset);
        decoder.advanceChunk(arriving, bytes);
      },
      chunk(r, _bytes, chunk) {
        if (abort.signal.aborted) throw new Error("stopped");
        post({ type: "sent", lod: r.lod, offset: r.offset, length: r.length, at: now(), stats: fetchStats(f) });
        try {
          const t0 = performance.now();
          const early = arriving && arriving.offset === r.offset ? arriving : null;
          if (arriving && !early) decoder!.abandonChunk(arriving);
          arriving = null;
          const lv = early ? decoder!.finishChunkInProgress(early, chunk) : decoder!.decodeChunk(chunk);
          const t1 = performance.now();
          gaussians!.addLevel(lv);
          const g = gaussians!.generate(gaussians!.levels - 1, camera);
          const t2 = performance.now();
          post({
            type: "level", lod: lv.level, anchors: lv.count, gaussians: g, camera: camera.slice(),
            decodeSeconds: (t1 - t0) / 1000, generateSeconds: (t2 - t1) / 1000, readyAt: performance.timeOrigin + t2,
          }, buffers(g));
        } catch (e) {
          throw new DecodeError(r.lod, (e as Error).message);
        }
      },
    });
  } catch (e) {
    if (e instanceof DecodeError) {
      post({ type: "error", lod: e.lod, message: e.message });
    } else if (!abort.signal.aborted) {
      post({ type: "failed", message: (e as Error).message, stats: fetchStats(f) });
    }
    abort.abort();
  } finally {
    if (arriving) decoder?.abandonChunk(arriving);
    arriving = null;
    post({ type: "fetched", stats: fetchStats(f) });
  }
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === "load") {
    camera = m.camera ?? camera;
    void load(m);
  } else if (m.type === "go") {
    go?.();
  } else if (m.type === "manifest") {
    if (m.reply) manifestReply?.resolve(m.reply);
    else manifestReply?.reject(new Error(m.error ?? "the manifest could not be fetched"));

  } else if (m.type === "stop") {
    abort.abort();
    go?.();
  } else if (m.type === "camera") {
    camera = m.position;
    // a burst of camera moves: only the last one is worked on
    if (!pendingView) setTimeout(() => {
      const seq = pendingView!.seq;
      pendingView = null;
      regenerate(seq);
    }, 0);
    pendingView = { seq: m.seq };
  }
};
