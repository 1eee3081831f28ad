"""Rasterizer benchmark: forward and forward+backward time and peak memory per backend and size.

``run_raster_bench(out_dir, quick=False)`` writes ``out_dir/raster.json``: a list of rows
``{"gaussians", "width", "height", "backend", "fwd_s", "fwd_bwd_s", "peak_mb", "ratio_vs_reference",
"baseline_mb", "loadavg_1m", "note"}``.

* Each (size, backend) runs in a fresh process (``multiprocessing`` spawn), so ``peak_mb`` is that
  process's honest peak RSS (``ru_maxrss``: interpreter, torch, scene and rendering together) and
  ``baseline_mb`` the peak just before the first render (after imports and scene creation).
  ``loadavg_1m`` is the machine's load average when the row finished: timings taken while other
  processes compete for the cores are not comparable (OpenMP threads suffer most from that).
* Times are medians over a few repetitions after one warm-up (which also loads the compiled kernel);
  the forward is timed with grad-enabled inputs, as in training, and the backward is that of a fixed
  random linear functional of the image. Both include the PyTorch projection.
* The dense reference needs about 64 bytes per (pixel, Gaussian) pair with autograd, so it only runs
  where that fits (a smaller extra scene is added so that ``ratio_vs_reference`` = reference fwd_bwd_s
  / this fwd_bwd_s has a measured point); elsewhere its row has null times and a note.
* Scenes are random but realistic: Gaussians in front of the camera filling the frustum, pixel-space
  sigmas log-normal around 2 px (3-sigma radii of a few to tens of pixels), sigmoid-normal opacities.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from progs.scene import Camera

REF_BYTES_PER_PAIR = 64  # measured peak of the dense reference with autograd, per (pixel, Gaussian)
REF_MEMORY_LIMIT = 6 * 1024**3


def random_scene(n: int, width: int, height: int, seed: int = 0) -> tuple[list[torch.Tensor], Camera]:
    """(means, quats, scales, opacities, colors) and a camera looking down +z at them."""
    g = torch.Generator().manual_seed(seed)
    f = float(width)
    cam = Camera(width, height, fx=f, fy=f, cx=width / 2, cy=height / 2, world_to_camera=torch.eye(4))
    z = torch.rand(n, generator=g) * 4 + 2
    uv = torch.rand(n, 2, generator=g) * torch.tensor([width * 1.1, height * 1.1]) - torch.tensor(
        [width * 0.05, height * 0.05]
    )
    xy = (uv - torch.tensor([cam.cx, cam.cy])) / f * z[:, None]
    means = torch.cat([xy, z[:, None]], dim=1)
    sigma_px = torch.exp(torch.randn(n, 1, generator=g) * 0.4 + torch.randn(n, 3, generator=g) * 0.3)
    sigma_px = sigma_px * 2.0 * (width / 128)  # same image-relative footprint at every resolution
    scales = sigma_px * z[:, None] / f
    quats = torch.randn(n, 4, generator=g)
    opacities = torch.sigmoid(torch.randn(n, generator=g))
    colors = torch.rand(n, 3, generator=g)
    return [means, quats, scales, opacities, colors], cam


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _measure(n: int, width: int, height: int, backend: str, reps: int) -> dict[str, Any]:
    """Runs in a fresh process: time one configuration and report its peak RSS."""
    from progs.render import cpu, rasterize

    if backend == "cpu" and not cpu.kernel_available():
        return {"note": f"C++ kernel unavailable: {cpu._state['error']}"}
    params, cam = random_scene(n, width, height)
    w = torch.randn(height, width, 3, generator=torch.Generator().manual_seed(1))
    baseline = _maxrss_mb()

    def fwd() -> tuple[list[torch.Tensor], torch.Tensor]:
        ps = [p.clone().requires_grad_(True) for p in params]
        img, _, _ = rasterize(*ps, cam, backend=backend)
        return ps, img

    def fwd_bwd() -> None:
        _, img = fwd()
        (img * w).sum().backward()

    fwd_bwd()  # warm-up: loads the kernel, starts the thread pool, faults in the allocator's pages
    t_fwd, t_all = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fwd()
        t_fwd.append(time.perf_counter() - t0)
        del out
        t0 = time.perf_counter()
        fwd_bwd()
        t_all.append(time.perf_counter() - t0)
    return {
        "fwd_s": statistics.median(t_fwd),
        "fwd_bwd_s": statistics.median(t_all),
        "peak_mb": round(_maxrss_mb(), 1),
        "baseline_mb": round(baseline, 1),
        "note": None,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def _run_isolated(n: int, width: int, height: int, backend: str, reps: int) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as ex:
        return ex.submit(_measure, n, width, height, backend, reps).result()


def run_raster_bench(out_dir: Path, quick: bool = False) -> list[dict[str, Any]]:
    """Benchmark the cpu and reference backends; writes ``out_dir/raster.json`` and returns its rows."""
    sizes = (
        [(20_000, 128, 128)]
        if quick
        else [(20_000, 128, 128), (20_000, 256, 256), (100_000, 128, 128), (100_000, 256, 256)]
    )
    # A scene small enough for the dense reference, so that one ratio is measured, not guessed.
    ref_size = (1_000, 128, 128) if quick else (2_000, 128, 128)
    rows: list[dict[str, Any]] = []
    for n, w, h in [ref_size, *sizes]:
        ref_need = REF_BYTES_PER_PAIR * n * w * h
        ref_row: dict[str, Any] = {"gaussians": n, "width": w, "height": h, "backend": "reference"}
        if ref_need <= REF_MEMORY_LIMIT:
            ref_row.update(_run_isolated(n, w, h, "reference", reps=1))
        else:
            ref_row.update(
                {
                    "fwd_s": None,
                    "fwd_bwd_s": None,
                    "peak_mb": None,
                    "baseline_mb": None,
                    "note": f"skipped: the dense reference would need ~{ref_need / 1024**3:.0f} GB",
                }
            )
        cpu_row: dict[str, Any] = {"gaussians": n, "width": w, "height": h, "backend": "cpu"}
        cpu_row.update(_run_isolated(n, w, h, "cpu", reps=3 if quick else 5))
        for row in (cpu_row, ref_row):
            for key in ("fwd_s", "fwd_bwd_s", "peak_mb", "baseline_mb", "loadavg_1m"):
                row.setdefault(key, None)
            ref_t, t = ref_row.get("fwd_bwd_s"), row.get("fwd_bwd_s")
            row["ratio_vs_reference"] = round(ref_t / t, 2) if ref_t is not None and t is not None and t > 0 else None
            rows.append(row)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = [
        "gaussians",
        "width",
        "height",
        "backend",
        "fwd_s",
        "fwd_bwd_s",
        "peak_mb",
        "ratio_vs_reference",
        "baseline_mb",
        "loadavg_1m",
        "note",
    ]
    rows = [{k: r.get(k) for k in keys} for r in rows]
    for r in rows:
        for k in ("fwd_s", "fwd_bwd_s"):
            if r[k] is not None and math.isfinite(r[k]):
                r[k] = round(r[k], 5)
    (out_dir / "raster.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows
