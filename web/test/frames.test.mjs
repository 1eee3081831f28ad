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

test("on a slow renderer a new LoD is held back while a finer one would arrive before its frame is on screen, at most that long", () => {
  clock = 5000;
  const { frames } = fakes();
  frames.tickSeconds = 0.0167;
  // nothing timed yet, or nothing coming: never held
  assert.equal(frames.hold(0.1, 25_000), false);
  // software WebGL: 0.14 s for 2,806 splats, 38 µs a splat beyond the display's pace
  frames.lastFrame = { seconds: 0.14, splats: 2806 };
  assert.equal(frames.hold(null, 25_000), false);
  const frame = frames.slowFrameSeconds(25_000);
  assert.ok(Math.abs(frame - ((0.14 - 2 * 0.0167) / 2806) * 25_000) < 1e-9, String(frame)); // 0.95 s
  // a LoD 0.3 s away is worth waiting for; one 2 s away is not
  assert.equal(frames.hold(0.3, 25_000), true);
  clock += 600;
  assert.equal(frames.hold(0.3, 25_000), true);
  assert.equal(frames.hold(2, 25_000), false);
  // held at most as long as the frame put off would have taken, fixed when the hold begins: more
  // LoDs arriving meanwhile (more splats) do not stretch it
  assert.equal(frames.hold(0.3, 25_000), true);
  clock += 900;
  assert.equal(frames.hold(0.3, 100_000), true);
  clock += 100;
  assert.equal(frames.hold(0.3, 100_000), false);
  // a frame too small to be worth holding (under 0.25 s at this pace)
  assert.equal(frames.hold(0.01, 5_000), false);
  // a frame of few splats is not timed per splat (its fixed cost would make every frame look slow)
  frames.lastFrame = { seconds: 0.26, splats: 430 };
  assert.equal(frames.slowFrameSeconds(2806), null);
  assert.equal(frames.hold(0.1, 2806), false);
});

test("a frame still being drawn counts by how long it has taken so far", () => {
  clock = 30_000;
  const { frames } = fakes();
  frames.tickSeconds = 0.0167;
  frames.tick(true, false, [], 9857); // drawn, not on screen yet
  clock += 20; // on a GPU it would be on screen by now
  assert.equal(frames.slowFrameSeconds(24_678), null);
  clock += 190; // software WebGL: still drawing after 0.21 s
  const frame = frames.slowFrameSeconds(24_678);
  assert.ok(Math.abs(frame - ((0.21 - 2 * 0.0167) / 9857) * 24_678) < 1e-9, String(frame));
  assert.equal(frames.hold(0.26, 24_678), true);
});

test("on a GPU nothing is held back, even when the page's own work slows a frame", () => {
  clock = 9000;
  const { frames } = fakes();
  frames.tickSeconds = 0.0167;
  // two display refreshes for 40,000 splats; a frame slowed by 100 ms of the page's work on 200,000
  // splats; LoD 1's 430 splats in a frame slowed by 27 ms
  for (const f of [{ seconds: 0.034, splats: 40_000 }, { seconds: 0.134, splats: 200_000 }, { seconds: 0.06, splats: 430 }]) {
    frames.lastFrame = f;
    for (const splats of [f.splats, 4 * f.splats, 1_000_000]) {
      assert.equal(frames.slowFrameSeconds(splats), null, `${JSON.stringify(f)}, ${splats} splats`);
      assert.equal(frames.hold(0.005, splats), false);
    }
  }
});

test("the display's pace is the shortest time between animation frames that drew nothing", () => {
  clock = 20_000;
  const { frames } = fakes();
  frames.tick(true, false, [], 100); // draws
  for (const dt of [16, 40, 17, 16.7]) {
    clock += dt;
    frames.tick(false, false, [], 100);
  }
  // the first interval followed a drawn frame and does not count
  assert.ok(Math.abs(frames.tickSeconds - 0.0167) < 1e-9, String(frames.tickSeconds));
});
