"""Reading and writing scenes and Gaussian clouds: 3DGS PLY, COLMAP, transforms.json, the demo scene.

Every reader raises :class:`progs.errors.InputError` with a one-line message naming the file on
malformed input; writers replace their output atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from progs.errors import InputError
from progs.io.colmap import load_colmap_scene, read_model
from progs.io.images import load_image
from progs.io.ply import GaussianCloud, read_ply, read_points_ply, write_ply
from progs.io.transforms import load_transforms_scene
from progs.scene import Scene

__all__ = [
    "GaussianCloud",
    "read_ply",
    "write_ply",
    "read_points_ply",
    "read_model",
    "load_colmap_scene",
    "load_transforms_scene",
    "load_image",
    "detect_format",
    "load_scene",
]


def detect_format(path: str | os.PathLike) -> str:
    """'demo', 'transforms' or 'colmap' for what :func:`load_scene` would read at ``path``."""
    if str(path) == "demo":
        return "demo"
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder (expected a dataset folder or 'demo')")
    if p.is_file():
        if p.suffix.lower() == ".json":
            return "transforms"
        if p.suffix.lower() == ".ply":
            raise InputError(f"{p}: a PLY file is a Gaussian cloud or point cloud, not a scene with posed images")
        raise InputError(f"{p}: not a scene (expected a dataset folder, a transforms*.json file or 'demo')")
    if (p / "transforms.json").is_file() or (p / "transforms_train.json").is_file():
        return "transforms"
    if (p / "sparse").is_dir() or any((p / f"cameras{e}").is_file() for e in (".bin", ".txt")):
        return "colmap"
    raise InputError(
        f"{p}: cannot tell the dataset format (expected transforms.json, transforms_train.json,"
        " a COLMAP sparse/ folder, or 'demo')"
    )


def load_scene(path: str | os.PathLike, downscale: float = 1, test_every: int = 8, *, undistort: bool = True) -> Scene:
    """Load a scene, detecting its format: "demo", a transforms*.json dataset, or a COLMAP dataset.

    ``undistort`` (default True): remove lens distortion from real captures on load (see
    :mod:`progs.io.undistort`); False keeps the images as they are (pinhole rendering).
    """
    kind = detect_format(path)
    if kind == "demo":
        from progs.io.dataset import DatasetSpec

        return DatasetSpec("demo", downscale=downscale, test_every=test_every).load()
    if kind == "transforms":
        return load_transforms_scene(path, downscale=downscale, test_every=test_every, undistort=undistort)
    return load_colmap_scene(path, downscale=downscale, test_every=test_every, undistort=undistort)
