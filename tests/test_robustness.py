"""Crash safety, determinism and a bounded load test of the server."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from progs.codec.stream import encode
from progs.io.demo_scene import load_demo_scene
from progs.stream.server import start_server
from progs.train.trainer import TrainConfig, Trainer
from conftest import sigint_as_default


def _tiny_stream(seed: int) -> bytes:
    scene = load_demo_scene(views=10, size=24)
    tr = Trainer(scene, TrainConfig().replace(iterations=40, seed=seed, interval=10, c2f_coarse_samples=1))
    tr.train(progress=False)
    return encode(tr.model, background=scene.background).data


@pytest.mark.slow
def test_same_seed_gives_the_same_stream_bytes():
    a = _tiny_stream(3)
    b = _tiny_stream(3)
    assert a == b
    assert _tiny_stream(4) != a


@pytest.mark.slow
def test_ctrl_c_during_training_leaves_no_partial_files_and_resumes(tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "progs",
        "train",
        "demo",
        "--out",
        str(run),
        "--demo-views",
        "12",
        "--demo-size",
        "32",
        "--iterations",
        "100000",
        "--checkpoint-every",
        "5",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_default
    )
    try:
        deadline = time.time() + 600  # only for a training that never checkpoints
        while time.time() < deadline and not (run / "checkpoint.pt").exists():
            time.sleep(0.2)
        assert (run / "checkpoint.pt").exists(), "no checkpoint appeared"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=600)
    finally:  # a failed wait must not leave a 100,000-iteration training running
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, err
    assert "interrupted at iteration" in err and "Traceback" not in err
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    done = state["iteration"]
    assert done > 0
    res = subprocess.run(
        [*cmd[:-4], "--iterations", str(done + 3), "--resume"], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    assert f"resuming {run} at iteration {done}" in res.stdout


@pytest.mark.slow
def test_server_under_concurrent_load_serves_every_byte(tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "scene.progs").write_bytes(data)
    base, stop = start_server(tmp_path, "127.0.0.1", 0)
    url = f"{base}/scene.progs"
    errors: list[str] = []
    lock = threading.Lock()

    def client(seed: int) -> int:
        rng = random.Random(seed)
        ok = 0
        for _ in range(100):
            a = rng.randrange(len(data))
            b = min(len(data) - 1, a + rng.randrange(1, 20_000))
            req = urllib.request.Request(url, headers={"Range": f"bytes={a}-{b}"})
            with urllib.request.urlopen(req, timeout=120) as r:
                body = r.read()
                if r.status != 206 or body != data[a : b + 1]:
                    with lock:
                        errors.append(f"{a}-{b}: status {r.status}, {len(body)} bytes")
                else:
                    ok += 1
        return ok

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=50) as pool:
            served = sum(pool.map(client, range(50), timeout=1200))
        elapsed = time.perf_counter() - t0
    finally:
        stop()
    print(f"served {served} range requests from 50 clients in {elapsed:.1f} s")
    assert errors == []
    assert served == 50 * 100
