"""Distillation of an exported cloud: plain 3D Gaussians refined to look like the neural model.

The closed-form export (:func:`progs.model.cloud.model_to_cloud`) averages each neural Gaussian's
opacity, scale and rotation over many views, but a ProGS model shows a Gaussian with a different
opacity and covariance from every direction, which one plain Gaussian cannot copy: a plain 3DGS
render of the averages loses 0.3–0.8 dB against progs' own render on the demo (measured by swapping
one attribute at a time into progs' render: the averaged opacity costs about 0.35 dB, the averaged
covariance 0.2–0.4 dB, the SH colour fit nothing). This module optimises the exported Gaussians' SH
colours, opacities, scales and rotations (not their positions, which are view-independent and exact)
so that the plain renderer reproduces progs' own renders from a set of cameras: by default virtual
ones, spread evenly (a Fibonacci lattice) over the sphere of radius ``view_distance`` around the
octree cube's centre and framing the cube; or given ones (e.g. the training cameras of the dataset).
Each step renders one camera over a random background colour, so the alpha of the two renders is
matched too, and takes an Adam step on the L1 difference (learning rates decaying exponentially to
``lr_end`` of their start).

The stream carries no cameras, so the default sphere also holds directions no training camera saw,
from where the neural model's output is unconstrained (on the demo: views from under the floor show
a smear) and no plain cloud matches them and the trained views at once: distilling from the whole
sphere left the demo's LoD 1 export at -0.8 dB. Every ``reselect_every`` steps the virtual views are
therefore ranked by how well the current cloud reproduces them (image and alpha), and only the best
``keep`` fraction is trained on until the next ranking (demo: -0.1 dB). Given cameras are all kept.

Deterministic for a given thread count: the camera order and backgrounds come from a generator
seeded with ``seed`` (the rasterizer's gradient sums depend on the number of threads).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from progs.io.ply import GaussianCloud
from progs.io.sh import eval_sh, fibonacci_sphere
from progs.model.model import ProGSModel
from progs.render import rasterize
from progs.scene import Camera

_PARAMS = ("sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats")
# Adam learning rates at the start: twice the 3DGS reference's (positions excluded).
_LR = {"sh_dc": 5e-3, "sh_rest": 5e-3 / 20, "opacity_logits": 5e-2, "log_scales": 5e-3, "quats": 2e-3}


@dataclass(frozen=True)
class DistillConfig:
    iterations: int = 500  # Adam steps (0: the closed-form fit unchanged)
    views: int = 64  # virtual cameras on the sphere
    size: int = 96  # their image width and height in pixels
    keep: float = 0.7  # fraction of the virtual views trained on between rankings
    reselect_every: int = 50
    seed: int = 0
    lr_end: float = 0.1  # the learning rates decay exponentially to this fraction of theirs

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"distillation iterations must be >= 0, got {self.iterations}")
        if self.views < 1:
            raise ValueError(f"distillation needs at least one view, got {self.views}")
        if self.size < 8:
            raise ValueError(f"distillation image size must be >= 8 pixels, got {self.size}")
        if not 0.0 < self.keep <= 1.0:
            raise ValueError(f"distillation keep fraction must be in (0, 1], got {self.keep}")
        if not 0.0 < self.lr_end <= 1.0:
            raise ValueError(f"distillation lr_end must be in (0, 1], got {self.lr_end}")
        if self.reselect_every < 1:
            raise ValueError(f"distillation reselect_every must be >= 1, got {self.reselect_every}")


def virtual_cameras(model: ProGSModel, count: int, size: int) -> list[Camera]:
    """``count`` square cameras of ``size`` pixels on the sphere of radius ``model.view_distance``
    (1.5 × the cube size when unknown) around the octree cube's centre, each looking at the centre
    with a field of view that frames the cube (at most 90°)."""
    grid = model.grid
    centre = grid.origin_tensor.float() + grid.size / 2
    d = float(model.view_distance) if model.view_distance else 1.5 * grid.size
    fov = min(90.0, 2.2 * math.degrees(math.atan(grid.size / 2 / d)))
    cams = []
    for u in fibonacci_sphere(count):
        up = [0.0, 0.0, 1.0] if abs(float(u[2])) < 0.99 else [0.0, 1.0, 0.0]
        cams.append(Camera.look_at(centre + d * u, centre, up, width=size, height=size, fov_x_deg=fov))
    return cams


def _render(
    p: dict[str, torch.Tensor], means: torch.Tensor, camera: Camera, background: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    colors = eval_sh(p["sh_dc"], p["sh_rest"], means - camera.center.to(means))
    image, alpha, _ = rasterize(
        means,
        F.normalize(p["quats"], dim=-1, eps=1e-8),
        torch.exp(p["log_scales"]),
        torch.sigmoid(p["opacity_logits"]),
        colors,
        camera,
        background,
    )
    return image, alpha


def distill_cloud(
    model: ProGSModel,
    lod: int,
    cloud: GaussianCloud,
    config: DistillConfig = DistillConfig(),
    cameras: list[Camera] | None = None,
    progress: bool | None = None,
) -> GaussianCloud:
    """``cloud`` (exported from ``model`` at LoD ``lod``) refined so that a plain 3DGS render of it
    matches progs' own render from ``cameras`` (default: :func:`virtual_cameras`, best ``keep``
    fraction); ``progress``: a tqdm bar (default: only when stderr is a TTY)."""
    from tqdm import tqdm

    if config.iterations == 0 or len(cloud) == 0:
        return cloud
    trusted = cameras is not None
    cams = list(cameras) if cameras is not None else virtual_cameras(model, config.views, config.size)
    if not cams:
        raise ValueError("distillation needs at least one camera")
    black = torch.zeros(3)
    with torch.no_grad():
        targets = []
        for c in cams:
            out = model.render(c, lod, black)
            targets.append((out.image.detach(), out.alpha.detach()))
    means = cloud.means.detach()
    p = {n: getattr(cloud, n).detach().clone().requires_grad_(True) for n in _PARAMS}
    opt = torch.optim.Adam([{"params": [p[n]], "lr": _LR[n]} for n in _PARAMS], eps=1e-15)
    gen = torch.Generator().manual_seed(config.seed)
    n_keep = len(cams) if trusted else max(1, round(config.keep * len(cams)))
    kept = list(range(len(cams)))
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=config.iterations, disable=not show, dynamic_ncols=True, desc=f"distil LoD {lod}")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: config.lr_end ** (it / config.iterations))
    for it in range(config.iterations):
        if n_keep < len(cams) and it % config.reselect_every == 0:
            kept = _best_views(p, means, cams, targets, n_keep)
        i = kept[int(torch.randint(len(kept), (1,), generator=gen))]
        bg = torch.rand(3, generator=gen)
        image, _ = _render(p, means, cams[i], bg)
        target_image, target_alpha = targets[i]
        loss = (image - (target_image + (1 - target_alpha) * bg)).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        if it % 10 == 0:
            bar.set_postfix(l1=f"{float(loss.detach()):.4f}")
    bar.close()
    with torch.no_grad():
        return GaussianCloud(
            means.clone(),
            p["sh_dc"].detach(),
            p["sh_rest"].detach(),
            p["opacity_logits"].detach(),
            p["log_scales"].detach(),
            F.normalize(p["quats"].detach(), dim=-1, eps=1e-8),
        )


@torch.no_grad()
def _best_views(
    p: dict[str, torch.Tensor],
    means: torch.Tensor,
    cams: list[Camera],
    targets: list[tuple[torch.Tensor, torch.Tensor]],
    count: int,
) -> list[int]:
    """The ``count`` cameras whose targets the current cloud reproduces best (squared error of
    image and alpha over black), in camera order."""
    black = torch.zeros(3)
    errors = []
    for c, (t_image, t_alpha) in zip(cams, targets):
        image, alpha = _render(p, means, c, black)
        errors.append(float(((image - t_image) ** 2).mean() + ((alpha - t_alpha) ** 2).mean()))
    order = sorted(range(len(cams)), key=lambda j: (errors[j], j))
    return sorted(order[:count])
