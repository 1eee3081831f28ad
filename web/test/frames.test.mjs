// When the player draws (web/player/frames.ts): a change is sorted before it is drawn; the time a frame
// takes to reach the screen is measured; and a LoD whose frame would still be being drawn when a finer
// LoD arrives is held back for it — never on a renderer that draws in milliseconds, and never for
// longer than that frame would take. A fake renderer and a fake clock stand in for Spark and the page.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

let dir, SortedFrames;
let clock = 0; // ms
const realNow = performance.now.bind(performance);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "progs-frames-"));
  const out = join(dir, "frames.mjs");
  await build({
    entryPoints: [new URL("../player/frames.ts", import.meta.url).pathname],
    bundle: true, format: "esm", outfile: out, logLevel: "warning",
  });
  ({ SortedFrames } = await import(pathToFileURL(out).href));
  performance.now = () => clock;
});

after(() => {
  performance.now = realNow;
  rmSync(dir, { recursive: true, force: true });
});

/** A Spark stand-in whose sorts finish at once, and a renderer that counts its frames. */
function fakes() {
  const spark = {
    sorting: false, sortDirty: false, lastSortTime: -1,
    update() {
      this.lastSortTime = clock + 0.5;
    },
  };
  const renderer = { frames: 0, render() { this.frames++; } };
  return { spark, renderer, frames: new SortedFrames(renderer, spark, {}, {}) };
}

test("a frame's time to the screen is measured two animation frames after it is drawn", () => {
  clock = 1000;
  const { renderer, frames } = fakes();
  const lod = { seconds: 0.9, shownSeconds: null };
  assert.equal(frames.tick(true, false, [lod], 1000), true);
  assert.equal(renderer.frames, 1);
  assert.equal(lod.shownSeconds, 1);
  assert.equal(lod.drawnSeconds, null);
  clock += 400; // the browser runs no animation frame while the frame is being drawn
  frames.tick(false, false, [lod], 1000);
  assert.equal(frames.lastFrame, null);
  clock += 16;
  frames.tick(false, false, [lod], 1000);
  assert.deepEqual(frames.lastFrame, { seconds: 0.416, splats: 1000 });
  assert.equal(lod.drawnSeconds, 1.416);
  assert.equal(renderer.frames, 1); // nothing new: no frame drawn
});

test("a LoD is held back while a finer one would arrive before its frame is on screen, at most that long", () => {
  clock = 5000;
  const { frames } = fakes();
  // nothing measured yet, or nothing coming: never held
  assert.equal(frames.hold(0.1, 5000), false);
  frames.lastFrame = { seconds: 0.5, splats: 10_000 };
  assert.equal(frames.hold(null, 25_000), false);
  // a frame of 25,000 splats would take 1.25 s at the last frame's pace: a LoD 0.3 s away is worth it
  assert.equal(frames.hold(0.3, 25_000), true);
  clock += 600;
  assert.equal(frames.hold(0.3, 25_000), true);
  // ...but not one 2 s away
  assert.equal(frames.hold(2, 25_000), false);
  // held at most as long as the frame would take, however late the finer LoD turns out to be
  assert.equal(frames.hold(0.3, 25_000), true);
  clock += 1300;
  assert.equal(frames.hold(0.3, 25_000), false);
  // fewer splats than the last frame: that frame's time
  assert.equal(frames.hold(0.4, 5_000), true);
  assert.equal(frames.hold(0.6, 5_000), false);
});

test("on a renderer that draws in milliseconds nothing is held back", () => {
  clock = 9000;
  const { frames } = fakes();
  frames.lastFrame = { seconds: 0.017, splats: 40_000 };
  assert.equal(frames.hold(0.05, 43_000), false);
  assert.equal(frames.hold(0.005, 43_000), true); // a LoD due within that frame
});
