"""Writing Gaussian clouds: INRIA 3DGS ``.ply`` (SH of the cloud's degree), the antimatter15 ``.splat``
layout (32 bytes per Gaussian: position 3×f32, scale 3×f32, RGBA 4×u8, rotation 4×u8 as (q·128+128),
sorted by size × opacity; degree-0 colour only), Niantic ``.spz`` (through gsply, :mod:`progs.io.spz`)
and glTF ``.glb`` with ``KHR_gaussian_splatting`` (through pygltflib, :mod:`progs.io.gltf`). Every
writer replaces its output atomically."""

from __future__ import annotations

import os

import numpy as np

from progs.atomic import atomic_path
from progs.errors import InputError
from progs.io.ply import GaussianCloud, write_ply

CLOUD_FORMATS = ("ply", "splat", "spz", "glb")


def write_splat(path: str | os.PathLike, cloud: GaussianCloud) -> None:
    """Write the antimatter15 ``.splat`` layout (atomically)."""
    n = len(cloud)
    scales = cloud.scales.numpy().astype(np.float32)
    op = cloud.opacities.numpy()
    order = np.argsort(-(scales.prod(axis=1) * op), kind="stable")
    rec = np.zeros(n, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rec["pos"] = cloud.means.numpy()[order]
    rec["scale"] = scales[order]
    rgba = np.concatenate([cloud.colors.numpy(), op[:, None]], axis=1)[order]
    rec["rgba"] = np.clip(np.round(rgba * 255), 0, 255).astype(np.uint8)
    q = cloud.quats.numpy()[order]
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    rec["rot"] = np.clip(np.round(q * 128 + 128), 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        tmp.write_bytes(rec.tobytes())


def cloud_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format ``fmt`` or, when None, the one named by ``path``'s extension; ``InputError`` if unknown."""
    name = (fmt or os.path.splitext(str(path))[1].lstrip(".")).lower()
    if name not in CLOUD_FORMATS:
        raise InputError(
            f"{path}: unknown Gaussian file format {name or '(no extension)'!r} "
            f"(use {', '.join('.' + f for f in CLOUD_FORMATS[:-1])} or .{CLOUD_FORMATS[-1]})"
        )
    return name


def write_cloud(path: str | os.PathLike, cloud: GaussianCloud, fmt: str | None = None) -> str:
    """Write ``cloud`` as ``fmt`` (default from the file extension); returns the format written."""
    fmt = cloud_format(path, fmt)
    if fmt == "ply":
        write_ply(path, cloud)
    elif fmt == "splat":
        write_splat(path, cloud)
    elif fmt == "spz":
        from progs.io.spz import write_spz

        write_spz(path, cloud)
    else:
        from progs.io.gltf import write_glb

        write_glb(path, cloud)
    return fmt
