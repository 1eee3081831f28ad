"""A tiny synthetic scene for the model/training tests: a few random Gaussians seen at 32x32."""

from __future__ import annotations

import math

import torch

from progs.render import rasterize
from progs.scene import Camera, Scene, View


def tiny_scene(n_gauss: int = 40, views: int = 8, size: int = 32, seed: int = 0, with_points: bool = True) -> Scene:
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n_gauss, 3, generator=g) - 0.5) * 1.2
    quats = torch.nn.functional.normalize(torch.randn(n_gauss, 4, generator=g), dim=-1)
    scales = 0.05 + 0.1 * torch.rand(n_gauss, 3, generator=g)
    opac = 0.6 + 0.4 * torch.rand(n_gauss, generator=g)
    cols = torch.rand(n_gauss, 3, generator=g)
    bg = torch.tensor([0.1, 0.1, 0.1])
    vs = []
    with torch.no_grad():
        for i in range(views):
            a = 2 * math.pi * i / views
            cam = Camera.look_at(
                [2.5 * math.cos(a), 2.5 * math.sin(a), 1.0], [0, 0, 0], width=size, height=size, fov_x_deg=60
            )
            img, _, _ = rasterize(means, quats, scales, opac, cols, cam, bg, backend="reference")
            vs.append(View(f"v{i}", cam, img.clamp(0, 1).contiguous()))
    pts = means + 0.05 * torch.randn(n_gauss, 3, generator=g) if with_points else None
    bounds = torch.stack([means.min(0).values - 0.2, means.max(0).values + 0.2])
    return Scene(
        "tiny",
        [v for i, v in enumerate(vs) if i % 4],
        [v for i, v in enumerate(vs) if i % 4 == 0],
        points=pts,
        bounds=bounds,
        background=bg,
    )
