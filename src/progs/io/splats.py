"""Every 3DGS file a user may hold, read into a :class:`~progs.io.ply.GaussianCloud`: :func:`read_splats`.

- INRIA ``.ply`` (:func:`progs.io.ply.read_ply`; opacity logits of ±inf mean opacity 1 / 0);
- PlayCanvas compressed ``.ply`` (``packed_*`` properties, as SuperSplat exports) and Niantic ``.spz``,
  both through gsply;
- antimatter15 ``.splat`` (32 bytes per Gaussian, degree-0 colour);
- SOG (PlayCanvas, ``meta.json`` version 2 beside its WebP textures, a folder holding them, or the zip
  bundle ``.sog``) and streamed SOG (``lod-meta.json`` or its folder: one SOG per LoD, each LoD
  replacing the coarser ones; ``lod`` picks one, default 0 = the finest).

SOG, as ``@playcanvas/splat-transform`` writes it (all textures row-major, one pixel per Gaussian, RGBA):
``means_l``/``means_u`` hold the low and high bytes of 16-bit positions on [mins, maxs] of
``sign(x)·ln(1+|x|)``; ``quats`` the smallest three components of the unit quaternion, each
``(v·√2 + 1)/2·255``, with ``252 + index of the largest`` in alpha; ``scales`` (log scales) and ``sh0``'s
RGB (DC coefficients) index a 256-entry codebook in ``meta.json``, ``sh0``'s alpha is the opacity·255;
``shN_labels`` hold a 16-bit palette index (R + 256·G) into ``shN_centroids`` (64 entries per row, one
pixel per SH coefficient, RGB indexing the ``shN`` codebook). The axes are the PLY's.

Every reader raises :class:`~progs.errors.InputError` naming the file on malformed input.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from progs.errors import InputError
from progs.io.ply import SH_C0, GaussianCloud, check_finite, read_ply

__all__ = ["read_splats", "SPLAT_FORMATS", "splat_format"]

SPLAT_FORMATS = ("ply", "compressed-ply", "spz", "splat", "sog", "streamed-sog")
_SH_COEFFS = {0: 0, 1: 3, 2: 8, 3: 15}
_OPACITY_EPS = 1e-6  # as splat-transform: a byte opacity of 0 or 255 becomes the logit of 1e-6 / 1 - 1e-6


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def splat_format(path: str | os.PathLike) -> str:
    """Which of :data:`SPLAT_FORMATS` ``path`` holds (by name, and for a PLY by its header)."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        if (p / "lod-meta.json").is_file():
            return "streamed-sog"
        if (p / "meta.json").is_file():
            return "sog"
        raise InputError(f"{p}: a folder without meta.json or lod-meta.json (not a SOG)")
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if name.endswith("lod-meta.json"):
        return "streamed-sog"
    if name.endswith(".json") or name.endswith(".sog"):
        return "sog"
    if name.endswith(".spz"):
        return "spz"
    if name.endswith(".splat"):
        return "splat"
    if name.endswith(".ply"):
        with open(p, "rb") as f:
            head = f.read(4096)
        return "compressed-ply" if b"packed_position" in head.split(b"end_header")[0] else "ply"
    if name.endswith(".progs"):
        raise InputError(f"{p}: a progs stream, not splats; `progs decode {p} --out scene.ply` turns it into Gaussians")
    if name.endswith(".glb") or name.endswith(".gltf"):
        raise InputError(f"{p}: glTF is not read here; give the scene as .ply, .spz, .splat or SOG")
    raise InputError(
        f"{p}: unknown splat format (expected .ply, .compressed.ply, .spz, .splat, .sog, meta.json or lod-meta.json)"
    )


def read_splats(path: str | os.PathLike, lod: int | None = None) -> GaussianCloud:
    """The Gaussians in ``path`` (any of :data:`SPLAT_FORMATS`); ``lod`` picks a streamed SOG's level."""
    p = Path(path)
    fmt = splat_format(p)
    if lod is not None and fmt != "streamed-sog":
        raise InputError(f"{p}: a LoD level was given, but the file is a {fmt}, not a streamed SOG (lod-meta.json)")
    if fmt == "ply":
        cloud = read_ply(p)
    elif fmt == "streamed-sog":
        cloud = _read_streamed_sog(p / "lod-meta.json" if p.is_dir() else p, 0 if lod is None else lod)
    elif fmt == "sog":
        cloud = _read_sog_any(p)
    else:
        reader = {"compressed-ply": _read_compressed_ply, "spz": _read_spz, "splat": _read_splat}[fmt]
        try:
            cloud = reader(p)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 — third-party parsers raise anything on garbage
            raise InputError(f"{p}: cannot read {fmt} ({_one_line(e)})") from None
    if len(cloud) == 0:
        raise InputError(f"{p}: the file has no Gaussians")
    check_finite(p, cloud)
    return cloud


# --------------------------------------------------------------------------------------- gsply formats
def _read_spz(path: Path) -> GaussianCloud:
    from progs.io.spz import read_spz

    return read_spz(path)


def _read_compressed_ply(path: Path) -> GaussianCloud:
    from progs.io.spz import gsply_module

    gsply = gsply_module()

    d = gsply.plyread(path)
    n = len(d.means)
    sh_rest = d.shN if d.shN is not None and np.asarray(d.shN).size else np.zeros((n, 0, 3), np.float32)

    def t(a) -> torch.Tensor:
        return torch.from_numpy(np.array(a, np.float32))

    return GaussianCloud(
        t(d.means), t(d.sh0), t(sh_rest).reshape(n, -1, 3), t(d.opacities).reshape(n), t(d.scales), t(d.quats)
    )


# ----------------------------------------------------------------------------------------------- .splat
_FLAT_SCALE = 1e-7  # the scale a .splat record's 0 reads as


def _read_splat(path: Path) -> GaussianCloud:
    raw = path.read_bytes()
    if len(raw) == 0 or len(raw) % 32:
        raise InputError(f"{path}: {len(raw)} bytes is not a whole number of 32-byte .splat records")
    rec = np.frombuffer(raw, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rgba = rec["rgba"].astype(np.float32) / 255.0
    op = np.clip(rgba[:, 3], _OPACITY_EPS, 1 - _OPACITY_EPS)
    q = (rec["rot"].astype(np.float32) - 128.0) / 128.0
    scale = rec["scale"].astype(np.float32)
    negative = np.flatnonzero((scale < 0).any(axis=1))
    if negative.size:
        raise InputError(
            f"{path}: {negative.size} of {len(rec)} records have a negative scale (first: record {int(negative[0])})"
        )
    # A scale of exactly 0 is a flat (2D) Gaussian, which some exporters write: kept as a very thin one.
    log_scales = np.log(np.maximum(scale, _FLAT_SCALE))
    return GaussianCloud(
        torch.from_numpy(rec["pos"].copy()),
        torch.from_numpy((rgba[:, :3] - 0.5) / SH_C0),
        torch.zeros(len(rec), 0, 3),
        torch.from_numpy(np.log(op / (1 - op))),
        torch.from_numpy(log_scales),
        torch.from_numpy(q),
    )


# ------------------------------------------------------------------------------------------------- SOG
def _read_sog_any(path: Path) -> GaussianCloud:
    if path.is_file() and path.suffix.lower() == ".sog":
        try:
            with zipfile.ZipFile(path) as z:
                files = {n: z.read(n) for n in z.namelist()}
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise InputError(f"{path}: not a SOG bundle ({_one_line(e)})") from None
        meta_name = next((n for n in files if n.endswith("meta.json")), None)
        if meta_name is None:
            raise InputError(f"{path}: the SOG bundle holds no meta.json")
        prefix = meta_name[: -len("meta.json")]
        return read_sog(path, files[meta_name], lambda name: files.get(prefix + name))
    meta = path / "meta.json" if path.is_dir() else path
    return _read_sog_folder(meta)


def _read_sog_folder(meta: Path) -> GaussianCloud:
    def load(name: str) -> bytes | None:
        f = meta.parent / name
        return f.read_bytes() if f.is_file() else None

    try:
        text = meta.read_bytes()
    except OSError as e:
        raise InputError(f"{meta}: cannot read ({_one_line(e)})") from None
    return read_sog(meta, text, load)


def _image(where: Path, load: Callable[[str], bytes | None], name: str) -> np.ndarray:
    """The WebP texture ``name`` as RGBA bytes, [H, W, 4] uint8."""
    from PIL import Image

    data = load(name)
    if data is None:
        raise InputError(f"{where}: the SOG texture {name} is missing")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGBA"))
    except Image.UnidentifiedImageError:
        raise InputError(f"{where}: the SOG texture {name} is not an image Pillow can read (damaged?)") from None
    except Exception as e:  # noqa: BLE001 — Pillow raises many types on a damaged image
        raise InputError(f"{where}: cannot decode the SOG texture {name} ({_one_line(e)})") from None


def _texture(where: Path, load: Callable[[str], bytes | None], name: str, count: int) -> np.ndarray:
    """The first ``count`` RGBA pixels of the texture ``name`` (row-major), [count, 4] uint8."""
    flat = _image(where, load, name).reshape(-1, 4)
    if flat.shape[0] < count:
        raise InputError(f"{where}: the SOG texture {name} has {flat.shape[0]} pixels for {count} Gaussians")
    return flat[:count]


def _codebook(where: Path, section: dict, name: str) -> np.ndarray:
    book = np.asarray(section.get("codebook", []), dtype=np.float32)
    if book.shape != (256,):
        raise InputError(f"{where}: the SOG {name} codebook has {book.size} entries, expected 256")
    return book


def _quats_from_sog(px: np.ndarray) -> np.ndarray:
    """Quaternions (w, x, y, z) from the ``quats`` texture's RGBA bytes (an alpha below 252: identity)."""
    n = px.shape[0]
    tag = px[:, 3].astype(np.int64)
    small = (px[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0) / math.sqrt(2.0)
    q = np.zeros((n, 4), np.float64)
    valid = tag >= 252
    largest = np.clip(tag - 252, 0, 3)
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]  # [n, 3]
    rows = np.arange(n)[:, None]
    q[rows, others] = small
    q[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - (small**2).sum(axis=1)))
    q[~valid] = (1.0, 0.0, 0.0, 0.0)
    return q.astype(np.float32)


def read_sog(where: Path, meta_bytes: bytes, load: Callable[[str], bytes | None]) -> GaussianCloud:
    """A SOG (``meta.json`` version 2) from its meta's bytes and ``load(name)`` for its textures."""
    try:
        meta = json.loads(meta_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{where}: not a SOG meta.json ({_one_line(e)})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{where}: not a SOG meta.json (not an object)")
    if "lodLevels" in meta:
        raise InputError(f"{where}: a streamed SOG index; read it as lod-meta.json")
    if "version" not in meta:
        raise InputError(f"{where}: not a SOG meta.json (it has no version field)")
    if meta.get("version") != 2:
        raise InputError(
            f"{where}: SOG meta version {meta.get('version')!r} is not supported (only version 2; "
            "re-save it with a current splat-transform or SuperSplat)"
        )
    try:
        count = int(meta["count"])
        means_m, scales_m, quats_m, sh0_m = meta["means"], meta["scales"], meta["quats"], meta["sh0"]
        mins = np.asarray(means_m["mins"], np.float64)
        maxs = np.asarray(means_m["maxs"], np.float64)
        if count <= 0 or mins.shape != (3,) or maxs.shape != (3,):
            raise ValueError("count or means bounds malformed")
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{where}: malformed SOG meta.json ({_one_line(e)})") from None

    lo = _texture(where, load, means_m["files"][0], count)[:, :3].astype(np.float64)
    hi = _texture(where, load, means_m["files"][1], count)[:, :3].astype(np.float64)
    span = np.where(maxs - mins == 0, 1.0, maxs - mins)
    v = mins + span * ((lo + 256.0 * hi) / 65535.0)
    means = np.sign(v) * np.expm1(np.abs(v))

    quats = _quats_from_sog(_texture(where, load, quats_m["files"][0], count))
    log_scales = _codebook(where, scales_m, "scales")[_texture(where, load, scales_m["files"][0], count)[:, :3]]
    sh0_px = _texture(where, load, sh0_m["files"][0], count)
    sh_dc = _codebook(where, sh0_m, "sh0")[sh0_px[:, :3]]
    op = np.clip(sh0_px[:, 3].astype(np.float64) / 255.0, _OPACITY_EPS, 1 - _OPACITY_EPS)
    logits = np.log(op / (1 - op))

    sh_rest = np.zeros((count, 0, 3), np.float32)
    shn_m = meta.get("shN")
    if shn_m:
        try:
            bands, palette = int(shn_m["bands"]), int(shn_m["count"])
            k = _SH_COEFFS[bands]
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where}: malformed SOG shN section ({_one_line(e)})") from None
        if k:
            book = _codebook(where, shn_m, "shN")
            centroids = _image(where, load, shn_m["files"][0])
            labels_px = _texture(where, load, shn_m["files"][1], count)
            labels = labels_px[:, 0].astype(np.int64) + 256 * labels_px[:, 1].astype(np.int64)
            if centroids.shape[1] != 64 * k or centroids.shape[0] * 64 < palette:
                raise InputError(
                    f"{where}: the SOG shN centroids texture is {centroids.shape[1]}x{centroids.shape[0]}, "
                    f"expected {64 * k} wide for {palette} entries of {k} coefficients"
                )
            table = centroids[..., :3].reshape(-1, k, 3)  # entry 64·row + column: coefficient j, channel c
            sh_rest = book[table[np.clip(labels, 0, palette - 1)]]  # [count, k, 3]
            sh_rest[labels >= palette] = 0.0
    return GaussianCloud(
        torch.from_numpy(means.astype(np.float32)),
        torch.from_numpy(sh_dc.astype(np.float32)),
        torch.from_numpy(np.ascontiguousarray(sh_rest, np.float32)),
        torch.from_numpy(logits.astype(np.float32)),
        torch.from_numpy(log_scales.astype(np.float32)),
        torch.from_numpy(quats),
    )


# ---------------------------------------------------------------------------------------- streamed SOG
def _lod_ranges(node: dict, level: str, out: list[tuple[int, int, int]]) -> None:
    lods = node.get("lods")
    if isinstance(lods, dict) and level in lods:
        e = lods[level]
        out.append((int(e["file"]), int(e["offset"]), int(e["count"])))
    for child in node.get("children", []) or []:
        _lod_ranges(child, level, out)


def streamed_sog_levels(path: Path) -> int:
    """How many LoD levels the streamed SOG index ``path`` (lod-meta.json) declares."""
    meta = _lod_meta(path)
    return int(meta["lodLevels"])


def _lod_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_bytes())
        int(meta["lodLevels"]), list(meta["filenames"]), dict(meta["tree"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: not a streamed SOG lod-meta.json ({_one_line(e)})") from None
    return meta


def _read_streamed_sog(path: Path, lod: int) -> GaussianCloud:
    meta = _lod_meta(path)
    levels = int(meta["lodLevels"])
    if not 0 <= lod < levels:
        raise InputError(
            f"{path}: LoD {lod} is out of range (the streamed SOG has levels 0..{levels - 1}, 0 the finest)"
        )
    ranges: list[tuple[int, int, int]] = []
    try:
        _lod_ranges(meta["tree"], str(lod), ranges)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: malformed streamed SOG tree ({_one_line(e)})") from None
    if not ranges:
        raise InputError(f"{path}: LoD {lod} has no Gaussians")
    files = meta["filenames"]
    parts: dict[int, GaussianCloud] = {}
    pieces = []
    for file_index, offset, count in sorted(ranges):
        if not 0 <= file_index < len(files):
            raise InputError(f"{path}: LoD {lod} names file {file_index} of {len(files)}")
        if file_index not in parts:
            level_meta = path.parent / files[file_index]
            if not level_meta.is_file():
                raise InputError(f"{path}: LoD {lod} is stored in {files[file_index]}, which is missing")
            parts[file_index] = _read_sog_folder(level_meta)
        cloud = parts[file_index]
        if offset < 0 or offset + count > len(cloud):
            raise InputError(
                f"{path}: LoD {lod} reads rows {offset}..{offset + count} of {files[file_index]}, "
                f"which has {len(cloud)}"
            )
        pieces.append((cloud, offset, count))
    return _concat([c for c, _, _ in pieces], [(o, o + n) for _, o, n in pieces])


def _concat(clouds: list[GaussianCloud], spans: list[tuple[int, int]]) -> GaussianCloud:
    names = ("means", "sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats")
    degree = max(c.sh_rest.shape[1] for c in clouds)
    cols = {n: [] for n in names}
    for c, (a, b) in zip(clouds, spans):
        for n in names:
            t = getattr(c, n)[a:b]
            if n == "sh_rest" and t.shape[1] < degree:
                t = torch.cat([t, torch.zeros(t.shape[0], degree - t.shape[1], 3)], dim=1)
            cols[n].append(t)
    return GaussianCloud(**{n: torch.cat(v) for n, v in cols.items()})
