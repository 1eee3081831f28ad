"""Training checkpoints: one ``torch.save`` file written atomically (temporary file + ``os.replace``).

Holds everything needed to continue bit-for-bit: config, iteration, grid, anchors (structure,
attributes, adjustment statistics), MLP weights, optimizer state, RNG states and the view queue.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from progs.atomic import atomic_path
from progs.errors import InputError

CHECKPOINT_FORMAT = "progs-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (a crash never leaves a half-written checkpoint)."""
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; ``InputError`` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is an input error
        raise InputError(f"{path}: not a readable progs checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a progs checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise InputError(
            f"{path}: checkpoint version {state.get('version')} is not supported (expected {CHECKPOINT_VERSION})"
        )
    return state
