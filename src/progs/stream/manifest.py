"""The stream manifest: a small JSON file beside ``scene.progs`` (``scene.progs.json``) that lists each
chunk's byte range, its anchor count and the measured quality of each LoD, so that a client can plan
how many LoDs fit its byte budget or its bandwidth and fetch them with plain HTTP Range requests.

    {"format": "progs", "version": V, "stream": "scene.progs", "total_bytes": N,   # V: the format version
     "header": {"offset": 0, "length": L},            # preamble + HEAD chunk: bytes [0, L)
     "lods": [{"lod": 1, "offset": o, "length": n, "cumulative_bytes": c,   # c = o + n (header included)
               "anchors": a, "anchors_cumulative": ac, "psnr": p|null, "ssim": s|null}, ...],
     "view": {"eye": [x, y, z], "target": [x, y, z], "up": [x, y, z], "fov_x": degrees}}   # optional

``view`` is where a viewer should start: one of the capture's cameras (the web player opens there).

A manifest is only a convenience: the HEAD chunk of every stream carries the same chunk table
(:func:`progs.codec.header.read_chunk_table`), so a client can plan from the header alone.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from progs.atomic import atomic_path
from progs.codec.container import CHUNK_OVERHEAD, FORMAT_VERSION, PREAMBLE, scan
from progs.codec.errors import FormatError
from progs.codec.header import MAX_LEVELS, read_chunk_table
from progs.codec.structure import anchor_count
from progs.errors import ProgsError

MANIFEST_SUFFIX = ".json"
MAX_MANIFEST_BYTES = 1 << 20


def manifest_name(stream_name: str) -> str:
    """``scene.progs`` -> ``scene.progs.json`` (the manifest lives beside its stream)."""
    return stream_name + MANIFEST_SUFFIX


def _quality_for(quality: list[dict] | None, lod: int, n_lods: int) -> tuple[float | None, float | None]:
    if not quality:
        return None, None
    for i, q in enumerate(quality):
        k = q.get("lod", i + 1 if len(quality) == n_lods else None)
        if k == lod:
            psnr, ssim = q.get("psnr"), q.get("ssim")
            return (None if psnr is None else float(psnr)), (None if ssim is None else float(ssim))
    return None, None


def _lod_entries(
    header_length: int, sizes: list[int], anchors: list[int | None], quality: list[dict] | None
) -> list[dict]:
    lods = []
    offset = header_length
    total_anchors: int | None = 0
    for i, size in enumerate(sizes):
        lod = i + 1
        a = anchors[i]
        total_anchors = None if (a is None or total_anchors is None) else total_anchors + a
        psnr, ssim = _quality_for(quality, lod, len(sizes))
        lods.append(
            {
                "lod": lod,
                "offset": offset,
                "length": size,
                "cumulative_bytes": offset + size,
                "anchors": a,
                "anchors_cumulative": total_anchors,
                "psnr": psnr,
                "ssim": ssim,
            }
        )
        offset += size
    return lods


def suggested_view(camera: Any, target: Any) -> dict:
    """A manifest ``view`` from a :class:`~progs.scene.Camera`: its eye, its up direction in the image,
    its horizontal field of view, and a target on its optical axis as far away as ``target`` (a point,
    e.g. the scene's centre) is, so orbit controls turn around the scene."""
    import torch

    c2w = camera.camera_to_world.double()
    eye = c2w[:3, 3]
    forward = c2w[:3, 2] / c2w[:3, 2].norm()
    depth = float(((torch.as_tensor(target, dtype=torch.float64) - eye) @ forward).clamp_min(1e-6))
    return {
        "eye": [round(float(v), 6) for v in eye],
        "target": [round(float(v), 6) for v in eye + forward * depth],
        "up": [round(-float(v), 6) for v in c2w[:3, 1]],  # OpenCV: image y points down
        "fov_x": round(math.degrees(camera.fov_x), 4),
    }


def build_manifest(result: Any, stream_name: str, quality: list[dict] | None = None, view: dict | None = None) -> dict:
    """The manifest of an :class:`~progs.codec.stream.EncodeResult` published as ``stream_name``.

    ``quality``: optional per-LoD measurements, dicts with ``lod`` (1-based; may be omitted when the
    list has one entry per LoD, in order), ``psnr`` and ``ssim``; missing values are written as null.
    ``view``: optional starting camera (:func:`suggested_view`).
    """
    offsets = list(result.chunk_offsets)
    if not offsets or offsets[0][0] != "HEAD":
        raise ProgsError("cannot build a manifest: the encode result lists no HEAD chunk")
    header_length = int(result.header_bytes)
    sizes, anchors = [], []
    expected = header_length
    for (name, off, size), st in zip(offsets[1:], result.lods):
        if off != expected or name != f"LOD{st.lod}":
            raise ProgsError(f"cannot build a manifest: chunk {name} at byte {off} is not where the LoD table puts it")
        sizes.append(int(size))
        anchors.append(int(st.anchors))
        expected += size
    if expected != len(result.data):
        raise ProgsError(
            f"cannot build a manifest: chunks end at byte {expected} but the stream has {len(result.data)}"
        )
    m = {
        "format": "progs",
        "version": FORMAT_VERSION,
        "stream": Path(stream_name).name,
        "total_bytes": len(result.data),
        "header": {"offset": 0, "length": header_length},
        "lods": _lod_entries(header_length, sizes, anchors, quality),
    }
    if view is not None:
        m["view"] = view
    return m


def manifest_from_header(header: bytes | memoryview, stream_name: str) -> dict:
    """A manifest planned from a stream's first bytes (preamble + HEAD chunk) alone.

    The chunk table gives every byte range; anchor counts and quality are unknown (null).
    """
    header_length, sizes = read_chunk_table(header, stream_name)
    return {
        "format": "progs",
        "version": FORMAT_VERSION,
        "stream": Path(stream_name).name,
        "total_bytes": header_length + sum(sizes),
        "header": {"offset": 0, "length": header_length},
        "lods": _lod_entries(header_length, sizes, [None] * len(sizes), None),
    }


def manifest_for_stream(data: bytes | memoryview, stream_name: str, quality: list[dict] | None = None) -> dict:
    """The manifest of a whole stream file (anchor counts read from each LoD chunk's ``count`` field)."""
    header_length, sizes = read_chunk_table(data, stream_name)
    scanned = scan(data, stream_name)
    lods = scanned.chunks[1:]
    if scanned.problem or len(lods) != len(sizes) or [c.size for c in lods] != sizes:
        raise FormatError(scanned.problem or f"{stream_name}: the chunks do not match the header's chunk table")
    anchors = [anchor_count(c.payload) for c in lods]
    return {
        "format": "progs",
        "version": FORMAT_VERSION,
        "stream": Path(stream_name).name,
        "total_bytes": len(data),
        "header": {"offset": 0, "length": header_length},
        "lods": _lod_entries(header_length, sizes, anchors, quality),
    }


# ------------------------------------------------------------------------------------ validation
def _bad(source: str, msg: str) -> ProgsError:
    return ProgsError(f"{source}: invalid manifest: {msg}")


def _int(v: Any, source: str, what: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise _bad(source, f"{what} must be an integer >= {minimum}, got {v!r}")
    return v


def _opt_number(v: Any, source: str, what: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(source, f"{what} must be a finite number or null, got {v!r}")
    return float(v)


def validate_manifest(m: Any, source: str = "manifest") -> dict:
    """Check a parsed manifest's structure and arithmetic; returns it, or raises a one-line ProgsError."""
    if not isinstance(m, dict):
        raise _bad(source, "the top level must be a JSON object")
    if m.get("format") != "progs":
        raise _bad(source, f'"format" must be "progs", got {m.get("format")!r}')
    version = m.get("version")
    if version != FORMAT_VERSION:
        raise ProgsError(
            f"{source}: unsupported format version {version!r} (this progs reads version {FORMAT_VERSION})"
        )
    stream = m.get("stream")
    if not isinstance(stream, str) or not stream or "/" in stream or "\\" in stream or stream in (".", ".."):
        raise _bad(source, f'"stream" must be a plain file name, got {stream!r}')
    total = _int(m.get("total_bytes"), source, '"total_bytes"', 1)
    header = m.get("header")
    if not isinstance(header, dict):
        raise _bad(source, '"header" must be an object with offset and length')
    if _int(header.get("offset"), source, "header offset") != 0:
        raise _bad(source, "the header must start at byte 0")
    hlen = _int(header.get("length"), source, "header length", PREAMBLE + CHUNK_OVERHEAD)
    lods = m.get("lods")
    if not isinstance(lods, list) or not 1 <= len(lods) <= MAX_LEVELS:
        raise _bad(source, f'"lods" must be a list of 1..{MAX_LEVELS} entries')
    expected_offset = hlen
    cum_anchors: int | None = 0
    for i, e in enumerate(lods):
        where = f"LoD entry {i + 1}"
        if not isinstance(e, dict):
            raise _bad(source, f"{where} must be an object")
        if _int(e.get("lod"), source, f"{where} lod", 1) != i + 1:
            raise _bad(source, f"{where} says lod {e.get('lod')}; LoDs must be listed 1, 2, ... in order")
        off = _int(e.get("offset"), source, f"{where} offset")
        length = _int(e.get("length"), source, f"{where} length", CHUNK_OVERHEAD)
        if off != expected_offset:
            raise _bad(source, f"{where} starts at byte {off}, expected {expected_offset} (chunks are contiguous)")
        expected_offset += length
        if "cumulative_bytes" in e and e["cumulative_bytes"] != expected_offset:
            raise _bad(source, f"{where} cumulative_bytes is {e['cumulative_bytes']!r}, expected {expected_offset}")
        e["cumulative_bytes"] = expected_offset
        a = e.get("anchors")
        if a is not None:
            _int(a, source, f"{where} anchors")
        cum_anchors = None if (a is None or cum_anchors is None) else cum_anchors + a
        ac = e.get("anchors_cumulative")
        if ac is not None and cum_anchors is not None and ac != cum_anchors:
            raise _bad(source, f"{where} anchors_cumulative is {ac!r}, expected {cum_anchors}")
        e.setdefault("anchors", None)
        e["anchors_cumulative"] = ac if ac is not None else cum_anchors
        e["psnr"] = _opt_number(e.get("psnr"), source, f"{where} psnr")
        e["ssim"] = _opt_number(e.get("ssim"), source, f"{where} ssim")
    if expected_offset != total:
        raise _bad(source, f"chunks end at byte {expected_offset} but total_bytes is {total}")
    if "view" in m:
        _check_view(m["view"], source)
    return m


def _check_view(v: Any, source: str) -> None:
    if not isinstance(v, dict):
        raise _bad(source, '"view" must be an object with eye, target, up and fov_x')
    for key in ("eye", "target", "up"):
        p = v.get(key)
        if not (isinstance(p, list) and len(p) == 3 and all(_finite(x) for x in p)):
            raise _bad(source, f'view "{key}" must be 3 finite numbers, got {p!r}')
    fov = v.get("fov_x")
    if not (_finite(fov) and 1 < fov < 179):
        raise _bad(source, f'view "fov_x" must be a field of view in degrees (1..179), got {fov!r}')
    if math.dist(v["eye"], v["target"]) == 0 or not any(v["up"]):
        raise _bad(source, "view: eye and target coincide or up is zero")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_manifest(src: str | os.PathLike[str] | bytes, source: str | None = None) -> dict:
    """Parse and validate a manifest from a path or from its bytes."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        source = source or "manifest"
    else:
        path = Path(src)
        source = source or str(path)
        try:
            size = path.stat().st_size
            if size > MAX_MANIFEST_BYTES:
                raise _bad(source, f"{size} bytes is more than the {MAX_MANIFEST_BYTES}-byte limit")
            data = path.read_bytes()
        except FileNotFoundError:
            raise ProgsError(f"{source}: no such manifest file") from None
        except IsADirectoryError:
            raise ProgsError(f"{source}: is a directory, not a manifest") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise _bad(source, f"{len(data)} bytes is more than the {MAX_MANIFEST_BYTES}-byte limit")
    try:
        m = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(source, f"not JSON ({str(exc).splitlines()[0]})") from None
    return validate_manifest(m, source)


def write_manifest(path: str | os.PathLike[str], manifest: dict) -> None:
    """Validate and write ``manifest`` atomically (temporary file beside it, then rename)."""
    validate_manifest(json.loads(json.dumps(manifest)), str(path))
    text = json.dumps(manifest, indent=1) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def check_against_header(manifest: dict, header_length: int, sizes: list[int], source: str = "manifest") -> None:
    """Raise if the manifest's byte ranges disagree with the stream's own chunk table."""
    got = [e["length"] for e in manifest["lods"]]
    if manifest["header"]["length"] != header_length or got != sizes:
        raise ProgsError(
            f"{source}: the manifest does not match the stream's chunk table "
            f"(header {manifest['header']['length']} vs {header_length} bytes, LoD sizes {got} vs {sizes}); "
            "it is stale: rebuild it"
        )


# -------------------------------------------------------------------------------------- planning
def lods_within(manifest: dict, max_bytes: int | None) -> int:
    """How many LoDs (0..L) fit in ``max_bytes`` bytes of the stream, header included (None: all)."""
    lods = manifest["lods"]
    if max_bytes is None:
        return len(lods)
    if max_bytes < manifest["header"]["length"]:
        return 0
    n = 0
    for e in lods:
        if e["cumulative_bytes"] <= max_bytes:
            n = e["lod"]
        else:
            break
    return n


def lods_within_time(manifest: dict, bandwidth_bytes_per_s: float, seconds: float) -> int:
    """How many LoDs arrive within ``seconds`` at ``bandwidth_bytes_per_s`` (header included)."""
    if not (bandwidth_bytes_per_s > 0 and seconds >= 0):
        raise ProgsError(
            f"bandwidth must be positive and time non-negative (got {bandwidth_bytes_per_s} B/s, {seconds} s)"
        )
    budget = bandwidth_bytes_per_s * seconds
    return lods_within(manifest, int(math.floor(budget + 1e-9)) if math.isfinite(budget) else None)


def lod_range(manifest: dict, lod: int) -> tuple[int, int]:
    """``(offset, length)`` of LoD ``lod``'s chunk."""
    e = manifest["lods"][lod - 1]
    return e["offset"], e["length"]


__all__ = [
    "build_manifest",
    "manifest_for_stream",
    "write_manifest",
    "read_manifest",
    "validate_manifest",
    "manifest_from_header",
    "check_against_header",
    "lods_within",
    "lods_within_time",
    "lod_range",
    "manifest_name",
]
