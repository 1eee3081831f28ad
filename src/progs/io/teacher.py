"""Views of an existing 3DGS scene, rendered by our rasterizer: how a trained splat enters ProGS.

``progs fit SCENE.ply`` trains ProGS to reproduce a PLY (the *teacher*) from cameras on a sphere
around its robust bounds, each Gaussian coloured by its spherical harmonics evaluated along the viewing
ray (as a 3DGS renderer does); the Gaussians' centres serve as the SfM points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from progs.io.ply import GaussianCloud
from progs.scene import Camera, Scene, View, split_train_test

_AXES = {"x": 0, "y": 1, "z": 2}
FOV_X_DEG = 50.0
# The teacher's resolution: at least a viewer's (VIEWER_SIZE, below), more where the finest Gaussians (the
# 10th percentile of the visible ones' largest axis σ) need it to span about a pixel (2σ) from the orbit's
# distance; within [MIN_SIZE, MAX_SIZE] and a multiple of 32. The σ rule alone asks 128² of the demo's
# PLY, but scored at 1024² its fit gains 2.8 dB from a 256² teacher and 1.1 dB more from 512², for 1.5 %
# more bytes each (docs/RESULTS.md, "Fitting a splat file, scored where users look"). On a CPU the size is
# capped at CPU_SIZE (600 iterations on the demo's PLY took 163 s at 256² and 434 s at 512² on 2 cores);
# `progs fit --size` overrides both.
FINE_QUANTILE = 0.10
MIN_SIZE, MAX_SIZE, CPU_SIZE = 128, 2048, 512
# More Gaussians hold more distinct detail to see: 60 views at 10,000 Gaussians, growing with the square
# root of the count up to 240 (a viewer orbit; every 8th view is held out).
MIN_VIEWS, MAX_VIEWS, VIEWS_AT_10K = 60, 240, 60
# Where users look: fits are also scored at 1024 pixels on the long side, from VIEWER_VIEWS orbit views
# placed between the training views (other azimuths, elevations), with SH colours.
VIEWER_SIZE, VIEWER_VIEWS = 1024, 8


def robust_bounds(means: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(centre, radius) of the 2-98 % box of ``means``."""
    lo = torch.quantile(means, 0.02, dim=0)
    hi = torch.quantile(means, 0.98, dim=0)
    return (lo + hi) / 2, float((hi - lo).norm() / 2) or 1.0


def orbit_distance(radius: float, fov_x_deg: float = FOV_X_DEG) -> float:
    """The camera distance that fits a sphere of ``radius`` in view (with a 10 % margin)."""
    return radius / math.sin(math.radians(fov_x_deg) / 2) * 1.1


def finest_size(cloud: GaussianCloud, fov_x_deg: float = FOV_X_DEG) -> int:
    """The image width at which the cloud's finest Gaussians span about a pixel from the orbit distance."""
    _, radius = robust_bounds(cloud.means)
    sigma = cloud.scales.max(dim=1).values
    visible = cloud.opacities > 0.1
    if int(visible.sum()) >= 8:
        sigma = sigma[visible]
    fine = float(torch.quantile(sigma.float(), FINE_QUANTILE)) if sigma.numel() else 0.0
    if not fine > 0:
        return MAX_SIZE
    width = orbit_distance(radius, fov_x_deg) * math.tan(math.radians(fov_x_deg) / 2) / fine
    return int(min(MAX_SIZE, max(MIN_SIZE, 32 * math.ceil(width / 32))))


@dataclass(frozen=True)
class TeacherPlan:
    """The teacher views of a cloud: ``views`` orbit views at ``size`` pixels; ``wanted`` is the size the
    scene asks for (the larger of ``finest``, where its finest Gaussians span about a pixel, and a viewer's
    ``VIEWER_SIZE``) and ``limit`` names what changed it (``"cpu"``, ``"--size"`` or None)."""

    views: int
    size: int
    wanted: int
    limit: str | None
    finest: int

    def describe(self) -> str:
        asks = (
            "the finest Gaussians span about a pixel"
            if self.finest >= self.wanted
            else f"a viewer's {self.wanted} pixels; the finest Gaussians span a pixel at {self.finest}²"
        )
        why = {
            None: asks,
            "cpu": f"capped at {CPU_SIZE} on the CPU; the scene asks for {self.wanted}², --size to change",
            "--size": f"--size; the scene asks for {self.wanted}²",
        }[self.limit]
        return f"{self.views} teacher views at {self.size}² ({why})"


def teacher_plan(cloud: GaussianCloud, on_gpu: bool, size: int | None = None, views: int | None = None) -> TeacherPlan:
    """How many views at what size ``progs fit`` renders ``cloud`` for (``size`` / ``views`` given win)."""
    finest = finest_size(cloud)
    wanted = max(finest, VIEWER_SIZE)  # finest_size is within MAX_SIZE, which is above VIEWER_SIZE
    if size is not None:
        chosen, limit = int(size), "--size"
    elif not on_gpu and wanted > CPU_SIZE:
        chosen, limit = CPU_SIZE, "cpu"
    else:
        chosen, limit = wanted, None
    if views is None:
        views = int(min(MAX_VIEWS, max(MIN_VIEWS, round(VIEWS_AT_10K * math.sqrt(len(cloud) / 10_000)))))
    return TeacherPlan(int(views), chosen, wanted, limit, finest)


def viewer_views(
    cloud: GaussianCloud,
    up: str = "z",
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    count: int = VIEWER_VIEWS,
    size: int = VIEWER_SIZE,
    backend: str = "auto",
) -> list[View]:
    """``count`` held-out views of ``cloud`` at ``size`` pixels, as a viewer shows it (SH colours), from
    azimuths and elevations between those of the teacher's spiral."""
    from progs.io.cloud_render import render_cloud

    bg = torch.tensor(background, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for i in range(count):
            cam = look_at_cloud(
                cloud.means,
                size,
                size,
                azimuth=(i + 0.5) * 360.0 / count,
                elevation=15.0 + 40.0 * ((i * 0.618034) % 1.0),
                up=up,
                margin=1.1,
            )
            img, _, _ = render_cloud(cloud, cam, bg, backend=backend)
            out.append(View(f"viewer_{i:03d}", cam, img.clamp(0, 1).contiguous()))
    return out


def orbit_cameras(
    center: torch.Tensor,
    radius: float,
    count: int,
    width: int,
    height: int,
    up: str = "z",
    fov_x_deg: float = FOV_X_DEG,
    min_elev: float = 10.0,
    max_elev: float = 60.0,
    distance: float | None = None,
) -> list[Camera]:
    """``count`` cameras on a spiral over the upper hemisphere (``up`` axis, e.g. 'z' or '-y'),
    at ``distance`` (default: one that fits a sphere of ``radius`` in view), looking at ``center``."""
    sign = -1.0 if up.startswith("-") else 1.0
    ax = _AXES[up.lstrip("+-")]
    a, b = [k for k in range(3) if k != ax]
    dist = distance if distance is not None else orbit_distance(radius, fov_x_deg)
    golden = math.pi * (3 - math.sqrt(5))
    up_vec = torch.zeros(3)
    up_vec[ax] = sign
    cams = []
    for i in range(count):
        elev = math.radians(min_elev + (max_elev - min_elev) * (i + 0.5) / count)
        azim = i * golden
        d = torch.zeros(3)
        d[a] = math.cos(elev) * math.cos(azim)
        d[b] = math.cos(elev) * math.sin(azim)
        d[ax] = sign * math.sin(elev)
        cams.append(
            Camera.look_at(
                torch.as_tensor(center, dtype=torch.float32) + dist * d,
                center,
                up_vec,
                width=width,
                height=height,
                fov_x_deg=fov_x_deg,
            )
        )
    return cams


def teacher_orbit(cloud: GaussianCloud, views: int, size: int, up: str = "z") -> list[Camera]:
    """The cameras :func:`scene_from_cloud` renders ``cloud`` from: ``views`` square ``size``² views on
    an orbit about its robust centre. View 0 is the first test view (:func:`progs.scene.split_train_test`)."""
    center, radius = robust_bounds(cloud.means)
    return orbit_cameras(center, radius, views, size, size, up)


def scene_from_cloud(
    cloud: GaussianCloud,
    views: int = 60,
    size: int = 128,
    up: str = "z",
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    name: str = "teacher",
    backend: str = "auto",
    test_every: int = 8,
) -> Scene:
    """Render ``cloud`` from ``views`` orbit cameras into a Scene (every ``test_every``-th view is a test view)."""
    from progs.io.cloud_render import render_cloud

    means = cloud.means
    lo = torch.quantile(means, 0.02, dim=0)
    hi = torch.quantile(means, 0.98, dim=0)
    bg = torch.tensor(background, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for i, cam in enumerate(teacher_orbit(cloud, views, size, up)):
            img, _, _ = render_cloud(cloud, cam, bg, backend=backend)  # view-dependent (SH) colours
            out.append(View(f"{name}_{i:03d}", cam, img.clamp(0, 1).contiguous()))
    train, test = split_train_test([v.name for v in out], test_every)
    return Scene(
        name=name,
        train_views=[out[i] for i in train],
        test_views=[out[i] for i in test],
        points=means.clone(),
        point_colors=cloud.colors.clone(),
        bounds=torch.stack([lo, hi]),
        background=bg,
    )


def look_at_cloud(
    means: torch.Tensor, width: int, height: int, azimuth: float, elevation: float, up: str = "z", margin: float = 1.05
) -> Camera:
    """A camera at (``azimuth``, ``elevation``) degrees around the robust centre of ``means`` (``up``
    axis as in :func:`orbit_cameras`) that fits the cloud in a 50° field of view."""
    center, radius = robust_bounds(means)
    sign = -1.0 if up.startswith("-") else 1.0
    up_axis = _AXES[up.lstrip("+-")]
    a, b = [k for k in range(3) if k != up_axis]
    az, el = math.radians(azimuth), math.radians(elevation)
    direction = torch.zeros(3)
    direction[a] = math.cos(el) * math.cos(az)
    direction[b] = math.cos(el) * math.sin(az)
    direction[up_axis] = sign * math.sin(el)
    dist = radius / math.sin(math.radians(FOV_X_DEG) / 2) * margin
    up_vec = torch.zeros(3)
    up_vec[up_axis] = sign
    return Camera.look_at(center + dist * direction, center, up_vec, width=width, height=height, fov_x_deg=FOV_X_DEG)
