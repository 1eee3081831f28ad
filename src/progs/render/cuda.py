"""The CUDA backend: ``gsplat.rasterization`` (gsplat 1.5.3), imported lazily.

Returns what :func:`progs.render.rasterize` returns: ``(image [H, W, C], alpha [H, W, 1], info)`` with
``info`` keys ``means2d`` [N, 2], ``radii`` [N] (int32, 0 = culled), ``depths`` [N] and ``conics``
[N, 3]. gsplat keeps one batch entry per camera, so ``info["means2d"]`` is a detached [N, 2] view whose
``.grad`` a backward hook fills (the densification statistics read it after ``backward()``).
Differences from the CPU backends (documented, and bounded by the parity test): gsplat clamps alpha at
0.999 rather than 0.99 and bounds the tile footprint with the opacity-aware radius.
"""

from __future__ import annotations

from typing import Any

import torch

from progs.errors import ProgsError
from progs.render.projection import EPS2D, TILE_SIZE
from progs.scene import Camera


def _gsplat_rasterization() -> Any:
    """``gsplat.rasterization``; the first call builds gsplat's CUDA extension (minutes, once per machine)."""
    try:
        from gsplat import rasterization
        from gsplat.cuda._backend import _C
    except ImportError as exc:  # also covers a gsplat whose CUDA extension fails to load
        raise ProgsError(
            "the 'cuda' rasterizer backend needs gsplat 1.5.3 with CUDA "
            "(pip install '.[cuda]' in the progs checkout); use --device cpu otherwise"
            f" ({type(exc).__name__}: {exc})"
        ) from exc
    if _C is None:  # gsplat imports without its extension when it finds no CUDA toolkit (nvcc) to build it
        raise ProgsError(
            "gsplat is installed but its CUDA extension is not built (it needs the CUDA toolkit, "
            "nvcc, the first time); use --device cpu otherwise"
        )
    return rasterization


def rasterize_gsplat(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    camera: Camera,
    background: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render with ``gsplat.rasterization`` (classic mode, packed=False, eps2d 0.3, one camera)."""
    rasterization = _gsplat_rasterization()
    if not means.is_cuda:
        raise ProgsError("the 'cuda' rasterizer backend needs CUDA tensors (move the Gaussians to the GPU)")
    device, dtype = means.device, torch.float32
    if means.shape[0] == 0:  # nothing to draw (a LoD with no visible anchor): the background, kept in the graph
        return _empty_render(means, quats, scales, opacities, colors, camera, background)
    viewmats = camera.world_to_camera.to(device=device, dtype=dtype)[None]  # [1, 4, 4]
    Ks = camera.K.to(device=device, dtype=dtype)[None]  # [1, 3, 3]
    C = colors.shape[-1]
    backgrounds = background.to(device=device, dtype=dtype).reshape(1, C)
    render, alphas, meta = rasterization(
        means.to(dtype),
        quats.to(dtype),
        scales.to(dtype),
        opacities.to(dtype),
        colors.to(dtype),
        viewmats,
        Ks,
        camera.width,
        camera.height,
        near_plane=camera.near,
        far_plane=camera.far,
        eps2d=EPS2D,
        packed=False,
        tile_size=TILE_SIZE,
        backgrounds=backgrounds,
        render_mode="RGB",
        rasterize_mode="classic",
    )
    means2d_b = meta["means2d"]  # [1, N, 2]
    means2d = means2d_b.detach()[0]
    if means2d_b.requires_grad:

        def _copy_grad(grad: torch.Tensor) -> torch.Tensor:
            g = grad[0].detach()
            means2d.grad = g.clone() if means2d.grad is None else means2d.grad + g
            return grad

        means2d_b.register_hook(_copy_grad)
    radii = meta["radii"][0]
    if radii.dim() == 2:  # gsplat >= 1.5: per-axis radii [N, 2]
        radii = radii.amax(dim=-1)
    info = {
        "means2d": means2d,
        "radii": radii.to(torch.int32),
        "depths": meta["depths"][0],
        "conics": meta["conics"][0],
    }
    return render[0], alphas[0], info


def _empty_render(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    camera: Camera,
    background: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """What rendering zero Gaussians gives, without calling gsplat: the background everywhere, alpha 0. The
    image still depends on the (empty) inputs, so a loss on it back-propagates (to nothing) like any other."""
    device, dtype, C = means.device, torch.float32, colors.shape[-1]
    zero = sum(t.to(dtype).sum() for t in (means, quats, scales, opacities, colors)) * 0.0
    image = background.to(device=device, dtype=dtype).reshape(1, 1, C).expand(camera.height, camera.width, C) + zero
    alpha = torch.zeros(camera.height, camera.width, 1, device=device, dtype=dtype)
    info = {
        "means2d": torch.zeros(0, 2, device=device, dtype=dtype),
        "radii": torch.zeros(0, dtype=torch.int32, device=device),
        "depths": torch.zeros(0, device=device, dtype=dtype),
        "conics": torch.zeros(0, 3, device=device, dtype=dtype),
    }
    return image, alpha, info
