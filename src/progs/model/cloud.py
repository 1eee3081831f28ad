"""A (decoded) ProGS model as plain 3D Gaussians, for files any splat viewer opens.

Neural Gaussians depend on the viewing direction, a plain 3DGS file cannot. The canonical,
view-independent setting used here: every anchor is seen from outside the scene, along the ray from
the octree cube's centre through the anchor, from ``view_distance`` away from that centre (the
training cameras' median distance, stored in the stream; 1.5 × the cube size when unknown). Colours
are written as degree-0 spherical harmonics. The writers are in :mod:`progs.io.writers`.
"""

from __future__ import annotations

import torch

from progs.io.ply import GaussianCloud
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
    """The Gaussians of LoD ``lod`` (default: all levels) at the canonical setting (``view_distance``
    defaults to the model's own)."""
    a = model.anchors
    lod = model.num_levels if lod is None else int(lod)
    vis = torch.nonzero(a.levels <= lod).squeeze(-1)
    x = a.positions[vis].float()
    vectors = canonical_view_vectors(model, x, view_distance if view_distance is not None else model.view_distance)
    g = model.generator.decode(
        vis, x, a.levels[vis], a.feature[vis], a.scaling[vis], a.offsets[vis], vectors, model.dist_scale
    )
    return GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors)
