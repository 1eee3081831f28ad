"""A training run's folder: what was trained on, the checkpoint, and loading the model back.

    RUN/run.json        dataset spec, training config, view distance, final per-LoD table
    RUN/checkpoint.pt   the trainer's state (atomic writes; the latest one wins)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from progs.atomic import write_bytes_atomic
from progs.errors import InputError
from progs.model.anchors import AnchorSet
from progs.model.context import ContextConfig, ContextModel
from progs.model.gaussians import GaussianGenerator
from progs.model.model import ProGSModel
from progs.octree import OctreeGrid
from progs.scene import Scene
from progs.train.checkpoint import load_checkpoint

CHECKPOINT = "checkpoint.pt"
RUN_JSON = "run.json"


def write_run_json(run: Path, info: dict[str, Any]) -> None:
    write_bytes_atomic(Path(run) / RUN_JSON, json.dumps(info, indent=2, default=float).encode())


def read_run_json(run: Path) -> dict[str, Any]:
    p = Path(run) / RUN_JSON
    if not p.is_file():
        raise InputError(f"{run}: not a progs training run (no {RUN_JSON}; make one with `progs train`)")
    try:
        return json.loads(p.read_text())
    except ValueError as exc:
        raise InputError(f"{p}: not valid JSON ({exc})") from None


def load_dataset(spec: dict[str, Any]) -> Scene:
    """Rebuild the Scene a run was trained on from its spec in run.json."""
    kind = spec.get("kind")
    if kind == "ply":
        from progs.io.ply import read_ply
        from progs.io.teacher import scene_from_cloud

        return scene_from_cloud(read_ply(spec["path"]), views=spec["views"], size=spec["size"], up=spec["up"],
                                background=tuple(spec.get("background", (0.0, 0.0, 0.0))))
    if kind == "demo":
        from progs.io.demo_scene import load_demo_scene

        return load_demo_scene(views=spec.get("views", 60), size=spec.get("size", 128), seed=spec.get("seed", 0))
    from progs.io import load_scene

    return load_scene(spec["path"], downscale=spec.get("downscale", 1.0), undistort=spec.get("undistort", True))


def model_from_state(state: dict[str, Any]) -> ProGSModel:
    """The ProGS model (anchors, generator, context model) held by a checkpoint."""
    gd = state["grid"]
    grid = OctreeGrid(tuple(gd["origin"]), gd["size"], gd["base_depth"], gd["num_levels"])
    sa = state["anchors"]
    anchors = AnchorSet(grid, sa["keys"], sa["levels"], sa["feature"], sa["scaling"], sa["offsets"])
    cfg = state["config"]
    gen = GaussianGenerator(cfg["feat_dim"], cfg["n_offsets"], cfg["levels"])
    gen.load_state_dict(state["generator"])
    model = ProGSModel(anchors, gen, cull_margin=cfg.get("cull_margin", 0.1))
    ctx = ContextModel(ContextConfig.from_json(state["context_config"]))
    ctx.load_state_dict(state["context"])
    model.context = ctx
    return model


def load_run_model(run: Path) -> tuple[ProGSModel, dict[str, Any]]:
    run = Path(run)
    info = read_run_json(run)
    state = load_checkpoint(run / CHECKPOINT)
    return model_from_state(state), info


def view_distance(scene: Scene, grid: OctreeGrid) -> float:
    """Median distance of the training cameras from the octree cube's centre."""
    centre = grid.origin_tensor.float() + grid.size / 2
    d = torch.stack([(v.camera.center - centre).norm() for v in scene.train_views])
    return float(d.median())
