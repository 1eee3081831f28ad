"""Differentiable 3DGS rasterization: one API, several backends.

``rasterize(means, quats, scales, opacities, colors, camera, background)`` returns
``(image [H, W, 3], alpha [H, W, 1], info)`` and is differentiable w.r.t. every Gaussian input.
Conventions follow gsplat (EWA projection with a 0.3 px^2 low-pass, 3-sigma tile culling, alpha
clamp, skip alpha < 1/255, stop at transmittance 1e-4). ``info`` holds ``means2d`` (with
``retain_grad`` when it requires grad, for densification statistics), ``radii`` and ``depths``.

Backends: ``"cuda"`` (gsplat, when CUDA is present), ``"cpu"`` (our C++/OpenMP kernel) and
``"reference"`` (dense pure PyTorch; the test oracle). ``"auto"`` picks cuda for CUDA tensors, else cpu,
falling back to the reference with a warning if the C++ kernel cannot be built.
"""

from __future__ import annotations

from typing import Any

import torch

from progs.render.projection import Projected, project_gaussians
from progs.render.reference import composite_reference
from progs.scene import Camera

__all__ = ["rasterize", "project_gaussians", "Projected", "available_backends"]


def available_backends() -> list[str]:
    names = ["reference"]
    from progs.render import cpu as _cpu

    if _cpu.kernel_available():
        names.append("cpu")
    if torch.cuda.is_available():
        names.append("cuda")
    return names


def rasterize(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    camera: Camera,
    background: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render Gaussians (means [N,3], quats [N,4] wxyz, scales [N,3] linear, opacities [N] in [0,1],
    colors [N,C]) seen by ``camera`` over ``background`` [C] (default black)."""
    if background is None:
        background = torch.zeros(colors.shape[-1], dtype=colors.dtype, device=colors.device)
    if backend == "auto":
        backend = "cuda" if means.is_cuda else "cpu"
    if backend == "cuda":
        from progs.render.cuda import rasterize_gsplat

        return rasterize_gsplat(means, quats, scales, opacities, colors, camera, background)

    proj = project_gaussians(means, quats, scales, camera)
    if proj.means2d.requires_grad:
        proj.means2d.retain_grad()
    if backend == "cpu":
        from progs.render import cpu as _cpu

        composite = _cpu.composite if _cpu.kernel_available() else composite_reference
    elif backend == "reference":
        composite = composite_reference
    else:
        raise ValueError(f"unknown rasterizer backend {backend!r} (use auto, cpu, reference or cuda)")
    image, alpha = composite(
        proj.means2d,
        proj.conics,
        colors,
        opacities,
        proj.depths,
        proj.radii,
        camera.width,
        camera.height,
        background,
    )
    info = {"means2d": proj.means2d, "radii": proj.radii, "depths": proj.depths, "conics": proj.conics}
    return image, alpha, info
