"""Export a (decoded) ProGS model as plain 3D Gaussians any splat viewer can open.

Neural Gaussians depend on the viewing direction, a plain 3DGS file cannot. The canonical,
view-independent setting used here: every anchor is seen from outside the scene, along the ray from
the octree cube's centre through the anchor, from ``view_distance`` away from that centre (the
training cameras' median distance, stored in the stream; 1.5 × the cube size when unknown). Colours
are written as degree-0 spherical harmonics.

Formats: INRIA 3DGS ``.ply`` and the antimatter15 ``.splat`` layout (32 bytes per Gaussian:
position 3×f32, scale 3×f32, RGBA 4×u8, rotation 4×u8 as (q·128+128), sorted by size × opacity).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from progs.atomic import atomic_path
from progs.io.ply import GaussianCloud, write_ply
from progs.model.model import ProGSModel


def canonical_view_vectors(model: ProGSModel, positions: torch.Tensor, view_distance: float | None) -> torch.Tensor:
    grid = model.grid
    centre = grid.origin_tensor.to(positions) + grid.size / 2
    d = float(view_distance) if view_distance else 1.5 * grid.size
    rel = positions - centre
    norm = rel.norm(dim=-1, keepdim=True)
    direction = torch.where(norm > 1e-9, rel / norm.clamp_min(1e-9), torch.tensor([0.0, 0.0, 1.0]).to(rel))
    cam = centre + direction * torch.maximum(norm, torch.full_like(norm, d))
    return positions - cam


@torch.no_grad()
def model_to_cloud(model: ProGSModel, lod: int | None = None, view_distance: float | None = None) -> GaussianCloud:
    """The Gaussians of LoD ``lod`` (default: all levels) at the canonical setting."""
    a = model.anchors
    lod = model.num_levels if lod is None else int(lod)
    vis = torch.nonzero(a.levels <= lod).squeeze(-1)
    x = a.positions[vis].float()
    vectors = canonical_view_vectors(model, x, view_distance if view_distance is not None else getattr(model, "view_distance", None))
    g = model.generator.decode(
        vis, x, a.levels[vis], a.feature[vis], a.scaling[vis], a.offsets[vis], vectors, model.dist_scale
    )
    return GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors)


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


def write_cloud(path: str | os.PathLike, cloud: GaussianCloud, fmt: str | None = None) -> str:
    """Write ``cloud`` as ``fmt`` ('ply' or 'splat'; default from the file extension)."""
    fmt = (fmt or str(path).rsplit(".", 1)[-1]).lower()
    if fmt == "ply":
        write_ply(path, cloud)
    elif fmt == "splat":
        write_splat(path, cloud)
    else:
        raise ValueError(f"unknown Gaussian file format {fmt!r} (use ply or splat)")
    return fmt
