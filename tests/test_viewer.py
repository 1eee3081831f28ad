"""The progressive viewer (viser): LoDs appear in order, the slider goes back to coarser LoDs, a byte
budget limits what is shown; and (slow) headless Chromium renders the page with WebGL."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch

from progs.codec.stream import encode
from progs.stream.manifest import build_manifest, lods_within, write_manifest
from progs.stream.server import start_server
from test_codec import _random_model
from conftest import sigint_as_default

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--headless=new",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Waits end as soon as their event happens; the limits are only for a viewer or browser that hangs, with
# room for a machine several times slower than usual (tests share CI's two cores with other jobs).
WATCHDOG_S = 300


@pytest.fixture(scope="module")
def stream_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("view")
    model, ctx = _random_model(600)
    res = encode(model, background=torch.tensor([0.0, 0.0, 0.0]))
    (d / "scene.progs").write_bytes(res.data)
    manifest = build_manifest(res, "scene.progs")
    write_manifest(d / "scene.progs.json", manifest)
    return d, manifest


@pytest.fixture
def viewer_factory():
    from progs.stream.viewer import ProgressiveViewer

    made = []

    def make(source, **kw):
        v = ProgressiveViewer(source, port=0, **kw).start()
        made.append(v)
        return v

    yield make
    for v in made:
        v.stop()


def test_local_file_streams_every_lod_in_order_and_slider_goes_back(stream_dir, viewer_factory):
    d, m = stream_dir
    v = viewer_factory(str(d / "scene.progs"))
    assert v.wait(WATCHDOG_S) and v.error is None
    assert sorted(v.lods) == [1, 2, 3, 4] and v.shown == 4
    assert [lod for _, lod in v.history] == [1, 2, 3, 4]
    for e in m["lods"]:
        sp = v.lods[e["lod"]]
        assert sp.anchors == e["anchors_cumulative"] and sp.bytes == e["cumulative_bytes"]
        assert len(sp) > 0 and np.isfinite(sp.centers).all() and np.isfinite(sp.covariances).all()
        assert sp.covariances.shape == (len(sp), 3, 3) and sp.opacities.shape == (len(sp), 1)
        assert 0 <= sp.rgbs.min() and sp.rgbs.max() <= 1
    assert len(v.lods[1]) < len(v.lods[4])
    assert v.status_text().startswith("**LoD 4 / 4**") and "done" in v.status_text()
    v.select_lod(2)
    assert v.shown == 2 and "**LoD 2 / 4**" in v.status_text() and "received up to LoD 4" in v.status_text()
    v.select_lod(4)
    assert v.shown == 4


def test_url_with_budget_shows_only_the_lods_that_fit(stream_dir, viewer_factory):
    d, m = stream_dir
    url, stop = start_server(d)
    try:
        budget = m["lods"][2]["cumulative_bytes"] - 1
        v = viewer_factory(url + "scene.progs", max_bytes=budget, bandwidth=m["total_bytes"] / 1.0)
        assert v.wait(WATCHDOG_S) and v.error is None
        assert sorted(v.lods) == list(range(1, lods_within(m, budget) + 1)) == [1, 2]
        # LoD 1 was on screen before LoD 2 arrived
        assert [lod for _, lod in v.history] == [1, 2] and v.history[0][0] < v.history[1][0]
        assert v.status_text().startswith("**LoD 2 / 4**")
    finally:
        stop()


def test_missing_source_is_reported_in_the_page(viewer_factory, tmp_path):
    v = viewer_factory(str(tmp_path / "nothing.progs"))
    assert v.wait(WATCHDOG_S)
    assert v.error and "no such file" in v.error and "no such file" in v.status_text()


def _launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WATCHDOG_S * 1000)


def _screenshot(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64)


def _centre_spread(img: np.ndarray) -> float:
    centre = img[200:500, 200:600]  # the splats, away from the GUI panel in the top right corner
    return float(centre.std(axis=(0, 1)).mean())


def _splats_drawn(page, shot) -> bool:
    page.screenshot(path=str(shot))
    return _centre_spread(_screenshot(shot)) > 5.0


@pytest.mark.slow
def test_headless_chromium_renders_the_finest_lod(stream_dir, viewer_factory, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    d, m = stream_dir
    url, stop = start_server(d)
    try:
        v = viewer_factory(url + "scene.progs", bandwidth=m["total_bytes"] / 2.0)  # LoDs arrive over ~2 s
        with sync_api.sync_playwright() as p:
            browser = _launch(p)
            try:
                page = browser.new_page(viewport={"width": 800, "height": 600})
                console: list[str] = []
                page.on("console", lambda msg: console.append(msg.text))
                page.goto(v.url, timeout=WATCHDOG_S * 1000)
                page.get_by_text("LoD 4 / 4").first.wait_for(timeout=WATCHDOG_S * 1000)
                assert v.wait(WATCHDOG_S) and v.error is None
                page.add_style_tag(content=".mantine-Notifications-root { display: none !important; }")
                shot = tmp_path / "viewer.png"
                # the software (SwiftShader) WebGL renderer takes a few frames, more on a busy machine
                deadline = time.monotonic() + WATCHDOG_S
                while not _splats_drawn(page, shot) and time.monotonic() < deadline:
                    time.sleep(1.0)
                webgl = [c for c in console if c.startswith("WebGL support")]
                # back to LoD 1 through the same slider the user drags
                v.select_lod(1)
                page.get_by_text("LoD 1 / 4").first.wait_for(timeout=WATCHDOG_S * 1000)
            finally:
                browser.close()
    finally:
        stop()
    img = _screenshot(shot)
    assert img.shape == (600, 800, 3)
    assert _centre_spread(img) > 5.0, (_centre_spread(img), webgl)
    assert any("contextCreationFailed: false" in c for c in webgl) or not webgl


def test_cli_view_announces_each_lod_and_stops_on_ctrl_c(stream_dir):
    import signal
    import subprocess
    import sys

    d, _ = stream_dir
    proc = subprocess.Popen(
        [sys.executable, "-m", "progs", "view", str(d / "scene.progs"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_default,
    )
    lines = []
    # No deadline on progress (a busy machine decodes slowly): read until LoD 4 or the end of output;
    # the watchdog only ends a viewer that hangs for good.
    watchdog = threading.Timer(WATCHDOG_S, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("LoD 4:"):
                break
        assert any(x.startswith("viewer at http://127.0.0.1:") for x in lines), lines
        assert [x.split(":")[0] for x in lines if x.startswith("LoD ")] == ["LoD 1", "LoD 2", "LoD 3", "LoD 4"]
    finally:
        watchdog.cancel()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(WATCHDOG_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130, "".join(lines) + (proc.stdout.read() if proc.stdout else "")
