"""Lens undistortion on load (progs.io.undistort) through the transforms.json and COLMAP readers.

The test images are dots at the distorted projections (``cv2.projectPoints``) of a grid of 3D points;
after undistortion each dot must sit where the loaded pinhole camera projects its point.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import progs.io.undistort as undistort_mod
from progs.errors import InputError
from progs.io import load_scene
from progs.io.colmap import load_colmap_scene
from progs.io.transforms import load_transforms_scene
from progs.io.undistort import colmap_distortion, distortion_coeffs, undistorted_camera
from progs.scene import Camera

W, H = 160, 120
FX, FY, CX, CY = 110.0, 108.0, 81.3, 59.6  # progs' convention: pixel u's centre at u + 0.5
SIGMA = 1.2  # dot radius, pixels

# OpenCV order k1 k2 p1 p2 k3 k4 k5 k6; both move the image corners by several pixels.
OPENCV = [-0.15, 0.03, 0.002, -0.0015]
FULL_OPENCV = [0.12, -0.05, 0.0015, 0.001, 0.02, -0.08, 0.01, -0.005]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROGS_CACHE_DIR", str(tmp_path / "user_cache"))


def grid_points(z: float = 2.0) -> np.ndarray:
    """[35, 3] points in front of a camera at the origin looking down +z (OpenCV axes)."""
    xs, ys = np.meshgrid(np.linspace(-0.5, 0.5, 7), np.linspace(-0.35, 0.35, 5))
    return np.stack([xs.ravel() * z, ys.ravel() * z, np.full(xs.size, z)], axis=1)


def distorted_dots(coeffs: list[float], pts: np.ndarray) -> np.ndarray:
    """A W x H uint8 RGB image of Gaussian dots at the distorted projections of ``pts``."""
    k_cv = np.array([[FX, 0, CX - 0.5], [0, FY, CY - 0.5], [0, 0, 1]])  # OpenCV: pixel centre at u
    uv, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k_cv, np.asarray(coeffs, np.float64))
    jj, ii = np.meshgrid(np.arange(W), np.arange(H))
    img = np.zeros((H, W))
    for u, v in uv.reshape(-1, 2):
        img += np.exp(-((jj - u) ** 2 + (ii - v) ** 2) / (2 * SIGMA**2))
    gray = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def centroids(image: torch.Tensor, expected: np.ndarray, radius: int = 4) -> np.ndarray:
    """Intensity centroids (progs' convention) of the dots nearest ``expected`` [N, 2]."""
    gray = image.mean(dim=2).numpy()
    out = []
    for u, v in expected:
        j0, i0 = int(round(u - 0.5)), int(round(v - 0.5))
        assert radius <= j0 < gray.shape[1] - radius and radius <= i0 < gray.shape[0] - radius, (u, v)
        win = gray[i0 - radius : i0 + radius + 1, j0 - radius : j0 + radius + 1]
        ii, jj = np.mgrid[i0 - radius : i0 + radius + 1, j0 - radius : j0 + radius + 1]
        out.append([(win * jj).sum() / win.sum() + 0.5, (win * ii).sum() / win.sum() + 0.5])
    return np.array(out)


def dot_errors(view, pts: np.ndarray) -> np.ndarray:
    """Distance (pixels) between each dot and the view camera's pinhole projection of its point."""
    uv, _ = view.camera.project(torch.from_numpy(pts).float())
    uv = uv.double().numpy()
    return np.linalg.norm(centroids(view.image, uv) - uv, axis=1)


# -- datasets ---------------------------------------------------------------------------------------


IDENTITY_GL = np.diag([1.0, -1.0, -1.0, 1.0]).tolist()  # OpenGL camera-to-world of w2c = identity


def make_ngp(root: Path, dist: dict[str, float], image: np.ndarray) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(2):
        Image.fromarray(image).save(root / "images" / f"{i:04d}.png")
        c2w = np.array(IDENTITY_GL)
        c2w[0, 3] = 0.01 * i
        frames.append({"file_path": f"images/{i:04d}.png", "transform_matrix": c2w.tolist()})
    meta = {"fl_x": FX, "fl_y": FY, "cx": CX, "cy": CY, "w": W, "h": H, **dist, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def make_colmap(root: Path, model: str, params: list[float], image: np.ndarray) -> Path:
    d = root / "sparse" / "0"
    d.mkdir(parents=True)
    (d / "cameras.txt").write_text(f"1 {model} {W} {H} " + " ".join(repr(float(p)) for p in params) + "\n")
    (d / "images.txt").write_text("".join(f"{i + 1} 1 0 0 0 {0.01 * i} 0 0 1 {i:04d}.png\n\n" for i in range(2)))
    (d / "points3D.txt").write_text(
        "".join(f"{j + 1} {x} {y} {z} 200 200 200 0.5\n" for j, (x, y, z) in enumerate(grid_points()))
    )
    (root / "images").mkdir()
    for i in range(2):
        Image.fromarray(image).save(root / "images" / f"{i:04d}.png")
    return root


# -- geometry -----------------------------------------------------------------------------------------


def test_transforms_dots_land_on_the_pinhole_projection(tmp_path):
    pts = grid_points()
    dist = {"k1": OPENCV[0], "k2": OPENCV[1], "p1": OPENCV[2], "p2": OPENCV[3]}
    make_ngp(tmp_path, dist, distorted_dots(OPENCV, pts))
    view = load_transforms_scene(tmp_path, test_every=0).train_views[0]
    assert view.image.shape == (H, W, 3) and (view.camera.width, view.camera.height) == (W, H)
    assert dot_errors(view, pts).max() < 0.25
    raw = load_transforms_scene(tmp_path, test_every=0, undistort=False).train_views[0]
    assert (raw.camera.fx, raw.camera.fy, raw.camera.cx, raw.camera.cy) == (FX, FY, CX, CY)
    assert dot_errors(raw, pts).max() > 3.0  # the distortion is large enough for the test to mean something


@pytest.mark.parametrize("model, coeffs", [("OPENCV", OPENCV), ("FULL_OPENCV", FULL_OPENCV)])
def test_colmap_dots_land_on_the_pinhole_projection(tmp_path, model, coeffs):
    pts = grid_points()
    make_colmap(tmp_path, model, [FX, FY, CX, CY, *coeffs], distorted_dots(coeffs, pts))
    scene = load_colmap_scene(tmp_path, test_every=0)
    assert dot_errors(scene.train_views[0], pts).max() < 0.25
    assert dot_errors(load_colmap_scene(tmp_path, test_every=0, undistort=False).train_views[0], pts).max() > 3.0


def test_undistorted_before_downscaling(tmp_path):
    pts = grid_points()
    make_colmap(tmp_path, "OPENCV", [FX, FY, CX, CY, *OPENCV], distorted_dots(OPENCV, pts))
    (tmp_path / "images_2").mkdir()  # pre-downscaled copies must not be undistorted instead of images/
    for i in range(2):
        Image.fromarray(np.zeros((H // 2, W // 2, 3), np.uint8)).save(tmp_path / "images_2" / f"{i:04d}.png")
    full = load_colmap_scene(tmp_path, test_every=0).train_views[0]
    half = load_colmap_scene(tmp_path, downscale=2, test_every=0).train_views[0]
    assert half.image.shape == (H // 2, W // 2, 3)
    box = full.image.reshape(H // 2, 2, W // 2, 2, 3).mean(dim=(1, 3))  # area downscale of the undistorted image
    assert torch.allclose(half.image, box, atol=1.5 / 255)
    c, f = half.camera, full.camera.resized(W // 2, H // 2)
    assert np.allclose([c.fx, c.fy, c.cx, c.cy], [f.fx, f.fy, f.cx, f.cy])


@pytest.mark.parametrize("coeffs", [OPENCV, FULL_OPENCV])
def test_new_camera_sees_only_valid_pixels(coeffs):
    """alpha=0: every border pixel of the undistorted image comes from inside the distorted one."""
    cam = Camera(W, H, FX, FY, CX, CY, torch.eye(4))
    k = distortion_coeffs("test", *coeffs)
    new = undistorted_camera("test", cam, k)
    assert (new.width, new.height) == (W, H) and abs(new.fx / FX - 1) > 0.01  # same size, zoomed
    u = np.concatenate([np.arange(W) + 0.5, np.arange(W) + 0.5, np.full(H, 0.5), np.full(H, W - 0.5)])
    v = np.concatenate([np.full(W, 0.5), np.full(W, H - 0.5), np.arange(H) + 0.5, np.arange(H) + 0.5])
    rays = np.stack([(u - new.cx) / new.fx, (v - new.cy) / new.fy, np.ones_like(u)], axis=1)
    k_cv = np.array([[FX, 0, CX - 0.5], [0, FY, CY - 0.5], [0, 0, 1]])
    src, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), k_cv, k)
    src = src.reshape(-1, 2)
    assert src[:, 0].min() > -1.0 and src[:, 0].max() < W and src[:, 1].min() > -1.0 and src[:, 1].max() < H


def test_colmap_radial_models_map_to_opencv():
    assert colmap_distortion("c", "SIMPLE_RADIAL", [0.1]).tolist() == [0.1, 0, 0, 0, 0, 0, 0, 0]
    assert colmap_distortion("c", "RADIAL", [0.1, -0.2]).tolist() == [0.1, -0.2, 0, 0, 0, 0, 0, 0]
    assert colmap_distortion("c", "FULL_OPENCV", FULL_OPENCV).tolist() == FULL_OPENCV
    assert colmap_distortion("c", "PINHOLE", []).tolist() == [0.0] * 8


# -- no distortion, opt-out, cache ----------------------------------------------------------------------


def test_zero_distortion_is_unchanged(tmp_path, monkeypatch):
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    make_ngp(tmp_path, {"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}, image)
    monkeypatch.setattr(undistort_mod, "undistort_array", _must_not_run)
    view = load_transforms_scene(tmp_path, test_every=0).train_views[0]
    assert torch.equal(view.image, torch.from_numpy(image).float() / 255.0)
    assert (view.camera.fx, view.camera.fy, view.camera.cx, view.camera.cy) == (FX, FY, CX, CY)
    assert not (tmp_path / "user_cache" / "undistorted").exists()
    cam = Camera(W, H, FX, FY, CX, CY, torch.eye(4))
    assert undistorted_camera("x", cam, np.zeros(8)) is cam


def test_opt_out_keeps_the_images(tmp_path):
    image = distorted_dots(OPENCV, grid_points())
    make_ngp(tmp_path, {"k1": OPENCV[0], "p2": OPENCV[3]}, image)
    view = load_scene(tmp_path, test_every=0, undistort=False).train_views[0]
    assert torch.equal(view.image, torch.from_numpy(image).float() / 255.0)
    assert not (tmp_path / "user_cache" / "undistorted").exists()


def _must_not_run(*args, **kwargs):
    raise AssertionError("undistort_array called although the undistorted image is cached")


def test_second_load_uses_the_cache(tmp_path, monkeypatch):
    pts = grid_points()
    make_ngp(tmp_path / "data", {"k1": OPENCV[0], "k2": OPENCV[1]}, distorted_dots(OPENCV, pts))
    first = load_transforms_scene(tmp_path / "data", downscale=2, test_every=0)
    cached = sorted((tmp_path / "user_cache" / "undistorted").glob("*.png"))
    assert len(cached) == 2  # one per image, full size
    assert all(Image.open(p).size == (W, H) for p in cached)
    assert not list((tmp_path / "data").rglob("*undistorted*"))
    monkeypatch.setattr(undistort_mod, "undistort_array", _must_not_run)
    second = load_transforms_scene(tmp_path / "data", downscale=2, test_every=0)
    for a, b in zip(first.views, second.views):
        assert torch.equal(a.image, b.image) and a.camera.fx == b.camera.fx and a.camera.cx == b.camera.cx
    # Other distortion: another cache entry, computed afresh.
    make_ngp(tmp_path / "data", {"k1": OPENCV[0]}, distorted_dots(OPENCV, pts))
    with pytest.raises(AssertionError, match="cached"):
        load_transforms_scene(tmp_path / "data", test_every=0)


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    make_ngp(tmp_path / "data", {"k1": OPENCV[0]}, distorted_dots(OPENCV, grid_points()))
    first = load_transforms_scene(tmp_path / "data", test_every=0)
    for p in (tmp_path / "user_cache" / "undistorted").glob("*.png"):
        p.write_bytes(b"not a png")
    again = load_transforms_scene(tmp_path / "data", test_every=0)
    assert torch.equal(first.views[0].image, again.views[0].image)


def test_unwritable_cache_still_undistorts(tmp_path, monkeypatch):
    pts = grid_points()
    make_ngp(tmp_path / "data", dict(zip(("k1", "k2", "p1", "p2"), OPENCV)), distorted_dots(OPENCV, pts))
    (tmp_path / "blocked").write_text("a file where the cache folder would go")
    monkeypatch.setenv("PROGS_CACHE_DIR", str(tmp_path / "blocked"))
    view = load_transforms_scene(tmp_path / "data", test_every=0).train_views[0]
    assert dot_errors(view, pts).max() < 0.25


# -- bad input ------------------------------------------------------------------------------------------


def test_nan_distortion_transforms(tmp_path):
    make_ngp(tmp_path, {"k1": math.nan}, distorted_dots(OPENCV, grid_points()))
    with pytest.raises(InputError) as info:
        load_transforms_scene(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "transforms.json") in msg and "k1" in msg and "\n" not in msg


def test_nan_distortion_colmap(tmp_path):
    make_colmap(tmp_path, "OPENCV", [FX, FY, CX, CY, math.nan, 0, 0, 0], distorted_dots(OPENCV, grid_points()))
    with pytest.raises(InputError) as info:
        load_colmap_scene(tmp_path)
    msg = str(info.value)
    assert "cameras.txt" in msg and "\n" not in msg


def test_nan_coefficient_message():
    with pytest.raises(InputError, match=r"^cam\.json: lens distortion must be finite numbers, got p2=nan$"):
        distortion_coeffs("cam.json", 0.1, 0.0, 0.0, math.nan)


# -- CLI --------------------------------------------------------------------------------------------------


def test_train_no_undistort_reaches_the_loader(tmp_path, monkeypatch):
    """``progs train --no-undistort`` records undistort=False in the run's dataset spec, which the loader honours."""
    from progs.cli import main
    from progs.io.dataset import DatasetSpec

    image = distorted_dots(OPENCV, grid_points())
    make_ngp(tmp_path / "data", {"k1": OPENCV[0]}, image)
    specs: list[DatasetSpec] = []
    load = DatasetSpec.load

    def record(spec: DatasetSpec):
        specs.append(spec)
        raise InputError("stop here")

    monkeypatch.setattr(DatasetSpec, "load", record)
    for flags in ([], ["--no-undistort"]):
        assert main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *flags]) == 2
    assert specs[0].undistort is True and specs[1].undistort is False
    assert DatasetSpec.from_json(specs[1].to_json()).undistort is False
    raw = load(specs[1]).views[0].image
    assert torch.equal(raw, torch.from_numpy(image).float() / 255.0)
    assert not torch.equal(load(specs[0]).views[0].image, raw)
