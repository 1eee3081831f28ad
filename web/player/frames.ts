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
  private wasSorting = false;
  private wanted = true;
  private changed = false;
  private drawnAt: number | null = null;
  private drawnSplats = 0;
  private ticksSinceDrawn = 0;
  private holdingSince: number | null = null;
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

  /** Whether to hold back a change of the splats (to `splats` of them) for now: a finer LoD is expected
   * in `etaSeconds`, sooner than a frame of that many splats would be on screen at the pace of the
   * last frame, so that frame would be out of date before it is seen, and would delay the next. Holds
   * a change at most as long as that frame would take. On a GPU a frame takes a few milliseconds and
   * nothing is held back; on a slow one (software WebGL: a second for tens of thousands of splats)
   * the finest LoD is drawn sooner. */
  hold(etaSeconds: number | null, splats: number): boolean {
    const f = this.lastFrame;
    const now = performance.now();
    if (etaSeconds !== null && f && f.splats > 0) {
      const frame = f.seconds * Math.max(1, splats / f.splats);
      this.holdingSince ??= now;
      if (etaSeconds < frame && (now - this.holdingSince) / 1000 < frame) return true;
    }
    this.holdingSince = null;
    return false;
  }

  /** Call once per animation frame. `changed`: the splats changed since the last call; `keepDrawing`:
   * draw even with nothing new (so that Spark builds its shaders while a stream loads); `splats`: how
   * many are in the scene. Marks each entry of `shown` that the drawn frame shows for the first time.
   * Returns whether a frame was drawn. */
  tick(changed: boolean, keepDrawing: boolean, shown: Shown[], splats = 0): boolean {
    const spark = this.spark;
    if (this.drawnAt !== null && ++this.ticksSinceDrawn >= 2) {
      const t = performance.now();
      if (this.drawnSplats > 0) this.lastFrame = { seconds: (t - this.drawnAt) / 1000, splats: this.drawnSplats };
      for (const h of this.awaitingDrawn) h.drawnSeconds = t / 1000;
      this.awaitingDrawn = [];
      this.drawnAt = null;
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
    this.drawnAt = performance.now();
    this.drawnSplats = splats;
    this.ticksSinceDrawn = 0;
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
