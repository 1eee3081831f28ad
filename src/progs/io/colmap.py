"""COLMAP sparse models (text and binary) and scenes built from them.

Readers follow COLMAP's own layouts (``src/colmap/scene/reconstruction_io.cc`` and
``scripts/python/read_write_model.py``):

- ``cameras.bin``: uint64 count, then per camera int32 id, int32 model id, uint64 width, uint64 height,
  float64 params[n(model)].
- ``images.bin``: uint64 count, then per image int32 id, float64 qvec[4] (w x y z), float64 tvec[3],
  int32 camera id, NUL-terminated name, uint64 n2D, n2D x (float64 x, float64 y, int64 point3D id).
- ``points3D.bin``: uint64 count, then per point uint64 id, float64 xyz[3], uint8 rgb[3], float64 error,
  uint64 track length, length x (int32 image id, int32 point2D index).
- The ``.txt`` files carry the same fields as whitespace-separated text with ``#`` comments; in
  ``images.txt`` each image takes two lines (the second, the 2D points, may be empty).

COLMAP's (qvec, tvec) already map world to camera with OpenCV axes, so they become
``Camera.world_to_camera`` unchanged. Camera models: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL,
OPENCV and FULL_OPENCV are accepted; their distortion parameters are kept in :class:`ColmapCamera`,
and :func:`load_colmap_scene` undistorts the images of a camera with non-zero distortion into a
pinhole camera on load (:mod:`progs.io.undistort`, as ``colmap image_undistorter`` would). Fisheye
models are read but refused by :func:`load_colmap_scene`.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from progs.errors import InputError
from progs.io.images import check_factor, image_size, load_image, target_size
from progs.io.undistort import colmap_distortion, is_distorted, load_undistorted
from progs.octree import robust_bounds
from progs.scene import Camera, Scene, View, split_train_test

__all__ = [
    "CAMERA_MODELS",
    "ColmapCamera",
    "ColmapImage",
    "ColmapPoints",
    "ColmapModel",
    "read_cameras",
    "read_images",
    "read_points3D",
    "read_model",
    "find_model_dir",
    "qvec_to_rotmat",
    "load_colmap_scene",
]

# model id -> (name, number of params); COLMAP's numbering.
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
_MODEL_BY_NAME = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}
_SINGLE_FOCAL = {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"}
_TWO_FOCAL = {"PINHOLE", "OPENCV", "FULL_OPENCV"}
_SUPPORTED = _SINGLE_FOCAL | _TWO_FOCAL
_log = logging.getLogger("progs.io")


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # float64, COLMAP's order for the model

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) of the pinhole part of the model."""
        p = self.params
        if self.model in _SINGLE_FOCAL:
            return float(p[0]), float(p[0]), float(p[1]), float(p[2])
        return float(p[0]), float(p[1]), float(p[2]), float(p[3])

    @property
    def distortion(self) -> np.ndarray:
        """The distortion parameters (empty for the pinhole models)."""
        return self.params[3:] if self.model in _SINGLE_FOCAL else self.params[4:]


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # [4] float64, w x y z (world-to-camera rotation)
    tvec: np.ndarray  # [3] float64
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [M, 2] keypoints
    point3D_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [M], -1: none

    @property
    def world_to_camera(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = qvec_to_rotmat(self.qvec)
        m[:3, 3] = self.tvec
        return m


@dataclass
class ColmapPoints:
    ids: np.ndarray  # [N] int64
    xyz: np.ndarray  # [N, 3] float64
    rgb: np.ndarray  # [N, 3] uint8
    errors: np.ndarray  # [N] float64
    track_lengths: np.ndarray  # [N] int64

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class ColmapModel:
    path: Path
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: ColmapPoints | None


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (w, x, y, z), as COLMAP's ``qvec2rotmat``."""
    w, x, y, z = (float(v) for v in np.asarray(q, dtype=np.float64) / np.linalg.norm(q))
    return np.array(
        [
            [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * z * x + 2 * w * y],
            [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
            [2 * z * x - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y],
        ]
    )


# ---------------------------------------------------------------------------------------------------
# Binary


class _Bin:
    """A bounds-checked little-endian reader over a whole file's bytes."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def fail(self, what: str) -> InputError:
        return InputError(f"{self.path}: truncated or corrupt binary file ({what} at byte {self.pos})")

    def unpack(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if size > self.left:
            raise self.fail(f"expected {what}, but only {self.left} bytes remain")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def array(self, dtype, count: int, what: str) -> np.ndarray:
        dt = np.dtype(dtype)
        if count * dt.itemsize > self.left:
            raise self.fail(f"{what}: {count} entries need {count * dt.itemsize} bytes, {self.left} remain")
        out = np.frombuffer(self.data, dt, count, self.pos)
        self.pos += count * dt.itemsize
        return out

    def cstring(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise self.fail(f"{what} is not NUL-terminated")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    def count(self, min_record: int, what: str) -> int:
        (n,) = self.unpack("Q", f"the number of {what}")
        if n * min_record > self.left:
            raise InputError(
                f"{self.path}: header claims {n} {what} (at least {n * min_record} bytes) but only"
                f" {self.left} bytes follow (truncated or corrupt file)"
            )
        return n

    def finish(self) -> None:
        if self.left:
            raise InputError(f"{self.path}: {self.left} unexpected bytes after the last record (corrupt file)")


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    r = _Bin(path)
    cams: dict[int, ColmapCamera] = {}
    for _ in range(r.count(24 + 3 * 8, "cameras")):
        cid, mid, w, h = r.unpack("iiQQ", "a camera record")
        if mid not in CAMERA_MODELS:
            raise InputError(f"{path}: camera {cid} has unknown model id {mid}")
        name, nparams = CAMERA_MODELS[mid]
        params = np.array(r.unpack("d" * nparams, f"{nparams} parameters of camera {cid}"))
        cams[cid] = _check_camera(path, ColmapCamera(cid, name, w, h, params))
    r.finish()
    return cams


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    r = _Bin(path)
    images: dict[int, ColmapImage] = {}
    for _ in range(r.count(4 + 64 + 4 + 1 + 8, "images")):
        vals = r.unpack("idddddddi", "an image record")
        iid, q, t, cid = vals[0], np.array(vals[1:5]), np.array(vals[5:8]), vals[8]
        name = r.cstring(f"the name of image {iid}")
        (n2d,) = r.unpack("Q", f"the 2D point count of image {iid}")
        pts = r.array([("x", "<f8"), ("y", "<f8"), ("id", "<i8")], n2d, f"2D points of image {name!r}")
        xys = np.stack([pts["x"], pts["y"]], axis=1) if n2d else np.zeros((0, 2))
        images[iid] = _check_image(path, ColmapImage(iid, q, t, cid, name, xys, pts["id"].copy()))
    r.finish()
    return images


def _read_points3D_bin(path: Path) -> ColmapPoints:
    r = _Bin(path)
    n = r.count(8 + 24 + 3 + 8 + 8, "points")
    records = []
    rec = struct.Struct("<QdddBBBdQ")
    data = r.data
    for i in range(n):
        if rec.size > r.left:
            raise r.fail(f"point {i} of {n} is cut off")
        row = rec.unpack_from(data, r.pos)
        r.pos += rec.size
        length = row[8]
        if length * 8 > r.left:
            raise r.fail(f"the track of point {row[0]} claims {length} entries")
        r.pos += 8 * length
        records.append(row)
    arr = np.array(records, dtype=np.float64).reshape(-1, 9)
    ids = np.array([row[0] for row in records], dtype=np.uint64).astype(np.int64)
    tl = np.array([row[8] for row in records], dtype=np.uint64).astype(np.int64)
    xyz, rgb, err = arr[:, 1:4].copy(), arr[:, 4:7].astype(np.uint8), arr[:, 7].copy()
    r.finish()
    return _check_points(path, ColmapPoints(ids, xyz, rgb, err, tl))


# ---------------------------------------------------------------------------------------------------
# Text


def _text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None


def _num(path: Path, lineno: int, text: str, kind, what: str):
    try:
        return kind(text)
    except ValueError:
        raise InputError(
            f"{path}:{lineno}: {what} must be {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cams: dict[int, ColmapCamera] = {}
    for i, line in enumerate(_text_lines(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        e = line.split()
        if len(e) < 4:
            raise InputError(f"{path}:{i}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...', got {line!r}")
        cid = _num(path, i, e[0], int, "CAMERA_ID")
        model = e[1].upper()
        if model not in _MODEL_BY_NAME:
            raise InputError(f"{path}:{i}: unknown camera model {e[1]!r}")
        nparams = _MODEL_BY_NAME[model][1]
        if len(e) - 4 != nparams:
            raise InputError(f"{path}:{i}: camera model {model} takes {nparams} parameters, got {len(e) - 4}")
        w = _num(path, i, e[2], int, "WIDTH")
        h = _num(path, i, e[3], int, "HEIGHT")
        params = np.array([_num(path, i, v, float, "a camera parameter") for v in e[4:]])
        cams[cid] = _check_camera(path, ColmapCamera(cid, model, w, h, params), i)
    return cams


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    lines = _text_lines(path)
    images: dict[int, ColmapImage] = {}
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        lineno = i
        e = line.split(maxsplit=9)
        if len(e) < 10:
            raise InputError(f"{path}:{lineno}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got {line!r}")
        iid = _num(path, lineno, e[0], int, "IMAGE_ID")
        vals = [_num(path, lineno, v, float, "a pose value") for v in e[1:8]]
        cid = _num(path, lineno, e[8], int, "CAMERA_ID")
        name = e[9].strip()
        # The next line holds the 2D points (X Y POINT3D_ID)*, possibly empty.
        pts_line = lines[i] if i < len(lines) else ""
        i += 1
        toks = pts_line.split()
        if len(toks) % 3:
            raise InputError(f"{path}:{lineno + 1}: 2D points of image {name!r} are not (X, Y, POINT3D_ID) triples")
        try:
            arr = np.array(toks, dtype=np.float64).reshape(-1, 3)
        except ValueError:
            raise InputError(f"{path}:{lineno + 1}: 2D points of image {name!r} are not numbers") from None
        img = ColmapImage(
            iid, np.array(vals[:4]), np.array(vals[4:]), cid, name, arr[:, :2], arr[:, 2].astype(np.int64)
        )
        images[iid] = _check_image(path, img, lineno)
    return images


def _read_points3D_txt(path: Path) -> ColmapPoints:
    ids, xyz, rgb, err, tl = [], [], [], [], []
    for i, line in enumerate(_text_lines(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        e = line.split()
        if len(e) < 8 or (len(e) - 8) % 2:
            raise InputError(
                f"{path}:{i}: expected 'POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)*', got {line[:80]!r}"
            )
        ids.append(_num(path, i, e[0], int, "POINT3D_ID"))
        xyz.append([_num(path, i, v, float, "a coordinate") for v in e[1:4]])
        c = [_num(path, i, v, int, "a colour") for v in e[4:7]]
        if any(not 0 <= v <= 255 for v in c):
            raise InputError(f"{path}:{i}: colour {c} is outside 0..255")
        rgb.append(c)
        err.append(_num(path, i, e[7], float, "ERROR"))
        tl.append((len(e) - 8) // 2)
    pts = ColmapPoints(
        np.array(ids, np.int64),
        np.array(xyz, np.float64).reshape(-1, 3),
        np.array(rgb, np.uint8).reshape(-1, 3),
        np.array(err, np.float64),
        np.array(tl, np.int64),
    )
    return _check_points(path, pts)


# ---------------------------------------------------------------------------------------------------
# Validation


def _where(path: Path, lineno: int | None) -> str:
    return f"{path}:{lineno}" if lineno else f"{path}"


def _check_camera(path: Path, cam: ColmapCamera, lineno: int | None = None) -> ColmapCamera:
    where = _where(path, lineno)
    if not (0 < cam.width < 1 << 20 and 0 < cam.height < 1 << 20):
        raise InputError(f"{where}: camera {cam.id} has an invalid size {cam.width}x{cam.height}")
    if not np.isfinite(cam.params).all():
        raise InputError(f"{where}: camera {cam.id} has NaN or infinite parameters")
    if cam.model in _SUPPORTED:
        fx, fy, _, _ = cam.intrinsics
        if fx <= 0 or fy <= 0:
            raise InputError(f"{where}: camera {cam.id} has a non-positive focal length ({fx}, {fy})")
    return cam


def _check_image(path: Path, img: ColmapImage, lineno: int | None = None) -> ColmapImage:
    where = _where(path, lineno)
    if not (np.isfinite(img.qvec).all() and np.isfinite(img.tvec).all()):
        raise InputError(f"{where}: image {img.name!r} has a NaN or infinite pose")
    norm = float(np.linalg.norm(img.qvec))
    if norm < 1e-8:
        raise InputError(f"{where}: image {img.name!r} has a zero quaternion (not a rotation)")
    if not img.name:
        raise InputError(f"{where}: image {img.id} has an empty name")
    img.qvec = img.qvec / norm
    return img


def _check_points(path: Path, pts: ColmapPoints) -> ColmapPoints:
    if len(pts) and not np.isfinite(pts.xyz).all():
        bad = int((~np.isfinite(pts.xyz).all(axis=1)).sum())
        raise InputError(f"{path}: {bad} of {len(pts)} 3D points have NaN or infinite coordinates")
    return pts


# ---------------------------------------------------------------------------------------------------
# Public readers


def _by_suffix(path: Path, bin_reader, txt_reader):
    path = Path(path)
    if path.suffix == ".bin":
        return bin_reader(path)
    if path.suffix == ".txt":
        return txt_reader(path)
    raise InputError(f"{path}: expected a COLMAP .bin or .txt file")


def read_cameras(path: str | os.PathLike) -> dict[int, ColmapCamera]:
    """Read ``cameras.bin`` or ``cameras.txt``."""
    return _by_suffix(Path(path), _read_cameras_bin, _read_cameras_txt)


def read_images(path: str | os.PathLike) -> dict[int, ColmapImage]:
    """Read ``images.bin`` or ``images.txt``."""
    return _by_suffix(Path(path), _read_images_bin, _read_images_txt)


def read_points3D(path: str | os.PathLike) -> ColmapPoints:
    """Read ``points3D.bin`` or ``points3D.txt``."""
    return _by_suffix(Path(path), _read_points3D_bin, _read_points3D_txt)


def _model_files(d: Path) -> str | None:
    """'.bin' or '.txt' if ``d`` holds a cameras + images pair of that kind (binary preferred)."""
    for ext in (".bin", ".txt"):
        if (d / f"cameras{ext}").is_file() and (d / f"images{ext}").is_file():
            return ext
    return None


def find_model_dir(root: str | os.PathLike) -> Path:
    """The folder holding the sparse model: ``root/sparse/0``, ``root/sparse`` or ``root`` itself."""
    root = Path(root)
    candidates = [root / "sparse" / "0", root / "sparse", root]
    sparse = root / "sparse"
    if sparse.is_dir():
        candidates[1:1] = sorted((p for p in sparse.iterdir() if p.is_dir() and p.name != "0"), key=lambda p: p.name)
    for d in candidates:
        if d.is_dir() and _model_files(d):
            return d
    raise InputError(
        f"{root}: no COLMAP model found (looked for cameras.bin/images.bin or cameras.txt/images.txt in"
        " sparse/0, sparse and the folder itself)"
    )


def read_model(path: str | os.PathLike) -> ColmapModel:
    """Read a sparse model folder (cameras, images and, when present, points3D; .bin preferred)."""
    d = Path(path)
    if not d.is_dir():
        raise InputError(f"{d}: not a folder")
    ext = _model_files(d)
    if ext is None:
        raise InputError(f"{d}: no cameras.bin/images.bin or cameras.txt/images.txt in this folder")
    cameras = read_cameras(d / f"cameras{ext}")
    images = read_images(d / f"images{ext}")
    pts_path = d / f"points3D{ext}"
    if not pts_path.is_file():
        other = d / f"points3D{'.txt' if ext == '.bin' else '.bin'}"
        pts_path = other if other.is_file() else pts_path
    points = read_points3D(pts_path) if pts_path.is_file() else None
    for img in images.values():
        if img.camera_id not in cameras:
            raise InputError(
                f"{d / ('images' + ext)}: image {img.name!r} refers to camera {img.camera_id}, which {d / ('cameras' + ext)} lacks"
            )
    return ColmapModel(d, cameras, images, points)


# ---------------------------------------------------------------------------------------------------
# Scenes


def _find_images_dir(root: Path, factor: float, full_res: bool = False) -> tuple[Path, bool]:
    """The image folder; (``images_<k>`` with pre-downscaled copies, True) when one matches ``factor``.

    ``full_res``: prefer ``images`` when it exists (images to undistort are undistorted at full size).
    """
    if full_res and (root / "images").is_dir():
        return root / "images", False
    if float(factor).is_integer() and factor > 1:
        pre = root / f"images_{int(factor)}"
        if pre.is_dir():
            return pre, True
    d = root / "images"
    if not d.is_dir():
        raise InputError(f"{root}: no 'images' folder next to the COLMAP model")
    return d, False


def split_views(names: list[str], test_every: int) -> tuple[list[int], list[int]]:
    """:func:`split_train_test`, with ``test_every`` < 1 meaning "no test views"."""
    if test_every is None or int(test_every) < 1:
        return list(range(len(names))), []
    return split_train_test(names, int(test_every))


def load_colmap_scene(
    root: str | os.PathLike, downscale: float = 1, test_every: int = 8, *, undistort: bool = True
) -> Scene:
    """A :class:`Scene` from a COLMAP dataset folder (``images/`` plus ``sparse/0`` or ``sparse/``).

    Views are sorted by image name; every ``test_every``-th is a test view (:func:`split_train_test`).
    Images listed in the model but absent on disk are skipped with a warning (an error if none remain).
    With an integer ``downscale`` k and an ``images_k`` folder present, its pre-downscaled images are used.
    ``undistort`` (default True): images of a camera with lens distortion (SIMPLE_RADIAL, RADIAL, OPENCV,
    FULL_OPENCV) are undistorted into a pinhole camera at full resolution (from ``images``, not
    ``images_k``, when both exist), then downscaled, and cached under ``~/.cache/progs/undistorted``;
    False keeps them as they are and renders with the pinhole part. Fisheye models are refused.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    factor = check_factor(downscale, root)
    model = read_model(find_model_dir(root))
    for cam in model.cameras.values():
        if cam.model not in _SUPPORTED:
            raise InputError(
                f"{model.path}: camera {cam.id} uses the {cam.model} model, which progs cannot render;"
                " undistort the images first (colmap image_undistorter)"
            )
    coeffs = {
        c.id: colmap_distortion(f"{model.path}: camera {c.id}", c.model, c.distortion) for c in model.cameras.values()
    }
    to_undistort = {cid for cid, k in coeffs.items() if undistort and is_distorted(k)}
    img_dir, pre_scaled = _find_images_dir(root, factor, full_res=bool(to_undistort))
    images = sorted(model.images.values(), key=lambda im: im.name)
    if not images:
        raise InputError(f"{model.path}: the model has no images")
    present = [im for im in images if (img_dir / im.name).is_file()]
    missing = [im.name for im in images if not (img_dir / im.name).is_file()]
    if not present:
        raise InputError(
            f"{img_dir}: none of the {len(images)} images of the COLMAP model is there (e.g. {missing[0]!r})"
        )
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.warn(
            f"{img_dir}: {len(missing)} of {len(images)} images are missing and skipped ({shown})", stacklevel=2
        )

    views: list[View] = []
    for im in present:
        cc = model.cameras[im.camera_id]
        fx, fy, cx, cy = cc.intrinsics
        cam = Camera(cc.width, cc.height, fx, fy, cx, cy, torch.from_numpy(im.world_to_camera).float())
        path = img_dir / im.name
        w0, h0 = image_size(path)
        if pre_scaled:
            ew, eh = target_size(cc.width, cc.height, factor)
            if abs(w0 - ew) > 1 or abs(h0 - eh) > 1:
                raise InputError(
                    f"{path}: is {w0}x{h0}, but camera {cc.id} ({cc.width}x{cc.height}) downscaled by"
                    f" {factor:g} should be about {ew}x{eh}"
                )
            w, h = w0, h0
            if cc.id in to_undistort:  # no full-size images to undistort: undistort these
                image, cam = load_undistorted(path, cam.resized(w0, h0), coeffs[cc.id], (w, h), cache_root=root)
            else:
                image = load_image(path, 1, cache_root=root)
        else:
            if (w0, h0) != (cc.width, cc.height):
                if abs(w0 / h0 - cc.width / cc.height) > 0.01:
                    raise InputError(
                        f"{path}: image is {w0}x{h0} but camera {cc.id} is {cc.width}x{cc.height} (rotated or cropped?)"
                    )
            w, h = target_size(w0, h0, factor)
            if cc.id in to_undistort:
                image, cam = load_undistorted(path, cam.resized(w0, h0), coeffs[cc.id], (w, h), cache_root=root)
            else:
                image = load_image(path, size=(w, h) if (w, h) != (w0, h0) else None, cache_root=root)
        views.append(View(im.name, cam.resized(w, h), image))
    n_undistorted = sum(1 for im in present if im.camera_id in to_undistort)
    if n_undistorted:
        _log.info("%s: undistorted %d of %d images into pinhole cameras", img_dir, n_undistorted, len(present))

    train_idx, test_idx = split_views([v.name for v in views], test_every)
    points = colors = bounds = None
    if model.points is not None and len(model.points):
        points = torch.from_numpy(model.points.xyz).float()
        colors = torch.from_numpy(model.points.rgb.astype(np.float32) / 255.0)
        bounds = torch.stack(robust_bounds(points)).float()
    else:
        warnings.warn(f"{model.path}: no 3D points in the model; bounds come from the cameras", stacklevel=2)
    scene = Scene(
        name=root.resolve().name,
        train_views=[views[i] for i in train_idx],
        test_views=[views[i] for i in test_idx],
        points=points,
        point_colors=colors,
        bounds=bounds,
    )
    if scene.bounds is None:
        scene.bounds = scene.camera_bounds()
    if not math.isfinite(float(scene.bounds.sum())):
        raise InputError(f"{model.path}: could not compute finite scene bounds from the model")
    return scene
