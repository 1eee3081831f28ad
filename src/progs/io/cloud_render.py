"""A plain 3DGS renderer for :class:`~progs.io.ply.GaussianCloud` files: colours from the spherical
harmonics evaluated per Gaussian along the viewing ray, as any 3DGS viewer does; no neural model."""

from __future__ import annotations

from typing import Any

import torch

from progs.io.ply import GaussianCloud
from progs.io.sh import eval_sh
from progs.scene import Camera


def cloud_colors(cloud: GaussianCloud, camera_center: torch.Tensor) -> torch.Tensor:
    """The colours [N, 3] of ``cloud``'s Gaussians seen from ``camera_center`` [3]."""
    if cloud.sh_rest.shape[1] == 0:
        return cloud.colors
    return eval_sh(cloud.sh_dc, cloud.sh_rest, cloud.means - camera_center.to(cloud.means))


@torch.no_grad()
def render_cloud(
    cloud: GaussianCloud, camera: Camera, background: torch.Tensor | None = None, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render ``cloud`` seen by ``camera``: (image [H, W, 3], alpha [H, W, 1], info)."""
    from progs.render import rasterize

    colors = cloud_colors(cloud, camera.center)
    return rasterize(
        cloud.means, cloud.quats, cloud.scales, cloud.opacities, colors, camera, background, backend=backend
    )
