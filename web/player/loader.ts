// Loads a progs stream LoD by LoD in a Web Worker, with no renderer involved: the worker fetches it
// (HTTP Range requests, streaming.ts and fetcher.ts) and decodes each chunk as it arrives; this class
// passes its events on. player.html's boot script starts one while three.js and Spark (most of the
// page's bytes) are still arriving, and hands it to the page's `ProgsMesh`, which shows what the
// worker produces. A `ProgsMesh` created without a loader makes its own.
import type { FetchStats, Plan } from "./fetcher.js";
import type { FromWorker, ToWorker } from "./messages.js";
import { manifestUrlOf, requestManifest } from "./manifest-request.js";

export interface StreamLoaderOptions {
  /** Fetch only the LoDs that fit this many bytes, header included. */
  maxBytes?: number;
  /** Fetch at most this many LoDs. */
  maxLod?: number;
  /** Stop before a LoD that, at the throughput measured so far, would arrive after this many seconds. */
  maxSeconds?: number;
  /** The decoding worker's script (default: `progs-worker.js` next to this module). */
  workerUrl?: string | URL;
  /** Where the Gaussians are first evaluated from (default: the encoder's suggested view, else a point
   * outside the scene's cube, where a default camera stands). */
  camera?: number[];
  /** Fetch the LoDs after the first once this settles, so that another download the first image
   * needs (the renderer's WebAssembly in player.html) does not share the link with them. */
  holdAfterFirst?: Promise<unknown>;
}

/** What the loader reports, in order: the worker's messages (`plan`, `header`, `sent` when a LoD
 * chunk is in and handed to the decoder, `level` when it is decoded, `failed` when fetching stops on
 * a problem, `fetched` when every planned chunk was handed over or fetching stopped). */
export type LoaderEvent = FromWorker;

export class StreamLoader {
  /** The stream's fetch so far: bytes received, requests, completed ranges, ETag. */
  stats: FetchStats = { bytesReceived: 0, requests: 0, ranges: [], etag: null };
  plan: Plan | null = null;
  lodsPlanned = 0;
  /** Each LoD chunk handed to the decoder: its byte range in the stream, by LoD. */
  readonly chunks = new Map<number, { offset: number; length: number }>();
  /** Where the worker evaluates Gaussians from (null: its default, until the header is decoded). */
  camera: number[] | null;
  /** Resolves when LoD 1 has been fetched or loading has stopped: what `holdAfterFirst` may wait for. */
  readonly firstFetched: Promise<void>;
  private readonly worker: Worker;
  private listener: ((e: LoaderEvent) => void) | null = null;
  private readonly backlog: LoaderEvent[] = [];
  private firstDone!: () => void;
  private stopped = false;

  constructor(readonly url: string, options: StreamLoaderOptions = {}) {
    this.camera = options.camera ? options.camera.slice() : null;
    this.firstFetched = new Promise((res) => (this.firstDone = res));
    const workerUrl = options.workerUrl ?? new URL("./progs-worker.js", import.meta.url);
    this.worker = new Worker(workerUrl, { type: "module", name: "progs-decoder" });
    this.worker.onmessage = (ev: MessageEvent<FromWorker>) => this.onWorker(ev.data);
    this.worker.onerror = (ev) =>
      this.failWith(ev.message ? `the decoding worker failed: ${ev.message}` : `the decoding worker could not start (${new URL(workerUrl, location.href).pathname})`);
    const hold = options.holdAfterFirst;
    const href = new URL(url, location.href).href;
    this.post({
      type: "load", url: href, maxBytes: options.maxBytes, maxLod: options.maxLod,
      maxSeconds: options.maxSeconds, startedAt: performance.timeOrigin + performance.now(), camera: this.camera,
      hold: !!hold, manifestFromPage: true,
    });
    // the manifest is asked for here, while the worker's script loads and starts: one round trip less
    // before the stream's first Range request
    requestManifest(manifestUrlOf(href)).then(
      (reply) => this.post({ type: "manifest", reply }),
      (e) => this.post({ type: "manifest", reply: null, error: (e as Error).message }),
    );
    const go = () => this.post({ type: "go" });
    hold?.then(go, go);
  }

  /** Receives every event from the first on (those before this call are replayed at once). One listener. */
  listen(fn: (e: LoaderEvent) => void): void {
    this.listener = fn;
    for (const e of this.backlog.splice(0)) fn(e);
  }

  /** Asks the worker to evaluate every decoded level's Gaussians as seen from `position`. */
  evaluateFrom(position: number[], seq: number): void {
    this.camera = position.slice();
    this.post({ type: "camera", position: this.camera, seq });
  }

  dispose(): void {
    this.stop();
    this.worker.terminate();
  }

  private onWorker(m: FromWorker): void {
    const mark = (name: string, at: number) => performance.mark(name, { startTime: Math.max(0, at - performance.timeOrigin) });
    if ("stats" in m) this.stats = m.stats;
    if (m.type === "plan") {
      this.plan = m.plan;
      this.lodsPlanned = m.lodsPlanned;
      mark("progs:header-fetched", m.at);
    } else if (m.type === "header") {
      this.camera = m.camera;
    } else if (m.type === "sent") {
      this.chunks.set(m.lod, { offset: m.offset, length: m.length });
      mark(`progs:lod${m.lod}-fetched`, m.at);
      if (m.lod === 1) this.firstDone();
    } else if (m.type === "error" || m.type === "failed") {
      this.stopped = true;
      this.firstDone();
    } else if (m.type === "fetched") {
      this.firstDone();
    }
    if (m.type !== "progress") this.emit(m);
  }

  private emit(e: LoaderEvent): void {
    if (this.listener) this.listener(e);
    else this.backlog.push(e);
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private stop(): void {
    if (!this.stopped) this.post({ type: "stop" });
    this.stopped = true;
    this.firstDone();
  }

  private failWith(message: string): void {
    if (this.stopped) return;
    this.stop();
    this.emit({ type: "failed", message, stats: this.stats, workerStopped: true });
    this.emit({ type: "fetched", stats: this.stats });
  }
}
