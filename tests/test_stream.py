"""Streaming: manifest, the HTTP server (Range, ETag, CORS, traversal), the progressive client (budgets,
resume after a dropped connection, CRC), and ``progs fetch``. Loopback only, every wait bounded."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import urllib.parse

import pytest
import torch

from progs.cli import main
from progs.codec.container import FORMAT_VERSION
from progs.codec.stream import decode, encode
from progs.errors import ProgsError
from progs.codec.header import read_chunk_table
from progs.stream.client import StreamClient
from progs.stream.manifest import (
    build_manifest,
    lods_within,
    lods_within_time,
    manifest_for_stream,
    manifest_from_header,
    read_manifest,
    write_manifest,
)
from progs.stream.server import start_server
from test_codec import _random_model
from conftest import sigint_as_default


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder with scene.progs + scene.progs.json, bare.progs (no manifest), a big file, a secret
    outside the folder and a symlink pointing at it; served on a loopback port."""
    root = tmp_path_factory.mktemp("site")
    pub = root / "pub"
    pub.mkdir()
    model, ctx = _random_model(600)
    res = encode(model, background=torch.tensor([0.0, 0.0, 0.0]))
    quality = [{"lod": k, "psnr": 20.0 + k, "ssim": 0.5 + 0.1 * k} for k in range(1, 5)]
    manifest = build_manifest(res, "scene.progs", quality)
    (pub / "scene.progs").write_bytes(res.data)
    write_manifest(pub / "scene.progs.json", manifest)
    (pub / "bare.progs").write_bytes(res.data)
    (pub / "big.bin").write_bytes(os.urandom(1 << 20) * 24)  # 24 MiB: more than socket buffers hold
    (pub / ".hidden").write_text("hidden")
    (root / "secret.txt").write_text("top secret")
    (pub / "escape.txt").symlink_to(root / "secret.txt")
    log: list[dict] = []
    url, stop = start_server(pub, on_request=log.append)
    yield {"url": url, "dir": pub, "res": res, "manifest": manifest, "log": log, "data": res.data}
    stop()


def _raw(url: str, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    """One request with the path sent verbatim (no client-side normalisation)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------- manifest
def test_manifest_layout_and_round_trip(site, tmp_path):
    m, res = site["manifest"], site["res"]
    assert m["format"] == "progs" and m["version"] == FORMAT_VERSION and m["stream"] == "scene.progs"
    assert m["total_bytes"] == len(res.data)
    assert m["header"] == {"offset": 0, "length": res.header_bytes}
    cum_anchors = 0
    for e, (name, off, size), st in zip(m["lods"], res.chunk_offsets[1:], res.lods):
        cum_anchors += st.anchors
        assert (e["offset"], e["length"], e["cumulative_bytes"]) == (off, size, off + size)
        assert name == f"LOD{e['lod']}" and e["anchors"] == st.anchors and e["anchors_cumulative"] == cum_anchors
        assert e["psnr"] == 20.0 + e["lod"]
    assert read_manifest(site["dir"] / "scene.progs.json") == m
    # the same ranges from the header's chunk table alone, and from the stream file
    hdr = manifest_from_header(res.data[: res.header_bytes], "scene.progs")
    assert [(e["offset"], e["length"]) for e in hdr["lods"]] == [(e["offset"], e["length"]) for e in m["lods"]]
    assert all(e["anchors"] is None and e["psnr"] is None for e in hdr["lods"])
    full = manifest_for_stream(res.data, "scene.progs")
    assert [e["anchors"] for e in full["lods"]] == [e["anchors"] for e in m["lods"]]
    assert read_chunk_table(res.data, "s") == (res.header_bytes, [e["length"] for e in m["lods"]])
    # atomic write leaves no temporary files
    write_manifest(tmp_path / "x.json", m)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_lods_within_budget_and_time(site):
    m = site["manifest"]
    h = m["header"]["length"]
    assert lods_within(m, None) == 4
    assert lods_within(m, h - 1) == 0 and lods_within(m, h) == 0
    for e in m["lods"]:
        assert lods_within(m, e["cumulative_bytes"]) == e["lod"]
        assert lods_within(m, e["cumulative_bytes"] - 1) == e["lod"] - 1
    c2 = m["lods"][1]["cumulative_bytes"]
    assert lods_within_time(m, c2 / 2.0, 2.0) == 2
    assert lods_within_time(m, 1000.0, 0.0) == 0
    with pytest.raises(ProgsError):
        lods_within_time(m, 0.0, 1.0)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: m.update(version=99), "unsupported format version 99"),
        (lambda m: m.update(format="other"), '"format" must be "progs"'),
        (lambda m: m["lods"][1].update(offset=m["lods"][1]["offset"] + 1), "chunks are contiguous"),
        (lambda m: m.update(total_bytes=m["total_bytes"] + 5), "total_bytes"),
        (lambda m: m.update(stream="../x.progs"), "plain file name"),
        (lambda m: m["lods"][0].update(psnr="high"), "psnr must be a finite number"),
        (lambda m: m["lods"].reverse(), "LoDs must be listed"),
    ],
)
def test_invalid_manifests_fail_with_one_line(site, mutate, message):
    m = json.loads(json.dumps(site["manifest"]))
    mutate(m)
    with pytest.raises(ProgsError, match=message) as ei:
        read_manifest(json.dumps(m).encode())
    assert "\n" not in str(ei.value)
    with pytest.raises(ProgsError, match="not JSON"):
        read_manifest(b"{nope")


# ----------------------------------------------------------------------------------------- the server
def test_ranges_suffix_open_and_unsatisfiable(site):
    data, url = site["data"], site["url"]
    n = len(data)
    st, h, body = _raw(url, "/scene.progs", {"Range": "bytes=10-19"})
    assert st == 206 and body == data[10:20] and h["content-range"] == f"bytes 10-19/{n}"
    assert h["accept-ranges"] == "bytes"
    st, h, body = _raw(url, "/scene.progs", {"Range": "bytes=-100"})
    assert st == 206 and body == data[-100:] and h["content-range"] == f"bytes {n - 100}-{n - 1}/{n}"
    st, h, body = _raw(url, "/scene.progs", {"Range": f"bytes={n - 7}-"})
    assert st == 206 and body == data[-7:]
    st, h, body = _raw(url, "/scene.progs", {"Range": f"bytes={n - 7}-{n + 1000}"})  # end clipped
    assert st == 206 and body == data[-7:]
    for bad in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}", "bytes=-0"):
        st, h, body = _raw(url, "/scene.progs", {"Range": bad})
        assert st == 416 and h["content-range"] == f"bytes */{n}", bad
    st, h, body = _raw(url, "/scene.progs")
    assert st == 200 and body == data and int(h["content-length"]) == n
    st, h, body = _raw(url, "/scene.progs", method="HEAD")
    assert st == 200 and body == b"" and int(h["content-length"]) == n


def test_etag_if_none_match_and_if_range(site):
    url, data = site["url"], site["data"]
    st, h, _ = _raw(url, "/scene.progs", {"Range": "bytes=0-3"})
    etag = h["etag"]
    assert etag.startswith('"')
    st, h, body = _raw(url, "/scene.progs", {"If-None-Match": etag})
    assert st == 304 and body == b""
    st, _, body = _raw(url, "/scene.progs", {"If-None-Match": '"other"'})
    assert st == 200 and body == data
    st, _, body = _raw(url, "/scene.progs", {"Range": "bytes=0-3", "If-Range": etag})
    assert st == 206 and body == data[:4]
    st, _, body = _raw(url, "/scene.progs", {"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert st == 200 and body == data  # the representation changed: whole file


def test_cors_headers_and_preflight(site):
    st, h, _ = _raw(site["url"], "/scene.progs", {"Range": "bytes=0-0", "Origin": "http://example.test"})
    assert h["access-control-allow-origin"] == "*"
    exposed = {x.strip().lower() for x in h["access-control-expose-headers"].split(",")}
    assert {"content-range", "accept-ranges", "etag", "content-length"} <= exposed
    st, h, _ = _raw(
        site["url"],
        "/scene.progs",
        {
            "Origin": "http://example.test",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
        method="OPTIONS",
    )
    assert st == 204 and "range" in h["access-control-allow-headers"].lower()
    st, h, _ = _raw(site["url"], "/missing.progs")
    assert st == 404 and h["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/pub/../../secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/escape.txt",
        "/.hidden",
        "/",
        "/..\\secret.txt",
        "/scene.progs%00.txt",
    ],
)
def test_path_traversal_is_refused(site, path):
    st, _, body = _raw(site["url"], path)
    assert st in (403, 404), (path, st)
    assert b"secret" not in body and b"root:" not in body


def test_slow_client_does_not_block_others(site):
    u = urllib.parse.urlsplit(site["url"])
    slow = socket.create_connection((u.hostname, u.port), timeout=60)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        slow.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read the 24 MiB
        slow.recv(100)
        results: dict[int, bytes] = {}

        def fetch(i: int) -> None:
            c = StreamClient(site["url"] + "scene.progs", timeout=60)
            c.fetch()
            results[i] = bytes(c.data)

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:  # a blocked server would time the clients out (60 s without a byte)
            t.join(300)
        assert not any(t.is_alive() for t in threads)
        assert len(results) == 6 and all(v == site["data"] for v in results.values())
    finally:
        slow.close()


# ----------------------------------------------------------------------------------------- the client
def _planned_bytes(m: dict, k: int) -> int:
    return m["header"]["length"] if k == 0 else m["lods"][k - 1]["cumulative_bytes"]


@pytest.mark.parametrize("which", ["stream", "manifest", "bare"])
def test_client_under_byte_budgets_gets_exactly_the_lods_that_fit(site, which):
    m, data = site["manifest"], site["data"]
    url = site["url"] + {"stream": "scene.progs", "manifest": "scene.progs.json", "bare": "bare.progs"}[which]
    h = m["header"]["length"]
    budgets = [
        h,
        m["lods"][0]["cumulative_bytes"] - 1,
        m["lods"][0]["cumulative_bytes"],
        m["lods"][2]["cumulative_bytes"] + 5,
        None,
    ]
    for budget in budgets:
        c = StreamClient(url, max_bytes=budget)
        expected = lods_within(m, budget)
        seen = []
        for lod, nbytes, res in c.iter_lods():
            seen.append(lod)
            assert res.lods_decoded == lod and res.problem is None
            assert nbytes == _planned_bytes(m, lod)
            assert len(res.model.anchors) == m["lods"][lod - 1]["anchors_cumulative"]
        assert seen == list(range(1, expected + 1)), (which, budget)
        assert bytes(c.data) == data[: _planned_bytes(m, expected)]
        # nothing beyond the budget was requested, nothing twice
        assert c.stats.bytes_received - c.stats.manifest_bytes == len(c.data)
        assert c.manifest_source == ("header" if which == "bare" else "manifest")
    with pytest.raises(ProgsError, match="does not hold the stream's"):
        StreamClient(url, max_bytes=h - 1).plan()


def test_client_errors_are_one_line(site):
    with pytest.raises(ProgsError, match="not found"):
        StreamClient(site["url"] + "nothing.progs").plan()
    with pytest.raises(ProgsError, match="not an http"):
        StreamClient("ftp://x/scene.progs").plan()


def test_stale_manifest_is_detected(site, tmp_path):
    m = json.loads(json.dumps(site["manifest"]))
    m["lods"][0]["length"] += 1
    m["lods"][0]["cumulative_bytes"] += 1
    for e in m["lods"][1:]:
        e["offset"] += 1
        e["cumulative_bytes"] += 1
    m["total_bytes"] += 1
    (tmp_path / "scene.progs").write_bytes(site["data"])
    (tmp_path / "scene.progs.json").write_text(json.dumps(m))
    url, stop = start_server(tmp_path)
    try:
        with pytest.raises(ProgsError, match="stale"):
            StreamClient(url + "scene.progs").plan()
    finally:
        stop()


def test_bandwidth_is_simulated(site):
    m = site["manifest"]
    c2 = m["lods"][1]["cumulative_bytes"]
    bw = c2 / 0.6  # LoD 2 takes about 0.6 s
    c = StreamClient(site["url"] + "scene.progs", bandwidth=bw, seconds=0.6 * 1.02)
    lods = [lod for lod, _, _ in c.iter_lods()]
    assert lods == [1, 2] and c.lods_planned() == lods_within_time(m, bw, 0.6 * 1.02)
    assert c.stats.seconds >= 0.45  # the simulated link is never faster than asked; a busy machine only slower


class FlakyProxy:
    """A loopback HTTP proxy (one request per connection) that once cuts the response body of the
    request whose Range starts at ``cut_at_range_start`` after ``cut_after`` bytes, or flips a byte in it."""

    def __init__(self, upstream: str, cut_at_range_start: int, cut_after: int, mode: str = "drop") -> None:
        u = urllib.parse.urlsplit(upstream)
        self.upstream = (u.hostname, u.port)
        self.cut_start, self.cut_after, self.mode = cut_at_range_start, cut_after, mode
        self.armed = True
        self.body_bytes_delivered = 0  # of range responses
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_head(s: socket.socket) -> tuple[bytes, bytes]:
        buf = b""
        while b"\r\n\r\n" not in buf:
            got = s.recv(65536)
            if not got:
                break
            buf += got
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n", rest

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(60)
        with client, socket.create_connection(self.upstream, timeout=60) as up:
            req, rest = self._read_head(client)
            up.sendall(req + rest)
            start = None
            for line in req.split(b"\r\n"):
                if line.lower().startswith(b"range: bytes="):
                    start = int(line.split(b"=")[1].split(b"-")[0])
            head, body = self._read_head(up)
            client.sendall(head)
            fault = self.armed and start == self.cut_start
            if fault:
                self.armed = False
            sent = 0
            while True:
                if fault and self.mode == "drop" and sent + len(body) >= self.cut_after:
                    body = body[: self.cut_after - sent]
                    client.sendall(body)
                    self.body_bytes_delivered += len(body) if start is not None else 0
                    client.shutdown(socket.SHUT_RDWR)
                    return
                if fault and self.mode == "flip" and sent <= self.cut_after < sent + len(body):
                    i = self.cut_after - sent
                    body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1 :]
                client.sendall(body)
                self.body_bytes_delivered += len(body) if start is not None else 0
                sent += len(body)
                body = up.recv(65536)
                if not body:
                    return

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


def test_resume_after_a_dropped_connection_fetches_only_the_missing_bytes(site):
    m, data, log = site["manifest"], site["data"], site["log"]
    lod2 = m["lods"][1]
    cut = lod2["length"] // 3
    proxy = FlakyProxy(site["url"], lod2["offset"], cut)
    try:
        log.clear()
        c = StreamClient(proxy.url + "bare.progs", backoff=0.01)
        lods = [lod for lod, _, _ in c.iter_lods()]
        assert lods == [1, 2, 3, 4] and bytes(c.data) == data
        assert not proxy.armed and c.stats.retries == 1
        # the retry asked for exactly the rest of LoD 2
        ranges = [e["range"] for e in log if e["path"] == "/bare.progs"]
        assert f"bytes={lod2['offset']}-{lod2['cumulative_bytes'] - 1}" in ranges
        assert f"bytes={lod2['offset'] + cut}-{lod2['cumulative_bytes'] - 1}" in ranges
        # every byte of the stream crossed the wire once
        assert proxy.body_bytes_delivered == len(data) == c.stats.bytes_received
    finally:
        proxy.close()


def test_chunk_damaged_in_transit_is_refetched(site):
    m, data = site["manifest"], site["data"]
    lod3 = m["lods"][2]
    proxy = FlakyProxy(site["url"], lod3["offset"], lod3["length"] // 2, mode="flip")
    try:
        c = StreamClient(proxy.url + "scene.progs")
        assert [lod for lod, _, _ in c.iter_lods()] == [1, 2, 3, 4]
        assert bytes(c.data) == data and c.stats.retries == 1 and not proxy.armed
    finally:
        proxy.close()


def test_too_many_drops_fail_with_one_line(site):
    m = site["manifest"]

    class AlwaysDrop(FlakyProxy):
        def _handle(self, client):  # accept and hang up immediately
            client.close()

    proxy = AlwaysDrop(site["url"], m["lods"][0]["offset"], 0)
    try:
        with pytest.raises(ProgsError, match="connection failed 3 times") as ei:
            StreamClient(proxy.url + "scene.progs", retries=2, backoff=0.01).plan()
        assert "\n" not in str(ei.value)
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------- progs fetch
def test_cli_fetch_writes_a_valid_prefix(site, tmp_path, capsys):
    m = site["manifest"]
    budget = m["lods"][1]["cumulative_bytes"] + 100
    out = tmp_path / "part.progs"
    assert main(["fetch", site["url"] + "scene.progs", "--max-bytes", str(budget), "--out", str(out)]) == 0
    got = out.read_bytes()
    assert got == site["data"][: m["lods"][1]["cumulative_bytes"]]
    res = decode(got)
    assert res.lods_decoded == 2 and res.lods_in_stream == 4
    text = capsys.readouterr().out
    assert "LoD 2:" in text and "LoD 3:" not in text


def test_cli_fetch_ply(site, tmp_path, capsys):
    out = tmp_path / "scene.ply"
    rc = main(
        [
            "fetch",
            site["url"] + "scene.progs",
            "--max-lod",
            "3",
            "--out",
            str(out),
            "--distill",
            "10",
            "--distill-size",
            "24",
        ]
    )
    from progs.io.ply import read_ply

    assert rc == 0 and len(read_ply(out)) > 0


def test_cli_fetch_errors(site, tmp_path, capsys):
    assert main(["fetch", site["url"] + "scene.progs", "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["fetch", site["url"] + "scene.progs", "--max-bytes", "100", "--out", str(tmp_path / "x.progs")]) == 2
    assert main(["fetch", site["url"] + "none.progs", "--out", str(tmp_path / "x.progs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("progs: error: ") for line in err)
    assert not (tmp_path / "x.progs").exists()


def test_multiple_ranges_get_the_whole_file(site):
    st, h, body = _raw(site["url"], "/scene.progs", {"Range": "bytes=0-1,5-6"})
    assert st == 200 and body == site["data"]


def test_cli_serve_runs_until_stopped(site):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "progs", "serve", str(site["dir"]), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_default,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving ") and " at http://127.0.0.1:" in line, line
        url = line.split(" at ")[1].split()[0]
        listed = proc.stdout.readline()
        assert listed.strip().startswith(url + "bare.progs")
        c = StreamClient(url + "scene.progs", max_lod=1)
        assert [lod for lod, _, _ in c.iter_lods()] == [1]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(300)  # only for a server that hangs; it stops at once
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert proc.returncode in (0, 130)
