"""Encoding a trained ProGS model into the progressive bitstream, and decoding any prefix of it.

The normative description is ``docs/FORMAT.md``. A stream is the preamble, a HEAD chunk
(:mod:`progs.codec.header`: configuration, chunk table, MLP weights, hash-grid bits), then one LOD
chunk per level: ``level:u8``, that level's structure (:mod:`progs.codec.structure`), then its
attributes (:mod:`progs.codec.levels`: quantized with the context model's steps, coded with its
Gaussian priors). Each part has an encode/decode pair; this module composes them. The decoder of the
first k LoD chunks rebuilds exactly the LoD-k model the encoder evaluated.
"""

from __future__ import annotations

import time
from functools import partial
from dataclasses import dataclass, field

import torch

from progs.codec import structure
from progs.codec.bytes import ByteReader, ByteWriter
from progs.codec.container import (
    CHUNK_OVERHEAD,
    FORMAT_VERSION,
    PREAMBLE,
    chunk,
    head_tag,
    lod_tag,
    preamble,
    scan,
    tag_name,
)
from progs.codec.errors import FormatError
from progs.codec.header import coding_model, decode_header, encode_header
from progs.codec.levels import (
    LevelContext,
    attribute_symbols,
    decode_attributes,
    encode_attributes,
    level_components,
)
from progs.model.anchors import AnchorSet
from progs.model.model import ProGSModel, cpu_model
from progs.model.visibility import CONTEXT_FACE_SAMPLES, RULE_MAX_ANCHORS, level_mask_buckets, probe_cameras

MAX_ANCHORS = 1 << 26


@dataclass
class LodStats:
    lod: int
    bytes: int  # whole chunk, framing included
    anchors: int  # anchors of this level
    components: dict[str, int]  # payload bytes: structure, prediction, f, s (one stream: split by bits), o
    structure_method: str
    seconds: float = 0.0


@dataclass
class EncodeResult:
    """What :func:`encode` gives: ``data`` the stream, ``header_bytes`` the preamble and HEAD chunk,
    ``lods`` per-LoD statistics, ``model`` the quantized model a decoder rebuilds, ``chunk_offsets``
    (name, offset, size) per chunk, ``seconds`` the encoding time."""

    data: bytes
    header_bytes: int
    lods: list[LodStats]
    model: ProGSModel  # the quantized model exactly as a decoder rebuilds it (all levels)
    chunk_offsets: list[tuple[str, int, int]] = field(default_factory=list)  # (name, offset, size)
    seconds: float = 0.0


@dataclass
class DecodeResult:
    """What :func:`decode` gives: ``model`` (None when no LoD decoded), ``lods_decoded`` of
    ``lods_in_stream``, ``header_bytes``, per-LoD ``lods`` statistics, the header's ``config``,
    ``problem`` (why decoding stopped early, or None) and the stored ``background`` ([3] or None)."""

    model: ProGSModel | None
    lods_decoded: int
    lods_in_stream: int
    header_bytes: int
    lods: list[LodStats]
    config: dict
    problem: str | None  # why decoding stopped early (truncation, corruption), if it did
    background: torch.Tensor | None = None


def _anchor_set(grid, keys: list[torch.Tensor], levels: list[int], values: list[torch.Tensor], layout) -> AnchorSet:
    """The anchors of decoded levels. The structure coder establishes the strict-octree invariant by
    construction (roots in strictly increasing Morton order; children are distinct octants of existing
    parents), so the set is not validated again (tests/test_fuzz_decoder.py checks it on every decode)."""
    k = torch.cat(keys)
    lv = torch.cat([torch.full((x.shape[0],), level, dtype=torch.int64) for x, level in zip(keys, levels)])
    f, s, o = layout.split(torch.cat(values).float())
    return AnchorSet(grid, k, lv, f, s, o, validate=False)


# ------------------------------------------------------------------------------------------ encode
def encode(
    model: ProGSModel,
    background: torch.Tensor | None = None,
    progress: bool = False,
    *,
    skip_hidden: bool | None = None,
    parent_prediction: bool = True,
) -> EncodeResult:
    """Encode ``model`` (all levels, with its own context model) into a progressive stream.

    Args:
        model: a trained :class:`~progs.model.model.ProGSModel` (N anchors, any device). It is not
            changed: a GPU model is copied to the CPU, where the float64 exact paths run, so the bytes
            do not depend on the device it was trained on.
        background: [3] float RGB in [0, 1] stored in the header for viewers, or None.
        progress: print a progress bar per LoD.
        skip_hidden: leave out the offsets of the neural Gaussians that no probe camera around the
            scene draws and code a mask of them (:mod:`progs.codec.mask`); they change no image.
            None (default): on for models of at most ``visibility.RULE_MAX_ANCHORS`` anchors (the
            rule costs the encoder ~0.1 ms per anchor), off above.
        parent_prediction: let each level's coding tables be refined from its parents' decoded
            values (:mod:`progs.codec.prediction`); the decoded model is the same either way.

    Returns:
        :class:`EncodeResult`: the stream's bytes, per-LoD statistics and ``model``, the quantized
        model exactly as a decoder rebuilds it (on the CPU)."""
    t_all = time.perf_counter()
    cm = coding_model(cpu_model(model))
    ctx, grid = cm.context, cm.grid

    payloads: list[bytes] = []
    stats: list[LodStats] = []
    keys_parts: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    if skip_hidden is None:
        skip_hidden = len(cm.anchors) <= RULE_MAX_ANCHORS
    cams = probe_cameras(grid, cm.view_distance) if skip_hidden else None
    ctx_cams = probe_cameras(grid, cm.view_distance, face_samples=CONTEXT_FACE_SAMPLES) if skip_hidden else None
    levels = attribute_symbols(
        cm, cams, parent_prediction, ctx_cams
    )  # level by level: keys, coding parameters and symbols
    if progress:
        from tqdm import tqdm

        levels = tqdm(levels, desc="encode", unit="LoD", total=grid.num_levels)
    prev_keys: torch.Tensor | None = None
    t0 = time.perf_counter()
    for lv in levels:
        w = ByteWriter()
        w.u8(lv.level)
        method = structure.encode_structure(w, lv.level, lv.keys, prev_keys, grid.base_depth)
        n_struct = len(w)
        recon, symbols, sizes = encode_attributes(w, ctx, lv)
        payload = w.getvalue()
        payloads.append(payload)
        keys_parts.append(lv.keys)
        values.append(recon)
        stats.append(
            LodStats(
                lv.level,
                len(payload) + CHUNK_OVERHEAD,
                int(lv.keys.shape[0]),
                level_components(ctx, {"structure": n_struct, **sizes}, symbols, lv.params.bins.numpy()),
                structure.METHOD_NAMES[method],
                time.perf_counter() - t0,
            )
        )
        prev_keys = lv.keys
        t0 = time.perf_counter()

    head = encode_header(cm, [len(p) + CHUNK_OVERHEAD for p in payloads], background, skip_hidden)
    parts = [preamble(), chunk(head_tag(), head)]
    offsets = [("HEAD", PREAMBLE, len(head) + CHUNK_OVERHEAD)]
    pos = PREAMBLE + len(head) + CHUNK_OVERHEAD
    for level, p in enumerate(payloads, start=1):
        parts.append(chunk(lod_tag(level), p))
        offsets.append((f"LOD{level}", pos, len(p) + CHUNK_OVERHEAD))
        pos += len(p) + CHUNK_OVERHEAD

    anchors = _anchor_set(grid, keys_parts, [s.lod for s in stats], values, cm.layout)
    qmodel = ProGSModel(anchors, cm.generator, ctx, cull_margin=cm.cull_margin, view_distance=cm.view_distance)
    return EncodeResult(
        b"".join(parts), offsets[0][1] + offsets[0][2], stats, qmodel, offsets, time.perf_counter() - t_all
    )


# ------------------------------------------------------------------------------------------ decode
def decode(
    data: bytes | memoryview, max_lod: int | None = None, source: str = "stream", components: bool = False
) -> DecodeResult:
    """Decode the header and the first ``max_lod`` LoD chunks of a stream.

    Args:
        data: the stream's bytes, or any prefix of them (a truncated download).
        max_lod: decode LoDs 1..max_lod (default: every intact one).
        source: the name used in messages (e.g. the file name).
        components: also fill each LoD's bytes per component (structure, prediction, f, s, o).

    Returns:
        :class:`DecodeResult`: ``model`` (the anchors of the decoded LoDs, in (level, Morton) order:
        keys [N, 3], levels [N], feature [N, 32], scaling [N, 6], offsets [N, 10, 3]), the LoDs
        decoded and in the stream, and ``problem``: why decoding stopped before the last LoD
        (truncation, a chunk failing its CRC, or a chunk that passes its CRC but does not decode:
        one line naming the chunk and byte offset), or None.

    Raises:
        FormatError: a damaged or missing header, a bad magic, an unsupported version.
    """
    scanned = scan(data, source)
    if not scanned.chunks or scanned.chunks[0].tag != head_tag():
        if scanned.problem and not scanned.chunks:
            raise FormatError(f"{scanned.problem}; the header is needed to decode anything")
        raise FormatError(f"{source}: the first chunk must be HEAD")
    head_chunk = scanned.chunks[0]
    head = decode_header(head_chunk.payload, head_chunk.offset)
    grid, ctx = head.grid, head.context
    L = grid.num_levels
    want = L if max_lod is None else max(0, min(int(max_lod), L))
    problem = scanned.problem
    # 1. The structure of every wanted chunk (cheap; a damaged chunk fails here, before any work).
    parsed: list[tuple[int, object, ByteReader, torch.Tensor, int, int, float]] = []
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
        try:
            if r.u8() != level:
                raise r.fail(f"chunk LOD{level} says it holds another level")
            keys, method = structure.decode_structure(r, level, prev, grid.base_depth, MAX_ANCHORS - total)
            if keys.numel() and (int(keys.min()) < 0 or int(keys.max()) >= grid.resolution(level)):
                raise r.fail(f"voxel keys outside the level-{level} grid")
        except FormatError as exc:  # a chunk that passes its CRC but does not decode: stop before it
            problem = str(exc)
            break
        parsed.append((level, ch, r, keys, method, r.pos, time.perf_counter() - t0))
        total += keys.shape[0]
        prev = keys
    # 2. Per level: coding parameters from the structure, then the attribute symbols.
    #    (Overlapping the two in threads does not pay: constriction holds the GIL while it decodes.)
    walker = LevelContext(ctx, grid)
    cams = probe_cameras(grid, head.view_distance, face_samples=CONTEXT_FACE_SAMPLES) if head.skip_hidden else None
    prev_values: torch.Tensor | None = None
    keys_parts: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    stats: list[LodStats] = []
    for level, ch, r, keys, method, n_struct, t_struct in parsed:
        t0 = time.perf_counter()
        try:
            p = walker.params(keys, level)
        except ValueError as exc:
            problem = str(r.fail(str(exc)))
            break
        buckets_of = (
            None if cams is None else partial(level_mask_buckets, head.generator, grid, keys, level, cameras=cams)
        )
        try:
            value, symbols, sizes, p = decode_attributes(r, ctx, level, p, prev_values, buckets_of)
            r.expect_end()
        except FormatError as exc:  # a chunk that passes its CRC but does not decode: stop before it
            problem = str(exc)
            break
        prev_values = value
        keys_parts.append(keys)
        values.append(value)
        comps = level_components(ctx, {"structure": n_struct, **sizes}, symbols, p.bins.numpy()) if components else {}
        stats.append(
            LodStats(
                level,
                ch.size,
                int(keys.shape[0]),
                comps,
                structure.METHOD_NAMES[method],
                t_struct + time.perf_counter() - t0,
            )
        )
    model = None
    if stats:
        anchors = _anchor_set(grid, keys_parts, [s.lod for s in stats], values, ctx.layout)
        model = ProGSModel(anchors, head.generator, ctx, cull_margin=head.cull_margin, view_distance=head.view_distance)
    if len(stats) < want and problem is None and len(lod_chunks) < want:
        problem = f"{source}: stream ends after LoD {len(stats)} of {L}"
    return DecodeResult(model, len(stats), L, head_chunk.size + PREAMBLE, stats, head.config, problem, head.background)


__all__ = ["encode", "decode", "EncodeResult", "DecodeResult", "LodStats", "FORMAT_VERSION", "FormatError"]
