// Fetches a progs stream LoD by LoD (HTTP Range requests, see fetcher.ts) and decodes it in a Web
// Worker, with no renderer involved: player.html's boot script starts one while three.js and Spark
// (most of the page's bytes) are still arriving, and hands it to the page's `ProgsMesh`, which shows
// what the worker produces. A `ProgsMesh` created without a loader makes its own.
import { lodsWithin, Plan, StreamFetcher } from "./fetcher.js";
import type { FromWorker, ToWorker } from "./messages.js";

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

/** What the loader reports, in order: the worker's messages, plus `sent` when a LoD chunk has been
 * fetched and handed to the worker, `failed` when loading stops on a problem, `fetched` when every
 * planned chunk was handed over (or loading stopped). */
export type LoaderEvent =
  | FromWorker
  | { type: "plan"; plan: Plan; lodsPlanned: number }
  | { type: "sent"; lod: number }
  | { type: "failed"; message: string }
  | { type: "fetched" };

export class StreamLoader {
  readonly fetcher: StreamFetcher;
  plan: Plan | null = null;
  lodsPlanned = 0;
  /** Where the worker evaluates Gaussians from (null: its default, until the header is decoded). */
  camera: number[] | null;
  /** Resolves when LoD 1 has been fetched or loading has stopped: what `holdAfterFirst` may wait for. */
  readonly firstFetched: Promise<void>;
  private readonly worker: Worker;
  private readonly abort = new AbortController();
  private readonly t0 = performance.now();
  private listener: ((e: LoaderEvent) => void) | null = null;
  private readonly backlog: LoaderEvent[] = [];
  private firstDone!: () => void;
  private stopped = false;

  constructor(readonly url: string, private readonly options: StreamLoaderOptions = {}) {
    this.fetcher = new StreamFetcher(url, this.abort.signal);
    this.camera = options.camera ? options.camera.slice() : null;
    this.firstFetched = new Promise((res) => (this.firstDone = res));
    const workerUrl = options.workerUrl ?? new URL("./progs-worker.js", import.meta.url);
    this.worker = new Worker(workerUrl, { type: "module", name: "progs-decoder" });
    this.worker.onmessage = (ev: MessageEvent<FromWorker>) => {
      const m = ev.data;
      if (m.type === "header") this.camera = m.camera;
      if (m.type === "error") this.stop();
      this.emit(m);
    };
    this.worker.onerror = (ev) => this.failWith(`the decoding worker failed: ${ev.message}`);
    void this.load();
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

  private emit(e: LoaderEvent): void {
    if (this.listener) this.listener(e);
    else this.backlog.push(e);
  }

  private post(m: ToWorker, transfer: Transferable[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  private stop(): void {
    this.stopped = true;
    this.abort.abort();
    this.firstDone();
  }

  private failWith(message: string): void {
    if (this.stopped) return;
    this.stop();
    this.emit({ type: "failed", message });
  }

  private async load(): Promise<void> {
    const f = this.fetcher;
    try {
      const { plan, header } = await f.plan();
      performance.mark("progs:header-fetched");
      this.plan = plan;
      if (!this.options.camera && plan.view) this.camera = plan.view.eye.slice();
      // the worker decodes the header before any chunk posted after it
      this.post({ type: "header", bytes: header, source: plan.streamUrl, camera: this.camera }, [header.buffer]);
      const budget = lodsWithin(plan, this.options.maxBytes, this.options.maxLod);
      this.lodsPlanned = budget;
      this.emit({ type: "plan", plan, lodsPlanned: budget });
      if (budget === 0 && plan.lods.length) {
        throw new Error(`LoD 1 needs ${plan.lods[0].cumulativeBytes} bytes, more than the budget of ${this.options.maxBytes}`);
      }
      // LoD k + 1 is requested as LoD k's last bytes arrive (not after them): one round trip less
      // of idle link per LoD, without the two sharing the link for longer than that
      const lods = plan.lods.slice(0, budget);
      const requested = new Map<number, Promise<Uint8Array>>();
      const request = (i: number): Promise<Uint8Array> | null => {
        const asked = requested.get(i);
        if (asked) return asked;
        if (i >= lods.length || this.stopped) return null;
        const r = lods[i];
        if (this.options.maxSeconds !== undefined && r.lod > 1) {
          const elapsed = (performance.now() - this.t0) / 1000;
          const rate = f.bytesReceived / Math.max(elapsed, 1e-3);
          if (elapsed + r.length / rate > this.options.maxSeconds) return null;
        }
        // LoD 2 is asked for once `holdAfterFirst` has settled, not as LoD 1 ends
        const early = !(lods[i + 1]?.lod === 2 && this.options.holdAfterFirst);
        const p = f.chunk(plan.streamUrl, r, early ? () => void request(i + 1) : undefined);
        p.catch(() => undefined); // awaited in order below
        requested.set(i, p);
        return p;
      };
      for (let i = 0; i < lods.length; i++) {
        const r = lods[i];
        if (this.stopped) break;
        if (r.lod === 2 && this.options.holdAfterFirst) await this.options.holdAfterFirst.catch(() => undefined);
        const pending = request(i);
        if (!pending) break;
        const bytes = await pending;
        performance.mark(`progs:lod${r.lod}-fetched`);
        if (this.stopped) break;
        this.emit({ type: "sent", lod: r.lod });
        this.post({ type: "chunk", bytes, offset: r.offset, lod: r.lod, source: plan.streamUrl }, [bytes.buffer]);
        if (r.lod === 1) this.firstDone();
      }
    } catch (e) {
      if (!this.stopped) this.failWith((e as Error).message);
    } finally {
      this.firstDone();
      this.emit({ type: "fetched" });
    }
  }
}
