"""A (decoded) ProGS model as plain 3D Gaussians, for files any splat viewer opens.

Neural Gaussians depend on the viewing direction (colour, opacity, scale and rotation come from MLPs
fed the view direction and distance); a plain 3DGS file has only spherical harmonics for that. The
export evaluates every anchor's MLPs as seen from a set of camera centres: by default ``directions``
cameras spread evenly (a Fibonacci lattice) over the sphere of radius ``view_distance`` around the
octree cube's centre (the training cameras' median distance, stored in the stream; 1.5 × the cube
size when unknown), or the given ``cameras`` (e.g. the training cameras, when known). Then, per
neural Gaussian:

- opacity: the average over the views, where a view from which the neural model culls the Gaussian
  (tanh opacity ≤ 0) counts as 0. Gaussians whose average is below 1/255 (the rasterizer's smallest
  drawn alpha) are left out, so a Gaussian the neural model shows from only a few views is kept,
  fainter;
- colour: SH coefficients up to ``sh_degree`` fitted by weighted least squares to the neural colours,
  each view weighted by the opacity seen from it (where the Gaussian is invisible its colour does not
  matter), with a small ridge term on the degree ≥ 1 coefficients;
- scale and rotation: the opacity-weighted average over the views (rotations sign-aligned to the
  canonical view's, then renormalised); the position is view-independent.

The canonical view of an anchor (used only to align rotations) looks at it from outside the scene,
along the ray from the cube's centre through the anchor, from ``view_distance`` away from that centre.
This closed form cannot copy the view-dependent opacity and covariance (on the demo a plain render of
it loses 0.3–0.8 dB against progs' own); :mod:`progs.train.distill` refines it, and
:func:`progs.pipeline.export_cloud` chains the two. The writers are in :mod:`progs.io.writers`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from progs.io.ply import GaussianCloud
from progs.io.sh import fibonacci_sphere, fit_sh
from progs.model.model import ProGSModel

DEFAULT_SH_DEGREE = 3
DEFAULT_DIRECTIONS = 64
MIN_OPACITY = 1.0 / 255.0


def canonical_view_vectors(model: ProGSModel, positions: torch.Tensor, view_distance: float | None) -> torch.Tensor:
    grid = model.grid
    centre = grid.origin_tensor.to(positions) + grid.size / 2
    d = float(view_distance) if view_distance else 1.5 * grid.size
    rel = positions - centre
    norm = rel.norm(dim=-1, keepdim=True)
    direction = torch.where(norm > 1e-9, rel / norm.clamp_min(1e-9), torch.tensor([0.0, 0.0, 1.0]).to(rel))
    cam = centre + direction * torch.maximum(norm, torch.full_like(norm, d))
    return positions - cam


def _export_chunk(
    model: ProGSModel, rows: torch.Tensor, canon: torch.Tensor, cameras: torch.Tensor, sh_degree: int
) -> GaussianCloud:
    """The exported Gaussians of the anchors ``rows`` (canonical view vectors ``canon`` [V, 3]) seen
    from the camera centres ``cameras`` [D, 3]."""
    a, gen = model.anchors, model.generator
    v, d, k = rows.shape[0], cameras.shape[0], gen.n_offsets
    x = a.positions[rows].float()
    f, lv, s, o = a.feature[rows], a.levels[rows], a.scaling[rows], a.offsets[rows]
    vectors = x[:, None, :] - cameras[None, :, :].to(x)  # [V, D, 3], camera -> anchor
    dirs = F.normalize(vectors, dim=-1, eps=1e-9).repeat_interleave(k, 0)  # [V*K, D, 3]
    opacity, color, cov = gen.heads(
        f.repeat_interleave(d, 0), lv.repeat_interleave(d, 0), vectors.reshape(-1, 3), model.dist_scale
    )
    _, _, cov_c = gen.heads(f, lv, canon, model.dist_scale)

    # per Gaussian (anchor-major, then offset): samples over the D cameras
    w = opacity.reshape(v, d, k).clamp_min(0).permute(0, 2, 1).reshape(v * k, d)
    col = color.reshape(v, d, k, 3).permute(0, 2, 1, 3).reshape(v * k, d, 3)
    cov = cov.reshape(v, d, k, 7).permute(0, 2, 1, 3).reshape(v * k, d, 7)
    cov_c = cov_c.reshape(v * k, 7)
    wsum = w.sum(dim=1)
    op = wsum / d
    keep = torch.nonzero(op > MIN_OPACITY).squeeze(-1)
    w, col, cov, cov_c, wsum, op, dirs = w[keep], col[keep], cov[keep], cov_c[keep], wsum[keep], op[keep], dirs[keep]
    wn = (w / wsum[:, None])[..., None]  # [G, D, 1], sums to 1

    a_local = keep // k
    s_rep = s[a_local]
    means = x[a_local] + o.reshape(-1, 3)[keep] * torch.exp(s_rep[:, :3])
    scales = torch.exp(s_rep[:, 3:]) * (torch.sigmoid(cov[..., :3]) * wn).sum(dim=1)
    q = F.normalize(cov[..., 3:7], dim=-1, eps=1e-8)
    q_ref = F.normalize(cov_c[:, 3:7], dim=-1, eps=1e-8)
    sign = torch.where((q * q_ref[:, None, :]).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    quats = F.normalize((q * sign * wn).sum(dim=1), dim=-1, eps=1e-8)
    sh_dc, sh_rest = fit_sh(dirs, col, w, sh_degree)

    eps = 1e-6
    opc = op.clamp(eps, 1 - eps)
    return GaussianCloud(means, sh_dc, sh_rest, torch.log(opc / (1 - opc)), torch.log(scales.clamp_min(1e-12)), quats)


def sphere_cameras(model: ProGSModel, count: int, view_distance: float | None) -> torch.Tensor:
    """``count`` camera centres spread evenly (Fibonacci lattice) over the sphere of radius
    ``view_distance`` (1.5 × the cube size when unknown) around the octree cube's centre; [count, 3]."""
    grid = model.grid
    centre = grid.origin_tensor.float() + grid.size / 2
    d = float(view_distance) if view_distance else 1.5 * grid.size
    return centre + d * fibonacci_sphere(count)


def _concat(parts: list[GaussianCloud]) -> GaussianCloud:
    return GaussianCloud(
        *(
            torch.cat([getattr(p, n) for p in parts])
            for n in ("means", "sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats")
        )
    )


@torch.no_grad()
def model_to_cloud(
    model: ProGSModel,
    lod: int | None = None,
    view_distance: float | None = None,
    sh_degree: int = DEFAULT_SH_DEGREE,
    directions: int = DEFAULT_DIRECTIONS,
    cameras: torch.Tensor | None = None,
    chunk: int = 512,
) -> GaussianCloud:
    """The Gaussians of LoD ``lod`` (default: all levels) as a plain 3DGS cloud with SH colours of
    degree ``sh_degree``, fitted over the views from ``cameras`` [D, 3] (camera centres, e.g. the
    training cameras') or, by default, from ``directions`` cameras on the sphere of radius
    ``view_distance`` (default: the model's own) around the scene."""
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"sh_degree must be 0..3, got {sh_degree}")
    if view_distance is None:
        view_distance = getattr(model, "view_distance", None)
    if cameras is None:
        cameras = sphere_cameras(model, directions, view_distance)
    cameras = torch.as_tensor(cameras, dtype=torch.float32).reshape(-1, 3)
    if cameras.shape[0] < (sh_degree + 1) ** 2:
        raise ValueError(f"{cameras.shape[0]} views cannot determine {(sh_degree + 1) ** 2} SH coefficients")
    a = model.anchors
    lod = model.num_levels if lod is None else int(lod)
    vis = torch.nonzero(a.levels <= lod).squeeze(-1)
    canon = canonical_view_vectors(model, a.positions[vis].float(), view_distance)
    parts = [
        _export_chunk(model, vis[i : i + chunk], canon[i : i + chunk], cameras, sh_degree)
        for i in range(0, vis.shape[0], chunk)
    ]
    if not parts:
        return GaussianCloud(
            torch.zeros(0, 3),
            torch.zeros(0, 3),
            torch.zeros(0, (sh_degree + 1) ** 2 - 1, 3),
            torch.zeros(0),
            torch.zeros(0, 3),
            torch.zeros(0, 4),
        )
    return _concat(parts)
