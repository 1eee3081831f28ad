// When to draw a frame with Spark, for the player and for the benchmark's baseline page alike.
//
// Spark sorts splats in a worker from a depth read-back. A frame drawn while a sort runs, or between a
// change of the splats and its sort, shows nothing new and costs the GPU as much as a sorted one: on
// software WebGL a frame of tens of thousands of splats keeps the GPU process busy for most of a
// second, and the next sort's read-back waits behind every frame queued before it. So a change goes
// to Spark first (its draw list is rebuilt and a sort starts), and one frame is drawn once it is
// sorted; after that, frames are drawn only when something asks for one (a camera move, a resize).
import type * as THREE from "three";
import type { SparkRenderer } from "@sparkjsdev/spark";

/** LoDs are held back only for a frame that would take at least this long beyond the display's own
 * pace... */
export const SLOW_FRAME_SECONDS = 0.25;
/** ...on a renderer whose last frame took at least SLOW_COST_SECONDS beyond the display's pace and this
 * long per splat: software WebGL takes 20–40 µs a splat (0.1 s for the 2,806 splats of the fox's LoD 2),
 * a GPU well under 1 µs even counting the page's own work on the splats in the same frames. */
export const SLOW_SECONDS_PER_SPLAT = 5e-6;
export const SLOW_COST_SECONDS = 0.08;
/** Frames of fewer splats are not timed per splat: a frame's fixed cost (the first one's shaders, the
 * canvas) outweighs theirs (the fox's LoD 1, 430 splats, took 0.26 s in software WebGL). */
export const MIN_TIMED_SPLATS = 1000;

export interface Shown {
  /** When the change reached the scene (seconds since navigation start). */
  seconds: number;
  /** When the first frame sorted with it was drawn; set by `SortedFrames.tick`. */
  shownSeconds: number | null;
  /** When the browser had run two animation frames after that one, which it does once that frame is on
   * screen (on a GPU a frame or two later; on software WebGL, once the frame's splats are rasterised). */
  drawnSeconds?: number | null;
}

export class SortedFrames {
  /** Frames drawn since the splats or the camera last changed and Spark last sorted; ≥ 1: on screen. */
  framesSinceChange = 0;
  /** Spark's finished sorts: [start, end] in seconds since navigation start (the last 64). */
  readonly sorts: [number, number][] = [];
  /** The last frame drawn with splats: seconds from drawing it until the browser ran its second
   * animation frame after it (which waits for that frame to be on screen), and its splats. */
  lastFrame: { seconds: number; splats: number } | null = null;
  /** The display's pace: the shortest time between two animation frames with no frame drawn between
   * them, over the last 64 (1/60 s until measured). */
  tickSeconds = 1 / 60;
  private wasSorting = false;
  private wanted = true;
  private changed = false;
  private drawnAt: number | null = null;
  private drawnSplats = 0;
  private ticksSinceDrawn = 0;
  private holding: { since: number; limit: number } | null = null;
  private timing = true;
  private lastTick: number | null = null;
  private drewLastTick = false;
  private readonly idleTicks: number[] = [];
  private awaitingDrawn: Shown[] = [];

  constructor(
    private readonly renderer: THREE.WebGLRenderer,
    private readonly spark: SparkRenderer,
    private readonly scene: THREE.Scene,
    private readonly camera: THREE.Camera,
  ) {}

  /** Asks for a frame (the camera moved, the page was resized, Spark reported a change). */
  request(): void {
    this.wanted = true;
    this.framesSinceChange = 0;
  }

  /** How long a frame of `splats` splats would take to reach the screen beyond the display's pace, at
   * the cost per splat of the last frame timed, or of the frame still being drawn (by how long it has
   * taken so far) where that is higher; null when the renderer is not a slow one (or nothing is timed). */
  slowFrameSeconds(splats: number): number | null {
    const frames = [this.lastFrame];
    if (this.drawnAt !== null && this.timing) {
      frames.push({ seconds: (performance.now() - this.drawnAt) / 1000, splats: this.drawnSplats });
    }
    let slowest: number | null = null;
    for (const f of frames) {
      if (!f || f.splats < MIN_TIMED_SPLATS) continue;
      const cost = f.seconds - 2 * this.tickSeconds;
      const perSplat = cost / f.splats;
      const frame = perSplat * Math.max(splats, f.splats);
      if (cost >= SLOW_COST_SECONDS && perSplat >= SLOW_SECONDS_PER_SPLAT && frame >= SLOW_FRAME_SECONDS) {
        slowest = Math.max(slowest ?? 0, frame);
      }
    }
    return slowest;
  }

  /** Whether to hold back a new LoD (the scene then holding `splats` splats) for now: on a slow
   * renderer (`slowFrameSeconds`), a finer LoD is expected in `etaSeconds`, sooner than the new LoD's
   * frame would be on screen, so that frame would be out of date before it is seen and would delay the
   * finer LoD's. A hold lasts at most as long as the frame it put off would have taken (fixed when it
   * begins, however many LoDs arrive meanwhile). On a GPU nothing is held back; in software WebGL (a
   * second for tens of thousands of splats) the finest LoD is drawn sooner. */
  hold(etaSeconds: number | null, splats: number): boolean {
    const frame = etaSeconds === null ? null : this.slowFrameSeconds(splats);
    const now = performance.now();
    if (frame !== null) {
      if (this.holding === null) this.holding = { since: now, limit: frame };
      if (etaSeconds! < this.holding.limit && (now - this.holding.since) / 1000 < this.holding.limit) return true;
    }
    this.holding = null;
    return false;
  }

  /** The page was hidden (no animation frames run meanwhile): the frame being timed is not timed. */
  pageHidden(): void {
    this.timing = false;
  }

  /** Call once per animation frame. `changed`: the splats changed since the last call; `keepDrawing`:
   * draw even with nothing new (so that Spark builds its shaders while a stream loads); `splats`: how
   * many are in the scene. Marks each entry of `shown` that the drawn frame shows for the first time.
   * Returns whether a frame was drawn. */
  tick(changed: boolean, keepDrawing: boolean, shown: Shown[], splats = 0): boolean {
    const drew = this.step(changed, keepDrawing, shown, splats);
    const t = performance.now();
    if (this.lastTick !== null && !this.drewLastTick && !drew) {
      this.idleTicks.push((t - this.lastTick) / 1000);
      if (this.idleTicks.length > 64) this.idleTicks.shift();
      this.tickSeconds = Math.max(1e-3, Math.min(...this.idleTicks));
    }
    this.lastTick = t;
    this.drewLastTick = drew;
    return drew;
  }

  private step(changed: boolean, keepDrawing: boolean, shown: Shown[], splats: number): boolean {
    const spark = this.spark;
    if (this.drawnAt !== null && ++this.ticksSinceDrawn >= 2) {
      const t = performance.now();
      if (this.drawnSplats > 0 && this.timing) this.lastFrame = { seconds: (t - this.drawnAt) / 1000, splats: this.drawnSplats };
      for (const h of this.awaitingDrawn) h.drawnSeconds = t / 1000;
      this.awaitingDrawn = [];
      this.drawnAt = null;
      this.timing = true;
    }
    this.changed ||= changed;
    if (spark.sorting) {
      this.wasSorting = true;
      return false;
    }
    if (this.wasSorting) {
      this.wasSorting = false;
      this.sorts.push([spark.lastSortTime / 1000, performance.now() / 1000]);
      if (this.sorts.length > 64) this.sorts.shift();
    }
    if (this.changed) {
      this.changed = false;
      this.framesSinceChange = 0;
      this.wanted = true;
      void spark.update({ scene: this.scene, camera: this.camera });
      if (spark.sorting) return false;
    }
    if (!(keepDrawing || this.wanted || spark.sortDirty || this.framesSinceChange < 1)) return false;
    this.wanted = false;
    this.renderer.render(this.scene, this.camera);
    if (this.drawnAt === null) {
      // timed from the first of frames drawn back to back (a camera being moved)
      this.drawnAt = performance.now();
      this.drawnSplats = splats;
      this.ticksSinceDrawn = 0;
    }
    const sorted = !(spark.sorting || spark.sortDirty);
    this.framesSinceChange = sorted ? this.framesSinceChange + 1 : 0;
    // on screen from the first frame drawn after a sort that began once it was in the scene had
    // finished (Spark draws the splats its last finished sort ordered)
    const now = performance.now();
    const lastSorted = spark.sorting ? -Infinity : spark.lastSortTime;
    for (const h of shown) {
      if (h.shownSeconds === null && lastSorted > h.seconds * 1000) {
        h.shownSeconds = now / 1000;
        h.drawnSeconds = null;
        this.awaitingDrawn.push(h);
      }
    }
    return true;
  }
}
