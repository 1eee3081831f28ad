"""The HEAD chunk: the LoD chunk table, the configuration, MLP weights, the hash-grid bits.

    n_lods:u8     = grid levels
    sizes:u32 × n_lods  the whole LOD chunks' sizes (framing included)
    config        fixed binary fields (:func:`write_config`): grid, generator, context, cull margin,
                  view distance, background, skip_hidden
    tensors       every MLP tensor the configuration implies, in a fixed order, as dyadic fixed
                  point (8 or 12 significant bits, the encoder's choice), Rice-coded
                  (:mod:`progs.codec.weights`): generator and context MLPs
    grid bits     (:mod:`progs.codec.grid_bits`)

``encode_header`` / ``decode_header`` are the pair; ``read_chunk_table`` reads just the table from a
stream's first bytes (what a streaming client needs to plan its range requests).
"""

from __future__ import annotations

import copy
import math
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
from progs.model.model import ProGSModel

MAX_TENSOR = 1 << 24
MAX_GRID_RES = 1 << 20  # hash-grid resolutions: a dense level's (res + 1)^3 cells stay within int64
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


# ------------------------------------------------------------------------------------ configuration
def write_config(w: ByteWriter, config: dict) -> None:
    """The configuration dict (keys as :func:`read_config` returns them) as FORMAT.md's fixed fields."""
    grid, gen, ctx = config["grid"], config["generator"], config["context"]
    for v in grid["origin"]:
        w.f64(float(v))
    w.f64(float(grid["size"]))
    w.u8(int(grid["base_depth"]))
    w.u16(int(gen["feat_dim"]))
    w.u16(int(gen["n_offsets"]))
    w.u8(int(gen["levels"]))
    w.u16(int(gen["hidden"]))
    w.u8(int(ctx["levels_3d"]))
    for v in ctx["res_3d"]:
        w.u32(int(v))
    w.u8(int(ctx["levels_2d"]))
    for v in ctx["res_2d"]:
        w.u32(int(v))
    w.u8(int(ctx["dim"]))
    w.u8(int(ctx["log2_table_3d"]))
    w.u8(int(ctx["log2_table_2d"]))
    w.u16(int(ctx["hidden"]))
    w.u16(int(ctx["q_hidden"]))
    w.u8(int(ctx["num_levels"]))
    for v in ctx["q0"]:
        w.f64(float(v))
    w.f64(float(config["cull_margin"]))
    vd = config["view_distance"]
    w.f64(float(vd) if vd is not None and vd > 0 else 0.0)
    bg = config["background"]
    w.u8(0 if bg is None else 1)
    for v in bg or ():
        w.f64(float(v))
    w.u8(1 if config["skip_hidden"] else 0)


def read_config(r: ByteReader, levels: int) -> dict:
    """Inverse of :func:`write_config` (``levels``: the chunk table's length, the grid's levels)."""

    def finite(v: float, what: str) -> float:
        if not math.isfinite(v):
            raise r.fail(f"configuration: {what} is not a finite number")
        return v

    origin = [finite(r.f64(), "the octree origin") for _ in range(3)]
    size = finite(r.f64(), "the octree size")
    grid = {"origin": origin, "size": size, "base_depth": r.u8(), "levels": levels}
    gen = {"feat_dim": r.u16(), "n_offsets": r.u16(), "levels": r.u8(), "hidden": r.u16()}
    ctx: dict = {"levels_3d": r.u8(), "res_3d": [r.u32(), r.u32()], "levels_2d": r.u8(), "res_2d": [r.u32(), r.u32()]}
    ctx.update(dim=r.u8(), log2_table_3d=r.u8(), log2_table_2d=r.u8(), hidden=r.u16(), q_hidden=r.u16())
    ctx["num_levels"] = r.u8()
    ctx["q0"] = [finite(r.f64(), "a base step") for _ in range(3)]
    ctx["attr_dims"] = [gen["feat_dim"], 6, 3 * gen["n_offsets"]]
    cull_margin = finite(r.f64(), "the cull margin")
    vd = finite(r.f64(), "the view distance")
    flag = r.u8()
    if flag > 1:
        raise r.fail(f"configuration: background flag {flag} (0 or 1)")
    background = [finite(r.f64(), "the background") for _ in range(3)] if flag else None
    skip = r.u8()
    if skip > 1:
        raise r.fail(f"configuration: skip_hidden {skip} (0 or 1)")
    return {
        "format": "progs",
        "grid": grid,
        "generator": gen,
        "context": ctx,
        "cull_margin": cull_margin,
        "background": background,
        "view_distance": vd if vd > 0 else None,
        "skip_hidden": bool(skip),
    }


# ------------------------------------------------------------------------------------------ tensors
def header_tensors(generator: GaussianGenerator, context: ContextModel) -> list[tuple[str, tuple[int, ...]]]:
    """The header's tensors in stream order, with their shapes: the generator's (opacity, colour,
    covariance MLPs; each layer's weight then bias), then the context model's (MLP_d, then MLP_q)."""
    out = [("generator." + k, tuple(t.shape)) for k, t in generator.state_dict().items()]
    out += [("context." + k, tuple(t.shape)) for k, t in context.mlp_d.named_parameters(prefix="mlp_d")]
    out += [("context." + k, tuple(t.shape)) for k, t in context.mlp_q.named_parameters(prefix="mlp_q")]
    return out


# ------------------------------------------------------------------------------------- the pair
def encode_header(
    model: ProGSModel, chunk_sizes: list[int], background: torch.Tensor | None, skip_hidden: bool = True
) -> bytes:
    """The HEAD payload of ``model`` (a :func:`coding_model`) with the LOD chunk sizes; ``skip_hidden``:
    the chunks leave out the offsets of never-drawn Gaussians."""
    generator, context = model.generator, model.context
    config = {
        "grid": model.grid.to_dict(),
        "generator": generator.args(),
        "context": context.cfg.to_json(),
        "cull_margin": model.cull_margin,
        "background": None if background is None else [float(x) for x in background],
        "view_distance": model.view_distance,
        "skip_hidden": bool(skip_hidden),
    }
    if len(chunk_sizes) != model.grid.num_levels:
        raise ValueError(f"{len(chunk_sizes)} chunk sizes for a grid of {model.grid.num_levels} levels")
    if list(context.cfg.attr_dims) != [generator.feat_dim, 6, 3 * generator.n_offsets]:
        raise ValueError("the context model's attribute blocks do not match the generator")
    w = ByteWriter()
    w.u8(len(chunk_sizes))
    for size in chunk_sizes:
        w.u32(size)
    write_config(w, config)
    fixed = {"generator." + k: v for k, v in generator.fixed_point_weights().items()}
    fixed.update({"context." + k: v for k, v in context.fixed_point_weights().items()})
    for name, shape in header_tensors(generator, context):
        mant, e = fixed[name]
        assert mant.shape == shape, (name, mant.shape, shape)
        write_weights(w, mant, e)
    write_grid_bits(w, context.grid_bits())
    return w.getvalue()


def _check_context_config(cfg: ContextConfig) -> None:
    if (
        cfg.log2_table_3d > 20
        or cfg.log2_table_2d > 20
        or cfg.levels_3d > 32
        or cfg.levels_2d > 16
        or not 1 <= cfg.dim <= 16
        or not 1 <= cfg.hidden <= 4096
        or not 1 <= cfg.q_hidden <= 4096
        or cfg.levels_3d + cfg.levels_2d < 1
        or not all(2.0**-24 <= q <= 2.0**24 for q in cfg.q0)
        or not all(1 <= r <= MAX_GRID_RES for r in (*cfg.res_3d, *cfg.res_2d))
    ):
        raise ValueError("context model configuration out of range")


def _read_chunk_sizes(r: ByteReader) -> list[int]:
    n = r.u8()
    if not 1 <= n <= MAX_LEVELS:
        raise r.fail(f"chunk table lists {n} LoDs (1..{MAX_LEVELS} allowed)")
    sizes = [r.u32() for _ in range(n)]
    if any(s < CHUNK_OVERHEAD for s in sizes):
        raise r.fail("chunk table lists a chunk shorter than its framing")
    return sizes


def decode_header(payload: memoryview, offset: int) -> Header:
    """Parse a HEAD payload (``offset``: the chunk's byte offset, for messages)."""
    r = ByteReader(payload, "chunk HEAD", offset + 8)
    sizes = _read_chunk_sizes(r)
    config = read_config(r, len(sizes))
    try:
        grid = octree.OctreeGrid.from_dict(config["grid"])
        gen_args = dict(config["generator"])
        cfg = ContextConfig.from_json(config["context"])
        _check_context_config(cfg)
    except (ValueError, KeyError, TypeError, ProgsError) as exc:
        raise FormatError(f"chunk HEAD at byte {offset}: invalid configuration ({exc})") from None
    if not (grid.size > 0 and grid.base_depth + grid.num_levels - 1 <= octree.MAX_DEPTH) or any(
        not (0 < v <= 4096) for v in gen_args.values()
    ):
        raise FormatError(f"chunk HEAD at byte {offset}: configuration out of range")
    if gen_args["levels"] < grid.num_levels:
        raise FormatError(
            f"chunk HEAD at byte {offset}: the generator takes {gen_args['levels']} levels, the grid has {grid.num_levels}"
        )
    if cfg.num_levels not in (0, grid.num_levels):
        raise FormatError(
            f"chunk HEAD at byte {offset}: the context model takes {cfg.num_levels} levels, the grid has {grid.num_levels}"
        )
    try:
        context = ContextModel(cfg)
        generator = GaussianGenerator(**gen_args)
    except (RuntimeError, ValueError) as exc:
        raise FormatError(f"chunk HEAD at byte {offset}: invalid configuration ({str(exc).splitlines()[0]})") from None
    tensors: dict[str, tuple[np.ndarray, int]] = {}
    for name, shape in header_tensors(generator, context):
        n = int(np.prod(shape))
        if n > MAX_TENSOR:
            raise r.fail(f"tensor {name!r} has {n} elements, more than the limit {MAX_TENSOR}")
        mant, e = read_weights(r, n, name)
        tensors[name] = (mant.reshape(shape), e)
    generator.load_fixed_point_weights(
        {k[len("generator.") :]: v for k, v in tensors.items() if k.startswith("generator.")}
    )
    context.load_fixed_point_weights({k[len("context.") :]: v for k, v in tensors.items() if k.startswith("context.")})
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
    header): the HEAD chunk's CRC is checked, then only its chunk table (its first bytes) is read."""
    mv = memoryview(header)
    header_length = head_chunk_length(mv, source)
    if len(mv) < header_length:
        raise FormatError(f"{source}: header is truncated ({len(mv)} of {header_length} bytes)")
    scanned = scan(mv[:header_length], source)
    if not scanned.chunks or scanned.chunks[0].tag != head_tag():
        raise FormatError(scanned.problem or f"{source}: the first chunk must be HEAD")
    r = ByteReader(scanned.chunks[0].payload, "chunk HEAD", PREAMBLE + 8)
    sizes = _read_chunk_sizes(r)
    return header_length, sizes
