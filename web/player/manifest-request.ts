// The manifest's request, shared by the page and the decoding worker: the page (StreamLoader) asks for
// the manifest while the worker's script is still loading and starting, and hands it the answer, so
// that the stream's first Range request need not wait for one more round trip.

/** What a manifest request answered (`text` only when `ok`). */
export interface ManifestReply {
  ok: boolean;
  status: number;
  text: string;
}

/** Whether `url` names a manifest (…​.json) rather than a stream. */
export function isManifestUrl(url: string): boolean {
  return new URL(url, location.href).pathname.endsWith(".json");
}

/** The manifest of the stream at `url`: `url` + `.json`, or `url` itself when it names one. */
export function manifestUrlOf(url: string): string {
  return isManifestUrl(url) ? url : `${url}.json`;
}

/** Asks for the manifest at `manifestUrl` (revalidated: a replaced stream comes with a new one).
 * Rejects on a network error. */
export async function requestManifest(manifestUrl: string, signal?: AbortSignal): Promise<ManifestReply> {
  const r = await fetch(manifestUrl, { signal, cache: "no-cache" });
  return { ok: r.ok, status: r.status, text: r.ok ? await r.text() : "" };
}
