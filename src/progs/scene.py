"""Cameras, views and scenes: the data every other module exchanges.

Conventions (the same as gsplat and COLMAP):
- ``world_to_camera`` is a 4x4 matrix mapping world points to camera coordinates with the OpenCV
  axes: x right, y down, z forward (into the scene).
- Pixel (u, v) has its centre at (u + 0.5, v + 0.5); ``cx, cy`` are in the same pixel units.
- Images are float32 tensors of shape [H, W, 3] with values in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F


@dataclass
class Camera:
    """A pinhole camera: intrinsics in pixels and a world-to-camera transform (OpenCV axes)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    world_to_camera: torch.Tensor  # [4, 4] float32
    near: float = 0.01
    far: float = 1e10

    def __post_init__(self) -> None:
        self.world_to_camera = torch.as_tensor(self.world_to_camera, dtype=torch.float32).reshape(4, 4)

    @property
    def K(self) -> torch.Tensor:
        """The 3x3 intrinsic matrix."""
        return torch.tensor([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=torch.float32)

    @property
    def camera_to_world(self) -> torch.Tensor:
        return torch.linalg.inv(self.world_to_camera.double()).float()

    @property
    def center(self) -> torch.Tensor:
        """The camera centre in world coordinates, [3]."""
        return self.camera_to_world[:3, 3]

    @property
    def fov_x(self) -> float:
        return 2.0 * math.atan(self.width / (2.0 * self.fx))

    def scaled(self, factor: float) -> "Camera":
        """The same camera for an image downscaled by ``factor`` (e.g. 8 → one eighth the size)."""
        w = max(1, int(round(self.width / factor)))
        h = max(1, int(round(self.height / factor)))
        sx, sy = w / self.width, h / self.height
        return replace(self, width=w, height=h, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera for an image resampled to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return replace(
            self, width=width, height=height, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy
        )

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points [N, 3] to pixels [N, 2]; also returns camera-space depth [N] (on the points' device)."""
        w2c = self.world_to_camera.to(points.device)
        R = w2c[:3, :3]
        t = w2c[:3, 3]
        pc = points.float() @ R.T + t
        z = pc[:, 2]
        zs = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
        uv = torch.stack([self.fx * pc[:, 0] / zs + self.cx, self.fy * pc[:, 1] / zs + self.cy], dim=-1)
        return uv, z

    @staticmethod
    def look_at(
        eye: torch.Tensor | list[float],
        target: torch.Tensor | list[float],
        up: torch.Tensor | list[float] = (0.0, 0.0, 1.0),
        *,
        width: int,
        height: int,
        fov_x_deg: float = 50.0,
    ) -> "Camera":
        """A camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image."""
        eye_t = torch.as_tensor(eye, dtype=torch.float64)
        target_t = torch.as_tensor(target, dtype=torch.float64)
        up_t = torch.as_tensor(up, dtype=torch.float64)
        forward = target_t - eye_t
        forward = forward / forward.norm()
        right = torch.linalg.cross(forward, up_t)
        if right.norm() < 1e-8:  # looking along `up`: pick any perpendicular
            right = torch.linalg.cross(forward, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        R = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
        w2c = torch.eye(4, dtype=torch.float64)
        w2c[:3, :3] = R
        w2c[:3, 3] = -R @ eye_t
        fx = width / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))
        return Camera(width, height, fx, fx, width / 2.0, height / 2.0, w2c.float())


@dataclass
class View:
    """One posed image."""

    name: str
    camera: Camera
    image: torch.Tensor  # [H, W, 3] float32 in [0, 1]

    def __post_init__(self) -> None:
        h, w = self.image.shape[:2]
        if (w, h) != (self.camera.width, self.camera.height):
            raise ValueError(
                f"view {self.name}: image is {w}x{h} but its camera is {self.camera.width}x{self.camera.height}"
            )


@dataclass
class Scene:
    """Posed train/test images plus optional SfM points; ``bounds`` is an axis-aligned box [2, 3]."""

    name: str
    train_views: list[View]
    test_views: list[View]
    points: torch.Tensor | None = None  # [N, 3] SfM points, if the dataset has them
    point_colors: torch.Tensor | None = None  # [N, 3] in [0, 1]
    bounds: torch.Tensor | None = None  # [2, 3] min and max corner
    background: torch.Tensor = field(default_factory=lambda: torch.zeros(3))

    @property
    def views(self) -> list[View]:
        return self.train_views + self.test_views

    def first_camera(self) -> Camera | None:
        """The first test view's camera (the first view's without test views): where a player starts."""
        views = self.test_views or self.views
        return views[0].camera if views else None

    def camera_bounds(self) -> torch.Tensor:
        """A box around the region all cameras look at (used when there are no SfM points)."""
        centers = torch.stack([v.camera.center for v in self.views])
        look = torch.stack([v.camera.camera_to_world[:3, 2] for v in self.views])
        # Least-squares point closest to all optical axes.
        eye = torch.eye(3)
        A = torch.zeros(3, 3)
        b = torch.zeros(3)
        for c, d in zip(centers, look):
            P = eye - torch.outer(d, d)
            A += P
            b += P @ c
        focus = torch.linalg.lstsq(A, b).solution
        radius = (centers - focus).norm(dim=-1).median() * 0.5
        return torch.stack([focus - radius, focus + radius])


def split_train_test(names: list[str], every: int = 8) -> tuple[list[int], list[int]]:
    """The field's convention: every ``every``-th view (index 0, 8, 16, ...) is a test view."""
    test = [i for i in range(len(names)) if i % every == 0]
    train = [i for i in range(len(names)) if i % every != 0]
    return train, test


def views_on(views: list[View], device: torch.device) -> list[View]:
    """``views`` with their images on ``device`` (views already there are kept as they are)."""
    return [v if v.image.device == device else View(v.name, v.camera, v.image.to(device)) for v in views]


def scale_views(views: list[View], factor: float) -> list[View]:
    """Views with images (area-averaged) and cameras downscaled by ``factor``; unchanged if 1."""
    if factor == 1.0:
        return list(views)
    out = []
    for v in views:
        cam = v.camera.scaled(factor)
        img = F.interpolate(v.image.permute(2, 0, 1)[None], size=(cam.height, cam.width), mode="area")
        out.append(View(v.name, cam, img[0].permute(1, 2, 0).contiguous()))
    return out
