"""Encoding a trained ProGS model into the progressive bitstream, and decoding any prefix of it.

The normative description is ``docs/FORMAT.md``. In short: a HEAD chunk (configuration, generator
MLP weights as float16, context MLP weights as fixed-point int16, the binarized hash grid coded with
its Bernoulli frequency, the table of LoD chunk lengths), then one chunk per level: that level's
anchor structure, then its attributes (f, s, o) quantized with the context model's step and coded with
its Gaussian prior. The decoder of the first k LoD chunks rebuilds exactly the LoD-k model the encoder
evaluated.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import constriction
import numpy as np
import torch

from progs import octree
from progs.codec import structure
from progs.codec.attributes import decode_symbols, encode_symbols
from progs.codec.bytes import ByteReader, ByteWriter
from progs.codec.container import (
    FORMAT_VERSION, PREAMBLE, chunk, head_tag, lod_tag, preamble, scan, tag_name,
)
from progs.codec.errors import FormatError
from progs.errors import ProgsError
from progs.model.anchors import AnchorSet
from progs.model.context import ContextConfig, ContextModel
from progs.model.gaussians import GaussianGenerator
from progs.model.model import ProGSModel

MAX_JSON = 1 << 20
MAX_TENSOR = 1 << 24
MAX_ANCHORS = 1 << 26
MAX_LEVELS = 16
MAX_GRID_BITS = 1 << 28

_DTYPES = {1: np.float16, 2: np.float32, 3: np.int16}


@dataclass
class LodStats:
    lod: int
    bytes: int  # whole chunk, framing included
    anchors: int  # anchors of this level
    components: dict[str, int]  # payload bytes: structure, f, s, o (all attributes in one stream: split by bits)
    structure_method: str
    seconds: float = 0.0


@dataclass
class EncodeResult:
    data: bytes
    header_bytes: int
    lods: list[LodStats]
    model: ProGSModel  # the quantized model exactly as a decoder rebuilds it (all levels)
    chunk_offsets: list[tuple[str, int, int]] = field(default_factory=list)  # (name, offset, size)
    seconds: float = 0.0


@dataclass
class DecodeResult:
    model: ProGSModel | None
    lods_decoded: int
    lods_in_stream: int
    header_bytes: int
    lods: list[LodStats]
    config: dict
    problem: str | None  # why decoding stopped early (truncation, corruption), if it did
    background: torch.Tensor | None = None


# ------------------------------------------------------------------------------------------ helpers
def normalised_positions(grid: octree.OctreeGrid, keys: torch.Tensor, level: int) -> torch.Tensor:
    """Exact dyadic positions in [0, 1]^3 of voxel centres (float64)."""
    return (keys.double() + 0.5) / float(grid.resolution(level))


def _attribute_matrix(a: AnchorSet, idx: torch.Tensor) -> torch.Tensor:
    return torch.cat(
        [a.feature.detach()[idx], a.scaling.detach()[idx], a.offsets.detach()[idx].reshape(idx.numel(), -1)], dim=1
    ).double()


class _LevelContext:
    """Walks the levels in order, computing each level's coding parameters; the parent features of
    level l are the own features of level l-1 (a child's parent position is its parent anchor's
    position), so each anchor's hash-grid features are computed once."""

    def __init__(self, ctx: ContextModel, grid: octree.OctreeGrid):
        self.ctx, self.grid = ctx, grid
        self.prev_codes: torch.Tensor | None = None  # Morton codes of the previous level (ascending)
        self.prev_terms: torch.Tensor | None = None

    def params(self, keys: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean in symbol units [N, D], scale bin [N, D] uint8, step per attribute type [N, 3])."""
        h = self.ctx.exact_features(normalised_positions(self.grid, keys, level))
        codes = octree.morton_encode(keys)
        terms = None
        if level > 1 and self.prev_codes is not None and self.prev_terms is not None:
            # A level is in Morton order and a parent's code is its child's code >> 3.
            parent = torch.searchsorted(self.prev_codes, codes >> 3).clamp_(max=max(self.prev_codes.numel() - 1, 0))
            if keys.shape[0] and not bool(torch.equal(self.prev_codes[parent], codes >> 3)):
                raise ValueError("an anchor's parent is missing from the previous level")
            terms = self.prev_terms[parent]
        mean, bins, q = self.ctx.coding_params(h, terms)
        self.prev_codes, self.prev_terms = codes, self.ctx.parent_terms(h)
        return mean, bins, q


def _quantize(ctx: ContextModel, attrs: torch.Tensor, mean: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Residuals ``round(value · (1/q) − m)`` (float64 holding integers) around the predicted means."""
    return torch.round(attrs * ctx.step_per_channel(1.0 / q) - mean)


def _dequantize(ctx: ContextModel, residuals: torch.Tensor, mean: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Attribute values ``(r + m) · q`` (float64), each type's block times its step."""
    x = residuals.double() + mean
    edges = np.cumsum((0,) + tuple(ctx.cfg.attr_dims))
    for i in range(3):
        x[:, edges[i]:edges[i + 1]] *= q[:, i:i + 1]
    return x


def _components(ctx: ContextModel, n_struct: int, residuals: np.ndarray, bins: np.ndarray, payload: int) -> dict[str, int]:
    """Payload bytes per component (Fig. 6): the level byte and structure as coded; the attribute bytes
    split among f, s, o in proportion to their ideal code lengths (they share one range-coder stream)."""
    from progs.codec.attributes import ideal_bits

    edges = np.cumsum((0,) + tuple(ctx.cfg.attr_dims))
    bits = [ideal_bits(residuals[:, edges[i]:edges[i + 1]], bins[:, edges[i]:edges[i + 1]]) for i in range(3)]
    tot = sum(bits) or 1.0
    rest = payload - n_struct
    out = {"structure": n_struct}
    out.update({name: int(round(rest * b / tot)) for name, b in zip(("f", "s", "o"), bits)})
    return out


def _write_tensor(w: ByteWriter, name: str, arr: np.ndarray, code: int, exponent: int = 0) -> None:
    w.blob(name.encode())
    w.u8(code)
    w.u8(exponent)
    w.u8(arr.ndim)
    for d in arr.shape:
        w.u32(d)
    w.raw(np.ascontiguousarray(arr, dtype=np.dtype(_DTYPES[code]).newbyteorder("<")).tobytes())


def _read_tensor(r: ByteReader) -> tuple[str, np.ndarray, int]:
    name = r.blob(256).decode("utf-8", "replace")
    code = r.u8()
    if code not in _DTYPES:
        raise r.fail(f"tensor {name!r} has unknown dtype code {code}")
    exponent = r.u8()
    ndim = r.u8()
    if ndim > 4:
        raise r.fail(f"tensor {name!r} has {ndim} dimensions")
    shape = tuple(r.u32() for _ in range(ndim))
    n = int(np.prod(shape)) if shape else 1
    if n > MAX_TENSOR:
        raise r.fail(f"tensor {name!r} claims {n} elements, more than the limit {MAX_TENSOR}")
    dt = np.dtype(_DTYPES[code]).newbyteorder("<")
    arr = np.frombuffer(r.raw(n * dt.itemsize), dtype=dt).astype(_DTYPES[code]).reshape(shape)
    if code != 3 and not np.isfinite(arr).all():
        raise r.fail(f"tensor {name!r} holds NaN or infinite values")
    return name, arr, exponent


def _round_generator_to_f16(gen: GaussianGenerator) -> None:
    with torch.no_grad():
        for p in gen.parameters():
            p.copy_(p.half().float())


def _generator_args(gen: GaussianGenerator) -> dict:
    return {
        "feat_dim": gen.feat_dim,
        "n_offsets": gen.n_offsets,
        "levels": gen.levels,
        "hidden": gen.mlp_opacity[0].out_features,
    }


# ------------------------------------------------------------------------------------------ encode
def encode(
    model: ProGSModel,
    ctx: ContextModel,
    background: torch.Tensor | None = None,
    progress: bool = False,
    view_distance: float | None = None,
) -> EncodeResult:
    """Encode ``model`` (all levels) with the context model ``ctx`` into a progressive stream.

    ``view_distance``: the training cameras' typical distance from the scene centre, stored for the
    canonical view-independent export (``progs.codec.export``)."""
    t_all = time.perf_counter()
    a = model.anchors
    grid = a.grid
    L = grid.num_levels
    ctx = ctx.cpu()
    ctx.round_weights_to_fixed_point()
    generator = GaussianGenerator(**_generator_args(model.generator))
    generator.load_state_dict(model.generator.state_dict())
    _round_generator_to_f16(generator)

    perm = octree.sort_canonical(a.keys, a.levels)
    keys_all, levels_all = a.keys[perm], a.levels[perm]
    attrs_all = _attribute_matrix(a, perm)

    # ---- level chunks
    lod_payloads: list[bytes] = []
    stats: list[LodStats] = []
    recon_rows: list[torch.Tensor] = []
    prev_keys: torch.Tensor | None = None
    level_ctx = _LevelContext(ctx, grid)
    levels_iter = range(1, L + 1)
    if progress:
        from tqdm import tqdm

        levels_iter = tqdm(levels_iter, desc="encode", unit="LoD")
    for level in levels_iter:
        t0 = time.perf_counter()
        sel = levels_all == level
        keys = keys_all[sel]
        attrs = attrs_all[sel]
        w = ByteWriter()
        w.u8(level)
        if level == 1:
            structure.encode_roots(w, keys, grid.base_depth)
            method = structure.ROOTS
        else:
            assert prev_keys is not None
            method = structure.encode_children(w, prev_keys, keys)
        n_struct = len(w)
        mean, bins, q = level_ctx.params(keys, level)
        residuals = _quantize(ctx, attrs, mean, q)
        recon_rows.append(_dequantize(ctx, residuals, mean, q))
        res_np, bins_np = residuals.to(torch.int64).numpy(), bins.numpy()
        encode_symbols(w, res_np, bins_np)
        payload = w.getvalue()
        lod_payloads.append(payload)
        comps = _components(ctx, n_struct, res_np, bins_np, len(payload))
        stats.append(LodStats(level, len(payload) + 12, int(keys.shape[0]), comps, structure.METHOD_NAMES[method],
                              time.perf_counter() - t0))
        prev_keys = keys

    # ---- header
    hw = ByteWriter()
    config = {
        "format": "progs",
        "grid": {"origin": list(grid.origin), "size": grid.size, "base_depth": grid.base_depth, "levels": L},
        "generator": _generator_args(generator),
        "context": ctx.cfg.to_json(),
        "cull_margin": model.cull_margin,
        "background": None if background is None else [float(x) for x in background],
        "view_distance": None if view_distance is None else float(view_distance),
    }
    hw.blob(json.dumps(config, sort_keys=True).encode())
    hw.u8(L)
    for p in lod_payloads:
        hw.u32(len(p) + 12)
    gen_state = generator.state_dict()
    fixed = ctx.fixed_point_weights()
    hw.u16(len(gen_state) + len(fixed))
    for name, t in gen_state.items():
        _write_tensor(hw, "generator." + name, t.numpy().astype(np.float16), 1)
    for name, (mant, e) in fixed.items():
        _write_tensor(hw, "context." + name, mant, 3, e)
    bits = ctx.grid_bits()
    ones = int(bits.sum())
    hw.u32(bits.size)
    hw.u32(ones)
    p1 = min(max(ones / max(bits.size, 1), 1e-6), 1 - 1e-6)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(bits.astype(np.int32), constriction.stream.model.Bernoulli(p1, perfect=False))
    hw.array(enc.get_compressed(), "u4")
    head_payload = hw.getvalue()

    parts = [preamble(), chunk(head_tag(), head_payload)]
    offsets = [("HEAD", PREAMBLE, len(head_payload) + 12)]
    pos = PREAMBLE + len(head_payload) + 12
    for level, p in enumerate(lod_payloads, start=1):
        parts.append(chunk(lod_tag(level), p))
        offsets.append((f"LOD{level}", pos, len(p) + 12))
        pos += len(p) + 12
    data = b"".join(parts)

    recon = torch.cat(recon_rows).float()
    F_, S_ = a.feature.shape[1], a.scaling.shape[1]
    qa = AnchorSet(
        grid, keys_all, levels_all, recon[:, :F_], recon[:, F_:F_ + S_], recon[:, F_ + S_:].reshape(-1, a.offsets.shape[1], 3),
        validate=False,
    )
    qmodel = ProGSModel(qa, generator, cull_margin=model.cull_margin)
    qmodel.view_distance = view_distance
    return EncodeResult(data, PREAMBLE + len(head_payload) + 12, stats, qmodel, offsets, time.perf_counter() - t_all)


# ------------------------------------------------------------------------------------------ decode
def _parse_header(payload: memoryview, offset: int):
    r = ByteReader(payload, "chunk HEAD", offset + 8)
    try:
        config = json.loads(r.blob(MAX_JSON).decode("utf-8"))
        g = config["grid"]
        grid = octree.OctreeGrid(tuple(g["origin"]), float(g["size"]), int(g["base_depth"]), int(g["levels"]))
        gen_args = {k: int(config["generator"][k]) for k in ("feat_dim", "n_offsets", "levels", "hidden")}
        cfg = ContextConfig.from_json(config["context"])
    except (ValueError, KeyError, TypeError, ProgsError) as exc:
        raise FormatError(f"chunk HEAD at byte {offset}: invalid configuration ({exc})") from None
    if not (1 <= grid.num_levels <= MAX_LEVELS) or any(not (0 < v <= 4096) for v in gen_args.values()):
        raise FormatError(f"chunk HEAD at byte {offset}: configuration out of range")
    n_lods = r.u8()
    if n_lods != grid.num_levels:
        raise r.fail(f"chunk table lists {n_lods} LoDs but the grid has {grid.num_levels} levels")
    table = [r.u32() for _ in range(n_lods)]
    n_tensors = r.u16()
    tensors = {}
    for _ in range(n_tensors):
        name, arr, e = _read_tensor(r)
        tensors[name] = (arr, e)
    try:
        if cfg.log2_table_3d > 20 or cfg.log2_table_2d > 20 or cfg.levels_3d > 32 or cfg.levels_2d > 16 or cfg.dim > 16 or cfg.hidden > 4096 or cfg.q_hidden > 4096:
            raise ValueError("context model configuration out of range")
        ctx = ContextModel(cfg)
        generator = GaussianGenerator(**gen_args)
        gstate = {k[len("generator."):]: torch.from_numpy(v.astype(np.float32)) for k, (v, _) in tensors.items() if k.startswith("generator.")}
        generator.load_state_dict(gstate)
        ctx.load_fixed_point_weights({k[len("context."):]: (v, e) for k, (v, e) in tensors.items() if k.startswith("context.")})
    except (RuntimeError, KeyError, ValueError) as exc:
        raise FormatError(f"chunk HEAD at byte {offset}: MLP weights do not match the configuration ({str(exc).splitlines()[0]})") from None
    n_bits = r.u32()
    ones = r.u32()
    expected_bits = ctx.grid3.numel() + ctx.grid2.numel()
    if n_bits != expected_bits or ones > n_bits or n_bits > MAX_GRID_BITS:
        raise r.fail(f"hash grid has {n_bits} bits, the configuration needs {expected_bits}")
    words = r.array("u4", limit=r.remaining() // 4)
    p1 = min(max(ones / max(n_bits, 1), 1e-6), 1 - 1e-6)
    try:
        dec = constriction.stream.queue.RangeDecoder(words.astype(np.uint32))
        bits = np.asarray(dec.decode(constriction.stream.model.Bernoulli(p1, perfect=False), n_bits), dtype=np.uint8)
    except Exception as exc:
        raise r.fail(f"hash grid bits do not decode ({exc})") from None
    if int(bits.sum()) != ones:
        raise r.fail("hash grid bits do not match their announced count")
    ctx.load_grid_bits(bits)
    r.expect_end()
    return config, grid, generator, ctx, table


def decode(
    data: bytes | memoryview, max_lod: int | None = None, source: str = "stream", components: bool = False
) -> DecodeResult:
    """Decode the header and the first ``max_lod`` (default: all intact) LoD chunks of a stream.

    A truncated or corrupted chunk ends decoding at the last intact LoD; ``problem`` says why.
    A damaged header, a bad magic or an unsupported version raises :class:`FormatError`.
    ``components=True`` also fills each LoD's bytes per component (structure, f, s, o).
    """
    scanned = scan(data, source)
    if not scanned.chunks or scanned.chunks[0].tag != head_tag():
        if scanned.problem and not scanned.chunks:
            raise FormatError(f"{scanned.problem}; the header is needed to decode anything")
        raise FormatError(f"{source}: the first chunk must be HEAD")
    head = scanned.chunks[0]
    config, grid, generator, ctx, table = _parse_header(head.payload, head.offset)
    L = grid.num_levels
    want = L if max_lod is None else max(0, min(int(max_lod), L))
    problem = scanned.problem
    keys_parts: list[torch.Tensor] = []
    level_parts: list[torch.Tensor] = []
    attr_parts: list[torch.Tensor] = []
    stats: list[LodStats] = []
    # 1. The structure of every wanted chunk (cheap; a damaged chunk fails here, before any work).
    parsed: list[tuple[int, Any, ByteReader, torch.Tensor, int, int, float]] = []
    prev: torch.Tensor | None = None
    total = 0
    lod_chunks = scanned.chunks[1:]
    for i, ch in enumerate(lod_chunks):
        level = i + 1
        if level > want:
            break
        if ch.tag != lod_tag(level):
            problem = f"{source}: expected chunk LOD{level} at byte {ch.offset} but found {tag_name(ch.tag)}"
            break
        t0 = time.perf_counter()
        r = ByteReader(ch.payload, f"chunk LOD{level}", ch.offset + 8)
        if r.u8() != level:
            raise r.fail(f"chunk LOD{level} says it holds another level")
        keys, method = structure.decode_structure(r, level, prev, grid.base_depth, MAX_ANCHORS - total)
        if keys.numel() and (int(keys.min()) < 0 or int(keys.max()) >= grid.resolution(level)):
            raise r.fail(f"voxel keys outside the level-{level} grid")
        parsed.append((level, ch, r, keys, method, r.pos, time.perf_counter() - t0))
        total += keys.shape[0]
        prev = keys
    # 2. Per level: coding parameters from the structure, then the attribute symbols.
    #    (Overlapping the two in threads does not pay: constriction holds the GIL while it decodes.)
    level_ctx = _LevelContext(ctx, grid)
    for level, ch, r, keys, method, n_struct, t_struct in parsed:
        t0 = time.perf_counter()
        try:
            mean, bins, q = level_ctx.params(keys, level)
        except ValueError as exc:
            raise r.fail(str(exc)) from None
        bins_np = bins.numpy()
        res = decode_symbols(r, bins_np)
        r.expect_end()
        attr_parts.append(_dequantize(ctx, torch.from_numpy(res), mean, q).float())
        keys_parts.append(keys)
        level_parts.append(torch.full((keys.shape[0],), level, dtype=torch.int64))
        seconds = t_struct + time.perf_counter() - t0
        comps = _components(ctx, n_struct, res, bins_np, len(ch.payload)) if components else {}
        stats.append(LodStats(level, ch.size, int(keys.shape[0]), comps, structure.METHOD_NAMES[method], seconds))
    decoded = len(stats)
    model = None
    if decoded:
        keys_all = torch.cat(keys_parts)
        levels_all = torch.cat(level_parts)
        attrs = torch.cat(attr_parts)
        F_ = generator.feat_dim
        K = generator.n_offsets
        if attrs.shape[1] != F_ + 6 + 3 * K:
            raise FormatError(f"{source}: attribute width {attrs.shape[1]} does not match the generator")
        # The structure decoder establishes the strict-octree invariant by construction (roots in
        # strictly increasing Morton order; children are distinct octants of existing parents), so
        # the set is not validated again here (tests/test_fuzz_decoder.py checks it on every decode).
        anchors = AnchorSet(grid, keys_all, levels_all, attrs[:, :F_], attrs[:, F_:F_ + 6], attrs[:, F_ + 6:].reshape(-1, K, 3),
                            validate=False)
        model = ProGSModel(anchors, generator, cull_margin=float(config.get("cull_margin", 0.1)))
        vd = config.get("view_distance")
        model.view_distance = float(vd) if isinstance(vd, (int, float)) and vd > 0 else None
    if decoded < want and problem is None and len(lod_chunks) < want:
        problem = f"{source}: stream ends after LoD {decoded} of {L}"
    bg = config.get("background")
    return DecodeResult(
        model, decoded, L, head.size + PREAMBLE, stats, config, problem,
        None if bg is None else torch.tensor(bg, dtype=torch.float32),
    )


__all__ = ["encode", "decode", "EncodeResult", "DecodeResult", "LodStats", "FORMAT_VERSION", "FormatError"]
