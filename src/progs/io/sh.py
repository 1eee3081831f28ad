"""Real spherical harmonics as 3D Gaussian Splatting uses them (degrees 0-3).

The basis, its constants and its order are those of the INRIA reference renderer (and of glTF's
``KHR_gaussian_splatting``, whose coefficients are in the same order, m = -l..l per degree): a
Gaussian seen along the unit direction d (from the camera centre to the Gaussian) has the colour
``0.5 + sum_k c_k Y_k(d)``, clamped at 0. ``sh_dc`` holds c_0, ``sh_rest`` [N, K, 3] holds c_1..c_K.
"""

from __future__ import annotations

import math

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_coeffs(degree: int) -> int:
    """Coefficients per colour channel of SH degree ``degree`` (1, 4, 9 or 16)."""
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be 0..3, got {degree}")
    return (degree + 1) ** 2


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """The basis functions Y_0..Y_{(degree+1)^2-1} at the unit directions ``dirs`` [..., 3]; [..., B]."""
    n = num_coeffs(degree)
    x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    basis = torch.stack(out, dim=-1)
    assert basis.shape[-1] == n
    return basis


def eval_sh(sh_dc: torch.Tensor, sh_rest: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Colours [N, 3] of Gaussians with coefficients ``sh_dc`` [N, 3], ``sh_rest`` [N, K, 3] seen along
    ``dirs`` [N, 3] (any length; normalised here): 0.5 + SH, clamped at 0 as 3DGS renderers do."""
    degree = round(math.sqrt(sh_rest.shape[1] + 1)) - 1
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(d, degree)  # [N, B]
    coeffs = torch.cat([sh_dc[:, None, :], sh_rest], dim=1)  # [N, B, 3]
    return (0.5 + torch.einsum("nb,nbc->nc", basis, coeffs)).clamp_min(0.0)


def fibonacci_sphere(count: int) -> torch.Tensor:
    """``count`` unit vectors spread evenly over the sphere (a Fibonacci lattice); [count, 3]."""
    i = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / count
    r = torch.sqrt((1 - z * z).clamp_min(0))
    phi = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1).float()


def fit_sh(
    dirs: torch.Tensor, colors: torch.Tensor, weights: torch.Tensor, degree: int, ridge: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted least-squares SH coefficients of N Gaussians from colours seen along D directions.

    ``dirs`` [N, D, 3] unit (or [D, 3], shared), ``colors`` [N, D, 3], ``weights`` [N, D] >= 0 (e.g. the
    opacity seen along that direction; a zero weight ignores the sample). ``ridge`` (relative to each
    Gaussian's total weight) damps the degree ≥ 1 coefficients where the samples leave them
    undetermined. Returns (sh_dc [N, 3], sh_rest [N, B-1, 3]).
    """
    n = colors.shape[0]
    basis = sh_basis(dirs, degree)  # [N, D, B] or [D, B]
    if basis.ndim == 2:
        basis = basis.expand(n, *basis.shape)
    bw = basis * weights[..., None]
    gram = bw.transpose(1, 2) @ basis  # [N, B, B]
    rhs = bw.transpose(1, 2) @ (colors - 0.5)  # [N, B, 3]
    total = weights.sum(dim=1).clamp_min(1e-8)  # [N]
    damp = torch.full((basis.shape[-1],), ridge, dtype=basis.dtype)
    damp[0] = 1e-6
    gram = gram + torch.diag_embed(total[:, None] * damp + 1e-10)  # never singular (all-zero weights: 0)
    coeffs = torch.linalg.solve(gram.double(), rhs.double()).float()  # [N, B, 3]
    return coeffs[:, 0, :].contiguous(), coeffs[:, 1:, :].contiguous()
