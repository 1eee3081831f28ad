"""A progressive client: fetch a progs stream LoD by LoD with HTTP Range requests.

    client = StreamClient("http://host/scene.progs", max_bytes=200_000)
    for lod, nbytes, decoded in client.iter_lods():
        show(decoded.model, lod)

Plan: the manifest ``scene.progs.json`` beside the stream (or, when there is none, the chunk table in
the stream's HEAD chunk), then the header, then LoD chunks in order, each with one Range request. Each
chunk's CRC is checked (:func:`progs.codec.container.scan`) before it is decoded. A connection that
drops mid-chunk is resumed from the last byte received (bounded retries with backoff), so intact bytes
are never fetched twice. ``bandwidth`` simulates a slow link by pacing reads.
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from progs import __version__
from progs.codec.container import PREAMBLE, scan
from progs.codec.errors import FormatError
from progs.codec.header import head_chunk_length, read_chunk_table
from progs.codec.stream import DecodeResult, decode
from progs.errors import ProgsError
from progs.stream.manifest import (
    MAX_MANIFEST_BYTES,
    check_against_header,
    lods_within,
    lods_within_time,
    manifest_from_header,
    manifest_name,
    read_manifest,
)

BLOCK = 64 * 1024
_TRANSIENT = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    urllib.error.URLError,
    OSError,
)


class _NotFound(Exception):
    pass


@dataclass
class FetchStats:
    requests: int = 0
    bytes_received: int = 0  # body bytes read from the network (manifest included)
    retries: int = 0
    manifest_bytes: int = 0
    seconds: float = 0.0
    ranges: list[tuple[int, int]] = field(default_factory=list)  # stream byte ranges requested, [start, end)


class StreamClient:
    """Fetches a stream progressively from ``url`` (the ``.progs`` stream or its ``.json`` manifest).

    ``max_bytes``: a budget on stream bytes (header included; the manifest is not counted): only the
    LoDs that fit in it are fetched. ``bandwidth``: simulated link speed in bytes/s (reads are paced).
    ``seconds``: with ``bandwidth``, fetch only the LoDs that arrive within this time.
    ``max_lod``: never fetch beyond this LoD. ``retries``: reconnections allowed per range.
    """

    def __init__(
        self,
        url: str,
        *,
        max_bytes: int | None = None,
        bandwidth: float | None = None,
        seconds: float | None = None,
        max_lod: int | None = None,
        retries: int = 4,
        backoff: float = 0.05,
        timeout: float = 15.0,
        max_sleep: float = 5.0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ProgsError(f"the byte budget must be non-negative, got {max_bytes}")
        if bandwidth is not None and not bandwidth > 0:
            raise ProgsError(f"the bandwidth must be positive, got {bandwidth} B/s")
        if seconds is not None and bandwidth is None:
            raise ProgsError("a time budget (seconds) needs a bandwidth")
        self.url = url
        self.max_bytes = max_bytes
        self.bandwidth = bandwidth
        self.seconds = seconds
        self.max_lod = max_lod
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.max_sleep = max_sleep
        self.on_progress = on_progress
        self.stats = FetchStats()
        self.manifest: dict | None = None
        self.manifest_source: str | None = None  # "manifest" or "header"
        self.stream_url: str | None = None
        self.data = bytearray()  # the stream prefix received so far
        self._t0: float | None = None
        self._paced_bytes = 0
        self._etag: str | None = None

    # ---------------------------------------------------------------------------------- HTTP
    def _open(self, url: str, start: int | None = None, end: int | None = None):
        headers = {"User-Agent": f"progs/{__version__}", "Accept-Encoding": "identity"}
        if start is not None:
            headers["Range"] = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
            if self._etag is not None:
                headers["If-Range"] = self._etag
        req = urllib.request.Request(url, headers=headers)
        self.stats.requests += 1
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 - http(s) URLs only
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise _NotFound(url) from None
            if exc.code == 416:
                raise ProgsError(
                    f"{url}: the server says bytes {start}-{end} are out of range (416); the stream is shorter than planned"
                ) from None
            raise ProgsError(f"{url}: HTTP {exc.code} {exc.reason}") from None

    def _pace(self, n: int) -> None:
        if self.bandwidth is None:
            return
        if self._t0 is None:
            self._t0 = time.monotonic()
        self._paced_bytes += n
        ahead = self._paced_bytes / self.bandwidth - (time.monotonic() - self._t0)
        if ahead > 0:
            time.sleep(min(ahead, self.max_sleep))

    def _fetch_range(self, url: str, start: int, end: int, into: bytearray) -> None:
        """Append bytes [start, end) of ``url`` to ``into``, resuming after dropped connections."""
        got = 0
        want = end - start
        attempt = 0
        self._t0, self._paced_bytes = None, 0  # the link idles between requests: pace each range afresh
        while got < want:
            pos = start + got
            self.stats.ranges.append((pos, end))
            try:
                with self._open(url, pos, end) as resp:
                    status = resp.status
                    etag = resp.headers.get("ETag")
                    if etag and not etag.startswith("W/"):
                        if self._etag is not None and etag != self._etag:
                            raise ProgsError(
                                f"{url}: the stream changed on the server while it was being fetched (ETag {self._etag} -> {etag})"
                            )
                        self._etag = etag
                    skip = 0
                    if status == 206:
                        cr = resp.headers.get("Content-Range", "")
                        if not cr.startswith(f"bytes {pos}-"):
                            raise ProgsError(
                                f"{url}: asked for bytes {pos}-{end - 1}, the server sent {cr or 'no Content-Range'}"
                            )
                    elif status == 200:
                        skip = pos  # the server ignores Range: skip to our offset (costly, but correct)
                    else:
                        raise ProgsError(f"{url}: unexpected HTTP status {status}")
                    while got < want:
                        n = min(BLOCK, want - got, max(1, int(self.bandwidth / 20)) if self.bandwidth else BLOCK)
                        if skip:
                            block = resp.read(min(BLOCK, skip))
                            if not block:
                                raise http.client.IncompleteRead(b"")
                            skip -= len(block)
                            self.stats.bytes_received += len(block)
                            continue
                        block = resp.read(n)
                        if not block:
                            raise http.client.IncompleteRead(b"", want - got)
                        into += block
                        got += len(block)
                        self.stats.bytes_received += len(block)
                        self._pace(len(block))
                        if self.on_progress is not None:
                            self.on_progress(start + got, end)
            except _NotFound:
                raise ProgsError(f"{url}: not found (404)") from None
            except ProgsError:
                raise
            except _TRANSIENT as exc:
                attempt += 1
                self.stats.retries += 1
                if attempt > self.retries:
                    raise ProgsError(
                        f"{url}: connection failed {attempt} times while fetching bytes {start + got}-{end - 1} "
                        f"({type(exc).__name__}: {exc})"
                    ) from None
                time.sleep(min(self.backoff * (2 ** (attempt - 1)), 2.0))

    # ----------------------------------------------------------------------------------- plan
    def _urls(self) -> tuple[str, str]:
        """``(manifest_url, stream_url)``; the stream URL is "" when given the manifest (read from it)."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https"):
            raise ProgsError(f"{self.url}: not an http(s) URL")
        if parts.path.endswith(".json"):
            return self.url, ""
        return urllib.parse.urlunsplit(parts._replace(path=manifest_name(parts.path))), self.url

    def _get_manifest(self, url: str) -> dict:
        attempt = 0
        while True:
            try:
                with self._open(url) as resp:
                    body = resp.read(MAX_MANIFEST_BYTES + 1)
                break
            except _NotFound:
                raise
            except ProgsError:
                raise
            except _TRANSIENT as exc:
                attempt += 1
                self.stats.retries += 1
                if attempt > self.retries:
                    raise ProgsError(
                        f"{url}: connection failed {attempt} times while fetching the manifest ({type(exc).__name__}: {exc})"
                    ) from None
                time.sleep(min(self.backoff * (2 ** (attempt - 1)), 2.0))
        self.stats.manifest_bytes += len(body)
        self.stats.bytes_received += len(body)
        return read_manifest(body, url)

    def plan(self) -> dict:
        """Fetch the manifest (or the header's chunk table) and the header; returns the manifest."""
        if self.manifest is not None:
            return self.manifest
        t0 = time.monotonic()
        manifest_url, stream_url = self._urls()
        manifest = None
        try:
            manifest = self._get_manifest(manifest_url)
            self.manifest_source = "manifest"
            if not stream_url:
                stream_url = urllib.parse.urljoin(manifest_url, urllib.parse.quote(manifest["stream"]))
        except _NotFound:
            if not stream_url:
                raise ProgsError(f"{manifest_url}: manifest not found (404)") from None
        self.stream_url = stream_url
        if self.max_bytes is not None:
            limit = manifest["header"]["length"] if manifest else PREAMBLE + 8
            if self.max_bytes < limit:
                raise ProgsError(f"a budget of {self.max_bytes} bytes does not hold the stream's {limit}-byte header")
        # the header: its length from the manifest, or from the HEAD chunk's framing
        if manifest is not None:
            hlen = manifest["header"]["length"]
        else:
            self._fetch_range(stream_url, 0, PREAMBLE + 8, self.data)
            hlen = head_chunk_length(bytes(self.data), stream_url)
            if self.max_bytes is not None and self.max_bytes < hlen:
                raise ProgsError(f"a budget of {self.max_bytes} bytes does not hold the stream's {hlen}-byte header")
        if len(self.data) < hlen:
            self._fetch_range(stream_url, len(self.data), hlen, self.data)
        header = bytes(self.data)
        hlen2, sizes = read_chunk_table(header, stream_url)
        if manifest is None:
            manifest = manifest_from_header(header, Path(urllib.parse.urlsplit(stream_url).path).name or "stream.progs")
            self.manifest_source = "header"
        else:
            check_against_header(manifest, hlen2, sizes, manifest_url)
        self.manifest = manifest
        self.stats.seconds += time.monotonic() - t0
        return manifest

    def lods_planned(self) -> int:
        """How many LoDs this client will fetch (after :meth:`plan`)."""
        m = self.plan()
        n = len(m["lods"])
        if self.max_bytes is not None:
            n = min(n, lods_within(m, self.max_bytes))
        if self.bandwidth is not None and self.seconds is not None:
            n = min(n, lods_within_time(m, self.bandwidth, self.seconds))
        if self.max_lod is not None:
            n = min(n, max(0, int(self.max_lod)))
        return n

    # ---------------------------------------------------------------------------------- fetch
    def _fetch_chunk(self, lod: int) -> None:
        assert self.manifest is not None and self.stream_url is not None
        e = self.manifest["lods"][lod - 1]
        start, end = e["offset"], e["offset"] + e["length"]
        if len(self.data) != start:
            raise ProgsError(f"internal: have {len(self.data)} bytes, LoD {lod} starts at {start}")
        for attempt in range(2):
            self._fetch_range(self.stream_url, start, end, self.data)
            scanned = scan(bytes(self.data), self.stream_url)  # a copy: self.data must stay resizable
            if len(scanned.chunks) == lod + 1:
                return
            del self.data[start:]  # damaged in transit (CRC): fetch the chunk once more
            self.stats.retries += 1
        raise FormatError(scanned.problem or f"{self.stream_url}: chunk LOD{lod} is damaged")

    def iter_lods(self) -> Iterator[tuple[int, int, DecodeResult]]:
        """Yield ``(lod, stream_bytes_so_far, DecodeResult)`` after each LoD chunk arrives and decodes."""
        self.plan()
        n = self.lods_planned()
        have = len(scan(bytes(self.data), self.stream_url or "stream").chunks) - 1
        for lod in range(1, n + 1):
            t0 = time.monotonic()
            if lod > have:
                self._fetch_chunk(lod)
            self.stats.seconds += time.monotonic() - t0
            result = decode(bytes(self.data), max_lod=lod, source=self.stream_url or "stream")
            if result.lods_decoded != lod:
                raise FormatError(
                    result.problem or f"{self.stream_url}: decoded {result.lods_decoded} LoDs, expected {lod}"
                )
            yield lod, len(self.data), result

    def fetch(self) -> DecodeResult | None:
        """Fetch every planned LoD; the last decode (None when no LoD fits)."""
        last = None
        for _, _, res in self.iter_lods():
            last = res
        if last is None and self.manifest is not None and self.data:
            return decode(bytes(self.data), source=self.stream_url or "stream")
        return last


def read_local_progressively(path: str | Path) -> Iterator[tuple[int, int, DecodeResult]]:
    """The local-file counterpart of :meth:`StreamClient.iter_lods`: decode prefix after prefix."""
    data = Path(path).read_bytes()
    scanned = scan(data, str(path))
    if not scanned.chunks:
        raise FormatError(scanned.problem or f"{path}: no chunks")
    for k, ch in enumerate(scanned.chunks[1:], start=1):
        end = ch.offset + ch.size
        res = decode(data[:end], source=str(path))
        yield k, end, res


def is_url(s: str) -> bool:
    return urllib.parse.urlsplit(s).scheme in ("http", "https")


__all__ = ["StreamClient", "FetchStats", "read_local_progressively", "is_url"]
