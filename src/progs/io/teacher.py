"""Views of an existing 3DGS scene, rendered by our rasterizer: how a trained splat enters ProGS.

``progs fit SCENE.ply`` trains ProGS to reproduce a PLY (the *teacher*) from cameras on a sphere
around its robust bounds, each Gaussian coloured by its spherical harmonics evaluated along the viewing
ray (as a 3DGS renderer does); the Gaussians' centres serve as the SfM points.
"""

from __future__ import annotations

import math

import torch

from progs.io.ply import GaussianCloud
from progs.scene import Camera, Scene, View, split_train_test

_AXES = {"x": 0, "y": 1, "z": 2}


def orbit_cameras(
    center: torch.Tensor, radius: float, count: int, width: int, height: int, up: str = "z",
    fov_x_deg: float = 50.0, min_elev: float = 10.0, max_elev: float = 60.0, distance: float | None = None,
) -> list[Camera]:
    """``count`` cameras on a spiral over the upper hemisphere (``up`` axis, e.g. 'z' or '-y'),
    at ``distance`` (default: one that fits a sphere of ``radius`` in view), looking at ``center``."""
    sign = -1.0 if up.startswith("-") else 1.0
    ax = _AXES[up.lstrip("+-")]
    a, b = [k for k in range(3) if k != ax]
    dist = distance if distance is not None else radius / math.sin(math.radians(fov_x_deg) / 2) * 1.1
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
        cams.append(Camera.look_at(torch.as_tensor(center, dtype=torch.float32) + dist * d, center, up_vec, width=width, height=height, fov_x_deg=fov_x_deg))
    return cams


def scene_from_cloud(
    cloud: GaussianCloud, views: int = 60, size: int = 128, up: str = "z",
    background: tuple[float, float, float] = (0.0, 0.0, 0.0), name: str = "teacher", backend: str = "auto",
    test_every: int = 8,
) -> Scene:
    """Render ``cloud`` from ``views`` orbit cameras into a Scene (every ``test_every``-th view is a test view)."""
    from progs.io.cloud_render import render_cloud

    means = cloud.means
    lo = torch.quantile(means, 0.02, dim=0)
    hi = torch.quantile(means, 0.98, dim=0)
    center = (lo + hi) / 2
    radius = float((hi - lo).norm() / 2) or 1.0
    bg = torch.tensor(background, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for i, cam in enumerate(orbit_cameras(center, radius, views, size, size, up)):
            img, _, _ = render_cloud(cloud, cam, bg, backend=backend)  # view-dependent (SH) colours
            out.append(View(f"{name}_{i:03d}", cam, img.clamp(0, 1).contiguous()))
    train, test = split_train_test([v.name for v in out], test_every)
    return Scene(
        name=name, train_views=[out[i] for i in train], test_views=[out[i] for i in test],
        points=means.clone(), point_colors=cloud.colors.clone(), bounds=torch.stack([lo, hi]), background=bg,
    )


def look_at_cloud(means: torch.Tensor, width: int, height: int, azimuth: float, elevation: float, up: str = "z") -> Camera:
    """A camera at (``azimuth``, ``elevation``) degrees around the robust centre of ``means`` (``up``
    axis as in :func:`orbit_cameras`) that fits the cloud in a 50° field of view."""
    lo = torch.quantile(means, 0.02, dim=0)
    hi = torch.quantile(means, 0.98, dim=0)
    center = (lo + hi) / 2
    radius = float((hi - lo).norm() / 2) or 1.0
    sign = -1.0 if up.startswith("-") else 1.0
    up_axis = _AXES[up.lstrip("+-")]
    a, b = [k for k in range(3) if k != up_axis]
    az, el = math.radians(azimuth), math.radians(elevation)
    direction = torch.zeros(3)
    direction[a] = math.cos(el) * math.cos(az)
    direction[b] = math.cos(el) * math.sin(az)
    direction[up_axis] = sign * math.sin(el)
    fov = 50.0
    dist = radius / math.sin(math.radians(fov) / 2) * 1.05
    up_vec = torch.zeros(3)
    up_vec[up_axis] = sign
    return Camera.look_at(center + dist * direction, center, up_vec, width=width, height=height, fov_x_deg=fov)
