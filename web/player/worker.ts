// The player's decoding thread: the header, then each LoD chunk as it arrives, and the Gaussians
// every decoded level draws from the current camera (again for every level when the camera moves).
import { NeuralGaussians, scanChunks, StreamDecoder, ViewGaussians } from "../src/index.js";
import { defaultCamera, FromWorker, ToWorker } from "./messages.js";

let decoder: StreamDecoder | null = null;
let gaussians: NeuralGaussians | null = null;
let camera: number[] = [0, 0, 0];
let pendingView: { seq: number } | null = null;

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

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  try {
    if (m.type === "header") {
      decoder = StreamDecoder.fromBytes(m.bytes, m.source);
      gaussians = new NeuralGaussians(decoder.header);
      const h = decoder.header;
      camera = m.camera ?? defaultCamera(h.grid.origin, h.grid.size, h.viewDistance);
      post({
        type: "header", lods: decoder.lodsInStream, headerBytes: decoder.headerBytes,
        background: h.background, origin: h.grid.origin, size: h.grid.size, viewDistance: h.viewDistance,
        camera: camera.slice(),
      });
    } else if (m.type === "chunk") {
      if (!decoder || !gaussians) throw new Error("a LoD chunk before the header");
      const t0 = performance.now();
      const { chunks, problem } = scanChunks(m.bytes, m.source, m.offset);
      if (problem || chunks.length !== 1) throw new Error(problem ?? `${m.source}: LoD ${m.lod} is not one chunk`);
      const lv = decoder.decodeChunk(chunks[0]);
      const t1 = performance.now();
      gaussians.addLevel(lv);
      const g = gaussians.generate(gaussians.levels - 1, camera);
      const t2 = performance.now();
      post({
        type: "level", lod: lv.level, anchors: lv.count, gaussians: g, camera: camera.slice(),
        decodeSeconds: (t1 - t0) / 1000, generateSeconds: (t2 - t1) / 1000, readyAt: performance.timeOrigin + t2,
      }, buffers(g));
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
  } catch (e) {
    post({ type: "error", lod: m.type === "chunk" ? m.lod : 0, message: (e as Error).message });
  }
};
