// baseline.html: the formats users would ship instead of a progs stream, loaded by Spark with the same
// camera and drawing settings as the progs player, for web/bench/player.mjs to time.
//   ?kind=spz&src=scene.spz                 one file
//   ?kind=sog&src=scene.sog-levels.json     streamed SOG: each level (coarse to fine) replaces the last
// Exposes window.bench = {history: [{level, bytes, seconds}], firstImageSeconds, done, error}.
import * as THREE from "three";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
import { PROGS_SPLAT_STYLE } from "../player/progs-three.js";
import { SortedFrames } from "../player/frames.js";

const params = new URLSearchParams(location.search);
let frames: SortedFrames | undefined; // drawn as the player draws them (web/player/frames.ts); set once Spark exists
const state = {
  history: [] as { level: number; bytes: number; fetchedSeconds: number; decodedSeconds: number; seconds: number; shownSeconds: number | null }[],
  firstImageSeconds: null as number | null, done: false, error: null as string | null,
  get framesSinceChange() {
    return frames?.framesSinceChange ?? 0;
  },
};
(window as unknown as { bench: typeof state }).bench = state;
const v = (params.get("view") ?? "").split(",").map(Number);
const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
renderer.setSize(window.innerWidth, window.innerHeight);
document.body.appendChild(renderer.domElement);
const scene = new THREE.Scene();
const aspect = window.innerWidth / window.innerHeight;
const camera = new THREE.PerspectiveCamera(
  THREE.MathUtils.radToDeg(2 * Math.atan(Math.tan(THREE.MathUtils.degToRad(v[9]) / 2) / aspect)), aspect, 0.01, 1000);
camera.position.set(v[0], v[1], v[2]);
camera.up.set(v[6], v[7], v[8]);
camera.lookAt(v[3], v[4], v[5]);
const spark = new SparkRenderer({ renderer, ...PROGS_SPLAT_STYLE, onDirty: () => frames?.request() });
scene.add(spark);
frames = new SortedFrames(renderer, spark, scene, camera);
let levelsSeen = 0;
let mesh: SplatMesh | null = null;

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function show(level: number, url: string, fileType: string): Promise<void> {
  const bytes = await fetchBytes(url);
  const fetchedSeconds = performance.now() / 1000;
  const next = new SplatMesh({ fileBytes: bytes, fileType: fileType as never });
  await next.initialized;
  const decodedSeconds = performance.now() / 1000;
  scene.add(next);
  if (mesh) {
    scene.remove(mesh);
    mesh.dispose();
  }
  mesh = next;
  state.history.push({ level, bytes: bytes.length, fetchedSeconds, decodedSeconds, seconds: performance.now() / 1000, shownSeconds: null });
}

async function main(): Promise<void> {
  const src = params.get("src")!;
  if (params.get("kind") === "spz") {
    await show(0, src, "spz");
  } else {
    const levels = (await (await fetch(src, { cache: "no-store" })).json()) as { level: number; file: string }[];
    for (const l of levels) await show(l.level, new URL(l.file, new URL(src, location.href)).href, "pcsogszip");
  }
}

main().then(() => (state.done = true), (e) => ((state.error = (e as Error).message), (state.done = true)));
renderer.setAnimationLoop(() => {
  const changed = state.history.length !== levelsSeen;
  levelsSeen = state.history.length;
  frames!.tick(changed, !state.done && state.history.length === 0, state.history);
  if (state.firstImageSeconds === null && state.history.length && state.history[0].shownSeconds !== null) {
    state.firstImageSeconds = state.history[0].shownSeconds;
  }
});
