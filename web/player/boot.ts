// progs-boot.js: the first script player.html runs, a few kilobytes. It starts fetching and decoding
// the stream named by `?src=` at once (in the decoding worker), while three.js and Spark (most of the
// page's bytes) are still on their way, so that LoD 1 is decoded by the time the renderer can draw
// it. Spark's WebAssembly (the largest download the first image needs) is fetched once LoD 1 is in,
// and the finer LoDs once its last byte has arrived (it compiles meanwhile): the link carries what
// the first image needs first. On a later visit, when this browser has compiled it before and the
// visit after that found it in the HTTP cache (a revalidation, no bytes to share the link with),
// nothing is held back and the whole stream comes in one request.
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
// Which Spark WebAssembly this browser compiled last, and whether a visit that counted on the HTTP
// cache for it found it there: `URL` (compiled once: try the cache next time), `uncached URL` (it
// came over the link anyway: hold the finer LoDs back for it from now on).
const SEEN = "progs:spark-wasm";
function note(): string | null {
  try {
    return localStorage.getItem(SEEN);
  } catch {
    return null; // storage disabled: every visit holds the finer LoDs back
  }
}
function setNote(value: string): void {
  try {
    localStorage.setItem(SEEN, value);
  } catch {
    // storage disabled or full
  }
}
/** Whether `url` came from the HTTP cache (a revalidation's headers at most), by its Resource Timing. */
function fromCache(url: string): boolean {
  const e = performance.getEntriesByName(url).at(-1) as PerformanceResourceTiming | undefined;
  return e !== undefined && e.encodedBodySize > 0 && e.transferSize < e.encodedBodySize;
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
  const counted = note() === wasmUrl.href;
  g.progsSparkWasm.then(() => {
    if (counted && !fromCache(wasmUrl.href)) setNote(`uncached ${wasmUrl.href}`);
    else if (note() !== `uncached ${wasmUrl.href}`) setNote(wasmUrl.href);
  }, () => undefined);
  const loader = new StreamLoader(src, {
    maxBytes: num("maxBytes"),
    maxLod: num("maxLod"),
    maxSeconds: num("maxSeconds"),
    camera: view.length === 10 && view.every(Number.isFinite) ? view.slice(0, 3) : undefined,
    workerUrl: new URL("./progs-worker.js", import.meta.url),
    holdAfterFirst: counted ? undefined : wasmArrived,
  });
  void loader.firstFetched.then(go);
  g.progsBoot = { src, loader };
}
