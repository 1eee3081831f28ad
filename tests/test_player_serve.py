"""`progs serve` and `progs view` serve the web player next to streams (the browser itself is tested
in web/test/player.test.mjs): /player.html and its scripts, the stream with Range requests, a clear
line when the player is not built, and Ctrl-C ends `progs view` cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest
import torch

from conftest import sigint_as_default
from progs.codec.stream import encode
from progs.stream import server
from progs.stream.server import PLAYER_DIR, PLAYER_FILES, player_url, start_server
from test_codec import _random_model

needs_player = pytest.mark.skipif(
    not (PLAYER_DIR / "player.html").is_file(), reason="web player not built (cd web && npm ci && npm run build)"
)


@pytest.fixture(scope="module")
def stream_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    model, _ = _random_model(300)
    (d / "scene.progs").write_bytes(encode(model, background=torch.zeros(3)).data)
    return d


def _get(url: str, headers: dict | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as r:
        return r.status, dict(r.headers), r.read()


@needs_player
def test_serve_gives_the_player_and_ranges_of_the_stream(stream_dir):
    url, stop = start_server(stream_dir)
    try:
        for name in PLAYER_FILES:
            status, headers, body = _get(url + name)
            assert status == 200 and body == (PLAYER_DIR / name).read_bytes()
        status, _, body = _get(url + "player.html")
        assert b"progs-player.js" in body
        status, headers, body = _get(url + "scene.progs", {"Range": "bytes=0-19"})
        assert status == 206 and body == (stream_dir / "scene.progs").read_bytes()[:20]
    finally:
        stop()


def test_a_folders_own_file_wins_over_the_player(stream_dir, tmp_path):
    (tmp_path / "player.html").write_text("mine")
    url, stop = start_server(tmp_path)
    try:
        assert _get(url + "player.html")[2] == b"mine"
    finally:
        stop()


def test_an_unbuilt_player_is_one_clear_line(stream_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(server, "PLAYER_DIR", tmp_path / "nowhere")
    from progs.errors import ProgsError

    with pytest.raises(ProgsError, match="the web player is not built.*npm run build"):
        server.player_file("player.html")
    url, stop = start_server(stream_dir)
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(url + "player.html")
        assert e.value.code == 404 and b"npm run build" in e.value.read()
    finally:
        stop()


def test_player_url_carries_the_budget():
    assert (
        player_url("http://h:1/", "a b.progs", 1000, 2) == "http://h:1/player.html?src=a+b.progs&maxBytes=1000&maxLod=2"
    )
    assert player_url("http://h:1/", "https://cdn.example/s.progs") == (
        "http://h:1/player.html?src=https://cdn.example/s.progs"
    )


@needs_player
def test_view_serves_the_stream_and_stops_on_ctrl_c(stream_dir):
    p = subprocess.Popen(
        [sys.executable, "-m", "progs", "view", str(stream_dir / "scene.progs"), "--port", "0", "--no-open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_default,
    )
    try:
        line = p.stdout.readline()  # blocks until the server is up (or the command failed)
        assert line.startswith("playing ") and "player.html?src=scene.progs" in line, line
        page = line.split(" at ", 1)[1].split(" ")[0]
        assert b"progs-player.js" in _get(page)[2]
        base = page.split("player.html")[0]
        assert _get(base + "scene.progs", {"Range": "bytes=0-9"})[0] == 206
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
    assert p.returncode == 130 and "Traceback" not in err, err


def test_view_of_a_missing_file_is_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "progs", "view", str(tmp_path / "nope.progs"), "--no-open"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if not (PLAYER_DIR / "player.html").is_file():
        assert "not built" in r.stderr
    else:
        assert r.stderr.strip().splitlines() == [f"progs: error: {tmp_path / 'nope.progs'}: no such stream file"]
    assert r.returncode == 2
