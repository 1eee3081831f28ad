"""The GPU check: train a real capture on a device, code it, decode every prefix, and a memory scale test.

    python scripts/gpu_check.py DATASET [--device cuda] [--json OUT.json]   (scripts/gpu_check.sh runs it)
    python scripts/gpu_check.py --smoke --device cpu                         (seconds, on any machine)

1. ``fox``: train DATASET (default ``gpu_data/fox``) at ``--downscale`` 2 for ``--iterations`` 7,000 with
   L = ``--levels`` 5 on ``--device``, encode it (on the CPU, as always), decode every prefix (header +
   LoD 1..k) and measure it on the test views. Reports iterations/s, peak device memory, anchors, bytes
   and PSNR per LoD. With ``--train-seconds S`` the iteration count is sized to fit S seconds first:
   a probe times ``--probe-steps`` steps of the heaviest stage (every LoD rendered, quantisation noise,
   the entropy term, InfoNCE when on) and the run gets ``min(--iterations, 0.85 * S * probe rate)``, rounded
   down to a multiple of 100 (a lent GPU has minutes, not the ~12 a full run may need).
   ``--stream-out`` keeps a copy of the stream (to decode it on another machine).
2. ``memory``: a synthetic scene of about ``--memory-anchors`` 500,000 anchors (on a sphere, strict
   octree of L levels) seen by ``--memory-size`` 1024² (~1 MP) cameras, trained for
   ``--memory-iterations`` steps through every stage (noise, entropy, InfoNCE, quantization), reporting
   the peak device memory against ``--memory-target-gib`` 40.
3. ``spz``: plain 3DGS fits of the same scene on the same device at ``--spz-caps`` model sizes
   (smallest first; no fit starts after ``--spz-seconds``), each stored as SPZ (gsply) and scored as it
   reads back on the same test views, and the BD-rate of the fox stream's prefixes against that SPZ
   curve. It runs last, so that a fit running out of time loses nothing else.

``--verify STREAM --against JSON`` decodes a stream written by a GPU run on this machine's CPU, every
prefix, and compares its per-LoD PSNR with the PSNR the GPU run measured (the acceptance: within
0.05 dB).

``--smoke`` shrinks both to a tiny demo scene and a few thousand anchors, so the CPU test suite runs
this script end to end (tests/test_gpu_check.py). Every figure printed is measured by this run; the
JSON (``--json``) is rewritten after each part, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from progs.atomic import write_bytes_atomic
from progs.bench.common import write_json
from progs.device import resolve_device
from progs.io.dataset import DatasetSpec
from progs.octree import complete_upward
from progs.pipeline import encode_run, evaluate_stream, train_run
from progs.scene import Camera, Scene, View
from progs.train import TrainConfig, Trainer
from progs.train.trainer import build_grid

Log = Callable[[str], None]
GIB = float(1 << 30)


# ------------------------------------------------------------------------------------------ memory


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak memory since :func:`reset_peak_memory`: the device's (CUDA) or the process's resident set (CPU,
    the whole process's peak so far)."""
    if device.type == "cuda":
        synchronize(device)
        return {
            "peak_allocated_gib": torch.cuda.max_memory_allocated(device) / GIB,
            "peak_reserved_gib": torch.cuda.max_memory_reserved(device) / GIB,
        }
    return {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}


def machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / GIB, 1),
            multiprocessors=props.multi_processor_count,
        )
        try:
            import gsplat

            info["gsplat"] = gsplat.__version__
        except ImportError:
            info["gsplat"] = None
    return info


# ------------------------------------------------------------------------------ 1. a real capture


# The probe times the heaviest stage, so whole runs average faster (H200, fox: probe 17.4 / 15.3 it/s, runs
# 21.5 / 20.0 it/s); the factor is kept for scenes whose anchor count grows well beyond the initial set.
PROBE_SAFETY = 0.85


def probe_rate(scene: Scene, cfg: TrainConfig, device: torch.device, steps: int, warmup: int = 10) -> float:
    """Iterations per second of ``cfg``'s heaviest stage: a throwaway trainer started at the entropy
    stage (every LoD rendered, noise, L_e, InfoNCE when on, gradient statistics), timed after ``warmup`` steps."""
    trainer = Trainer(scene, cfg, device)
    trainer.iteration = trainer.stages.entropy_start
    warmup = min(warmup, max(0, steps - 1))
    t = time.perf_counter()
    for i in range(steps):
        if i == warmup:
            synchronize(device)
            t = time.perf_counter()
        trainer.step()
    synchronize(device)
    rate = (steps - warmup) / max(time.perf_counter() - t, 1e-9)
    del trainer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rate


def sized_iterations(train_seconds: float, rate: float, cap: int, floor: int = 300) -> int:
    """The iteration count that fits ``train_seconds`` at ``PROBE_SAFETY`` times the probed ``rate``
    (a multiple of 100, the growth interval), at most ``cap`` and at least ``min(floor, cap)``."""
    fit = int(PROBE_SAFETY * train_seconds * rate) // 100 * 100
    return max(min(floor, cap), min(cap, fit))


def load_scene(dataset: str, downscale: float, demo_size: int) -> tuple[DatasetSpec, Scene, float]:
    """``(spec, scene, seconds to load)`` of ``dataset`` at ``downscale``."""
    t0 = time.perf_counter()
    spec = DatasetSpec.from_argument(
        dataset, downscale=downscale, **({"views": 12, "size": demo_size} if dataset == "demo" else {})
    )
    scene = spec.load()
    return spec, scene, time.perf_counter() - t0


def fox_check(
    dataset: str,
    spec: DatasetSpec,
    scene: Scene,
    load_s: float,
    *,
    downscale: float,
    iterations: int,
    levels: int,
    c2f_samples: int | None,
    device: torch.device,
    workdir: Path,
    log: Log,
    train_seconds: float | None = None,
    probe_steps: int = 100,
    stream_out: Path | None = None,
) -> dict[str, Any]:
    """Train, encode, decode every prefix; the figures of one run on ``dataset``."""
    cam = scene.train_views[0].camera
    options: dict[str, Any] = {"iterations": iterations, "levels": levels, "seed": 0}
    if c2f_samples is not None:
        options["c2f_coarse_samples"] = c2f_samples
    probe: dict[str, Any] | None = None
    if train_seconds is not None:
        t_probe = time.perf_counter()
        rate = probe_rate(scene, TrainConfig().replace(**options), device, probe_steps)
        sized = sized_iterations(train_seconds, rate, iterations)
        probe = {
            "train_seconds": train_seconds,
            "steps": probe_steps,
            "iterations_per_s": round(rate, 2),
            "safety": PROBE_SAFETY,
            "iterations": sized,
            "probe_s": round(time.perf_counter() - t_probe, 2),
        }
        log(
            f"[fox] probe: {rate:.1f} it/s in the heaviest stage -> {sized} iterations to fit {train_seconds:.0f} s "
            f"(asked for at most {iterations})"
        )
        options["iterations"] = iterations = sized
    log(
        f"[fox] {scene.name}: {len(scene.train_views)} train / {len(scene.test_views)} test views at "
        f"{cam.width}x{cam.height} (loaded in {load_s:.1f} s); {iterations} iterations, L = {levels}, on {device}"
    )
    cfg = TrainConfig().replace(**options)
    run = workdir / "fox_run"
    reset_peak_memory(device)
    trained = train_run(scene, spec, run, cfg, checkpoint_every=0, progress=False, log=log, device=device)
    memory = peak_memory(device)
    t1 = time.perf_counter()
    enc = encode_run(run, workdir / "fox.progs", evaluate=False, scene=scene, log=log)
    encode_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    rows = evaluate_stream(enc.result.data, scene, source=str(enc.stream), prefixes=True, device=device)
    decode_eval_s = time.perf_counter() - t2
    if stream_out is not None:
        write_bytes_atomic(stream_out, enc.result.data)
    lods = []
    for row, ckpt in zip(rows, trained.lods):
        lods.append(
            {
                "lod": row["lod"],
                "anchors": ckpt["anchors"],
                "chunk_bytes": row["bytes"],
                "cumulative_bytes": row["cumulative_bytes"],
                "psnr_prefix": row["psnr"],
                "ssim_prefix": row["ssim"],
                "psnr_checkpoint": ckpt["psnr"],
                "psnr_float": ckpt["psnr_float"],
            }
        )
    return {
        "dataset": str(dataset),
        "spec": spec.to_json(),
        "downscale": downscale,
        "width": cam.width,
        "height": cam.height,
        "train_views": len(scene.train_views),
        "test_views": len(scene.test_views),
        "iterations": trained.iterations,
        "levels": levels,
        "c2f_coarse_samples": c2f_samples,
        "probe": probe,
        "load_s": round(load_s, 2),
        "train_s": round(trained.seconds, 2),
        "iterations_per_s": round(trained.iterations / max(trained.seconds, 1e-9), 2),
        **{k: round(v, 3) for k, v in memory.items()},
        "total_bytes": len(enc.result.data),
        "header_bytes": enc.result.header_bytes,
        "stream_sha256": hashlib.sha256(enc.result.data).hexdigest(),
        "encode_s": round(encode_s, 2),
        "decode_prefixes_and_eval_s": round(decode_eval_s, 2),
        "lods": lods,
    }


def print_fox(res: dict[str, Any], log: Log) -> None:
    mem = ", ".join(f"{k} {v:.2f} GiB" for k, v in res.items() if k.startswith("peak_"))
    log(f"[fox] {res['iterations']} iterations in {res['train_s']:.1f} s = {res['iterations_per_s']:.2f} it/s; {mem}")
    log(
        f"[fox] stream {res['total_bytes']:,} bytes (header {res['header_bytes']:,}); encode {res['encode_s']:.1f} s, "
        f"decode every prefix + evaluate {res['decode_prefixes_and_eval_s']:.1f} s"
    )
    log(f"{'LoD':>3} {'anchors':>9} {'chunk B':>10} {'received B':>11} {'PSNR prefix':>12} {'PSNR float':>11}")
    for r in res["lods"]:
        log(
            f"{r['lod']:>3} {r['anchors']:>9,} {r['chunk_bytes']:>10,} {r['cumulative_bytes']:>11,} "
            f"{r['psnr_prefix']:>12.2f} {r['psnr_float']:>11.2f}"
        )


# ------------------------------------------------------------------- 2. SPZ of plain 3DGS, same views


def spz_check(
    scene: Scene,
    fox: dict[str, Any] | None,
    *,
    caps: list[int],
    iterations: int,
    seconds: float,
    device: torch.device,
    workdir: Path,
    log: Log,
) -> dict[str, Any]:
    """Plain 3DGS fits of ``scene`` on ``device``, capped at ``caps`` Gaussians (smallest first, while
    ``seconds`` last), each stored as SPZ and scored as it reads back on the test views; with the fox run's
    report, the BD-rate of progs' progressive curve (bytes received vs PSNR, one point per LoD) against
    the SPZ curve."""
    from progs.bench.baseline_3dgs import Fit3DGSConfig, fit_3dgs, spz_quality
    from progs.bench.common import bd_rate

    try:  # SPZ goes through gsply (and numba): a machine without them skips this part, not the others
        import gsply  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        log(f"[spz] skipped: gsply does not import here ({type(exc).__name__}: {exc})")
        return {"error": f"gsply does not import: {type(exc).__name__}: {exc}", "fits": []}
    deadline = time.monotonic() + seconds
    views = scene.test_views or scene.train_views
    rows: list[dict[str, Any]] = []
    skipped: list[int] = []
    for cap in sorted(caps):
        if time.monotonic() >= deadline:
            skipped.append(cap)
            continue
        fit = fit_3dgs(scene, Fit3DGSConfig(iterations=iterations, seed=0, max_gaussians=cap), device)
        spz_bytes, spz_psnr, spz_ssim = spz_quality(
            fit.cloud, workdir / f"fit_{cap}.spz", views, scene.background.float(), device
        )
        rows.append(
            {
                "cap": cap,
                "gaussians": len(fit.cloud),
                "iterations": iterations,
                "train_s": round(fit.seconds, 2),
                "bytes": spz_bytes,
                "psnr": spz_psnr,
                "ssim": spz_ssim,
                "psnr_fit": fit.psnr,
            }
        )
        log(
            f"[spz] plain 3DGS <= {cap:,} Gaussians ({len(fit.cloud):,}), {iterations} iterations in {fit.seconds:.0f} s: "
            f"SPZ {spz_bytes:,} B at {spz_psnr:.2f} dB"
        )
    res: dict[str, Any] = {"fits": rows, "skipped_caps": skipped, "seconds": seconds}
    if fox and rows:
        progs = [(r["cumulative_bytes"], r["psnr_prefix"]) for r in fox["lods"]]
        bd = bd_rate([(r["bytes"], r["psnr"]) for r in rows], progs)
        res["bd_rate_progressive_vs_spz_percent"] = None if bd is None else round(bd, 2)
        res["note"] = (
            "progs points: the fox stream's prefixes (header + LoD 1..k); negative: progs needs fewer "
            "bytes than SPZ at equal PSNR; None: the PSNR ranges do not overlap"
        )
        log(f"[spz] BD-rate of progs' prefixes against the SPZ curve: {res['bd_rate_progressive_vs_spz_percent']} %")
    return res


# ---------------------------------------------------------------------------- 3. memory at scale


def sphere_points(count: int, gen: torch.Generator, radius: float = 0.6) -> torch.Tensor:
    """``count`` points on a sphere of ``radius`` around the origin (a surface, like a captured scene)."""
    p = torch.randn(count, 3, generator=gen, dtype=torch.float64)
    return radius * p / p.norm(dim=1, keepdim=True)


def points_for_anchor_count(
    target: int, levels: int, base_depth: int, gen: torch.Generator, tries: int = 8
) -> tuple[torch.Tensor, int]:
    """Sphere points whose voxels at level L, completed with all their ancestors, make about ``target``
    anchors (within 2 %); returns the points and that anchor count."""
    count, points, anchors = max(1, target // 2), torch.zeros(0, 3), 0
    for _ in range(tries):
        points = sphere_points(count, gen)
        grid = build_grid(_bare_scene(points), levels, base_depth)
        keys = grid.voxel_of(points, levels)
        anchors = complete_upward(keys, torch.full((keys.shape[0],), levels, dtype=torch.int64))[0].shape[0]
        if abs(anchors - target) <= 0.02 * target:
            break
        count = max(1, int(count * target / anchors))
    return points, anchors


def _bare_scene(points: torch.Tensor) -> Scene:
    return Scene("points", [], [], points=points.float())


def orbit_views(count: int, size: int, gen: torch.Generator) -> list[View]:
    """``count`` cameras on a circle around the sphere, each with a smooth random target image."""
    views = []
    for i in range(count):
        a = 2 * math.pi * i / count
        cam = Camera.look_at(
            [2.2 * math.cos(a), 2.2 * math.sin(a), 0.6], [0.0, 0.0, 0.0], width=size, height=size, fov_x_deg=50.0
        )
        coarse = torch.rand(1, 3, 8, 8, generator=gen)
        image = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
        views.append(View(f"orbit{i}", cam, image.contiguous()))
    return views


def memory_check(
    *,
    anchors: int,
    size: int,
    views: int,
    iterations: int,
    levels: int,
    base_depth: int,
    target_gib: float,
    device: torch.device,
    log: Log,
) -> dict[str, Any]:
    """Peak memory of a few training steps (every stage) with about ``anchors`` anchors at ``size``² images."""
    gen = torch.Generator().manual_seed(0)
    points, count = points_for_anchor_count(anchors, levels, base_depth, gen)
    all_views = orbit_views(views + 1, size, gen)
    scene = Scene("sphere", all_views[:views], all_views[views:], points=points.float(), background=torch.zeros(3))
    cfg = TrainConfig().replace(
        iterations=iterations,
        levels=levels,
        base_depth=base_depth,
        seed=0,
        max_anchors=max(200_000, 2 * count),
        infonce=True,
    )  # every loss term, the optional too
    log(
        f"[memory] {count:,} anchors (L = {levels}, b = {base_depth}), {views} views at {size}x{size}, "
        f"{iterations} iterations on {device}"
    )
    reset_peak_memory(device)
    trainer = Trainer(scene, cfg, device)
    t0 = time.perf_counter()
    history = trainer.train(progress=False)
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        gaussians = len(trainer.model.generate(trainer.train_views[0].camera))
    memory = peak_memory(device)
    stages = sorted({k for h in history for k in ("rate", "nce", "vol") if k in h})
    peak = memory.get("peak_allocated_gib")
    return {
        "anchors": len(trainer.model.anchors),
        "anchors_per_lod": trainer.model.anchors.count_per_lod(),
        "gaussians_finest_view": gaussians,
        "width": size,
        "height": size,
        "views": views,
        "iterations": len(history),
        "seconds_per_iteration": round(train_s / max(1, len(history)), 3),
        "loss_terms_seen": stages,
        **{k: round(v, 3) for k, v in memory.items()},
        "target_gib": target_gib,
        "within_target": None if peak is None else bool(peak <= target_gib),
    }


def print_memory(res: dict[str, Any], log: Log) -> None:
    mem = ", ".join(f"{k} {v:.2f} GiB" for k, v in res.items() if k.startswith("peak_"))
    verdict = "" if res["within_target"] is None else (" (within" if res["within_target"] else " (OVER")
    if verdict:
        verdict += f" the {res['target_gib']:g} GiB target)"
    log(
        f"[memory] {res['anchors']:,} anchors, {res['gaussians_finest_view']:,} Gaussians in a view, "
        f"{res['seconds_per_iteration']:.2f} s/iteration; {mem}{verdict}"
    )


# ------------------------------------------------------------------ 3. the stream on another CPU


def verify_on_cpu(stream: Path, against: Path, log: Log, dataset: str | None = None) -> dict[str, Any]:
    """Decode ``stream`` (written by a GPU run whose report is ``against``) here, on the CPU, every prefix,
    and compare each LoD's PSNR with the one the GPU run measured."""
    from progs.errors import ProgsError

    report = json.loads(against.read_text())
    fox = report.get("fox")
    if not fox:
        raise ProgsError(f"{against}: no 'fox' part to compare with")
    data = stream.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if fox.get("stream_sha256") not in (None, sha):
        raise ProgsError(f"{stream}: not the stream {against} measured (sha256 differs)")
    spec = DatasetSpec.from_json(fox["spec"])
    if dataset:  # the same capture in another folder on this machine
        spec = dataclasses.replace(spec, path=str(DatasetSpec.from_argument(dataset).path))
    scene = spec.load()
    t = time.perf_counter()
    rows = evaluate_stream(data, scene, source=str(stream), prefixes=True, device=torch.device("cpu"))
    seconds = time.perf_counter() - t
    lods = []
    for row, gpu in zip(rows, fox["lods"]):
        lods.append(
            {
                "lod": row["lod"],
                "cumulative_bytes": row["cumulative_bytes"],
                "psnr_cpu": row["psnr"],
                "psnr_gpu": gpu["psnr_prefix"],
                "difference_db": row["psnr"] - gpu["psnr_prefix"],
            }
        )
        log(
            f"[cpu] LoD {row['lod']}: {row['cumulative_bytes']:,} B, PSNR {row['psnr']:.3f} dB on this CPU, "
            f"{gpu['psnr_prefix']:.3f} dB on {report['machine'].get('gpu', 'the GPU')}"
        )
    worst = max(abs(r["difference_db"]) for r in lods)
    log(
        f"[cpu] largest difference {worst:.4f} dB ({'within' if worst <= 0.05 else 'OVER'} 0.05 dB); "
        f"decode every prefix + evaluate {seconds:.0f} s"
    )
    return {
        "stream": str(stream),
        "stream_sha256": sha,
        "bytes": len(data),
        "machine": machine(torch.device("cpu")),
        "lods": lods,
        "largest_difference_db": worst,
        "within_0_05_db": bool(worst <= 0.05),
        "decode_prefixes_and_eval_s": round(seconds, 2),
    }


# ------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", nargs="?", help="dataset folder (default gpu_data/fox; 'demo' with --smoke)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--smoke", action="store_true", help="tiny settings: a small demo scene and a few thousand anchors")
    p.add_argument("--json", help="write the results here (default: gpu_check.json in --workdir)")
    p.add_argument(
        "--workdir", default="/tmp/progs-gpu-check", help="run folder and stream (default /tmp/progs-gpu-check)"
    )
    p.add_argument("--downscale", type=float, default=2.0)
    p.add_argument("--iterations", type=int, default=7000)
    p.add_argument("--levels", type=int, default=5)
    p.add_argument(
        "--train-seconds",
        type=float,
        help="size the fox run's iteration count to about this many seconds (a probe times the step)",
    )
    p.add_argument("--probe-steps", type=int, default=100, help="steps the probe times (default 100)")
    p.add_argument("--stream-out", help="also write the fox stream here")
    p.add_argument("--verify", metavar="STREAM", help="decode STREAM on this CPU and compare with --against")
    p.add_argument("--against", metavar="JSON", help="the GPU run's report (with --verify)")
    p.add_argument("--c2f-samples", type=int, help="coarser LoDs rendered per step (default: all, the paper's L_c2f)")
    p.add_argument("--memory-anchors", type=int, default=500_000)
    p.add_argument("--memory-size", type=int, default=1024, help="memory test image side (default 1024: ~1 MP)")
    p.add_argument("--memory-views", type=int, default=4)
    p.add_argument("--memory-iterations", type=int, default=6)
    p.add_argument("--memory-levels", type=int, default=5)
    p.add_argument("--memory-base-depth", type=int, default=6)
    p.add_argument("--memory-target-gib", type=float, default=40.0)
    p.add_argument(
        "--spz-caps",
        default="25000,50000,100000,200000",
        help="model sizes of the plain 3DGS fits stored as SPZ (default 25000,50000,100000,200000)",
    )
    p.add_argument("--spz-iterations", type=int, default=3000, help="iterations of each plain 3DGS fit (default 3000)")
    p.add_argument(
        "--spz-seconds", type=float, default=150.0, help="no further fit starts after this many seconds (default 150)"
    )
    p.add_argument("--skip", choices=["fox", "spz", "memory"], action="append", default=[], help="leave out a part")
    args = p.parse_args(argv)
    if args.smoke:
        args.dataset = args.dataset or "demo"
        args.downscale, args.iterations, args.levels = 1.0, 8, 3
        args.memory_anchors, args.memory_size, args.memory_views = 1500, 48, 2
        args.memory_iterations, args.memory_levels, args.memory_base_depth = 3, 3, 2
        args.probe_steps = min(args.probe_steps, 4)
        args.spz_caps, args.spz_iterations = "200,400", 6
    if bool(args.verify) != bool(args.against):
        p.error("--verify and --against go together")
    if not args.verify:
        args.dataset = args.dataset or "gpu_data/fox"
    return args


def main(argv: list[str] | None = None, log: Log = print) -> dict[str, Any]:
    args = parse_args(argv)
    if args.verify:
        result = verify_on_cpu(Path(args.verify), Path(args.against), log, dataset=args.dataset)
        if args.json:
            write_json(Path(args.json), result)
        return result
    device = resolve_device(args.device)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(args.json) if args.json else workdir / "gpu_check.json"
    report: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["scripts/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "smoke": args.smoke,
        "machine": machine(device),
    }

    def save() -> None:
        write_json(out, report)

    save()
    log(f"gpu check on {device} ({report['machine'].get('gpu', 'CPU')}), torch {torch.__version__}")
    if "fox" not in args.skip or "spz" not in args.skip:
        spec, scene, load_s = load_scene(args.dataset, args.downscale, demo_size=32)
    if "fox" not in args.skip:
        report["fox"] = fox_check(
            args.dataset,
            spec,
            scene,
            load_s,
            downscale=args.downscale,
            iterations=args.iterations,
            levels=args.levels,
            c2f_samples=args.c2f_samples,
            device=device,
            workdir=workdir,
            log=log,
            train_seconds=args.train_seconds,
            probe_steps=args.probe_steps,
            stream_out=Path(args.stream_out) if args.stream_out else None,
        )
        save()
        print_fox(report["fox"], log)
    if "memory" not in args.skip:
        report["memory"] = memory_check(
            anchors=args.memory_anchors,
            size=args.memory_size,
            views=args.memory_views,
            iterations=args.memory_iterations,
            levels=args.memory_levels,
            base_depth=args.memory_base_depth,
            target_gib=args.memory_target_gib,
            device=device,
            log=log,
        )
        save()
        print_memory(report["memory"], log)
    if "spz" not in args.skip:
        caps = [int(c) for c in args.spz_caps.split(",") if c.strip()]
        report["spz"] = spz_check(
            scene,
            report.get("fox"),
            caps=caps,
            iterations=args.spz_iterations,
            seconds=args.spz_seconds,
            device=device,
            workdir=workdir,
            log=log,
        )
        save()
    log(f"wrote {out}")
    return report


if __name__ == "__main__":
    from progs.errors import ProgsError

    try:
        main()
    except ProgsError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        sys.exit(2)
