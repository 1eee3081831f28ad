"""ProGSModel: an octree of anchors plus the neural-Gaussian generator, rendered per LoD."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from progs.model.anchors import AnchorSet
from progs.model.gaussians import GaussianGenerator, NeuralGaussians
from progs.octree import OctreeGrid
from progs.scene import Camera


@dataclass
class RenderOutput:
    image: torch.Tensor  # [H, W, 3]
    alpha: torch.Tensor  # [H, W, 1]
    info: dict[str, Any]  # rasterizer info: means2d (grad retained), radii, ...
    gaussians: NeuralGaussians
    lod: int


class ProGSModel(nn.Module):
    """Anchors (``self.anchors``) + MLPs (``self.generator``); ``render(camera, lod)`` draws LoD ``lod``
    (anchors of level ≤ lod only)."""

    def __init__(self, anchors: AnchorSet, generator: GaussianGenerator | None = None, cull_margin: float = 0.1):
        super().__init__()
        self.anchors = anchors
        self.generator = generator or GaussianGenerator(anchors.feat_dim, anchors.n_offsets, anchors.num_levels)
        self.cull_margin = cull_margin

    @property
    def grid(self) -> OctreeGrid:
        return self.anchors.grid

    @property
    def num_levels(self) -> int:
        return self.anchors.num_levels

    @property
    def dist_scale(self) -> float:
        return float(self.grid.size)

    def generate(
        self, camera: Camera, lod: int | None = None, *, cull: bool = True,
        attributes: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> NeuralGaussians:
        """Neural Gaussians of LoD ``lod``; ``attributes`` optionally replaces the anchors'
        (feature, scaling, offsets), e.g. by their quantized or noise-perturbed versions."""
        a = self.anchors
        feature, scaling, offsets = attributes if attributes is not None else (a.feature, a.scaling, a.offsets)
        return self.generator(
            a.positions, a.levels, feature, scaling, offsets, camera,
            lod=lod, dist_scale=self.dist_scale, cull=cull, margin=self.cull_margin,
        )

    def render(
        self, camera: Camera, lod: int | None = None, background: torch.Tensor | None = None, backend: str = "auto",
        attributes: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> RenderOutput:
        from progs.render import rasterize

        lod = self.num_levels if lod is None else int(lod)
        g = self.generate(camera, lod, attributes=attributes)
        image, alpha, info = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, camera, background, backend=backend)
        return RenderOutput(image, alpha, info, g, lod)
