"""The user-level workflows the CLI runs: train a run folder, encode it, evaluate streams."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from progs.errors import ProgsError
from progs.scene import Camera, Scene

if TYPE_CHECKING:
    from progs.io.ply import GaussianCloud
    from progs.train.distill import DistillConfig
    from progs.model.model import ProGSModel


def _log_default(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class TrainOutcome:
    run: Path
    lods: list[dict[str, Any]]
    seconds: float
    iterations: int
    viewer_lods: list[dict[str, Any]] | None = None  # the decoded model on viewer-resolution views, when asked
    teacher_size: int | None = None  # a fit's teacher image size (progs.fitting)


def train_run(
    scene: Scene,
    spec: dict[str, Any],
    run: Path,
    config,
    *,
    resume: bool = False,
    checkpoint_every: int = 500,
    progress: bool | None = None,
    log: Callable[[str], None] = _log_default,
    iterations: int | None = None,
    device: torch.device | None = None,
    viewer_views: list | None = None,
) -> TrainOutcome:
    """Train ProGS on ``scene`` into the folder ``run`` (checkpointing as it goes) on ``device`` (default
    the CPU; see :func:`progs.device.resolve_device`).

    With ``resume`` and a checkpoint present, training continues with the checkpoint's configuration,
    up to ``iterations`` when given (a checkpoint continues on either device). With ``viewer_views``,
    the decoded model is also scored on them per LoD (``viewer_lods``: where users look, at a viewer's
    resolution)."""
    from progs.train.run import CHECKPOINT, write_run_json
    from progs.train.trainer import Trainer

    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / CHECKPOINT
    if resume and ckpt.is_file():
        trainer = Trainer.from_checkpoint(
            str(ckpt), scene, device, **({"iterations": iterations} if iterations else {})
        )
        log(f"resuming {run} at iteration {trainer.iteration}/{trainer.config.iterations}")
    else:
        trainer = Trainer(scene, config, device)
    info: dict[str, Any] = {
        "dataset": spec.to_json(),
        "config": trainer.config.to_dict(),
        "scene": scene.name,
        "view_distance": trainer.model.view_distance,
    }
    write_run_json(run, info)
    log(
        f"training on {scene.name}: {len(trainer.train_views)} train / {len(trainer.test_views)} test views, "
        f"{trainer.train_views[0].camera.width}x{trainer.train_views[0].camera.height}, "
        f"{len(trainer.model.anchors)} initial anchors, {trainer.config.iterations} iterations on {trainer.device}"
    )
    t0 = time.perf_counter()
    start = trainer.iteration
    import sys

    show_bar = sys.stderr.isatty() if progress is None else progress
    every = max(1, trainer.config.iterations // 20)

    def report(tr, rec: dict) -> None:  # without a progress bar (logs, CI), a line every 5 %
        if not show_bar and (tr.iteration % every == 0 or tr.iteration == tr.config.iterations):
            elapsed = time.perf_counter() - t0
            done = max(1, tr.iteration - start)
            eta = elapsed / done * (tr.config.iterations - tr.iteration)
            log(
                f"  iteration {tr.iteration}/{tr.config.iterations}: loss {rec['loss']:.4f}, "
                f"PSNR {rec['psnr']:.2f}, anchors {rec['anchors']}, {elapsed:.0f} s, ETA {eta:.0f} s"
            )

    try:
        trainer.train(progress=show_bar, callback=report, checkpoint_path=str(ckpt), checkpoint_every=checkpoint_every)
    except KeyboardInterrupt:
        trainer.save(str(ckpt))
        raise ProgsError(
            f"interrupted at iteration {trainer.iteration}; checkpoint saved, continue with --resume"
        ) from None
    seconds = time.perf_counter() - t0
    trainer.save(str(ckpt))
    from progs.eval.quality import evaluate_coded

    lods = evaluate_coded(
        trainer.model,
        trainer.test_views or trainer.train_views,
        background=trainer.background,
        backend=trainer.config.backend,
    )
    info.update(
        {
            "train_seconds": seconds,
            "iterations": trainer.iteration,
            "lods": lods,
            "adjustments": len(trainer.adjustments),
        }
    )
    viewer = None
    if viewer_views:
        from progs.codec.stream import encode
        from progs.eval.quality import evaluate_lods

        v = viewer_views[0].camera
        log(f"scoring the decoded model on {len(viewer_views)} held-out views at {v.width}x{v.height}")
        coded = encode(trainer.model).model.to(trainer.model.device)
        viewer = evaluate_lods(coded, viewer_views, background=trainer.background, backend=trainer.config.backend)
        info["viewer_lods"] = viewer
    write_run_json(run, info)
    return TrainOutcome(run, lods, seconds, trainer.iteration, viewer)


@dataclass
class EncodeOutcome:
    stream: Path
    manifest: Path
    result: Any  # EncodeResult
    rows: list[dict[str, Any]]


def encode_run(
    run: Path,
    out: Path,
    *,
    evaluate: bool = True,
    scene: Scene | None = None,
    log: Callable[[str], None] = _log_default,
    progress: bool = False,
) -> EncodeOutcome:
    """Encode a trained run into ``out`` (+ ``out.json`` manifest with per-LoD quality)."""
    from progs.atomic import write_bytes_atomic
    from progs.codec.stream import encode
    from progs.eval.quality import evaluate_lods
    from progs.io.dataset import DatasetSpec
    from progs.stream.manifest import build_manifest, suggested_view, write_manifest
    from progs.train.run import load_run_model

    model, info = load_run_model(run)
    if scene is None and evaluate:
        scene = DatasetSpec.from_json(info["dataset"]).load()
    if scene is not None:
        background, camera = scene.background, scene.first_camera()
    else:  # not evaluated: the background and the starting view still come from the run's dataset
        try:
            background, camera = DatasetSpec.from_json(info["dataset"]).viewpoint()
        except ProgsError as exc:  # e.g. a run encoded where its dataset is not: the stream does without
            log(f"note: the stream gets no background and the manifest no starting view ({exc})")
            background, camera = None, None
    res = encode(model, background=background, progress=progress)
    quality = None
    if evaluate and scene is not None:
        quality = evaluate_lods(res.model, scene, background=background)
    out = Path(out)
    write_bytes_atomic(out, res.data)
    manifest_path = out.with_name(out.name + ".json")
    view = None
    if camera is not None:
        grid = res.model.grid
        centre = [o + grid.size / 2 for o in grid.origin]
        view = suggested_view(camera, centre)
    manifest = build_manifest(res, out.name, quality, view=view)
    write_manifest(manifest_path, manifest)
    rows = []
    cum = res.header_bytes
    for s in res.lods:
        cum += s.bytes
        row = {"lod": s.lod, "anchors": s.anchors, "bytes": s.bytes, "cumulative_bytes": cum}
        if quality:
            q = quality[s.lod - 1]
            row.update({"psnr": q["psnr"], "ssim": q["ssim"]})
        rows.append(row)
    log(f"encoded {run} -> {out}: {len(res.data)} bytes (header {res.header_bytes}) in {res.seconds:.2f} s")
    return EncodeOutcome(out, manifest_path, res, rows)


def evaluate_stream(
    data: bytes, scene: Scene, source: str = "stream", prefixes: bool = False, device: torch.device | None = None
) -> list[dict[str, Any]]:
    """Per-LoD quality of a decoded stream on the scene's test views, rendered on ``device`` (default
    the CPU; decoding itself always runs on the CPU).

    ``prefixes=True`` decodes each prefix (header + LoD 1..k) on its own, as a client would; otherwise
    the full decode is evaluated per LoD (identical by construction of the format).
    """
    from progs.codec.stream import decode
    from progs.eval.quality import evaluate_lods

    full = decode(data, source=source)
    if full.model is None:
        raise ProgsError(f"{source}: no LoD could be decoded ({full.problem})")
    bg = full.background if full.background is not None else scene.background
    rows = []
    cum = full.header_bytes
    for s in full.lods:
        cum += s.bytes
        if prefixes:
            part = decode(data[:cum], source=source)
            model, lod = part.model, part.lods_decoded
        else:
            model, lod = full.model, s.lod
        if device is not None:
            model = model.to(device)
        q = evaluate_lods(model, scene, lods=[lod], background=bg)[0]
        rows.append(
            {
                "lod": s.lod,
                "anchors": q["anchors"],
                "bytes": s.bytes,
                "cumulative_bytes": cum,
                "psnr": q["psnr"],
                "ssim": q["ssim"],
            }
        )
    return rows


def export_cloud(
    model: ProGSModel,
    lod: int | None = None,
    *,
    sh_degree: int = 3,
    cameras: list[Camera] | None = None,
    distill: DistillConfig | None = None,
    progress: bool | None = None,
) -> GaussianCloud:
    """LoD ``lod`` of ``model`` (default: all levels) as plain 3D Gaussians: the
    closed-form SH fit (:func:`progs.model.cloud.model_to_cloud`), then, unless ``distill`` (a
    :class:`progs.train.distill.DistillConfig`) has 0 iterations, distilled so that a plain 3DGS
    render matches progs' own. ``cameras`` (e.g. a dataset's training cameras) replace the virtual
    views of both steps."""
    import torch

    from progs.model.cloud import model_to_cloud
    from progs.train.distill import DistillConfig, distill_cloud

    lod = model.num_levels if lod is None else int(lod)
    centres = None if cameras is None else torch.stack([c.center for c in cameras])
    cloud = model_to_cloud(model, lod, sh_degree=sh_degree, cameras=centres)
    cfg = DistillConfig() if distill is None else distill
    return distill_cloud(model, lod, cloud, cfg, cameras=cameras, progress=progress)
