"""Export fidelity: how well a plain 3DGS renderer of an exported file reproduces progs' own render.

For one LoD, the PSNR against the ground truth of the test views of progs' own (neural) render and of
a plain 3DGS render of the exported cloud (:func:`progs.io.cloud_render.render_cloud`); the figure is
their difference (export minus progs, in dB; 0 is a perfect export).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from progs.metrics import psnr
from progs.io.ply import GaussianCloud
from progs.model.model import ProGSModel
from progs.scene import View


@dataclass
class Fidelity:
    lod: int
    gaussians: int
    psnr_progs: float  # progs' own render vs ground truth, mean over the views
    psnr_export: float  # plain 3DGS render of the exported cloud vs ground truth
    psnr_between: float  # plain render vs progs' render

    @property
    def delta(self) -> float:
        return self.psnr_export - self.psnr_progs


@torch.no_grad()
def export_fidelity(
    model: ProGSModel,
    lod: int,
    cloud: GaussianCloud,
    views: list[View],
    background: torch.Tensor | None = None,
    backend: str = "auto",
) -> Fidelity:
    """The fidelity of ``cloud`` (exported from ``model`` at LoD ``lod``) on ``views``."""
    from progs.io.cloud_render import render_cloud

    ours, plain, between = [], [], []
    for v in views:
        a = model.render(v.camera, lod, background, backend=backend).image
        b = render_cloud(cloud, v.camera, background, backend=backend)[0]
        ours.append(psnr(a, v.image))
        plain.append(psnr(b, v.image))
        between.append(psnr(b, a.clamp(0, 1)))
    n = max(1, len(views))
    return Fidelity(lod, len(cloud), sum(ours) / n, sum(plain) / n, sum(between) / n)
