"""The C++/OpenMP compositing kernel (``progs/csrc/rasterize.cpp``) behind autograd.

Building and loading the extension is :mod:`progs.kernels`' job; if it is unavailable,
:func:`kernel_available` is False and callers fall back to the pure-PyTorch reference.

:func:`composite` has the signature and the exact semantics of
:func:`progs.render.reference.composite_reference`; it accepts float32 (the fast path) and float64.
"""

from __future__ import annotations

from typing import Any

import torch

from progs.kernels import build_directory, kernel_available, kernel_error, load_kernel
from progs.render.projection import ALPHA_MAX, ALPHA_MIN, T_MIN, TILE_SIZE

__all__ = ["kernel_available", "composite", "load_kernel", "build_directory"]


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        means2d: torch.Tensor,
        conics: torch.Tensor,
        colors: torch.Tensor,
        opacities: torch.Tensor,
        background: torch.Tensor,
        depths: torch.Tensor,
        radii: torch.Tensor,
        width: int,
        height: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ext = load_kernel()
        assert ext is not None
        image, alpha, t_final, last, tile_offsets, ids, slots, goff = ext.forward(
            means2d,
            conics,
            colors,
            opacities,
            depths,
            radii,
            background,
            width,
            height,
            TILE_SIZE,
            ALPHA_MAX,
            ALPHA_MIN,
            T_MIN,
        )
        ctx.save_for_backward(
            means2d, conics, colors, opacities, background, t_final, last, tile_offsets, ids, slots, goff
        )
        ctx.size = (width, height)
        return image, alpha

    @staticmethod
    def backward(ctx: Any, v_image: torch.Tensor | None, v_alpha: torch.Tensor | None):  # type: ignore[override]
        (means2d, conics, colors, opacities, background, t_final, last, tile_offsets, ids, slots, goff) = (
            ctx.saved_tensors
        )
        width, height = ctx.size
        C = colors.shape[1]
        if v_image is None:
            v_image = torch.zeros(height, width, C, dtype=means2d.dtype, device=means2d.device)
        if v_alpha is None:
            v_alpha = torch.zeros(height, width, 1, dtype=means2d.dtype, device=means2d.device)
        v_image = v_image.to(means2d.dtype).contiguous()
        v_alpha = v_alpha.to(means2d.dtype).contiguous()
        v_means2d = v_conics = v_colors = v_opac = v_bg = None
        if any(ctx.needs_input_grad[:4]):
            ext = load_kernel()
            assert ext is not None
            v_means2d, v_conics, v_colors, v_opac = ext.backward(
                means2d,
                conics,
                colors,
                opacities,
                background,
                v_image,
                v_alpha,
                t_final,
                last,
                tile_offsets,
                ids,
                slots,
                goff,
                width,
                height,
                TILE_SIZE,
                ALPHA_MAX,
                ALPHA_MIN,
                T_MIN,
            )
        if ctx.needs_input_grad[4]:
            v_bg = (v_image * t_final[..., None]).sum(dim=(0, 1))
        return v_means2d, v_conics, v_colors, v_opac, v_bg, None, None, None, None


def composite(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    depths: torch.Tensor,
    radii: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians into an image [H, W, C] and alpha [H, W, 1] with the C++ kernel.

    Same arguments and semantics as :func:`progs.render.reference.composite_reference`; differentiable
    w.r.t. means2d, conics, colors, opacities and background. Requires :func:`kernel_available`."""
    if load_kernel() is None:
        raise RuntimeError(f"the C++ CPU rasterizer is unavailable ({kernel_error()})")
    dtype = torch.float64 if means2d.dtype == torch.float64 else torch.float32
    C = colors.shape[-1]

    def prep(t: torch.Tensor) -> torch.Tensor:
        return t.to(device="cpu", dtype=dtype).contiguous()

    image, alpha = _Composite.apply(
        prep(means2d.reshape(-1, 2)),
        prep(conics.reshape(-1, 3)),
        prep(colors.reshape(-1, C)),
        prep(opacities.reshape(-1)),
        prep(background.reshape(C)),
        prep(depths.detach().reshape(-1)),
        radii.detach().reshape(-1).to(device="cpu", dtype=torch.int32).contiguous(),
        int(width),
        int(height),
    )
    return image, alpha
