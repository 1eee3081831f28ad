// The context thread of ParallelStreamDecoder, as a module worker in a browser or a worker_threads
// worker in Node (dist/progs-context-worker.mjs).
import { FromContext, serveContext, ToContext } from "./parallel.js";

interface NodePort {
  postMessage(m: unknown, transfer?: unknown[]): void;
  on(event: "message", handler: (m: ToContext) => void): void;
}

const g = globalThis as unknown as { process?: { versions?: { node?: string } } };
if (typeof g.process?.versions?.node === "string") {
  const module = "node:worker_threads"; // (named at run time: browsers never load it)
  const { parentPort } = (await import(module)) as { parentPort: NodePort };
  const handle = serveContext((m: FromContext, transfer) => parentPort.postMessage(m, transfer as unknown[]));
  parentPort.on("message", handle);
} else {
  const scope = self as unknown as { postMessage(m: FromContext, transfer: Transferable[]): void; onmessage: unknown };
  const handle = serveContext((m, transfer) => scope.postMessage(m, transfer));
  scope.onmessage = (ev: MessageEvent<ToContext>) => handle(ev.data);
}
