"""A small static file server for progs streams: HTTP/1.1 Range requests, ETags, CORS.

It also serves the web player (``/player.html`` and its scripts, shipped in this package) unless the
folder has files of those names: ``/player.html?src=scene.progs`` plays ``DIR/scene.progs``.

Built on aiohttp (``web.FileResponse`` implements Range, ETag, If-None-Match and date If-Range; we add
entity-tag If-Range, CORS headers and a traversal-safe route). Any static server or CDN that honours
Range requests serves progs streams just as well (docs/STREAMING.md); this one is for development,
tests and ``progs view``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from progs.errors import ProgsError, optional_import

web = optional_import("aiohttp.web", "viewer", "progs serve")
hdrs = optional_import("aiohttp.hdrs", "viewer", "progs serve")

EXPOSED = "Content-Range, Accept-Ranges, ETag, Content-Length, Last-Modified"
ALLOWED_REQUEST_HEADERS = "Range, If-None-Match, If-Range, If-Modified-Since, If-Match, Cache-Control"
RequestHook = Callable[[dict], None]

log = logging.getLogger("progs.serve")

PLAYER_DIR = Path(__file__).resolve().parent / "player"
PLAYER_FILES = (
    "player.html",
    "progs-boot.js",
    "progs-player.js",
    "progs-worker.js",
    "spark-internal.wasm",
    "progs-three.mjs",
)


def _cors(resp: web.StreamResponse) -> None:
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Access-Control-Expose-Headers"] = EXPOSED
    resp.headers.setdefault("Vary", "Origin")


class _RangeFile(web.FileResponse):
    """FileResponse plus: entity-tag If-Range (aiohttp only honours dates), multi-range and
    ``bytes=-0`` handling, CORS headers, and a hook that sees each response."""

    def __init__(self, path: Path, hook: RequestHook | None) -> None:
        super().__init__(path)
        self._hook = hook

    async def prepare(self, request: web.BaseRequest):  # type: ignore[override]
        headers = request.headers.copy()
        rng = headers.get(hdrs.RANGE)
        if_range = headers.get(hdrs.IF_RANGE)
        if rng is not None and "," in rng:
            del headers[hdrs.RANGE]  # multiple ranges: we may ignore Range and send the whole file
            rng = None
        if if_range is not None and (if_range.startswith('"') or if_range.startswith("W/")):
            del headers[hdrs.IF_RANGE]
            try:
                st = self._path.stat()
                current = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
            except OSError:
                current = None
            if if_range != current and hdrs.RANGE in headers:  # a weak or stale tag: the whole file
                del headers[hdrs.RANGE]
                rng = None
        if rng is not None and rng.replace(" ", "").lower() == "bytes=-0":
            try:
                size = self._path.stat().st_size
            except OSError:
                size = None
            if size is not None:
                self.set_status(416)
                self.headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
                _cors(self)
                self._report(request)
                return await web.StreamResponse.prepare(self, request)
        _cors(self)
        if headers != request.headers:
            request = request.clone(headers=headers)
        writer = await super().prepare(request)
        self._report(request)
        return writer

    def _report(self, request: web.BaseRequest) -> None:
        if self._hook is not None:
            self._hook(
                {
                    "method": request.method,
                    "path": request.path,
                    "range": request.headers.get(hdrs.RANGE),
                    "status": self.status,
                    "length": self.content_length if self.status in (200, 206) else 0,
                    "content_range": self.headers.get(hdrs.CONTENT_RANGE),
                }
            )


def resolve_safe(root: Path, rel: str) -> Path:
    """The file under ``root`` named by the (percent-decoded) URL path ``rel``.

    Raises HTTPNotFound for ``..``/``.`` segments, absolute or backslash paths, NUL bytes and hidden
    names; HTTPForbidden when the real path (symlinks resolved) leaves ``root``.
    """
    if "\x00" in rel or "\\" in rel:
        raise web.HTTPNotFound()
    parts = [p for p in rel.split("/") if p != ""]
    if rel.startswith("//") or any(p in (".", "..") or p.startswith(".") for p in parts) or not parts:
        raise web.HTTPNotFound()
    candidate = root.joinpath(*parts)
    try:
        real = Path(os.path.realpath(candidate))
    except (OSError, ValueError):
        raise web.HTTPNotFound() from None
    if real != root and root not in real.parents:
        raise web.HTTPForbidden()
    if not real.is_file():
        raise web.HTTPNotFound()
    return real


def player_file(name: str) -> Path:
    """One file of the web player shipped in this package; a clear error when it was not built."""
    path = PLAYER_DIR / name
    if not path.is_file():
        raise ProgsError(
            f"{path}: the web player is not built; build it in the progs checkout with Node 20+ "
            "(`cd web && npm ci && npm run build`), then install progs again (`pip install '.[viewer]'`)"
        )
    return path


def make_app(directory: str | os.PathLike[str], on_request: RequestHook | None = None) -> web.Application:
    """The aiohttp application serving the files of ``directory`` (not its sub-folders' dot files)."""
    root = Path(os.path.realpath(directory))
    if not root.is_dir():
        raise ProgsError(f"{directory}: not a directory")

    @web.middleware
    async def cors_errors(request: web.Request, handler):
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            _cors(exc)
            if on_request is not None:
                on_request(
                    {
                        "method": request.method,
                        "path": request.path,
                        "range": request.headers.get(hdrs.RANGE),
                        "status": exc.status,
                        "length": 0,
                        "content_range": None,
                    }
                )
            raise
        if not resp.prepared:
            _cors(resp)
        return resp

    async def options(request: web.Request) -> web.Response:
        resp = web.Response(status=204)
        resp.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = ALLOWED_REQUEST_HEADERS
        resp.headers["Access-Control-Max-Age"] = "86400"
        return resp

    async def get_file(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        try:
            path = resolve_safe(root, tail)
        except web.HTTPNotFound:
            if tail not in PLAYER_FILES:
                raise
            try:
                path = player_file(tail)
            except ProgsError as exc:
                raise web.HTTPNotFound(text=str(exc)) from None
        resp = _RangeFile(path, on_request)
        resp.headers[hdrs.CACHE_CONTROL] = "no-cache"  # revalidate with the ETag
        return resp

    app = web.Application(middlewares=[cors_errors])
    app.router.add_route("OPTIONS", "/{tail:.*}", options)
    app.router.add_get("/{tail:.*}", get_file)  # HEAD too
    return app


def start_server(
    directory: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_request: RequestHook | None = None,
    access_log: bool = False,
) -> tuple[str, Callable[[], None]]:
    """Serve ``directory`` from a background thread; returns ``(base_url, stop)`` (``stop()`` is idempotent).

    ``port=0`` picks a free port. ``on_request`` is called (in the server thread) with a dict per
    response: method, path, range, status, length (body bytes), content_range.
    """
    app = make_app(directory, on_request)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict = {}

    async def _start() -> None:
        runner = web.AppRunner(app, access_log=log if access_log else None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def _run() -> None:
        # Ctrl-C and SIGTERM go to the main thread, which handles them (a signal the kernel hands to
        # this thread would leave a main thread blocked in a wait that nothing interrupts)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(_start())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            state["error"] = exc
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(state["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=_run, name="progs-serve", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in state:
        exc = state["error"]
        raise ProgsError(f"cannot serve on {host}:{port} ({exc})") from None
    if "port" not in state:
        raise ProgsError(f"the server on {host}:{port} did not start within 30 s")
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{state['port']}/"
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return url, stop


def _wait_for_interrupt() -> None:
    """Blocks until Ctrl-C (KeyboardInterrupt), waking every second so that a signal is acted on even
    when the kernel delivered it to another thread."""
    forever = threading.Event()
    while not forever.wait(1.0):
        pass


def serve_forever(
    directory: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until interrupted (Ctrl-C), logging one line per request to stderr."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    url, stop = start_server(directory, host, port, access_log=True)
    announce(f"serving {Path(directory).resolve()} at {url} (Ctrl-C to stop)")
    for f in sorted(Path(directory).glob("*.progs")):
        has_manifest = f.with_name(f.name + ".json").is_file()
        announce(
            f"  {url}{f.name}" + ("  (+ manifest)" if has_manifest else "") + f"  play: {url}player.html?src={f.name}"
        )
    if not (PLAYER_DIR / "player.html").is_file():
        announce(f"  (the web player is not built: `cd web && npm ci && npm run build` puts it in {PLAYER_DIR})")
    try:
        _wait_for_interrupt()
    finally:
        stop()


def player_url(base_url: str, src: str, max_bytes: int | None = None, max_lod: int | None = None) -> str:
    """The player's address on a server at ``base_url`` for the stream (or manifest) ``src``."""
    query = {"src": src}
    if max_bytes is not None:
        query["maxBytes"] = str(int(max_bytes))
    if max_lod is not None:
        query["maxLod"] = str(int(max_lod))
    return f"{base_url}player.html?{urllib.parse.urlencode(query, safe='/:')}"


def serve_player(
    source: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    max_bytes: int | None = None,
    max_lod: int | None = None,
    open_browser: bool = True,
    announce: Callable[[str], None] = print,
) -> None:
    """``progs view``: serve the web player (and, for a local file, its folder) until Ctrl-C, and open
    the player on ``source`` in a browser. A URL source is fetched by the browser itself, so its
    server must allow this page's origin (CORS, docs/STREAMING.md)."""
    player_file("player.html")  # a clear error before anything starts
    with contextlib.ExitStack() as cleanup:
        if source.startswith(("http://", "https://")):
            folder, src = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="progs-view-")), source
        else:
            path = Path(source)
            if not path.is_file():
                raise ProgsError(f"{source}: no such stream file")
            folder, src = str(path.resolve().parent), path.name
        url, stop = start_server(folder, host, port)
        cleanup.callback(stop)
        page = player_url(url, src, max_bytes, max_lod)
        announce(f"playing {source} at {page} (Ctrl-C to stop)")
        if open_browser:
            import webbrowser

            if not webbrowser.open(page):
                announce("  (no browser found here: open the address above in one)")
        _wait_for_interrupt()
