"""A plain 3D Gaussian Splatting fit (the uncompressed baseline), with our ``rasterize``.

Parameters: means, log-scales, quaternions, opacity logits and degree-0 SH colours, optimised with
Adam on (1-λ) L1 + λ D-SSIM (λ = 0.2) as in 3DGS. Initialised from the scene's points (kNN scales,
opacity 0.1); scenes without points start from random points in their bounds. A model capped at
``max_gaussians`` starts from a seeded random subset of that many points when there are more.
Densification as in 3DGS, simplified: the view-space positional gradient (NDC units) is accumulated per Gaussian and, a
few times during the fit, Gaussians whose mean gradient exceeds ``grad_threshold`` are cloned (small
ones) or split in two (large ones, scales / 1.6); low-opacity Gaussians are pruned. The optimizer
restarts after each densification.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from progs.device import CPU
from progs.metrics import psnr, ssim
from progs.io.ply import SH_C0, GaussianCloud, write_ply
from progs.render import rasterize
from progs.render.projection import quat_to_rotmat
from progs.scene import Scene, View, views_on
from progs.train.losses import photometric_loss
from progs.train.schedule import exp_lr


@dataclass
class Fit3DGSConfig:
    iterations: int = 3000
    densify_at: tuple[float, ...] = (0.15, 0.3, 0.45, 0.6)  # fractions of the iterations
    grad_threshold: float = 0.0002  # 3DGS densify_grad_threshold (NDC units)
    percent_dense: float = 0.01  # clone if max scale <= this x scene extent, else split
    prune_opacity: float = 0.005
    max_gaussians: int = 300_000
    lambda_ssim: float = 0.2
    lr_means_init: float = 1.6e-4  # x scene extent
    lr_means_final: float = 1.6e-6
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacity: float = 5e-2
    lr_sh: float = 2.5e-3
    random_points: int = 20_000
    seed: int = 0


@dataclass
class Fit3DGSResult:
    cloud: GaussianCloud
    seconds: float
    iterations: int
    densifications: list[dict[str, int]]
    psnr: float
    ssim: float


def _knn_scale(points: torch.Tensor, k: int = 3, chunk: int = 4096) -> torch.Tensor:
    """sqrt of the mean squared distance to the k nearest neighbours (3DGS initial scale)."""
    out = torch.empty(points.shape[0])
    for i in range(0, points.shape[0], chunk):
        d = torch.cdist(points[i : i + chunk], points)
        d2 = d.topk(min(k + 1, points.shape[0]), largest=False).values[:, 1:] ** 2
        out[i : i + chunk] = d2.mean(dim=1).clamp_min(1e-12).sqrt() if d2.numel() else 1e-2
    return out


class GaussianFit:
    def __init__(self, scene: Scene, cfg: Fit3DGSConfig, device: torch.device = CPU):
        self.cfg = cfg
        self.scene = scene
        self.device = torch.device(device)
        self.bg = scene.background.float().to(self.device)
        # the split samples draw from a generator of their own: a fit is the same whatever ran before it
        self.split_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        g = torch.Generator().manual_seed(cfg.seed)
        pts = scene.points
        if pts is not None and pts.shape[0] >= 4:
            means = pts.float().clone()
            colors = scene.point_colors.float() if scene.point_colors is not None else torch.full_like(means, 0.5)
        else:
            b = scene.bounds if scene.bounds is not None else scene.camera_bounds()
            means = b[0] + torch.rand(min(cfg.random_points, cfg.max_gaussians), 3, generator=g) * (b[1] - b[0])
            colors = torch.full_like(means, 0.5)
        if means.shape[0] > cfg.max_gaussians:  # a capped model starts from a seeded subset of the points
            keep = torch.randperm(means.shape[0], generator=g)[: cfg.max_gaussians].sort().values
            means, colors = means[keep], colors[keep]
        n = means.shape[0]
        self.extent = float((means.max(0).values - means.min(0).values).norm()) / 2 or 1.0
        self.means = means
        self.log_scales = torch.log(_knn_scale(means))[:, None].repeat(1, 3)
        self.quats = torch.zeros(n, 4)
        self.quats[:, 0] = 1
        self.opacity = torch.full((n,), math.log(0.1 / 0.9))
        self.sh = (colors.clamp(0, 1) - 0.5) / SH_C0
        for name in ("means", "log_scales", "quats", "opacity", "sh"):  # initialised on the CPU (seeded)
            setattr(self, name, getattr(self, name).to(self.device))
        self._new_optimizer()
        self.densifications: list[dict[str, int]] = []

    def params(self) -> list[torch.Tensor]:
        return [self.means, self.log_scales, self.quats, self.opacity, self.sh]

    def _new_optimizer(self) -> None:
        for name in ("means", "log_scales", "quats", "opacity", "sh"):
            setattr(self, name, getattr(self, name).detach().clone().requires_grad_(True))
        c = self.cfg
        self.opt = torch.optim.Adam(
            [
                {"params": [self.means], "lr": c.lr_means_init * self.extent, "name": "means"},
                {"params": [self.log_scales], "lr": c.lr_scales},
                {"params": [self.quats], "lr": c.lr_quats},
                {"params": [self.opacity], "lr": c.lr_opacity},
                {"params": [self.sh], "lr": c.lr_sh},
            ],
            eps=1e-15,
        )
        self.grad_accum = torch.zeros(self.means.shape[0], dtype=torch.float64, device=self.device)
        self.grad_count = torch.zeros(self.means.shape[0], dtype=torch.float64, device=self.device)

    def render(self, view: View):
        colors = (0.5 + SH_C0 * self.sh).clamp_min(0.0)
        q = self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return rasterize(
            self.means, q, torch.exp(self.log_scales), torch.sigmoid(self.opacity), colors, view.camera, self.bg
        )

    def step(self, view: View, it: int, total: int) -> float:
        for group in self.opt.param_groups:
            if group.get("name") == "means":
                group["lr"] = exp_lr(
                    it, total, self.cfg.lr_means_init * self.extent, self.cfg.lr_means_final * self.extent
                )
        image, _, info = self.render(view)
        loss = photometric_loss(image, view.image, self.cfg.lambda_ssim)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad = info["means2d"].grad
        if grad is not None:
            w, h = view.camera.width, view.camera.height
            norm = (
                grad.detach().double() * torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64, device=grad.device)
            ).norm(dim=-1)
            seen = info["radii"].reshape(-1) > 0 if info["radii"].dim() == 1 else (info["radii"] > 0).all(-1)
            self.grad_accum[seen] += norm[seen]
            self.grad_count[seen] += 1
        self.opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def densify_and_prune(self, it: int) -> None:
        c = self.cfg
        avg = self.grad_accum / self.grad_count.clamp_min(1)
        hot = avg >= c.grad_threshold
        max_scale = torch.exp(self.log_scales).max(dim=1).values
        small = max_scale <= c.percent_dense * self.extent
        room = max(0, c.max_gaussians - self.means.shape[0])
        clone = torch.nonzero(hot & small).squeeze(-1)[:room]
        split = torch.nonzero(hot & ~small).squeeze(-1)[: max(0, room - clone.numel())]
        means, ls, q, op, sh = (t.detach() for t in self.params())
        # split: two samples from each large Gaussian, scales / 1.6; the originals are removed
        rot = quat_to_rotmat(q[split])
        samples = (
            torch.randn(2, split.numel(), 3, device=self.device, generator=self.split_gen) * torch.exp(ls[split])[None]
        )
        new_means = (rot[None] @ samples[..., None]).squeeze(-1) + means[split][None]
        keep = torch.ones(means.shape[0], dtype=torch.bool, device=self.device)
        keep[split] = False
        parts = {
            "means": [means[keep], means[clone], new_means.reshape(-1, 3)],
            "log_scales": [ls[keep], ls[clone], (ls[split] - math.log(1.6)).repeat(2, 1)],
            "quats": [q[keep], q[clone], q[split].repeat(2, 1)],
            "opacity": [op[keep], op[clone], op[split].repeat(2)],
            "sh": [sh[keep], sh[clone], sh[split].repeat(2, 1)],
        }
        for name, ts in parts.items():
            setattr(self, name, torch.cat(ts))
        alive = torch.sigmoid(self.opacity) >= c.prune_opacity
        pruned = int((~alive).sum())
        for name in ("means", "log_scales", "quats", "opacity", "sh"):
            setattr(self, name, getattr(self, name)[alive])
        self._new_optimizer()
        self.densifications.append(
            {
                "iteration": it,
                "cloned": int(clone.numel()),
                "split": int(split.numel()),
                "pruned": pruned,
                "gaussians": int(self.means.shape[0]),
            }
        )

    def cloud(self) -> GaussianCloud:
        cpu = [t.detach().cpu() for t in (self.means, self.sh, self.opacity, self.log_scales, self.quats)]
        return GaussianCloud(cpu[0], cpu[1], torch.zeros(self.means.shape[0], 0, 3), *cpu[2:])


@torch.no_grad()
def evaluate_cloud(
    cloud: GaussianCloud, views: list[View], background: torch.Tensor, device: torch.device = CPU
) -> tuple[float, float]:
    """Mean PSNR / SSIM of ``cloud`` rendered on ``device`` against ``views``."""
    d = torch.device(device)
    means, quats, scales, opacities, colors = (
        t.to(d) for t in (cloud.means, cloud.quats, cloud.scales, cloud.opacities, cloud.colors)
    )
    quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ps, ss = [], []
    for v in views:
        image, _, _ = rasterize(means, quats, scales, opacities, colors, v.camera, background.to(d))
        target = v.image.to(d)
        ps.append(psnr(image, target))
        ss.append(ssim(image.clamp(0, 1), target))
    return sum(ps) / len(ps), sum(ss) / len(ss)


def spz_quality(
    cloud: GaussianCloud, path: Path, views: list[View], background: torch.Tensor, device: torch.device = CPU
) -> tuple[int, float, float]:
    """Write ``cloud`` as SPZ (through gsply) at ``path`` and score it as it reads back, so that SPZ's
    quantization counts: ``(bytes, PSNR, SSIM)`` on ``views``."""
    from progs.io.spz import read_spz, write_spz

    write_spz(path, cloud)
    p, s = evaluate_cloud(read_spz(path), views, background, device)
    return Path(path).stat().st_size, p, s


def fit_3dgs(scene: Scene, cfg: Fit3DGSConfig | None = None, device: torch.device = CPU) -> Fit3DGSResult:
    """Fit plain 3DGS to ``scene``'s training views on ``device`` (the CPU kernel, or gsplat on CUDA);
    PSNR/SSIM on its test views."""
    cfg = cfg or Fit3DGSConfig()
    fit = GaussianFit(scene, cfg, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    views = views_on(scene.train_views, fit.device)
    at = sorted({max(1, int(round(f * cfg.iterations))) for f in cfg.densify_at})
    t0 = time.perf_counter()
    order: list[int] = []
    for it in range(cfg.iterations):
        if not order:
            order = torch.randperm(len(views), generator=gen).tolist()
        fit.step(views[order.pop()], it, cfg.iterations)
        if it + 1 in at and it + 1 < cfg.iterations:
            fit.densify_and_prune(it + 1)
    seconds = time.perf_counter() - t0
    cloud = fit.cloud()
    p, s = evaluate_cloud(cloud, scene.test_views or scene.train_views, fit.bg, fit.device)
    return Fit3DGSResult(cloud, seconds, cfg.iterations, fit.densifications, p, s)


def write_baseline_ply(result: Fit3DGSResult, path: Path) -> int:
    """Write the fitted Gaussians as an INRIA PLY; returns its size in bytes."""
    write_ply(path, result.cloud)
    return Path(path).stat().st_size


def describe(result: Fit3DGSResult) -> dict[str, Any]:
    return {
        "gaussians": len(result.cloud),
        "iterations": result.iterations,
        "train_seconds": round(result.seconds, 2),
        "psnr": result.psnr,
        "ssim": result.ssim,
        "densifications": result.densifications,
    }
