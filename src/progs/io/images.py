"""Image loading with downscaling and an on-disk cache of the downscaled copies.

- Images are returned as float32 tensors [H, W, 3] in [0, 1] (the convention of :mod:`progs.scene`).
- Downscaling by ``factor`` gives ``round(W / factor) x round(H / factor)`` pixels (at least 1), made
  with an area (box) filter; JPEGs are first decoded at a reduced DCT scale when that is still at least
  the target size, which is both fast and close to an area average. The caller scales its camera with
  ``Camera.resized(w, h)`` to the size actually returned, so odd sizes stay consistent.
- Downscaled copies are cached as lossless PNGs, keyed by the source's absolute path, mtime, size and
  the target size (which the factor determines): under ``<dataset>/.progs_cache/images/`` when the
  dataset folder is writable (its mode bits are honoured even for root), else under
  ``$PROGS_CACHE_DIR/images/<hash>``, ``$XDG_CACHE_HOME/progs/images/<hash>`` or
  ``~/.cache/progs/images/<hash>`` (hash of the dataset path); with no writable place the image is
  simply not cached. Cache files are written atomically (temp file + rename).
- EXIF orientation is *not* applied (as COLMAP and the 3DGS reference loaders do not): poses refer to
  the pixels as stored.
- Alpha: an RGBA image is composited over ``background`` (an RGB triple in [0, 1]) when one is given,
  otherwise its alpha is dropped.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from progs.errors import InputError

__all__ = ["load_image", "image_size", "target_size", "cache_dir_for", "decode_image", "image_to_tensor"]

_CACHE_VERSION = "1"  # bump when the resampling changes, so old cached copies are not reused
_writable_cache: dict[str, Path | None] = {}


def target_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image downscaled by ``factor`` (rounded, at least 1)."""
    return max(1, int(round(width / factor))), max(1, int(round(height / factor)))


def check_factor(factor: float, where: str | os.PathLike) -> float:
    try:
        f = float(factor)
    except (TypeError, ValueError):
        raise InputError(f"{where}: downscale factor must be a number >= 1, got {factor!r}") from None
    if not np.isfinite(f) or f < 1.0:
        raise InputError(f"{where}: downscale factor must be a number >= 1, got {factor!r}")
    return f


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, reading only its header."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise InputError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read image ({_one_line(e)})") from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _user_cache_base() -> Path:
    env = os.environ.get("PROGS_CACHE_DIR")
    if env:
        return Path(env) / "images"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "progs" / "images"


def _marked_read_only(d: Path) -> bool:
    """True when ``d`` or its nearest existing ancestor has no write permission bit.

    Checked on the mode bits as well as with ``os.access``, because a process running as root may
    write anywhere; a folder marked read-only (like a shared dataset) must still be left alone.
    """
    p = d
    while not p.exists():
        if p.parent == p:
            return True
        p = p.parent
    try:
        mode = p.stat().st_mode
    except OSError:
        return True
    return not (mode & 0o222) or not os.access(p, os.W_OK | os.X_OK)


def _try_make_writable(d: Path) -> bool:
    if _marked_read_only(d):
        return False
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".probe-", delete=True):
            pass
        return True
    except OSError:
        return False


def cache_dir_for(dataset_root: str | os.PathLike) -> Path | None:
    """The folder where downscaled copies of ``dataset_root``'s images go (None: nowhere writable)."""
    root = Path(dataset_root).resolve()
    key = str(root) + "|" + os.environ.get("PROGS_CACHE_DIR", "") + "|" + os.environ.get("XDG_CACHE_HOME", "")
    if key in _writable_cache:
        return _writable_cache[key]
    candidates = [root / ".progs_cache" / "images"]
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    candidates.append(_user_cache_base() / digest)
    found = None
    for d in candidates:
        if _try_make_writable(d):
            found = d
            break
    _writable_cache[key] = found
    return found


def _cache_key(path: Path, tag: str) -> str:
    st = path.stat()
    text = f"v{_CACHE_VERSION}|{path.resolve()}|{st.st_mtime_ns}|{st.st_size}|{tag}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _normalise_mode(im: Image.Image) -> Image.Image:
    """RGB or RGBA, 8 bits per channel."""
    if im.mode in ("RGB", "RGBA"):
        return im
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA", "La", "RGBa"):
        return im.convert("RGBA")
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        scale = 65535.0 if im.mode.startswith("I") else 1.0
        arr8 = np.clip(np.round(arr / scale * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    return im.convert("RGB")


def _decode(path: Path, size: tuple[int, int] | None) -> Image.Image:
    """Open, decode and (if ``size`` is given) area-downscale one image."""
    try:
        with Image.open(path) as im:
            if size is not None and im.format == "JPEG" and im.mode in ("RGB", "L"):
                im.draft(im.mode, size)  # DCT-domain reduction by 1/2, 1/4 or 1/8, never below size
            im.load()
            out = _normalise_mode(im)
            if size is not None and out.size != size:
                out = out.resize(size, Image.Resampling.BOX)
            return out.copy() if out is im else out
    except FileNotFoundError:
        raise InputError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise InputError(f"{path}: cannot read image ({_one_line(e)})") from None


def _atomic_save_png(im: Image.Image, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as f:
            im.save(f, format="PNG", compress_level=1)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _to_tensor(im: Image.Image, background: Sequence[float] | torch.Tensor | None) -> torch.Tensor:
    arr = np.asarray(im, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 4:
        rgb, alpha = arr[:, :, :3], arr[:, :, 3:]
        if background is not None:
            bg = np.asarray(torch.as_tensor(background, dtype=torch.float32).reshape(3).numpy(), np.float32)
            rgb = rgb * alpha + bg * (1.0 - alpha)
        arr = rgb
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def decode_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image file at its own size as RGB or RGBA, 8 bits per channel."""
    return _decode(Path(path), None)


def image_to_tensor(
    im: Image.Image, background: Sequence[float] | torch.Tensor | None = None, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """An RGB(A) image as float32 [H, W, 3], area-downscaled to ``size`` (width, height) when given."""
    if size is not None and im.size != tuple(size):
        im = im.resize(tuple(size), Image.Resampling.BOX)
    return _to_tensor(im, background)


def load_image(
    path: str | os.PathLike,
    downscale: float = 1,
    *,
    background: Sequence[float] | torch.Tensor | None = None,
    cache_root: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Load an image as float32 [H, W, 3] in [0, 1], downscaled by ``downscale``.

    ``size`` (width, height) overrides the size computed from ``downscale``. ``cache_root`` is the
    dataset folder (its ``.progs_cache`` is tried first); without it the image's own folder is used.
    Nothing is cached when the image is loaded at its own size.
    """
    path = Path(path)
    factor = check_factor(downscale, path)
    if not path.is_file():
        raise InputError(f"{path}: image not found")
    if size is None and factor != 1.0:
        size = target_size(*image_size(path), factor)
    if size is not None and tuple(size) == image_size(path):
        size = None
    if size is None:
        return _to_tensor(_decode(path, None), background)

    size = (int(size[0]), int(size[1]))
    cdir = cache_dir_for(cache_root if cache_root is not None else path.parent)
    cached = None
    if cdir is not None:
        tag = f"{size[0]}x{size[1]}"
        cached = cdir / f"{path.stem}-{tag}-{_cache_key(path, tag)}.png"
        if cached.is_file():
            try:
                with Image.open(cached) as im:
                    im.load()
                    if im.size == size:
                        return _to_tensor(_normalise_mode(im), background)
            except (OSError, ValueError, SyntaxError):
                pass  # a damaged cache entry: rebuild it
    im = _decode(path, size)
    if cached is not None:
        try:
            _atomic_save_png(im, cached)
        except OSError:
            pass  # caching is best effort
    return _to_tensor(im, background)
