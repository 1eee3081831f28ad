"""Training losses: photometric (L1 + D-SSIM), coarse-to-fine L_c2f (paper Eq. 12), the Scaffold-GS
volume regulariser L_vol and the parent-child InfoNCE L_NCE (paper Eq. 10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from progs.device import randint, randperm
from progs.kernels import load_kernel
from progs.metrics import SSIM_SIGMA, SSIM_WINDOW, gaussian_taps, ssim_map


class _FusedSSIM(torch.autograd.Function):
    """:func:`progs.metrics.ssim_map` against a fixed target, by the C++ kernel (``csrc/ssim.cpp``): the
    same map to float rounding (separable window), its gradient with respect to the image only."""

    @staticmethod
    def forward(ctx, kernel, x: torch.Tensor, y: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        out, stats = kernel.ssim_forward(x, y, taps)
        ctx.kernel = kernel
        ctx.save_for_backward(x, y, stats, taps)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, y, stats, taps = ctx.saved_tensors
        return None, ctx.kernel.ssim_backward(grad, x, y, stats, taps), None, None


def ssim_loss_map(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of a rendered [H, W, C] image against a fixed target, differentiable in the image:
    :func:`progs.metrics.ssim_map`, fused in C++ for float32 images on the CPU (on a CPU fit SSIM's five
    11×11 convolutions and their backward took about 60 % of a training step; the kernel filters
    separably and skips the target's gradient), else that function itself."""
    kernel = None
    if image.device.type == "cpu" and image.dtype == torch.float32 and not target.requires_grad:
        kernel = load_kernel()
    if kernel is None:
        return ssim_map(image, target)
    taps = gaussian_taps(SSIM_WINDOW, SSIM_SIGMA)
    x = image.permute(2, 0, 1)
    y = target.detach().to(image).permute(2, 0, 1)
    return _FusedSSIM.apply(kernel, x, y, taps).permute(1, 2, 0)


def photometric_loss(image: torch.Tensor, target: torch.Tensor, lambda_ssim: float = 0.2) -> torch.Tensor:
    """(1 - λ) L1 + λ (1 - SSIM) of [H, W, 3] images (the 3DGS / Scaffold-GS loss)."""
    l1 = (image - target).abs().mean()
    if lambda_ssim <= 0:
        return l1
    return (1.0 - lambda_ssim) * l1 + lambda_ssim * (1.0 - ssim_loss_map(image, target).mean())


def c2f_lod_weights(
    levels: int, coarse_samples: int | None, gen: torch.Generator, finest_weight: float | None = None
) -> dict[int, float]:
    """Which LoDs to render this step and with what weight, so that Σ w_l · loss_l is an unbiased
    estimate of L_c2f = (1/L) Σ_{l=1..L} loss_l (paper Eq. 12), or, with ``finest_weight`` w, of
    w · loss_L + (1 - w)/(L-1) · Σ_{l<L} loss_l.

    ``coarse_samples`` None (or ≥ L-1) renders every LoD. Otherwise the finest LoD L is always rendered
    plus ``k = coarse_samples`` distinct LoDs drawn uniformly without replacement from 1..L-1, each
    weighted (L-1)/k times its share: every coarse LoD is drawn with probability k/(L-1), so the
    expectation is exact while costing k+1 renders instead of L.
    """
    L = int(levels)
    if L <= 1:
        return {1: 1.0}
    paper = finest_weight is None  # (the paper's weights keep their exact expressions: runs stay bit for bit)
    fine = 1.0 / L if paper else float(finest_weight)
    coarse = fine if paper else (1.0 - fine) / (L - 1)  # each coarser LoD's share
    if coarse_samples is None or coarse_samples >= L - 1:
        return {lod: (fine if lod == L else coarse) for lod in range(1, L + 1)}
    k = max(1, int(coarse_samples))
    picks = randperm(L - 1, gen, gen.device)[:k] + 1  # read as Python ints: stays on the generator's device
    drawn = (L - 1) / (k * L) if paper else coarse * (L - 1) / k
    weights = {L: fine}
    for p in sorted(int(x) for x in picks):
        weights[p] = drawn
    return weights


def volume_loss(scales: torch.Tensor) -> torch.Tensor:
    """Scaffold-GS's volume regulariser: mean over Gaussians of the product of their three scales."""
    if scales.numel() == 0:
        return scales.sum()
    return scales.prod(dim=-1).mean()


def infonce_loss(
    attributes: torch.Tensor,
    parent: torch.Tensor,
    *,
    fraction: float = 0.05,
    negatives: int = 100,
    tau: float = 0.03,
    gen: torch.Generator,
    negatives_gen: torch.Generator | None = None,
    min_samples: int = 8,
) -> torch.Tensor:
    """InfoNCE between each sampled anchor's attributes and its parent's (paper Eq. 10).

    ``attributes`` [N, D]; ``parent`` [N] int64, the parent's row or -1 for roots. ``fraction`` of the
    non-root anchors (at least ``min_samples``) are drawn uniformly; for each, ``negatives`` anchors are
    drawn uniformly from all anchors (a draw equal to the true parent is masked out). Similarities are
    dot products of L2-normalised attribute vectors (cosine), divided by ``tau``: with raw dot products
    of unnormalised 68-d vectors and τ = 0.03 the softmax saturates immediately, so we normalise as
    in the usual InfoNCE practice. Returns 0 (with a graph) when no anchor has a parent.

    The samples are drawn by ``gen``, the negatives by ``negatives_gen`` (default ``gen``; a trainer
    on a GPU passes a generator there, so the largest draw is made on the device), each on its own
    device and moved to the attributes'.
    """
    child_rows = torch.nonzero(parent >= 0).squeeze(-1)
    n_all = attributes.shape[0]
    if child_rows.numel() == 0 or n_all < 2:
        return attributes.sum() * 0.0
    n = max(min_samples, int(round(fraction * child_rows.numel())))
    n = min(n, child_rows.numel())
    dev = attributes.device
    pick = child_rows[randperm(child_rows.numel(), gen, dev)[:n]]
    par = parent[pick]
    neg = randint(n_all, (n, negatives), negatives_gen or gen, dev)
    z = F.normalize(attributes, dim=-1)
    zc = z[pick]  # [n, D]
    pos = (zc * z[par]).sum(-1, keepdim=True)  # [n, 1]
    negs = torch.einsum("nd,nkd->nk", zc, z[neg])  # [n, K]
    negs = negs.masked_fill((neg == par[:, None]) | (neg == pick[:, None]), float("-inf"))
    logits = torch.cat([pos, negs], dim=1) / tau
    target = torch.zeros(n, dtype=torch.long, device=dev)
    return F.cross_entropy(logits, target)
