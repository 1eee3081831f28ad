"""``transforms*.json`` datasets: NeRF-synthetic (Blender) and instant-ngp / nerfstudio flavours.

- NeRF-synthetic: ``transforms_train.json`` and ``transforms_test.json`` (``transforms_val.json`` is
  not used), a global ``camera_angle_x`` (horizontal field of view, radians), frames whose
  ``file_path`` usually lacks the extension (``./train/r_0`` → ``train/r_0.png``), RGBA PNGs that are
  composited over the background (white by default, as the field does). The train/test split is the
  files'.
- instant-ngp: one ``transforms.json`` with ``fl_x, fl_y, cx, cy, w, h`` (or ``camera_angle_x/y``),
  optionally per frame; ``aabb_scale`` only tightens the bounds. Views are sorted by file path and
  every ``test_every``-th one is a test view.
- Lens distortion ``k1 k2 (k3 k4) p1 p2`` is removed on load (:mod:`progs.io.undistort`): each image is
  undistorted at full resolution into a pinhole camera (cached), then downscaled. The coefficients
  are OpenCV's (``k3`` the r⁶ term, ``k4`` the first denominator term), as nerfstudio's OpenCV path
  reads them. ``undistort=False`` keeps the distorted images and the pinhole part of the camera.
- ``transform_matrix`` is camera-to-world with OpenGL camera axes (x right, y up, z back); it becomes an
  OpenCV world-to-camera matrix by flipping the camera's y and z axes and inverting. World coordinates
  are kept as they are in the file (instant-ngp's internal rescaling is not applied).
- Frames whose image file is missing are skipped with a warning; an error only if none remain.
- No SfM points: ``Scene.points`` is None and ``Scene.bounds`` comes from ``Scene.camera_bounds()``
  (clipped to the ``aabb_scale`` box when there is one).
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from progs.errors import InputError
from progs.io.colmap import split_views
from progs.io.images import check_factor, image_size, load_image, target_size
from progs.io.undistort import distortion_coeffs, is_distorted, load_undistorted
from progs.scene import Camera, Scene, View

__all__ = ["load_transforms_scene", "read_transforms", "opengl_c2w_to_opencv_w2c", "find_transforms"]

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG", ".exr", ".webp")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_FISHEYE_MODELS = {"OPENCV_FISHEYE", "EQUIRECTANGULAR", "FISHEYE"}
_log = logging.getLogger("progs.io")


def opengl_c2w_to_opencv_w2c(c2w: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world (x right, y up, z back) → OpenCV world-to-camera (x right, y down, z fwd)."""
    c2w_cv = np.asarray(c2w, dtype=np.float64) @ np.diag([1.0, -1.0, -1.0, 1.0])
    return np.linalg.inv(c2w_cv)


def find_transforms(root: str | os.PathLike) -> tuple[str, dict[str, Path]]:
    """('nerf_synthetic', {'train': ..., 'test': ..., ['val': ...]}) or ('ngp', {'all': path})."""
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() != ".json":
            raise InputError(f"{root}: expected a transforms*.json file or a folder holding one")
        name = root.name
        if name.startswith("transforms_") and name[len("transforms_") : -5] in ("train", "test", "val"):
            root = root.parent
        else:
            return "ngp", {"all": root}
    if not root.is_dir():
        raise InputError(f"{root}: no such file or folder")
    split_files = {s: root / f"transforms_{s}.json" for s in ("train", "test", "val")}
    if split_files["train"].is_file():
        if not split_files["test"].is_file():
            raise InputError(
                f"{split_files['test']}: file not found (a NeRF-synthetic dataset needs it next to transforms_train.json)"
            )
        return "nerf_synthetic", {s: p for s, p in split_files.items() if p.is_file()}
    if (root / "transforms.json").is_file():
        return "ngp", {"all": root / "transforms.json"}
    raise InputError(f"{root}: no transforms.json or transforms_train.json/transforms_test.json here")


def read_transforms(path: str | os.PathLike) -> dict[str, Any]:
    """Parse one transforms JSON file and check its top-level shape."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: invalid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object at the top level, got {type(meta).__name__}")
    frames = meta.get("frames")
    if frames is None:
        raise InputError(f"{path}: missing field 'frames'")
    if not isinstance(frames, list):
        raise InputError(f"{path}: 'frames' must be a list, got {type(frames).__name__}")
    if not frames:
        raise InputError(f"{path}: 'frames' is empty")
    return meta


def _number(path: Path, where: str, key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{path}: {where}'{key}' must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        raise InputError(
            f"{path}: {where}'{key}' must be a {'positive ' if positive else ''}finite number, got {value!r}"
        )
    return v


def _resolve_image(json_dir: Path, file_path: str) -> Path | None:
    p = Path(file_path)
    base = p if p.is_absolute() else json_dir / p
    if base.is_file():
        return base
    if base.suffix.lower() not in {e.lower() for e in _IMAGE_EXTS}:
        for ext in _IMAGE_EXTS:
            cand = base.with_name(base.name + ext)
            if cand.is_file():
                return cand
    return None


def _pose(path: Path, i: int, frame: dict) -> np.ndarray:
    where = f"frame {i} ({frame.get('file_path', '?')!s})"
    if "transform_matrix" not in frame:
        raise InputError(f"{path}: {where} has no 'transform_matrix'")
    try:
        m = np.array(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {where}: 'transform_matrix' is not a matrix of numbers") from None
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4):
        raise InputError(f"{path}: {where}: 'transform_matrix' must be 4x4, got shape {list(m.shape)}")
    if not np.isfinite(m).all():
        raise InputError(f"{path}: {where}: 'transform_matrix' contains NaN or infinite values")
    R = m[:3, :3]
    det = float(np.linalg.det(R))
    if abs(det) < 1e-6 or not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6):
        raise InputError(f"{path}: {where}: 'transform_matrix' is not an invertible rigid transform (det {det:.3g})")
    # Remove any scale from the rotation part (some exporters leave a uniform scale there).
    scale = abs(det) ** (1.0 / 3.0)
    m = m.copy()
    m[:3, :3] = R / scale
    if np.abs(m[:3, :3] @ m[:3, :3].T - np.eye(3)).max() > 1e-3:
        raise InputError(f"{path}: {where}: 'transform_matrix' rotation part is not orthonormal")
    if det < 0:
        raise InputError(f"{path}: {where}: 'transform_matrix' is a reflection (negative determinant)")
    return opengl_c2w_to_opencv_w2c(m)


def _frame_camera(path: Path, meta: dict, i: int, frame: dict, img_w: int, img_h: int) -> tuple[Camera, np.ndarray]:
    """(camera at the image's own size, its OpenCV distortion coefficients)."""
    where = f"frame {i}: "

    def get(key: str) -> Any:
        return frame[key] if key in frame else meta.get(key)

    model = get("camera_model")
    if isinstance(model, str) and model.upper() in _FISHEYE_MODELS or get("is_fisheye"):
        raise InputError(f"{path}: fisheye/equirectangular cameras ({model or 'is_fisheye'}) are not supported")
    w = _number(path, where, "w", get("w"), positive=True) if get("w") is not None else float(img_w)
    h = _number(path, where, "h", get("h"), positive=True) if get("h") is not None else float(img_h)
    if get("fl_x") is not None:
        fx = _number(path, where, "fl_x", get("fl_x"), positive=True)
    elif get("camera_angle_x") is not None:
        ax = _number(path, where, "camera_angle_x", get("camera_angle_x"), positive=True)
        if ax >= math.pi:
            raise InputError(f"{path}: 'camera_angle_x' = {ax} is not a field of view below pi radians")
        fx = 0.5 * w / math.tan(0.5 * ax)
    else:
        raise InputError(f"{path}: missing field 'camera_angle_x' (or 'fl_x') for the focal length")
    if get("fl_y") is not None:
        fy = _number(path, where, "fl_y", get("fl_y"), positive=True)
    elif get("camera_angle_y") is not None and get("fl_x") is None:
        ay = _number(path, where, "camera_angle_y", get("camera_angle_y"), positive=True)
        fy = 0.5 * h / math.tan(0.5 * ay) if ay < math.pi else fx
    else:
        fy = fx
    cx = _number(path, where, "cx", get("cx")) if get("cx") is not None else w / 2.0
    cy = _number(path, where, "cy", get("cy")) if get("cy") is not None else h / 2.0
    dist = {k: _number(path, where, k, get(k)) for k in _DISTORTION_KEYS if get(k) is not None}
    coeffs = distortion_coeffs(path, **dist)
    w2c = _pose(path, i, frame)
    cam = Camera(int(round(w)), int(round(h)), fx, fy, cx, cy, torch.from_numpy(w2c).float())
    if (cam.width, cam.height) != (img_w, img_h):
        if abs(img_w / img_h - w / h) > 0.01:
            raise InputError(
                f"{path}: frame {i}: image is {img_w}x{img_h} but the file says w={w:g}, h={h:g} (rotated or cropped?)"
            )
        cam = cam.resized(img_w, img_h)
    return cam, coeffs


def _load_frames(
    path: Path,
    meta: dict,
    factor: float,
    background: torch.Tensor,
    cache_root: Path,
    sort: bool,
    undistort: bool,
) -> tuple[list[View], list[str], int, int]:
    """(views, missing file paths, number of frames, number of views undistorted) for one file."""
    json_dir = path.parent
    entries = []
    missing: list[str] = []
    for i, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict):
            raise InputError(f"{path}: frame {i} is not a JSON object")
        fp = frame.get("file_path")
        if not isinstance(fp, str) or not fp:
            raise InputError(f"{path}: frame {i} has no 'file_path'")
        _pose(path, i, frame)  # validate every pose, even of frames whose image is missing
        img = _resolve_image(json_dir, fp)
        if img is None:
            missing.append(fp)
            continue
        entries.append((i, frame, img))
    if sort:
        entries.sort(key=lambda e: str(e[2]))
    views: list[View] = []
    n_undistorted = 0
    for i, frame, img in entries:
        w0, h0 = image_size(img)
        cam, coeffs = _frame_camera(path, meta, i, frame, w0, h0)
        w, h = target_size(w0, h0, factor)
        if undistort and is_distorted(coeffs):
            image, cam = load_undistorted(img, cam, coeffs, (w, h), background=background, cache_root=cache_root)
            n_undistorted += 1
        else:
            image = load_image(
                img, size=(w, h) if (w, h) != (w0, h0) else None, background=background, cache_root=cache_root
            )
        try:
            name = img.relative_to(json_dir).as_posix()
        except ValueError:
            name = str(img)
        views.append(View(name, cam.resized(w, h), image))
    return views, missing, len(meta["frames"]), n_undistorted


def _aabb_box(meta: dict) -> torch.Tensor | None:
    """instant-ngp's ``aabb_scale`` box mapped back to the file's world coordinates."""
    a = meta.get("aabb_scale")
    if a is None or isinstance(a, bool) or not isinstance(a, (int, float)) or not a > 0:
        return None
    scale = meta.get("scale", 0.33)
    offset = meta.get("offset", [0.5, 0.5, 0.5])
    try:
        scale = float(scale)
        offset = np.asarray(offset, dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        return None
    if not (scale > 0 and np.isfinite(offset).all()):
        return None
    # ngp position p' = p * scale + offset (with an axis permutation that does not change a cube
    # centred at the same offset on every axis); the box is 0.5 ± aabb_scale / 2 in ngp coordinates.
    lo = (0.5 - a / 2.0 - offset) / scale
    hi = (0.5 + a / 2.0 - offset) / scale
    if not np.allclose(offset, offset[0]):
        return None
    return torch.tensor(np.stack([lo, hi]), dtype=torch.float32)


def load_transforms_scene(
    root: str | os.PathLike,
    downscale: float = 1,
    test_every: int = 8,
    *,
    background: Sequence[float] | torch.Tensor | None = None,
    undistort: bool = True,
) -> Scene:
    """A :class:`Scene` from a NeRF-synthetic or instant-ngp dataset (a folder or its JSON file).

    ``background`` (default white) is what RGBA images are composited over; it becomes
    ``Scene.background`` when any image has an alpha channel (else the scene keeps black).
    ``undistort`` (default True): images whose frame has lens distortion (``k1 k2 k3 k4 p1 p2``) are
    undistorted at full resolution into a pinhole camera before downscaling, and cached under
    ``~/.cache/progs/undistorted``; False keeps them as they are and renders with the pinhole part.
    """
    root = Path(root)
    factor = check_factor(downscale, root)
    kind, files = find_transforms(root)
    bg = torch.ones(3) if background is None else torch.as_tensor(background, dtype=torch.float32).reshape(3)
    data_root = next(iter(files.values())).parent
    all_missing: list[str] = []
    total = 0
    undistorted = 0
    metas = {}
    if kind == "nerf_synthetic":
        split_views_: dict[str, list[View]] = {}
        for split in ("train", "test"):
            metas[split] = meta = read_transforms(files[split])
            views, missing, n, u = _load_frames(files[split], meta, factor, bg, data_root, False, undistort)
            split_views_[split] = views
            all_missing += missing
            total += n
            undistorted += u
        train, test = split_views_["train"], split_views_["test"]
        where = files["train"].parent
    else:
        path = files["all"]
        metas["all"] = meta = read_transforms(path)
        views, all_missing, total, undistorted = _load_frames(path, meta, factor, bg, data_root, True, undistort)
        tr, te = split_views([v.name for v in views], test_every)
        train, test = [views[i] for i in tr], [views[i] for i in te]
        where = path
    n_views = len(train) + len(test)
    if n_views == 0:
        raise InputError(
            f"{where}: none of the {total} frames' images exist (e.g. {all_missing[0]!r} relative to {data_root})"
        )
    if not train:
        raise InputError(f"{where}: no training views have an image on disk")
    if all_missing:
        shown = ", ".join(all_missing[:5]) + (", ..." if len(all_missing) > 5 else "")
        warnings.warn(
            f"{where}: {len(all_missing)} of {total} frames have no image file and are skipped ({shown})", stacklevel=2
        )
    if undistorted:
        _log.info("%s: undistorted %d of %d images into pinhole cameras", where, undistorted, n_views)

    has_alpha = False
    for v in (train + test)[:1]:
        has_alpha = _has_alpha(data_root, v.name)
    scene = Scene(
        name=data_root.resolve().name,
        train_views=train,
        test_views=test,
        points=None,
        background=bg.clone() if (has_alpha or kind == "nerf_synthetic") else torch.zeros(3),
    )
    bounds = scene.camera_bounds()
    box = _aabb_box(next(iter(metas.values())))
    if box is not None:
        clipped = torch.stack([torch.maximum(bounds[0], box[0]), torch.minimum(bounds[1], box[1])])
        if bool((clipped[1] > clipped[0]).all()):
            bounds = clipped
    if not bool(torch.isfinite(bounds).all()):
        raise InputError(f"{where}: could not compute finite scene bounds from the camera poses")
    scene.bounds = bounds
    return scene


def _has_alpha(data_root: Path, name: str) -> bool:
    p = Path(name) if Path(name).is_absolute() else data_root / name
    try:
        from PIL import Image

        with Image.open(p) as im:
            return im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    except OSError:
        return False
