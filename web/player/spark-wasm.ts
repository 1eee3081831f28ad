// Spark's WebAssembly as a file of its own (scripts/build-player.mjs takes it out of Spark's module):
// the boot script fetches it when the page wants it, and the bundled Spark itself when no boot
// script did.

/** Compiles a WebAssembly file as it downloads (when served as application/wasm), else after.
 * `arrived` is called once its last byte is in (or the download failed), while it may still compile. */
export async function compileWasm(url: URL, arrived?: () => void): Promise<WebAssembly.Module> {
  try {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url.pathname}: HTTP ${r.status}`);
    if ((r.headers.get("Content-Type") ?? "").startsWith("application/wasm")) {
      if (!arrived || !r.body) return await WebAssembly.compileStreaming(r);
      const body = r.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ flush: () => arrived() }));
      return await WebAssembly.compileStreaming(new Response(body, { headers: { "Content-Type": "application/wasm" } }));
    }
    const bytes = await r.arrayBuffer();
    arrived?.();
    return await WebAssembly.compile(bytes);
  } finally {
    arrived?.();
  }
}
