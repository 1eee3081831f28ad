// player.html: plays the progs stream named by `?src=` as it streams in.
//
// Query parameters: src (stream or manifest URL, required), maxBytes, maxLod, maxSeconds (how much of
// the stream to fetch), view=ex,ey,ez,tx,ty,tz,ux,uy,uz,fovX (a starting camera: eye, target, up,
// horizontal field of view in degrees), lod (show only LoDs 1..lod), overlay=0 (hide the overlay).
// Scripts and tests read `window.progs`.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { SparkRenderer } from "@sparkjsdev/spark";
import { ProgsMesh, LodInfo, PROGS_SPLAT_STYLE } from "./progs-three.js";
import type { FetchStats, SuggestedView } from "./fetcher.js";
import { SortedFrames } from "./frames.js";
import type { Boot } from "./boot.js";
import { defaultCamera } from "./messages.js";

interface PlayerState {
  lodShown: number;
  lodsTotal: number;
  bytesReceived: number;
  /** The stream's fetch (done in the decoding worker): bytes received, requests, completed ranges, ETag. */
  fetch: FetchStats | null;
  error: string | null;
  anchors: number;
  gaussians: number;
  /** Each LoD as it arrived: seconds since navigation start when it was decoded and added (`seconds`)
   * and when the first frame sorted with it was drawn (`shownSeconds`) and on screen (`drawnSeconds`: two
   * animation frames later, which the browser runs once that frame is drawn), bytes received by then, and the
   * LoD chunk's bytes in the stream (`offset`, `length`). */
  history: {
    lod: number; seconds: number; readySeconds: number; shownSeconds: number | null; drawnSeconds?: number | null;
    bytes: number; anchors: number;
    gaussians: number; offset: number; length: number;
  }[];
  /** Seconds from navigation start to the first frame that showed splats. */
  firstImageSeconds: number | null;
  /** Frames rendered since what is drawn last changed and Spark last re-sorted; ≥ 1 means on screen. */
  readonly framesSinceChange: number;
  /** Spark's finished sorts: [start, end] in seconds since navigation start (the last 64). */
  readonly sorts: [number, number][];
  /** Gaussians are being evaluated (a new LoD or a new camera position) and are not on screen yet. */
  busy: boolean;
  done: boolean;
  setView(v: SuggestedView): void;
  showLod(lod: number): void;
}

performance.mark("progs:script-start");
const params = new URLSearchParams(location.search);
const num = (name: string): number | undefined => {
  const v = params.get(name);
  return v === null || v === "" || !Number.isFinite(Number(v)) ? undefined : Number(v);
};
const overlay = document.getElementById("overlay")!;
const status = document.getElementById("status")!;
const message = document.getElementById("message")!;
const lodBar = document.getElementById("lods")!;
if (params.get("overlay") === "0") overlay.style.display = "none";

let frames: SortedFrames | undefined; // when to draw; set once Spark exists
const state: PlayerState = {
  lodShown: 0, lodsTotal: 0, bytesReceived: 0, fetch: null, error: null, anchors: 0, gaussians: 0, history: [],
  firstImageSeconds: null, busy: false, done: false,
  get framesSinceChange() {
    return frames?.framesSinceChange ?? 0;
  },
  get sorts() {
    return frames?.sorts ?? [];
  },
  setView: () => undefined, showLod: () => undefined,
};
(window as unknown as { progs: PlayerState }).progs = state;

function showError(text: string): void {
  state.error = text;
  message.textContent = text;
  message.hidden = false;
}

function parseView(text: string | null): SuggestedView | null {
  if (!text) return null;
  const v = text.split(",").map(Number);
  if (v.length !== 10 || !v.every(Number.isFinite)) return null;
  return { eye: v.slice(0, 3), target: v.slice(3, 6), up: v.slice(6, 9), fovX: v[9] };
}

const src = params.get("src");
const urlView = parseView(params.get("view"));
// player.html's boot script (boot.ts) has been fetching and decoding the stream since the page began;
// without it (a page that loads this script alone) fetching starts here, before the renderer is set
// up (compiling its shaders takes a while).
const boot = (globalThis as unknown as { progsBoot?: Boot }).progsBoot;
// the bundled Spark's WebAssembly (set by the boot script, else by Spark itself: scripts/build-player.mjs)
const sparkWasm = (globalThis as unknown as { progsSparkWasm?: Promise<unknown> }).progsSparkWasm;
sparkWasm?.catch((e: Error) => showError(`The renderer could not load its WebAssembly (${e.message})`));
let progs: ProgsMesh | null = null;
if (src) {
  progs = new ProgsMesh(src, {
    loader: boot && boot.src === src ? boot.loader : undefined,
    maxBytes: num("maxBytes"),
    maxLod: num("maxLod"),
    maxSeconds: num("maxSeconds"),
    camera: urlView ? urlView.eye : undefined,
    workerUrl: new URL("./progs-worker.js", import.meta.url),
    onLod: (info: LodInfo) => {
      state.history.push({
        lod: info.lod, seconds: performance.now() / 1000, readySeconds: info.readySeconds, shownSeconds: null, bytes: info.bytesReceived, anchors: info.anchors,
        gaussians: info.gaussians, offset: info.offset, length: info.length,
      });
      buildLodButtons(progs!);
    },
    onError: (text) => showError(text),
  });
}
const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
renderer.setSize(window.innerWidth, window.innerHeight);
document.body.appendChild(renderer.domElement);
const scene = new THREE.Scene();
const camera = new THREE.PerspectiveCamera(50, window.innerWidth / window.innerHeight, 0.01, 1000);
const controls = new OrbitControls(camera, renderer.domElement);
let lastVersion = -1;
const requestRender = () => frames?.request();
const spark = new SparkRenderer({
  renderer,
  // progs trains and renders as the original 3DGS rasterizer does: a 0.3 px² low-pass added to every
  // projected covariance without opacity compensation, Gaussians cut at 3 standard deviations
  ...PROGS_SPLAT_STYLE,
  onDirty: () => requestRender(),
});
scene.add(spark);
frames = new SortedFrames(renderer, spark, scene, camera);
controls.addEventListener("change", requestRender);

function applyView(v: SuggestedView): void {
  camera.position.fromArray(v.eye);
  camera.up.fromArray(v.up).normalize();
  const aspect = window.innerWidth / window.innerHeight;
  camera.fov = THREE.MathUtils.radToDeg(2 * Math.atan(Math.tan(THREE.MathUtils.degToRad(v.fovX) / 2) / aspect));
  camera.near = Math.max(1e-4, 0.001 * new THREE.Vector3().fromArray(v.eye).distanceTo(new THREE.Vector3().fromArray(v.target)));
  camera.far = 1e4 * camera.near;
  camera.updateProjectionMatrix();
  controls.target.fromArray(v.target);
  camera.lookAt(controls.target);
  controls.update();
  requestRender();
}

function defaultView(p: ProgsMesh): SuggestedView {
  const b = p.bounds!;
  const c = b.origin.map((o) => o + b.size / 2);
  return { eye: defaultCamera(b.origin, b.size, b.viewDistance), target: c, up: [0, 1, 0], fovX: 60 };
}

function formatBytes(n: number): string {
  return n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(2)} MB`;
}

function updateOverlay(p: ProgsMesh | null): void {
  const s = (performance.now() / 1000).toFixed(2);
  if (!p) return;
  status.textContent =
    `LoD ${p.lodShown} / ${p.lodsTotal || "?"} · ${formatBytes(p.bytesReceived)} · ` +
    `${p.anchors.toLocaleString()} anchors · ${p.gaussians.toLocaleString()} Gaussians · ${s} s`;
}

function buildLodButtons(p: ProgsMesh): void {
  lodBar.replaceChildren();
  for (let k = 1; k <= p.lodsTotal; k++) {
    const b = document.createElement("button");
    b.textContent = String(k);
    b.title = `show LoDs 1–${k}`;
    b.disabled = k > p.lodShown;
    b.onclick = () => state.showLod(k === p.lodShown ? Infinity : k);
    lodBar.appendChild(b);
  }
}

if (!src) {
  showError("No stream given: open player.html?src=scene.progs");
  state.done = true;
} else {
  const p = progs!;
  scene.add(p);
  state.setView = (v) => {
    applyView(v);
    p.evaluateFrom(v.eye);
    requestRender();
  };
  state.showLod = (lod) => {
    p.showLod(lod);
    for (const [i, b] of [...lodBar.children].entries()) b.classList.toggle("off", i + 1 > lod);
    requestRender();
  };
  p.ready.then(() => {
    applyView(urlView ?? p.suggestedView ?? defaultView(p));
    if (p.background) renderer.setClearColor(new THREE.Color(p.background[0], p.background[1], p.background[2]));
    document.title = `${src.split("/").pop()} · progs`;
  }, () => undefined);
  p.loaded.then(() => {
    state.done = true;
    if (p.lodShown < p.lodsTotal && !p.error && p.lodShown === p.lodsPlanned) {
      message.textContent = `Showing LoD ${p.lodShown} of ${p.lodsTotal} (budget reached)`;
      message.hidden = false;
    }
    const lod = num("lod");
    if (lod !== undefined) state.showLod(lod);
    requestRender();
  });
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) frames?.pageHidden();
});

window.addEventListener("resize", () => {
  camera.aspect = window.innerWidth / window.innerHeight;
  camera.updateProjectionMatrix();
  renderer.setSize(window.innerWidth, window.innerHeight);
  requestRender();
});

renderer.setAnimationLoop(() => {
  controls.update();
  if (progs) {
    progs.update(camera);
    state.lodShown = progs.lodShown;
    state.lodsTotal = progs.lodsTotal;
    state.bytesReceived = progs.bytesReceived;
    state.fetch = progs.fetchStats;
    state.anchors = progs.anchors;
    state.gaussians = progs.gaussians;
    state.busy = progs.pending > 0;
    if (progs.error && !state.error) showError(progs.error);
    updateOverlay(progs);
  }
  let changed = progs !== null && progs.version !== lastVersion;
  // a new LoD about to be out of date before its frame would be on screen waits for the next one
  const newLod = state.history.some((h) => h.shownSeconds === null);
  if (changed && newLod && frames!.hold(progs!.nextLodEta(), progs!.gaussians)) changed = false;
  else if (progs) lastVersion = progs.version;
  // while the stream loads and nothing is in the scene yet, frames are drawn so that Spark builds its
  // shaders before LoD 1 arrives
  const warmUp = !state.done && progs !== null && progs.gaussians === 0;
  frames!.tick(changed, warmUp, state.history, progs?.gaussians ?? 0);
  if (state.firstImageSeconds === null && state.history.length && state.history[0].shownSeconds !== null) {
    state.firstImageSeconds = state.history[0].shownSeconds;
  }
});
