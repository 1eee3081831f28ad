"""Pure-PyTorch reference compositing: the test oracle for the fast kernels, and the last fallback.

Dense over (pixel, Gaussian) pairs, so only for small scenes; autograd provides the backward. It applies
exactly the rules of the tiled kernels: a Gaussian is considered for a pixel only if the pixel's 16x16
tile lies in the Gaussian's tile rectangle; front-to-back order by depth; alpha clamped to ALPHA_MAX;
contributions under ALPHA_MIN skipped; compositing stops before transmittance would reach T_MIN.
"""

from __future__ import annotations

import torch

from progs.render.projection import ALPHA_MAX, ALPHA_MIN, T_MIN, TILE_SIZE, tile_bounds


def composite_reference(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    depths: torch.Tensor,
    radii: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor,
    pixel_chunk: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians into an image [H, W, C] and alpha [H, W, 1]."""
    C = colors.shape[-1]
    keep = torch.nonzero(radii > 0).squeeze(-1)
    order = keep[torch.argsort(depths.detach()[keep], stable=True)]
    m, q, col, op = means2d[order], conics[order], colors[order], opacities[order]
    rect = tile_bounds(means2d[order], radii[order], width, height)

    dev = means2d.device
    ys, xs = torch.meshgrid(torch.arange(height, device=dev), torch.arange(width, device=dev), indexing="ij")
    px = xs.reshape(-1).to(means2d.dtype) + 0.5
    py = ys.reshape(-1).to(means2d.dtype) + 0.5
    tx = xs.reshape(-1) // TILE_SIZE
    ty = ys.reshape(-1) // TILE_SIZE

    out_rgb, out_t = [], []
    for s in range(0, px.numel(), pixel_chunk):
        e = min(s + pixel_chunk, px.numel())
        if order.numel() == 0:
            out_rgb.append(torch.zeros(e - s, C, dtype=colors.dtype, device=dev) + 0 * colors.sum())
            out_t.append(torch.ones(e - s, dtype=colors.dtype, device=dev))
            continue
        dx = m[None, :, 0] - px[s:e, None]
        dy = m[None, :, 1] - py[s:e, None]
        sigma = 0.5 * (q[None, :, 0] * dx * dx + q[None, :, 2] * dy * dy) + q[None, :, 1] * dx * dy
        alpha = torch.clamp(op[None, :] * torch.exp(-sigma), max=ALPHA_MAX)
        in_tile = (
            (tx[s:e, None] >= rect[None, :, 0])
            & (tx[s:e, None] < rect[None, :, 2])
            & (ty[s:e, None] >= rect[None, :, 1])
            & (ty[s:e, None] < rect[None, :, 3])
        )
        use = in_tile & (sigma >= 0) & (alpha >= ALPHA_MIN)
        alpha = torch.where(use, alpha, torch.zeros_like(alpha))
        one_minus = 1.0 - alpha
        t_after = torch.cumprod(one_minus, dim=1)
        # Compositing stops at the first Gaussian that would bring T to <= T_MIN (it is not drawn).
        alive = torch.cumprod((t_after.detach() > T_MIN).to(alpha.dtype), dim=1)
        alpha = alpha * alive
        t_after = torch.cumprod(1.0 - alpha, dim=1)
        t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], dim=1)
        weights = alpha * t_before
        out_rgb.append(weights @ col)
        out_t.append(t_after[:, -1])
    rgb = torch.cat(out_rgb).reshape(height, width, C)
    t_final = torch.cat(out_t).reshape(height, width, 1)
    image = rgb + t_final * background.to(rgb).reshape(1, 1, C)
    return image, 1.0 - t_final
