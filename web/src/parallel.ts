// Decoding on two threads: the context model of the next level (hash grid, MLPs: about a third of the
// work) on a thread of its own while this thread range-decodes the current level's attributes. The
// context model needs only a level's octree keys and parents, which the chunk's first bytes give;
// the parent predictor, which needs the previous level's values, stays on the decoding thread. The
// anchors are those of StreamDecoder, bit for bit.
import { Chunk } from "./container.js";
import { CHUNK, ContextModel } from "./context.js";
import { ContextParams, DecodedLevel, PendingLevel, StreamDecoder } from "./decoder.js";
import { FormatError } from "./errors.js";
import { decodeHeader, Grid } from "./header.js";
import { voxelCentres } from "./structure.js";
import { kernels } from "./wasm.js";

/** Messages to the context thread. */
export type ToContext =
  | { type: "header"; payload: Uint8Array; offset: number }
  | {
      type: "level"; level: number; keys: Int32Array; parent: Int32Array | null; withBins: boolean; wantTerms: boolean;
      /** The first anchor whose coding parameters are wanted (the decoding thread computes those before). */
      paramsFrom: number;
    };

/** Messages from it. */
export type FromContext =
  | { type: "params"; level: number; from: number; mean: Float64Array; step: Float64Array; bins: Uint8Array | null }
  | { type: "error"; level: number; message: string };

/** The other thread, as the platform gives it (a browser Worker, Node's worker_threads). */
export interface ContextThread {
  post(m: ToContext, transfer: Transferable[]): void;
  onMessage(handler: (m: FromContext) => void): void;
}

/** The context thread's side: returns the handler of its messages, which answers through `post`. A
 * header starts a new stream (one thread serves one stream at a time). */
export function serveContext(post: (m: FromContext, transfer: Transferable[]) => void): (m: ToContext) => void {
  let ctx: ContextModel | null = null;
  let grid: Grid | null = null;
  let terms: Float64Array | null = null;
  return (m) => {
    try {
      if (m.type === "header") {
        const arena = kernels();
        if (!arena) throw new Error("no WebAssembly SIMD here");
        const h = decodeHeader(m.payload, m.offset, arena);
        ctx = new ContextModel(h.context, h.grid3, h.grid2, h.tensors, arena);
        if (!ctx.usesWasm) throw new Error("this context model has no WebAssembly kernels");
        grid = h.grid;
        terms = null;
        return;
      }
      if (!ctx || !grid) throw new Error("a level before the header");
      const pos = voxelCentres(m.keys, 2 ** (grid.baseDepth + m.level - 1));
      const from = m.paramsFrom;
      const p = ctx.params(pos, m.keys.length / 3, m.level, m.level > 1 ? terms : null, m.parent, m.wantTerms, m.withBins, from);
      terms = p.terms;
      const { mean, step, bins } = p;
      post({ type: "params", level: m.level, from, mean, step, bins },
           bins ? [mean.buffer, step.buffer, bins.buffer] : [mean.buffer, step.buffer]);
    } catch (e) {
      post({ type: "error", level: m.type === "level" ? m.level : 0, message: (e as Error).message }, []);
    }
  };
}

/** A StreamDecoder whose context model runs on `thread` (which runs serveContext). */
export class ParallelStreamDecoder {
  readonly decoder: StreamDecoder;
  private readonly waiting = new Map<number, { resolve: (p: ContextParams) => void; reject: (e: Error) => void }>();

  constructor(head: Chunk, private readonly thread: ContextThread, readonly source = "stream") {
    this.decoder = new StreamDecoder(head, source);
    thread.onMessage((m) => {
      const w = this.waiting.get(m.level);
      if (m.type === "error" && m.level === 0) {
        for (const x of this.waiting.values()) x.reject(new Error(m.message));
        this.waiting.clear();
        return;
      }
      if (!w) return;
      this.waiting.delete(m.level);
      if (m.type === "error") w.reject(new Error(m.message));
      else w.resolve(m);
    });
    const payload = head.payload.slice();
    thread.post({ type: "header", payload, offset: head.offset }, [payload.buffer]);
  }

  get levels(): DecodedLevel[] {
    return this.decoder.levels;
  }

  /** Asks the other thread for a level's coding parameters. LoD 1 (no parents, nothing to overlap
   * it with yet) is shared: this thread computes those of its first anchors meanwhile. */
  private request(pl: PendingLevel): Promise<ContextParams> {
    const D = this.decoder.context.D;
    const n = pl.st.n;
    // (the other thread also computes every anchor's hash-grid features and terms for LoD 2: it gets
    // the smaller share of the rest)
    const from = pl.level === 1 && pl.inWasm ? Math.min(Math.round((0.7 * n) / CHUNK) * CHUNK, Math.floor(n / CHUNK) * CHUNK) : 0;
    const theirs = new Promise<FromContext & { type: "params" }>((resolve, reject) =>
      this.waiting.set(pl.level, { resolve: resolve as (p: ContextParams) => void, reject }));
    this.thread.post({
      type: "level", level: pl.level, keys: pl.st.keys.slice(), parent: pl.st.parent ? pl.st.parent.slice() : null,
      withBins: !pl.predictor, wantTerms: pl.level < this.decoder.lodsInStream, paramsFrom: from,
    }, []);
    if (!from) return theirs;
    const ours = this.decoder.firstParams(pl, from);
    return theirs.then((t) => {
      const mean = new Float64Array(n * D);
      const step = new Float64Array(3 * n);
      const bins = new Uint8Array(n * D);
      mean.set(ours.mean);
      mean.set(t.mean, from * D);
      step.set(ours.step);
      step.set(t.step, 3 * from);
      bins.set(ours.bins!);
      bins.set(t.bins!, from * D);
      return { mean, step, bins };
    });
  }

  /** Decodes these LoD chunks (the next ones of the stream, in order), each level's context model
   * computed on the other thread while the previous level is range-decoded; `onLevel` sees each level
   * as it is done. A damaged chunk ends decoding at the last intact LoD and `problem` says why (as
   * decode() does); the levels are in `levels`. */
  async decodeChunks(chunks: Chunk[], onLevel?: (lv: DecodedLevel) => void): Promise<{ problem: string | null }> {
    const dec = this.decoder;
    const begin = (i: number, prev: { keys: Int32Array; count: number } | null) => {
      const pl = dec.beginChunk(chunks[i], dec.lodsDecoded + i + 1 - done, prev);
      return { pl, params: this.request(pl) };
    };
    let done = 0;
    let problem: string | null = null;
    let next: { pl: PendingLevel; params: Promise<ContextParams> } | null = null;
    try {
      if (chunks.length) next = begin(0, dec.levels.length ? dec.levels[dec.levels.length - 1] : null);
      while (next) {
        const cur: { pl: PendingLevel; params: Promise<ContextParams> } = next;
        next = null;
        let later: unknown = null;
        // the next level's structure (it needs only this level's keys) and context model, meanwhile
        if (done + 1 < chunks.length) {
          try {
            next = begin(done + 1, { keys: cur.pl.st.keys, count: cur.pl.st.n });
          } catch (e) {
            later = e;
          }
        }
        const params = await cur.params;
        const lv = dec.finishChunk(cur.pl, cur.pl.inWasm ? params : null);
        done++;
        onLevel?.(lv);
        if (later) throw later;
      }
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      problem = e.message;
    }
    for (const w of this.waiting.values()) w.reject(new Error("decoding stopped"));
    this.waiting.clear();
    return { problem };
  }
}
