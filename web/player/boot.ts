// progs-boot.js: the first script player.html runs, a few kilobytes. It starts fetching and decoding
// the stream named by `?src=` at once (in the decoding worker), while three.js and Spark (most of the
// page's bytes) are still on their way, so that LoD 1 is decoded by the time the renderer can draw
// it. Spark's WebAssembly (the largest download the first image needs) is fetched once LoD 1 is in,
// and the finer LoDs once its last byte has arrived (it compiles meanwhile): the link carries what
// the first image needs first. On a later visit, when this browser has compiled it before (so its
// HTTP cache most likely holds it: a revalidation, no bytes to share the link with), nothing is held
// back and the whole stream comes in one request.
import { StreamLoader } from "./loader.js";
import { compileWasm } from "./spark-wasm.js";

export interface Boot {
  src: string;
  loader: StreamLoader;
}

const params = new URLSearchParams(location.search);
const num = (name: string): number | undefined => {
  const v = params.get(name);
  return v === null || v === "" || !Number.isFinite(Number(v)) ? undefined : Number(v);
};
const view = (params.get("view") ?? "").split(",").map(Number);
const src = params.get("src");
// which Spark WebAssembly this browser compiled last (a hint: a cleared HTTP cache only means that, once,
// the finer LoDs share the link with it)
const SEEN = "progs:spark-wasm";
function seenBefore(url: string): boolean {
  try {
    return localStorage.getItem(SEEN) === url;
  } catch {
    return false; // storage disabled
  }
}
function remember(url: string): void {
  try {
    localStorage.setItem(SEEN, url);
  } catch {
    // storage disabled or full: the next visit holds the finer LoDs back, as this one did
  }
}
const g = globalThis as unknown as { progsBoot?: Boot; progsSparkWasm?: Promise<WebAssembly.Module> };
if (src) {
  let go!: () => void;
  let arrived!: () => void;
  const afterFirst = new Promise<void>((res) => (go = res));
  const wasmArrived = new Promise<void>((res) => (arrived = res));
  const wasmUrl = new URL("./spark-internal.wasm", import.meta.url);
  // the bundled Spark (progs-player.js) takes its WebAssembly module from here when it is set
  g.progsSparkWasm = afterFirst.then(() => compileWasm(wasmUrl, arrived));
  g.progsSparkWasm.then(() => remember(wasmUrl.href), () => undefined);
  const loader = new StreamLoader(src, {
    maxBytes: num("maxBytes"),
    maxLod: num("maxLod"),
    maxSeconds: num("maxSeconds"),
    camera: view.length === 10 && view.every(Number.isFinite) ? view.slice(0, 3) : undefined,
    workerUrl: new URL("./progs-worker.js", import.meta.url),
    holdAfterFirst: seenBefore(wasmUrl.href) ? undefined : wasmArrived,
  });
  void loader.firstFetched.then(go);
  g.progsBoot = { src, loader };
}
