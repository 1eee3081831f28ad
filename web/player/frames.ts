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
}

export class SortedFrames {
  /** Frames drawn since the splats or the camera last changed and Spark last sorted; ≥ 1: on screen. */
  framesSinceChange = 0;
  /** Spark's finished sorts: [start, end] in seconds since navigation start (the last 64). */
  readonly sorts: [number, number][] = [];
  private wasSorting = false;
  private wanted = true;
  private changed = false;

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

  /** Call once per animation frame. `changed`: the splats changed since the last call; `keepDrawing`:
   * draw even with nothing new (so that Spark builds its shaders while a stream loads). Marks each
   * entry of `shown` that the drawn frame shows for the first time. Returns whether a frame was drawn. */
  tick(changed: boolean, keepDrawing: boolean, shown: Shown[]): boolean {
    const spark = this.spark;
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
    const sorted = !(spark.sorting || spark.sortDirty);
    this.framesSinceChange = sorted ? this.framesSinceChange + 1 : 0;
    // on screen from the first frame drawn after a sort that began once it was in the scene had
    // finished (Spark draws the splats its last finished sort ordered)
    const now = performance.now();
    const lastSorted = spark.sorting ? -Infinity : spark.lastSortTime;
    for (const h of shown) if (h.shownSeconds === null && lastSorted > h.seconds * 1000) h.shownSeconds = now / 1000;
    return true;
  }
}
