// Spark's WebAssembly as a file of its own (scripts/build-player.mjs takes it out of Spark's module):
// the boot script fetches it when the page wants it, and the bundled Spark itself when no boot
// script did.

/** Compiles a WebAssembly file as it downloads (when served as application/wasm), else after. */
export async function compileWasm(url: URL): Promise<WebAssembly.Module> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url.pathname}: HTTP ${r.status}`);
  if ((r.headers.get("Content-Type") ?? "").startsWith("application/wasm")) return WebAssembly.compileStreaming(r);
  return WebAssembly.compile(await r.arrayBuffer());
}
