// A progs stream as a three.js object rendered by Spark: add a `ProgsMesh` to a scene that has a
// `SparkRenderer`, and it fetches the stream LoD by LoD (HTTP Range requests), decodes each chunk in
// a Web Worker as it arrives (a `StreamLoader`, loader.ts) and shows it. All decoded levels share
// one Spark `SplatMesh` in this group, level after level in its splat array: a finer LoD appends its
// splats, showing fewer LoDs draws a prefix, and the renderer builds its pipeline for one mesh only
// (every extra mesh costs seconds of shader work on software WebGL).
//
//   const progs = new ProgsMesh("scenes/fox.progs", { maxBytes: 300_000 });
//   scene.add(progs);
//   renderer.setAnimationLoop(() => { progs.update(camera); renderer.render(scene, camera); });
//
// The neural Gaussians depend on where they are seen from; `update(camera)` re-evaluates them (in the
// worker) once the camera has moved and settled.
import * as THREE from "three";
import { PackedSplats, setPackedSplat, SplatMesh } from "@sparkjsdev/spark";
import type { ViewGaussians } from "../src/index.js";
import type { FetchStats, Plan, SuggestedView } from "./fetcher.js";
import { LoaderEvent, StreamLoader, StreamLoaderOptions } from "./loader.js";
import type { FromWorker } from "./messages.js";

export interface ProgsMeshOptions extends StreamLoaderOptions {
  /** A loader already fetching and decoding this stream (player.html's boot script starts one before
   * three.js and Spark arrive). With one, the loading options above are ignored: the loader has its own. */
  loader?: StreamLoader;
  /** Called when a LoD is on screen. */
  onLod?: (info: LodInfo) => void;
  /** Called once with the first problem (network, damaged chunk); the LoDs shown so far stay. */
  onError?: (message: string) => void;
}

export interface LodInfo {
  lod: number;
  lodsTotal: number;
  bytesReceived: number;
  /** The LoD chunk's bytes in the stream: [offset, offset + length). */
  offset: number;
  length: number;
  anchors: number;
  gaussians: number;
  /** Seconds since the ProgsMesh was created. */
  seconds: number;
  decodeSeconds: number;
  /** Seconds since navigation start when the worker had decoded the LoD and evaluated its Gaussians. */
  readySeconds: number;
}

/** SparkRenderer options that draw Gaussians the way progs trains them (pass them to your own
 * `new SparkRenderer({ renderer, ...PROGS_SPLAT_STYLE })`). */
export const PROGS_SPLAT_STYLE = { preBlurAmount: 0.3, blurAmount: 0, maxStdDev: 3 };

const MOVE_EPS = 1e-4; // relative camera motion that triggers re-evaluation
const SETTLE_MS = 120; // wait this long after the last move

export class ProgsMesh extends THREE.Group {
  lodShown = 0;
  lodsTotal = 0;
  lodsPlanned = 0;
  anchors = 0;
  gaussians = 0;
  error: string | null = null;
  plan: Plan | null = null;
  background: number[] | null = null;
  /** The scene's bounding cube (origin corner and edge), from the header. */
  bounds: { origin: number[]; size: number; viewDistance: number | null } | null = null;
  /** Resolves with the plan once the header is decoded. */
  readonly ready: Promise<Plan>;
  /** Resolves when every planned LoD is shown (or loading stopped on an error). */
  readonly loaded: Promise<void>;
  /** Bumped whenever what is drawn changes (a LoD added, a new view evaluated, a LoD hidden). */
  version = 0;
  readonly loader: StreamLoader;
  private mesh: SplatMesh | null;
  private readonly packed = new PackedSplats({ maxSplats: 1 });
  private readonly counts: number[] = []; // splats per level, in the order they sit in `packed`
  private readonly t0 = performance.now();
  private evaluatedAt: number[];
  private movedAt = 0;
  private lastSeen: number[] | null = null;
  private viewSeq = 0; // the last camera position sent to the worker
  private viewShown = 0; // the last one whose Gaussians are in the scene
  private readonly inFlight = new Set<number>(); // LoDs sent to the worker whose level is not in the scene yet
  private readonly onLevel?: (info: LodInfo) => void;
  private readonly onError?: (message: string) => void;
  private lodLimit = Infinity;
  private resolveReady!: (p: Plan) => void;
  private rejectReady!: (e: Error) => void;
  private resolveLoaded!: () => void;
  private allFetched = false;
  private readonly byteSamples: [number, number][] = []; // (ms, bytes received) over the last second
  private lastDecodeSeconds = 0.05; // the worker's time for the last level (decoding left, evaluation)

  constructor(readonly url: string, options: ProgsMeshOptions = {}) {
    super();
    this.loader = options.loader ?? new StreamLoader(url, options);
    this.onLevel = options.onLod;
    this.onError = options.onError;
    this.evaluatedAt = this.loader.camera ? this.loader.camera.slice() : [0, 0, 0];
    this.ready = new Promise((res, rej) => ((this.resolveReady = res), (this.rejectReady = rej)));
    this.ready.catch(() => undefined);
    this.loaded = new Promise((res) => (this.resolveLoaded = res));
    // One splat nobody sees (opacity 0) until LoD 1 takes its place: the renderer builds its shaders
    // and its sorting while the stream loads, not after LoD 1 arrives (seconds on software WebGL).
    setPackedSplat(this.packed.ensureSplats(1), 0, 0, 0, 0, 1e-6, 1e-6, 1e-6, 0, 0, 0, 1, 0, 0, 0, 0);
    this.packed.numSplats = 1;
    this.packed.needsUpdate = true;
    this.mesh = new SplatMesh({ packedSplats: this.packed });
    this.add(this.mesh);
    this.loader.listen((e) => this.onLoader(e));
  }

  /** Evaluations in flight: LoDs being turned into splats, plus one while the Gaussians for the
   * latest camera position are not in the scene yet (the worker coalesces a burst of moves into one). */
  get pending(): number {
    return this.inFlight.size + (this.viewShown !== this.viewSeq ? 1 : 0);
  }

  get bytesReceived(): number {
    return this.loader.stats.bytesReceived;
  }

  /** The stream's fetch so far: bytes received, requests, the byte ranges that completed, ETag. */
  get fetchStats(): FetchStats {
    return this.loader.stats;
  }

  /** The encoder's suggested view, when the stream's manifest has one. */
  get suggestedView(): SuggestedView | null {
    return this.plan?.view ?? null;
  }

  /** Show only LoDs 1..lod (Infinity: all that arrive). */
  showLod(lod: number): void {
    this.lodLimit = lod;
    this.refresh();
  }

  /** Seconds until the next LoD is expected in the scene, at the link's throughput over the last
   * second; null when none is coming (every planned LoD is in, or loading stopped) or the throughput is
   * not known yet. */
  nextLodEta(): number | null {
    if (this.error) return null;
    if (this.inFlight.size > 0) return this.lastDecodeSeconds; // its bytes are in: being decoded
    const next = this.plan?.lods[this.counts.length];
    if (this.allFetched || !next || this.counts.length >= this.lodsPlanned) return null;
    const s = this.byteSamples;
    if (s.length < 2) return null;
    const [t0, b0] = s[0];
    const [t1, b1] = s[s.length - 1];
    const rate = (b1 - b0) / Math.max((performance.now() - t0) / 1000, 1e-3);
    if (t1 - t0 < 100 || rate <= 0) return null;
    return Math.max(0, next.cumulativeBytes - b1) / rate + this.lastDecodeSeconds;
  }

  /** Call once per frame: re-evaluates the Gaussians from `camera` once it has settled somewhere new. */
  update(camera: THREE.Camera): void {
    const p = camera.getWorldPosition(new THREE.Vector3()).toArray();
    const scale = this.bounds ? this.bounds.size : 1;
    const now = performance.now();
    const s = this.byteSamples;
    const bytes = this.loader.stats.bytesReceived;
    if (!s.length || s[s.length - 1][1] !== bytes) s.push([now, bytes]);
    while (s.length > 2 && now - s[1][0] > 1000) s.shift();
    if (!this.lastSeen || Math.hypot(p[0] - this.lastSeen[0], p[1] - this.lastSeen[1], p[2] - this.lastSeen[2]) > MOVE_EPS * scale) {
      this.lastSeen = p;
      this.movedAt = now;
      return;
    }
    const d = Math.hypot(p[0] - this.evaluatedAt[0], p[1] - this.evaluatedAt[1], p[2] - this.evaluatedAt[2]);
    if (d > MOVE_EPS * scale && now - this.movedAt > SETTLE_MS && this.counts.length) this.evaluateFrom(p);
  }

  /** Re-evaluates every decoded level's Gaussians as seen from `position` (world). */
  evaluateFrom(position: number[]): void {
    this.evaluatedAt = position.slice();
    this.loader.evaluateFrom(this.evaluatedAt, ++this.viewSeq);
  }

  dispose(): void {
    this.loader.dispose();
    if (this.mesh) {
      this.remove(this.mesh);
      this.mesh.dispose();
      this.mesh = null;
    }
    this.packed.dispose();
    this.counts.length = 0;
  }

  private fail(message: string): void {
    if (this.error) return;
    this.error = message;
    this.onError?.(message);
  }

  /** Loading stopped on `message`: said once, `ready` rejected, `loaded` resolved once nothing is in flight. */
  private stopWith(message: string): void {
    this.fail(message);
    this.rejectReady(new Error(message));
    this.checkLoaded();
  }

  private checkLoaded(): void {
    if (this.allFetched && this.inFlight.size === 0) this.resolveLoaded();
  }

  private onLoader(e: LoaderEvent): void {
    if (e.type === "plan") {
      this.plan = e.plan;
      this.lodsTotal = e.plan.lods.length;
      this.lodsPlanned = e.lodsPlanned;
    } else if (e.type === "sent") {
      this.inFlight.add(e.lod);
    } else if (e.type === "fetched") {
      this.allFetched = true;
      this.checkLoaded();
    } else if (e.type === "failed") {
      // fetching stopped; the chunks already sent are decoded and arrive, unless the worker itself died
      if (e.workerStopped) {
        this.inFlight.clear();
        this.viewShown = this.viewSeq;
      }
      this.stopWith(e.message);
    } else if (e.type === "header") {
      this.background = e.background;
      this.bounds = { origin: e.origin, size: e.size, viewDistance: e.viewDistance };
      this.evaluatedAt = e.camera.slice();
      performance.mark("progs:header-decoded");
      this.resolveReady(this.plan!);
    } else if (e.type === "level") {
      void this.addLevel(e);
    } else if (e.type === "view") {
      this.replaceLevels(e.levels, e.seq);
    } else if (e.type === "error") {
      // the worker could not decode a chunk: loading stops here, the LoDs shown so far stay
      this.inFlight.delete(e.lod);
      this.viewShown = this.viewSeq;
      this.stopWith(e.message);
    }
  }

  private async addLevel(m: Extract<FromWorker, { type: "level" }>): Promise<void> {
    performance.mark(`progs:lod${m.lod}-evaluated`);
    const at = this.counts.reduce((a, b) => a + b, 0);
    writeSplats(this.packed, at, m.gaussians);
    this.counts.push(m.gaussians.count);
    this.lastDecodeSeconds = m.decodeSeconds + m.generateSeconds;
    await this.mesh?.initialized;
    this.refresh();
    this.lodShown = m.lod;
    this.anchors += m.anchors;
    this.gaussians = this.counts.reduce((a, b) => a + b, 0);
    this.inFlight.delete(m.lod);
    const chunk = this.loader.chunks.get(m.lod) ?? { offset: 0, length: 0 };
    this.onLevel?.({
      lod: m.lod, lodsTotal: this.lodsTotal, bytesReceived: this.bytesReceived, ...chunk, anchors: this.anchors,
      gaussians: this.gaussians, seconds: (performance.now() - this.t0) / 1000, decodeSeconds: m.decodeSeconds,
      readySeconds: (m.readyAt - performance.timeOrigin) / 1000,
    });
    this.checkLoaded();
  }

  private replaceLevels(levels: ViewGaussians[], seq: number): void {
    if (seq !== this.viewSeq) return; // a newer view is on its way
    const k = Math.min(levels.length, this.counts.length);
    // levels that arrived after the worker evaluated this view keep their splats, moved behind the new ones
    const oldEnd = this.counts.reduce((a, b) => a + b, 0);
    const tailStart = this.counts.slice(0, k).reduce((a, b) => a + b, 0);
    const tail = this.packed.packedArray ? this.packed.packedArray.slice(4 * tailStart, 4 * oldEnd) : new Uint32Array(0);
    let at = 0;
    for (let i = 0; i < k; i++) {
      writeSplats(this.packed, at, levels[i]);
      this.counts[i] = levels[i].count;
      at += levels[i].count;
    }
    if (tail.length) this.packed.ensureSplats(at + tail.length / 4).set(tail, 4 * at);
    this.gaussians = this.counts.reduce((a, b) => a + b, 0);
    this.viewShown = seq;
    this.refresh();
  }

  /** Draws the splats of LoDs 1..lodLimit: a prefix of the array (levels sit in order). */
  private refresh(): void {
    const shown = this.counts.slice(0, Math.min(this.lodLimit, this.counts.length)).reduce((a, b) => a + b, 0);
    this.packed.numSplats = shown;
    this.packed.needsUpdate = true;
    this.mesh?.updateVersion();
    this.version++;
  }
}

/** Writes the Gaussians into `packed` from splat `at` on (packed as Spark stores them: 16 bytes each),
 * growing its array as needed. */
function writeSplats(packed: PackedSplats, at: number, g: ViewGaussians): void {
  const arr = packed.ensureSplats(at + Math.max(g.count, 1));
  const { means, scales, quats, opacities, colors } = g;
  for (let i = 0; i < g.count; i++) {
    setPackedSplat(
      arr, at + i, means[3 * i], means[3 * i + 1], means[3 * i + 2], scales[3 * i], scales[3 * i + 1], scales[3 * i + 2],
      quats[4 * i + 1], quats[4 * i + 2], quats[4 * i + 3], quats[4 * i], opacities[i], colors[3 * i], colors[3 * i + 1],
      colors[3 * i + 2],
    );
  }
}
