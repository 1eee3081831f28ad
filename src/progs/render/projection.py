"""EWA projection of 3D Gaussians to screen-space ellipses, with gsplat's conventions.

Everything here is plain PyTorch and differentiable by autograd; only the per-pixel compositing has a
hand-written kernel. Constants follow gsplat 1.5 (``fully_fused_projection`` + ``persp_proj``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from progs.scene import Camera

EPS2D = 0.3  # low-pass filter added to the 2D covariance diagonal (px^2)
TILE_SIZE = 16
ALPHA_MAX = 0.99  # alpha clamp (the 3DGS paper; gsplat 1.5 uses 0.999 — see docs)
ALPHA_MIN = 1.0 / 255.0  # contributions below this are skipped
T_MIN = 1e-4  # compositing stops once transmittance would fall to this


@dataclass
class Projected:
    """Screen-space Gaussians; entries with ``radii == 0`` are culled and must be ignored."""

    means2d: torch.Tensor  # [N, 2] pixel coordinates (centre of pixel u is u + 0.5)
    conics: torch.Tensor  # [N, 3] upper triangle (a, b, c) of the inverse 2D covariance
    depths: torch.Tensor  # [N] camera-space z
    radii: torch.Tensor  # [N] int32, 3-sigma radius in pixels, 0 when culled


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] from quaternions [N, 4] in (w, x, y, z) order (normalised here)."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World-space covariances R S S^T R^T, [N, 3, 3]."""
    M = quat_to_rotmat(quats) * scales[:, None, :]
    return M @ M.transpose(1, 2)


def project_gaussians(
    means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, camera: Camera, eps2d: float = EPS2D
) -> Projected:
    """Project Gaussians into ``camera``; culls behind-near/beyond-far, degenerate and off-screen ones."""
    W = camera.world_to_camera.to(means)
    R, t = W[:3, :3], W[:3, 3]
    pc = means @ R.T + t
    x, y, z = pc.unbind(-1)
    in_depth = (z > camera.near) & (z < camera.far)
    zs = torch.where(in_depth, z, torch.ones_like(z))  # keep culled entries finite

    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    tan_fovx = 0.5 * camera.width / fx
    tan_fovy = 0.5 * camera.height / fy
    lim_x_pos = (camera.width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (camera.height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    rz = 1.0 / zs
    rz2 = rz * rz
    tx = zs * torch.clamp(x * rz, -lim_x_neg, lim_x_pos)
    ty = zs * torch.clamp(y * rz, -lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(zs)
    J = torch.stack([fx * rz, zero, -fx * tx * rz2, zero, fy * rz, -fy * ty * rz2], dim=-1).reshape(-1, 2, 3)

    cov_world = covariance_3d(quats, scales)
    cov_cam = R @ cov_world @ R.T
    cov2d = J @ cov_cam @ J.transpose(1, 2)
    a = cov2d[:, 0, 0] + eps2d
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    ok_det = det > 0
    det_safe = torch.where(ok_det, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)

    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)

    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.01))
        radius = torch.ceil(3.0 * torch.sqrt(lam.clamp_min(0)))
        u, v = means2d[:, 0], means2d[:, 1]
        on_screen = (u + radius > 0) & (u - radius < camera.width) & (v + radius > 0) & (v - radius < camera.height)
        finite = torch.isfinite(means2d).all(-1) & torch.isfinite(conics).all(-1) & torch.isfinite(radius)
        valid = in_depth & ok_det & on_screen & finite & (radius > 0)
        radii = torch.where(valid, radius, torch.zeros_like(radius)).to(torch.int32)

    return Projected(means2d=means2d, conics=conics, depths=z, radii=radii)


def tile_bounds(means2d: torch.Tensor, radii: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Per Gaussian the tile rectangle it touches, [N, 4] int64 (x0, y0, x1, y1), half-open."""
    tiles_x = (width + TILE_SIZE - 1) // TILE_SIZE
    tiles_y = (height + TILE_SIZE - 1) // TILE_SIZE
    r = radii.to(means2d.dtype)
    m = means2d.detach()
    x0 = torch.floor((m[:, 0] - r) / TILE_SIZE).clamp(0, tiles_x)
    x1 = torch.ceil((m[:, 0] + r) / TILE_SIZE).clamp(0, tiles_x)
    y0 = torch.floor((m[:, 1] - r) / TILE_SIZE).clamp(0, tiles_y)
    y1 = torch.ceil((m[:, 1] + r) / TILE_SIZE).clamp(0, tiles_y)
    return torch.stack([x0, y0, x1, y1], dim=-1).long()
