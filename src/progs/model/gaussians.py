"""Scaffold-GS neural-Gaussian generator for octree anchors (paper §III-A; Scaffold-GS §3.2).

For a camera and a LoD l, the anchors of level ≤ l whose position lies in the (slightly enlarged) view
frustum each spawn K = 10 Gaussians:

- mean      x + o_k · exp(s[:3])
- scale     exp(s[3:]) · sigmoid(MLP_cov[:3])
- rotation  normalise(MLP_cov[3:7])  (wxyz)
- opacity   tanh(MLP_opacity); Gaussians with opacity ≤ 0 are dropped
- colour    sigmoid(MLP_color)

The MLPs see the anchor feature f, the unit view direction, the camera distance (divided by the
scene's size) and a one-hot code of the anchor's level, so one set of MLPs serves all levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from progs.model import exact_math
from progs.scene import Camera


@dataclass
class NeuralGaussians:
    """Gaussians for one frame, ready for ``progs.render.rasterize``, plus their origin."""

    means: torch.Tensor  # [M, 3]
    quats: torch.Tensor  # [M, 4] wxyz, normalised
    scales: torch.Tensor  # [M, 3] linear
    opacities: torch.Tensor  # [M] in (0, 1]
    colors: torch.Tensor  # [M, 3] in (0, 1)
    anchor_index: torch.Tensor  # [M] row of the source anchor in the AnchorSet
    offset_index: torch.Tensor  # [M] which of the anchor's K Gaussians (0..K-1)
    visible_anchors: torch.Tensor  # [V] rows of the anchors that were generated from (culled + LoD)
    anchor_opacity: torch.Tensor  # [V, K] raw tanh opacities of all K Gaussians of each visible anchor

    def __len__(self) -> int:
        return int(self.means.shape[0])


def _mlp(d_in: int, hidden: int, d_out: int, last: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out)]
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


def frustum_visible(positions: torch.Tensor, extent: torch.Tensor, camera: Camera, margin: float = 0.1) -> torch.Tensor:
    """Mask [N] of anchors whose position (grown by ``extent`` world units, projected) lies in front of
    the camera and within the image enlarged by ``margin`` of its size on every side."""
    with torch.no_grad():
        uv, z = camera.project(positions)
        zs = z.clamp_min(1e-6)
        r = extent * max(camera.fx, camera.fy) / zs
        mw, mh = margin * camera.width, margin * camera.height
        inside = (
            (uv[:, 0] + r >= -mw)
            & (uv[:, 0] - r <= camera.width + mw)
            & (uv[:, 1] + r >= -mh)
            & (uv[:, 1] - r <= camera.height + mh)
        )
        # Anchors just behind the near plane may still own Gaussians in front of it.
        in_depth = (z + extent > camera.near) & (z - extent < camera.far)
        return inside & in_depth


class GaussianGenerator(nn.Module):
    """The three Scaffold-GS MLPs (opacity, colour, covariance), shared by all levels."""

    def __init__(self, feat_dim: int = 32, n_offsets: int = 10, levels: int = 5, hidden: int | None = None):
        super().__init__()
        self.feat_dim = feat_dim
        self.n_offsets = n_offsets
        self.levels = levels
        hidden = hidden or feat_dim
        d_in = self.input_slices()["level"].stop
        self.mlp_opacity = _mlp(d_in, hidden, n_offsets, nn.Tanh())
        self.mlp_color = _mlp(d_in, hidden, 3 * n_offsets, nn.Sigmoid())
        self.mlp_cov = _mlp(d_in, hidden, 7 * n_offsets, None)

    def input_slices(self) -> dict[str, slice]:
        """Where each input sits in the MLPs' input vector (the order :meth:`heads` concatenates them):
        the anchor feature, the unit view direction, the camera distance / ``dist_scale`` and the
        one-hot level. :mod:`progs.model.visibility` reads the opacity head's weights through it."""
        f = self.feat_dim
        return {
            "feature": slice(0, f),
            "view": slice(f, f + 3),
            "distance": slice(f + 3, f + 4),
            "level": slice(f + 4, f + 4 + self.levels),
        }

    def fixed_point_weights(self) -> dict[str, tuple[np.ndarray, int]]:
        """Each MLP tensor (``state_dict`` names) as (int64 mantissas, exponent e): value = mantissa * 2^-e,
        ``exact_math.GENERATOR_BITS`` significant bits: what the header stores."""
        return {
            name: exact_math.fixed_point(t.detach().double().cpu().numpy(), exact_math.GENERATOR_BITS)
            for name, t in self.state_dict().items()
        }

    def load_fixed_point_weights(self, weights: dict[str, tuple[np.ndarray, int]]) -> None:
        self.load_state_dict(
            {
                name: torch.from_numpy(exact_math.from_fixed_point(mant, e)).float()
                for name, (mant, e) in weights.items()
            }
        )

    def args(self) -> dict[str, int]:
        """The constructor's arguments: ``GaussianGenerator(**g.args())`` builds the same shapes."""
        return {
            "feat_dim": self.feat_dim,
            "n_offsets": self.n_offsets,
            "levels": self.levels,
            "hidden": self.mlp_opacity[0].out_features,
        }

    def forward(
        self,
        positions: torch.Tensor,
        levels: torch.Tensor,
        feature: torch.Tensor,
        scaling: torch.Tensor,
        offsets: torch.Tensor,
        camera: Camera,
        *,
        lod: int | None = None,
        dist_scale: float = 1.0,
        cull: bool = True,
        margin: float = 0.1,
    ) -> NeuralGaussians:
        """Generate the Gaussians of the anchors of level ≤ ``lod`` (all if None) seen by ``camera``.

        ``positions`` [N, 3] (no grad), ``levels`` [N] in 1..L, ``feature`` [N, F], ``scaling`` [N, 6]
        (log), ``offsets`` [N, K, 3]; ``dist_scale`` divides the camera distance fed to the MLPs.
        """
        with torch.no_grad():
            sel = torch.ones(positions.shape[0], dtype=torch.bool, device=positions.device)
            if lod is not None:
                sel &= levels <= lod
            if cull and positions.shape[0] > 0:
                extent = (
                    torch.exp(scaling[:, :3].detach()).amax(-1) * offsets.detach().abs().amax(dim=(1, 2))
                    + torch.exp(scaling[:, 3:].detach()).amax(-1) * 3.0
                )
                sel &= frustum_visible(positions, extent, camera, margin)
            vis = torch.nonzero(sel).squeeze(-1)
        x = positions[vis]
        return self.decode(
            vis, x, levels[vis], feature[vis], scaling[vis], offsets[vis], x - camera.center.to(x), dist_scale
        )

    def heads(
        self, f: torch.Tensor, lv: torch.Tensor, view_vectors: torch.Tensor, dist_scale: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The raw MLP outputs for anchors with features ``f`` [V, F] and levels ``lv`` [V] seen along
        ``view_vectors`` [V, 3]: opacity [V, K] (tanh), colour [V, K, 3], covariance [V, K, 7]."""
        K = self.n_offsets
        dist = view_vectors.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        view = view_vectors / dist
        onehot = F.one_hot((lv - 1).clamp(0, self.levels - 1), self.levels).to(f)
        inp = torch.cat([f, view, dist / dist_scale, onehot], dim=-1)  # the order of input_slices()
        return (self.mlp_opacity(inp), self.mlp_color(inp).reshape(-1, K, 3), self.mlp_cov(inp).reshape(-1, K, 7))

    def decode(
        self,
        vis: torch.Tensor,
        x: torch.Tensor,
        lv: torch.Tensor,
        f: torch.Tensor,
        s: torch.Tensor,
        o: torch.Tensor,
        view_vectors: torch.Tensor,
        dist_scale: float = 1.0,
    ) -> NeuralGaussians:
        """The Gaussians of the anchors ``vis`` (rows of the AnchorSet) whose position, level and
        attributes are given, each seen along ``view_vectors`` [V, 3] (anchor minus camera centre)."""
        K = self.n_offsets
        opacity, color, cov = self.heads(f, lv, view_vectors, dist_scale)

        keep = opacity.detach().reshape(-1) > 0.0
        idx = torch.nonzero(keep).squeeze(-1)
        a_local = idx // K
        k_idx = idx % K

        s_rep = s[a_local]
        offs = o.reshape(-1, 3)[idx] * torch.exp(s_rep[:, :3])
        means = x[a_local] + offs
        scales = torch.exp(s_rep[:, 3:]) * torch.sigmoid(cov.reshape(-1, 7)[idx, :3])
        quats = F.normalize(cov.reshape(-1, 7)[idx, 3:7], dim=-1, eps=1e-8)
        return NeuralGaussians(
            means=means,
            quats=quats,
            scales=scales,
            opacities=opacity.reshape(-1)[idx],
            colors=color.reshape(-1, 3)[idx],
            anchor_index=vis[a_local],
            offset_index=k_idx,
            visible_anchors=vis,
            anchor_opacity=opacity.detach(),
        )
