"""The HEAD chunk: configuration (JSON), the LoD chunk table, MLP weights, the hash-grid bits.

    config:blob   JSON (sort_keys): format, grid, generator, context, cull_margin, background, view_distance
    n_lods:u8     = grid levels
    sizes:u32 × n_lods  the whole LOD chunks' sizes (framing included)
    n_tensors:u16 then per tensor: name:blob ndim:u8 dims:u32 × ndim, then the values as dyadic
                  fixed point (8 or 12 significant bits, the encoder's choice), Rice-coded
                  (:mod:`progs.codec.weights`): generator and context MLPs
    grid bits     (:mod:`progs.codec.grid_bits`)

``encode_header`` / ``decode_header`` are the pair; ``read_chunk_table`` reads just the table from a
stream's first bytes (what a streaming client needs to plan its range requests).
"""

from __future__ import annotations

import copy
import json
import struct
from dataclasses import dataclass

import numpy as np
import torch

from progs import octree
from progs.codec.bytes import ByteReader, ByteWriter
from progs.codec.container import CHUNK_OVERHEAD, PREAMBLE, check_preamble, head_tag, scan
from progs.codec.errors import FormatError
from progs.codec.grid_bits import read_grid_bits, write_grid_bits
from progs.codec.weights import read_weights, write_weights
from progs.errors import ProgsError
from progs.model.context import ContextConfig, ContextModel
from progs.model.gaussians import GaussianGenerator
from progs.model.layout import AttributeLayout
from progs.model.model import ProGSModel

MAX_JSON = 1 << 20
MAX_TENSOR = 1 << 24
MAX_LEVELS = 16
MAX_HEAD = 1 << 30


@dataclass
class Header:
    config: dict
    grid: octree.OctreeGrid
    generator: GaussianGenerator
    context: ContextModel
    chunk_sizes: list[int]  # whole LOD chunks, framing included

    @property
    def background(self) -> torch.Tensor | None:
        bg = self.config.get("background")
        return None if bg is None else torch.tensor(bg, dtype=torch.float32)

    @property
    def cull_margin(self) -> float:
        return float(self.config.get("cull_margin", 0.1))

    @property
    def view_distance(self) -> float | None:
        vd = self.config.get("view_distance")
        return float(vd) if isinstance(vd, (int, float)) and vd > 0 else None

    @property
    def skip_hidden(self) -> bool:
        """Whether the LOD chunks leave out the offsets of never-drawn Gaussians (:mod:`progs.model.visibility`)."""
        return bool(self.config["skip_hidden"])


def coding_model(model: ProGSModel) -> ProGSModel:
    """A copy of ``model`` whose MLP weights are exactly what a decoder reads from the header (every
    tensor rounded to its fixed point); ``model`` itself is left as it is."""
    generator = GaussianGenerator(**model.generator.args())
    generator.load_fixed_point_weights(model.generator.fixed_point_weights())
    context = copy.deepcopy(model.context).cpu()
    context.round_weights_to_fixed_point()
    return ProGSModel(
        model.anchors, generator, context, cull_margin=model.cull_margin, view_distance=model.view_distance
    )


# ------------------------------------------------------------------------------------------ tensors
def _write_tensor(w: ByteWriter, name: str, mant: np.ndarray, e: int) -> None:
    w.blob(name.encode())
    w.u8(mant.ndim)
    for d in mant.shape:
        w.u32(d)
    write_weights(w, mant, e)


def _read_tensor(r: ByteReader) -> tuple[str, np.ndarray, int]:
    name = r.blob(256).decode("utf-8", "replace")
    ndim = r.u8()
    if ndim > 4:
        raise r.fail(f"tensor {name!r} has {ndim} dimensions")
    shape = tuple(r.u32() for _ in range(ndim))
    n = int(np.prod(shape)) if shape else 1
    if n > MAX_TENSOR:
        raise r.fail(f"tensor {name!r} claims {n} elements, more than the limit {MAX_TENSOR}")
    mant, e = read_weights(r, n, name)
    return name, mant.reshape(shape), e


# ------------------------------------------------------------------------------------- the pair
def encode_header(
    model: ProGSModel, chunk_sizes: list[int], background: torch.Tensor | None, skip_hidden: bool = True
) -> bytes:
    """The HEAD payload of ``model`` (a :func:`coding_model`) with the LOD chunk sizes; ``skip_hidden``:
    the chunks leave out the offsets of never-drawn Gaussians."""
    generator, context = model.generator, model.context
    config = {
        "format": "progs",
        "grid": model.grid.to_dict(),
        "generator": generator.args(),
        "context": context.cfg.to_json(),
        "cull_margin": model.cull_margin,
        "background": None if background is None else [float(x) for x in background],
        "view_distance": model.view_distance,
        "skip_hidden": bool(skip_hidden),
    }
    w = ByteWriter()
    w.blob(json.dumps(config, sort_keys=True).encode())
    w.u8(len(chunk_sizes))
    for size in chunk_sizes:
        w.u32(size)
    gen_fixed = generator.fixed_point_weights()
    fixed = context.fixed_point_weights()
    w.u16(len(gen_fixed) + len(fixed))
    for name, (mant, e) in gen_fixed.items():
        _write_tensor(w, "generator." + name, mant, e)
    for name, (mant, e) in fixed.items():
        _write_tensor(w, "context." + name, mant, e)
    write_grid_bits(w, context.grid_bits())
    return w.getvalue()


def _check_context_config(cfg: ContextConfig) -> None:
    if (
        cfg.log2_table_3d > 20
        or cfg.log2_table_2d > 20
        or cfg.levels_3d > 32
        or cfg.levels_2d > 16
        or cfg.dim > 16
        or cfg.hidden > 4096
        or cfg.q_hidden > 4096
    ):
        raise ValueError("context model configuration out of range")


def decode_header(payload: memoryview, offset: int) -> Header:
    """Parse a HEAD payload (``offset``: the chunk's byte offset, for messages)."""
    r = ByteReader(payload, "chunk HEAD", offset + 8)
    try:
        config = json.loads(r.blob(MAX_JSON).decode("utf-8"))
        grid = octree.OctreeGrid.from_dict(config["grid"])
        gen_args = {k: int(config["generator"][k]) for k in ("feat_dim", "n_offsets", "levels", "hidden")}
        cfg = ContextConfig.from_json(config["context"])
        layout = AttributeLayout.from_dims(cfg.attr_dims)
        if not isinstance(config["skip_hidden"], bool):
            raise ValueError("skip_hidden must be true or false")
    except (ValueError, KeyError, TypeError, ProgsError) as exc:
        raise FormatError(f"chunk HEAD at byte {offset}: invalid configuration ({exc})") from None
    needed = AttributeLayout(gen_args["feat_dim"], gen_args["n_offsets"])
    if layout != needed:
        raise FormatError(
            f"chunk HEAD at byte {offset}: the context model codes attribute blocks {layout.dims}, "
            f"the generator needs {needed.dims}"
        )
    if not (1 <= grid.num_levels <= MAX_LEVELS) or any(not (0 < v <= 4096) for v in gen_args.values()):
        raise FormatError(f"chunk HEAD at byte {offset}: configuration out of range")
    if cfg.num_levels not in (0, grid.num_levels):
        raise FormatError(
            f"chunk HEAD at byte {offset}: the context model takes {cfg.num_levels} levels, the grid has {grid.num_levels}"
        )
    n_lods = r.u8()
    if n_lods != grid.num_levels:
        raise r.fail(f"chunk table lists {n_lods} LoDs but the grid has {grid.num_levels} levels")
    sizes = [r.u32() for _ in range(n_lods)]
    tensors = {}
    for _ in range(r.u16()):
        name, arr, e = _read_tensor(r)
        tensors[name] = (arr, e)
    try:
        _check_context_config(cfg)
        context = ContextModel(cfg)
        generator = GaussianGenerator(**gen_args)
        generator.load_fixed_point_weights(
            {k[len("generator.") :]: (v, e) for k, (v, e) in tensors.items() if k.startswith("generator.")}
        )
        context.load_fixed_point_weights(
            {k[len("context.") :]: (v, e) for k, (v, e) in tensors.items() if k.startswith("context.")}
        )
    except (RuntimeError, KeyError, ValueError) as exc:
        raise FormatError(
            f"chunk HEAD at byte {offset}: MLP weights do not match the configuration ({str(exc).splitlines()[0]})"
        ) from None
    context.load_grid_bits(read_grid_bits(r, context.grid3.numel() + context.grid2.numel()))
    r.expect_end()
    return Header(config, grid, generator, context, sizes)


# ---------------------------------------------------------------------------------- chunk table
def head_chunk_length(prefix: bytes | memoryview, source: str = "stream") -> int:
    """Total header length (preamble + whole HEAD chunk) from the stream's first ``PREAMBLE + 8`` bytes."""
    mv = memoryview(prefix)
    check_preamble(mv, source)
    if len(mv) < PREAMBLE + 8:
        raise FormatError(f"{source}: truncated before the HEAD chunk's length")
    if bytes(mv[PREAMBLE : PREAMBLE + 4]) != head_tag():
        raise FormatError(f"{source}: the first chunk must be HEAD")
    (length,) = struct.unpack_from("<I", mv, PREAMBLE + 4)
    if length > MAX_HEAD:
        raise FormatError(f"{source}: chunk HEAD at byte {PREAMBLE} announces an implausible {length} bytes")
    return PREAMBLE + length + CHUNK_OVERHEAD


def read_chunk_table(header: bytes | memoryview, source: str = "stream") -> tuple[int, list[int]]:
    """``(header_length, [size of LOD1 chunk, ...])`` from a stream's first bytes (at least the whole
    header): the HEAD chunk's CRC is checked, then only its config blob and chunk table are read."""
    mv = memoryview(header)
    header_length = head_chunk_length(mv, source)
    if len(mv) < header_length:
        raise FormatError(f"{source}: header is truncated ({len(mv)} of {header_length} bytes)")
    scanned = scan(mv[:header_length], source)
    if not scanned.chunks or scanned.chunks[0].tag != head_tag():
        raise FormatError(scanned.problem or f"{source}: the first chunk must be HEAD")
    r = ByteReader(scanned.chunks[0].payload, "chunk HEAD", PREAMBLE + 8)
    try:
        json.loads(r.blob(MAX_JSON).decode("utf-8"))
    except ValueError as exc:
        raise FormatError(f"{source}: chunk HEAD holds an invalid configuration ({exc})") from None
    n = r.u8()
    if not 1 <= n <= MAX_LEVELS:
        raise r.fail(f"chunk table lists {n} LoDs (1..{MAX_LEVELS} allowed)")
    sizes = [r.u32() for _ in range(n)]
    if any(s < CHUNK_OVERHEAD for s in sizes):
        raise r.fail("chunk table lists a chunk shorter than its framing")
    return header_length, sizes
