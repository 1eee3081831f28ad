"""Which neural Gaussians can never be seen: the encoder codes their offsets as the prior's mean.

A neural Gaussian is drawn only where its opacity head, ``tanh(MLP_opacity)``, is above zero; the
head sees the anchor's feature, level, view direction and camera distance, but not the offsets. On a
trained demo model about half of all (anchor, offset) pairs stay below zero from every camera, so
their offsets do not change any image, yet each costs its full share of the offset bits. The encoder
marks the pairs whose opacity stays below ``-margin`` from every camera of a dense set around the
scene (Fibonacci spheres at 0.5, 1 and 2 × the viewing distance, plus any cameras given) and codes
their offsets as residual 0, the prior's most probable symbol. The rule is evaluated in float64 on the
decoder's own features and MLP weights, so that only a Gaussian far from being drawn is marked.
"""

from __future__ import annotations

import math

import torch

from progs.model.gaussians import GaussianGenerator
from progs.octree import OctreeGrid
from progs.io.sh import fibonacci_sphere

HIDDEN_MARGIN = 0.02  # tanh-opacity below which a Gaussian counts as hidden (the renderer keeps > 0)
SPHERE_CAMERAS = 128  # per radius
RADII = (0.5, 1.0, 2.0)  # × the viewing distance


def probe_cameras(
    grid: OctreeGrid, view_distance: float | None, extra: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Camera centres [C, 3] (float64) to test visibility from: spheres around the octree cube's centre
    at ``RADII`` × ``view_distance`` (1.5 × the cube size when unknown), plus ``extra``."""
    centre = grid.origin_tensor.double() + grid.size / 2
    d = float(view_distance) if view_distance else 1.5 * grid.size
    dirs = fibonacci_sphere(SPHERE_CAMERAS).double()
    cams = [centre + r * d * dirs for r in RADII]
    if extra is not None and extra.numel():
        cams.append(extra.double().cpu().reshape(-1, 3))
    return torch.cat(cams).to(device)


@torch.no_grad()
def hidden_gaussians(
    generator: GaussianGenerator, positions: torch.Tensor, levels: torch.Tensor, features: torch.Tensor,
    cameras: torch.Tensor, dist_scale: float, margin: float = HIDDEN_MARGIN, batch: int = 16,
) -> torch.Tensor:
    """[N, K] bool: True where the Gaussian's opacity head stays below ``-margin`` from every camera."""
    n, k = positions.shape[0], generator.n_offsets
    mlp = generator.mlp_opacity
    first, last = mlp[0], mlp[2]
    w1, b1 = first.weight.double(), first.bias.double()
    w2, b2 = last.weight.double(), last.bias.double()
    feat = features.double()
    onehot = torch.nn.functional.one_hot((levels - 1).clamp(0, generator.levels - 1), generator.levels).double()
    # the first layer's feature and level terms do not depend on the camera: computed once
    fixed = feat @ w1[:, :feat.shape[1]].T + onehot @ w1[:, feat.shape[1] + 4:].T + b1
    w_view, w_dist = w1[:, feat.shape[1]:feat.shape[1] + 3], w1[:, feat.shape[1] + 3]
    highest = torch.full((n, k), -torch.inf, dtype=torch.float64, device=positions.device)
    pos = positions.double()
    for i in range(0, cameras.shape[0], batch):
        vec = pos[None] - cameras[i:i + batch, None].double()  # [C, N, 3]
        dist = vec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        hidden_in = fixed[None] + (vec / dist) @ w_view.T + (dist / dist_scale) * w_dist
        out = torch.relu(hidden_in) @ w2.T + b2  # tanh is monotone: compare before it
        highest = torch.maximum(highest, out.amax(0))
    return highest < math.atanh(-margin)
