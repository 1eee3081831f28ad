"""Lens undistortion on load: OpenCV radial-tangential images → pinhole images, cached on disk.

The renderer is pinhole-only, so images from a lens with distortion (transforms.json ``k1 k2 k3 k4
p1 p2``; COLMAP SIMPLE_RADIAL, RADIAL, OPENCV, FULL_OPENCV) are resampled once, at their full
resolution, into a pinhole camera, as the 3DGS tooling does with ``colmap image_undistorter``.
Downscaling happens afterwards, on the undistorted image.

Distortion coefficients are kept in OpenCV's order ``(k1, k2, p1, p2, k3, k4, k5, k6)``: ``x_d = x
(1 + k1 r² + k2 r⁴ + k3 r⁶) / (1 + k4 r² + k5 r⁴ + k6 r⁶) + 2 p1 x y + p2 (r² + 2 x²)`` (and the
symmetric y), on normalised coordinates, so the same coefficients hold at every image size. COLMAP's
OPENCV and FULL_OPENCV parameters are already in that order; its radial models are the same
polynomial with ``p1 = p2 = 0``.

Undistorted images are cached as lossless PNGs under ``$PROGS_CACHE_DIR/undistorted/`` (else
``$XDG_CACHE_HOME/progs/undistorted/`` or ``~/.cache/progs/undistorted/``), never next to the
dataset, named by a hash of the source image (path, size in bytes, mtime), its pixel size and the
camera and distortion parameters, and written atomically. With no writable cache folder the image is
undistorted in memory on every load.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from progs.atomic import atomic_path
from progs.errors import InputError, optional_import
from progs.io.images import decode_image, image_size, image_to_tensor, load_image
from progs.scene import Camera

__all__ = [
    "NUM_COEFFS",
    "distortion_coeffs",
    "colmap_distortion",
    "is_distorted",
    "undistorted_camera",
    "undistort_array",
    "undistorted_cache_path",
    "load_undistorted",
]

NUM_COEFFS = 8  # OpenCV's k1, k2, p1, p2, k3, k4, k5, k6
_CACHE_VERSION = "2"  # bump when the resampling changes, so old cached images are not reused


def _cv2():
    return optional_import("cv2", "train", "removing lens distortion (or pass --no-undistort)")


def distortion_coeffs(
    where: str | os.PathLike,
    k1: float = 0.0,
    k2: float = 0.0,
    p1: float = 0.0,
    p2: float = 0.0,
    k3: float = 0.0,
    k4: float = 0.0,
    k5: float = 0.0,
    k6: float = 0.0,
) -> np.ndarray:
    """The 8 OpenCV coefficients; a one-line :class:`InputError` naming ``where`` if any is not finite."""
    coeffs = np.array([k1, k2, p1, p2, k3, k4, k5, k6], dtype=np.float64)
    if not np.isfinite(coeffs).all():
        names = ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")
        bad = ", ".join(f"{n}={v}" for n, v in zip(names, coeffs) if not math.isfinite(v))
        raise InputError(f"{where}: lens distortion must be finite numbers, got {bad}")
    return coeffs


def colmap_distortion(where: str | os.PathLike, model: str, params: Sequence[float]) -> np.ndarray:
    """OpenCV coefficients of a COLMAP camera's distortion parameters (``ColmapCamera.distortion``)."""
    p = [float(v) for v in params]
    if model in ("SIMPLE_PINHOLE", "PINHOLE"):
        return distortion_coeffs(where)
    if model == "SIMPLE_RADIAL":
        return distortion_coeffs(where, k1=p[0])
    if model == "RADIAL":
        return distortion_coeffs(where, k1=p[0], k2=p[1])
    if model in ("OPENCV", "FULL_OPENCV"):  # k1 k2 p1 p2 (k3 k4 k5 k6): OpenCV's order already
        return distortion_coeffs(where, *p)
    raise InputError(f"{where}: the {model} camera model cannot be undistorted to a pinhole camera by progs")


def is_distorted(coeffs: np.ndarray) -> bool:
    return bool(np.any(np.asarray(coeffs) != 0.0))


def _K(cam: Camera) -> np.ndarray:
    """OpenCV's K of ``cam``: progs (like COLMAP and 3DGS) puts pixel u's centre at u + 0.5, OpenCV at u."""
    return np.array([[cam.fx, 0.0, cam.cx - 0.5], [0.0, cam.fy, cam.cy - 0.5], [0.0, 0.0, 1.0]], dtype=np.float64)


def undistorted_camera(where: str | os.PathLike, cam: Camera, coeffs: np.ndarray) -> Camera:
    """The pinhole camera the undistorted image of ``cam`` (same size, same pose) is taken with.

    Choice of the new camera: OpenCV's optimal matrix with alpha=0 at the same size. alpha=0 keeps only
    pixels that the distorted image actually saw (no black border, which training would otherwise try
    to reproduce as scene content), as COLMAP's undistorter does by cropping. Keeping the size keeps
    the downscale arithmetic, the ``images_<k>`` size checks and the image counts the user sees the
    same as without undistortion; the focal length changes instead (by about 1% on the fox capture:
    up for pincushion, where the valid area is smaller, possibly down for barrel distortion).
    The principal point is not forced to the centre (centerPrincipalPoint=False): the renderer takes
    any cx, cy, and centring it would crop more of the valid area. fx and fy may change by slightly
    different factors; both are kept exactly, so the projection stays consistent.
    """
    if not is_distorted(coeffs):
        return cam
    cv2 = _cv2()
    size = (cam.width, cam.height)
    new_k, _roi = cv2.getOptimalNewCameraMatrix(_K(cam), coeffs, size, 0.0, size, centerPrincipalPoint=False)
    fx, fy, cx, cy = float(new_k[0, 0]), float(new_k[1, 1]), float(new_k[0, 2]) + 0.5, float(new_k[1, 2]) + 0.5
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise InputError(f"{where}: lens distortion {coeffs.tolist()} is too strong to undistort to a pinhole camera")
    return replace(cam, fx=fx, fy=fy, cx=cx, cy=cy)


def undistort_array(image: np.ndarray, cam: Camera, coeffs: np.ndarray, new_cam: Camera) -> np.ndarray:
    """Resample ``image`` [H, W, C] (taken with ``cam`` and ``coeffs``) into ``new_cam`` (bilinear)."""
    cv2 = _cv2()
    size = (new_cam.width, new_cam.height)
    map_x, map_y = cv2.initUndistortRectifyMap(_K(cam), coeffs, None, _K(new_cam), size, cv2.CV_32FC1)
    # BORDER_REPLICATE: alpha=0 keeps every target pixel inside the source up to OpenCV's sampled
    # estimate of the valid region; the few that fall a fraction of a pixel outside take the edge.
    out = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)  # remap drops a trailing channel axis of size 1


def _cache_base() -> Path:
    env = os.environ.get("PROGS_CACHE_DIR")
    if env:
        return Path(env) / "undistorted"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "progs" / "undistorted"


def undistorted_cache_path(path: Path, cam: Camera, coeffs: np.ndarray) -> Path:
    """Where the undistorted copy of ``path`` (taken with ``cam``, ``coeffs``) is cached."""
    st = path.stat()
    params = [cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy, *coeffs.tolist()]
    text = f"v{_CACHE_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|" + ",".join(
        repr(float(v)) for v in params
    )
    return _cache_base() / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.png"


def _from_cache(
    cached: Path,
    full: tuple[int, int],
    size: tuple[int, int],
    background: Sequence[float] | torch.Tensor | None,
    cache_root: str | os.PathLike | None,
) -> torch.Tensor | None:
    """The cached undistorted image at ``size``, or None when there is none or it is damaged."""
    if not cached.is_file():
        return None
    try:
        if image_size(cached) != full:  # header only: the downscaled copy is usually cached itself
            return None
        return load_image(cached, size=size, background=background, cache_root=cache_root)
    except InputError:
        return None  # a damaged cache entry: rebuild it


def _write_cached(im: Image.Image, cached: Path) -> bool:
    try:
        with atomic_path(cached) as tmp:
            im.save(tmp, format="PNG", compress_level=1)
        return True
    except OSError:
        return False  # caching is best effort


def load_undistorted(
    path: Path,
    cam: Camera,
    coeffs: np.ndarray,
    size: tuple[int, int],
    *,
    background: Sequence[float] | torch.Tensor | None = None,
    cache_root: str | os.PathLike | None = None,
) -> tuple[torch.Tensor, Camera]:
    """(image [h, w, 3] at ``size`` = (w, h), the pinhole camera at the image's full size).

    ``cam`` is the distorted camera at the image file's own size. The image is undistorted at that
    size (or read from the cache), then area-downscaled to ``size`` by :func:`load_image`, whose own
    downscale cache lives under ``cache_root`` (the dataset folder) as for any image.
    """
    new_cam = undistorted_camera(path, cam, coeffs)
    full = (cam.width, cam.height)
    cached = undistorted_cache_path(path, cam, coeffs)
    image = _from_cache(cached, full, size, background, cache_root)
    if image is not None:
        return image, new_cam
    im = decode_image(path)
    if im.size != full:
        raise InputError(f"{path}: image is {im.size[0]}x{im.size[1]} but its camera is {full[0]}x{full[1]}")
    out = Image.fromarray(undistort_array(np.asarray(im), cam, coeffs, new_cam))  # RGB or RGBA, as decoded
    if _write_cached(out, cached):
        return load_image(cached, size=size, background=background, cache_root=cache_root), new_cam
    return image_to_tensor(out, background, size=size), new_cam
