"""Image-quality metrics as the 3DGS literature reports them.

- PSNR on images in [0, 1].
- SSIM with an 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, 'valid'-free same-size filtering
  with zero padding excluded (as the 3DGS reference code does: conv2d with padding = 5, groups = C).
- LPIPS needs pretrained weights that progs does not ship or download: reported as unavailable
  (None, printed 'n/a'), never as 0.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def psnr(image: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of [H, W, C] (or any same-shape) images in [0, 1] (on the image's device)."""
    mse = torch.mean((image.detach().float().clamp(0, 1) - target.detach().float().to(image.device)) ** 2).item()
    if mse <= 1e-20:
        return float("inf")
    return 10.0 * math.log10(1.0 / mse)


SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


@functools.lru_cache(maxsize=8)
def gaussian_taps(size: int, sigma: float) -> torch.Tensor:
    """The 1-D Gaussian window (normalised; a CPU tensor, cached: not to be modified)."""
    coords = torch.arange(size, dtype=torch.float32, device="cpu") - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


@functools.lru_cache(maxsize=8)
def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    g = gaussian_taps(size, sigma)  # cached; moved by the caller
    w2d = torch.outer(g, g)
    return w2d.expand(channels, 1, size, size).contiguous()


def ssim_map(
    image: torch.Tensor, target: torch.Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA
) -> torch.Tensor:
    """Per-pixel SSIM of [H, W, C] images; differentiable (used by the training loss)."""
    x = image.permute(2, 0, 1)[None]
    y = target.permute(2, 0, 1)[None]
    C = x.shape[1]
    w = _gaussian_window(window, sigma, C).to(x)
    pad = window // 2
    mu_x = F.conv2d(x, w, padding=pad, groups=C)
    mu_y = F.conv2d(y, w, padding=pad, groups=C)
    sxx = F.conv2d(x * x, w, padding=pad, groups=C) - mu_x**2
    syy = F.conv2d(y * y, w, padding=pad, groups=C) - mu_y**2
    sxy = F.conv2d(x * y, w, padding=pad, groups=C) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den)[0].permute(1, 2, 0)


def ssim(image: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM (window 11, sigma 1.5) of [H, W, C] images in [0, 1] (on the image's device)."""
    with torch.no_grad():
        return float(ssim_map(image.float().clamp(0, 1), target.float().to(image.device)).mean().item())


def lpips(image: torch.Tensor, target: torch.Tensor) -> float | None:
    """LPIPS is not computed: its network weights are not bundled and progs never downloads them at
    run time. Returns None, which every table prints as 'n/a' (never as 0)."""
    return None
