// Decoding on two threads: the context model of the next level (hash grid, MLPs: about a third of the
// work) on a thread of its own while this thread range-decodes the current level's attributes. The
// context model needs only a level's octree keys and parents, which the chunk's first bytes give;
// the parent predictor, which needs the previous level's values, stays on the decoding thread. The
// anchors are those of StreamDecoder, bit for bit.
import { Chunk } from "./container.js";
import { ContextModel } from "./context.js";
import { ContextParams, DecodedLevel, PendingLevel, StreamDecoder } from "./decoder.js";
import { FormatError } from "./errors.js";
import { decodeHeader, Grid } from "./header.js";
import { Arena, kernels } from "./wasm.js";

/** Messages to the context thread. */
export type ToContext =
  | { type: "header"; payload: Uint8Array; offset: number }
  | { type: "level"; level: number; keys: Int32Array; parent: Int32Array | null; withBins: boolean; wantTerms: boolean };

/** Messages from it. */
export type FromContext =
  | { type: "params"; level: number; mean: Float64Array; step: Float64Array; bins: Uint8Array | null }
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
  let arena: Arena | null = null;
  let grid: Grid | null = null;
  let terms: Float64Array | null = null;
  return (m) => {
    try {
      if (m.type === "header") {
        arena = kernels();
        if (!arena) throw new Error("no WebAssembly SIMD here");
        const h = decodeHeader(m.payload, m.offset, arena);
        ctx = new ContextModel(h.context, h.grid3, h.grid2, h.tensors, arena);
        if (!ctx.usesWasm) throw new Error("this context model has no WebAssembly kernels");
        grid = h.grid;
        terms = null;
        return;
      }
      if (!ctx || !arena || !grid) throw new Error("a level before the header");
      const a = arena;
      const n = m.keys.length / 3;
      const D = ctx.D;
      const res = 2 ** (grid.baseDepth + m.level - 1);
      const pos = Float64Array.from(m.keys, (k) => (k + 0.5) / res);
      a.reset();
      const lp = { mean: a.alloc(8 * (n * D + 1)), bins: a.alloc(n * D + 2), step: a.alloc(24 * n), shift: 0 };
      a.holdLevel();
      try {
        terms = ctx.levelWasm(pos, n, m.level, m.level > 1 ? terms : null, m.parent, null, m.wantTerms, lp, m.withBins);
        const mean = a.f64.slice(lp.mean >> 3, (lp.mean >> 3) + n * D);
        const step = a.f64.slice(lp.step >> 3, (lp.step >> 3) + 3 * n);
        const bins = m.withBins ? a.u8.slice(lp.bins, lp.bins + n * D) : null;
        post({ type: "params", level: m.level, mean, step, bins }, bins ? [mean.buffer, step.buffer, bins.buffer] : [mean.buffer, step.buffer]);
      } finally {
        a.releaseLevel();
      }
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

  private request(pl: PendingLevel): Promise<ContextParams> {
    const p = new Promise<ContextParams>((resolve, reject) => this.waiting.set(pl.level, { resolve, reject }));
    this.thread.post({
      type: "level", level: pl.level, keys: pl.st.keys.slice(), parent: pl.st.parent ? pl.st.parent.slice() : null,
      withBins: !pl.predictor, wantTerms: pl.level < this.decoder.lodsInStream,
    }, []);
    return p;
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
