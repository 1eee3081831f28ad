"""A training run's folder: what was trained on, the checkpoint, and loading the model back.

RUN/run.json        dataset spec, training config, view distance, final per-LoD table
RUN/checkpoint.pt   the trainer's state (atomic writes; the latest one wins)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


from progs.atomic import write_bytes_atomic
from progs.errors import InputError
from progs.model.model import ProGSModel, model_from_state
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


def load_run_model(run: Path) -> tuple[ProGSModel, dict[str, Any]]:
    run = Path(run)
    info = read_run_json(run)
    model = model_from_state(load_checkpoint(run / CHECKPOINT))
    if model.view_distance is None and isinstance(info.get("view_distance"), (int, float)):
        model.view_distance = float(info["view_distance"])  # checkpoints before 2026-11-27
    return model, info
