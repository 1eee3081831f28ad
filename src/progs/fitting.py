"""Fit a progs model to splats a user already has: what ``progs fit`` runs, callable from Python.

    import progs

    outcome = progs.fit_splats("scene.ply", "runs/scene")  # or .spz, .splat, SOG, lod-meta.json (lod=N)
    print(outcome.viewer_lods)  # PSNR / SSIM per LoD at 1024 px; then `progs encode runs/scene --out scene.progs`

The splats are rendered from an orbit of cameras about ``up`` (the *teacher*), at a size that follows
the scene (:func:`progs.io.teacher.teacher_plan`: a viewer's 1024 pixels or finer; at most 512 on a
CPU unless ``size`` says otherwise); the anchor budget, the octree's levels and the initial level follow
the teacher (:func:`progs.presets.teacher_sizing`), and training takes ``progs fit``'s preset
(``presets.FIT_DEFAULTS``). With ``eval_size`` the decoded model is scored per LoD on held-out orbit
views at a viewer's resolution with SH colours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from progs.io.teacher import VIEWER_SIZE


def fit_splats(
    scene: str | Path,
    out: str | Path,
    *,
    lod: int | None = None,
    size: int | None = None,
    views: int | None = None,
    up: str = "-y",
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    config: Any = None,
    levels: int | None = None,
    max_anchors: int | None = None,
    iterations: int | None = None,
    eval_size: int = VIEWER_SIZE,
    resume: bool = False,
    checkpoint_every: int = 500,
    device: torch.device | None = None,
    log: Callable[[str], None] = print,
) -> Any:
    """Fit the splats in ``scene`` into the run folder ``out``; returns the
    :class:`~progs.pipeline.TrainOutcome` (per-LoD quality on the teacher's test views, and on the
    viewer's views in ``viewer_lods`` when ``eval_size`` > 0).

    Args:
        scene: any splat file :func:`progs.io.splats.read_splats` reads; ``lod`` picks a streamed SOG's level.
        size, views: the teacher's image size and view count (default: from the scene and the device).
        up: the scene's up axis, which the orbit turns about (``"-y"``: 3DGS trainers, SuperSplat, SPZ).
        config: a :class:`~progs.train.config.TrainConfig` (default: ``progs fit``'s preset); its
            anchor budget, levels and initial level are set from the teacher unless ``levels`` /
            ``max_anchors`` are given.
        iterations: training iterations (default: the config's).
        device: where to train (default: the CPU); the stream codes the same on any device."""
    from progs.io.dataset import DatasetSpec
    from progs.io.splats import read_splats
    from progs.io.teacher import teacher_plan, viewer_views
    from progs.pipeline import train_run
    from progs.presets import FIT_DEFAULTS, teacher_anchors_per_gaussian, teacher_sizing
    from progs.train.config import TrainConfig
    from progs.train.sizing import CAP_PIXELS_PER_ANCHOR

    device = device if device is not None else torch.device("cpu")
    if config is None:
        config = TrainConfig().replace(**FIT_DEFAULTS)
    if iterations is not None:
        config = config.replace(iterations=iterations)
    cloud = read_splats(scene, lod=lod)
    plan = teacher_plan(cloud, device.type == "cuda", size=size, views=views)
    log(
        f"{scene}: {len(cloud)} Gaussians (SH degree {cloud.sh_degree}) -> {plan.describe()}; up axis {up} (--up to change)"
    )
    spec = DatasetSpec.create(
        "ply", path=str(Path(scene).resolve()), views=plan.views, size=plan.size, up=up, background=background, lod=lod
    )
    teacher = spec.load()
    sizing = teacher_sizing(teacher, levels, config.base_depth, max_anchors, sh_degree=cloud.sh_degree)
    config = config.replace(**sizing)
    if not resume:
        budget_rule = (
            f"{teacher_anchors_per_gaussian(cloud.sh_degree):g} per Gaussian of SH degree {cloud.sh_degree}, "
            f"at most one per {CAP_PIXELS_PER_ANCHOR:g} teacher pixels; --max-anchors to change"
        )
        log(
            f"{scene}: at most {sizing['max_anchors']} anchors "
            f"({'--max-anchors' if max_anchors else budget_rule}), "
            f"{config.levels} octree levels{'' if levels else ' (as many as that fills; --levels to change)'} "
            f"from base depth {config.base_depth}, initial anchors at level {sizing['init_level']}, "
            f"{config.feat_dim}-d anchor features, {config.n_offsets} neural Gaussians each"
            f"{' (a small fit: a narrower model, a smaller header)' if 'feat_dim' in sizing else ''}"
        )
    viewer = viewer_views(cloud, up, background, size=eval_size) if eval_size else None
    outcome = train_run(
        teacher,
        spec,
        Path(out),
        config,
        resume=resume,
        checkpoint_every=checkpoint_every,
        iterations=iterations,
        device=device,
        viewer_views=viewer,
        log=log,
    )
    return dataclasses.replace(outcome, teacher_size=plan.size)
