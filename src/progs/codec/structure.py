"""Coding which voxels hold anchors at each level (the octree structure).

Level 1 (roots), two methods; the encoder writes the smaller and the method byte says which:

- ``ROOTS``: keys verbatim, each axis in ``base_depth`` bits, in Morton order.
- ``ROOT_OCCUPANCY``: the octree above the roots, from its single cell at depth 0 down to depth
  ``base_depth``: per depth one child-occupancy byte per occupied cell (as ``OCCUPANCY`` below), all
  depths in one range-coder stream, each depth's bytes with a block-adaptive model started afresh.

Level l > 1, two methods, chosen the same way:

- ``PARENT_INDEX``: per child ``ceil(log2(P))`` bits of parent index + 3 bits of octant (the paper
  stores 20 + 3 bits; we use the width the parent count needs).
- ``OCCUPANCY``: per parent one child-occupancy byte (bit o = octant o present), entropy-coded with
  a block-adaptive model: block k is coded with the table (:mod:`progs.codec.models`) of the byte
  counts of blocks 0..k-1 plus one (Laplace), block sizes 64, 128, 256, ... so no table is transmitted.

Children are always rebuilt in canonical order (parents in order, octants ascending) which equals
Morton order within the level.
"""

from __future__ import annotations

import math

import constriction
import numpy as np
import torch

from progs import octree
from progs.codec import models
from progs.codec.bytes import ByteReader, ByteWriter, pack_bits, packed_size, unpack_bits

ROOTS = 0
PARENT_INDEX = 1
OCCUPANCY = 2
ROOT_OCCUPANCY = 3
METHOD_NAMES = {ROOTS: "roots", PARENT_INDEX: "parent-index", OCCUPANCY: "occupancy", ROOT_OCCUPANCY: "root occupancy"}


def _encode_occupancy(occ: np.ndarray) -> bytes:
    enc = constriction.stream.queue.RangeEncoder()
    models.encode_adaptive(enc, occ, 256)
    return enc.get_compressed().tobytes()


def _decode_occupancy(words: np.ndarray, n: int) -> np.ndarray:
    return models.decode_adaptive(constriction.stream.queue.RangeDecoder(words), n, 256)


def encode_structure(
    w: ByteWriter, level: int, keys: torch.Tensor, parents: torch.Tensor | None, base_depth: int
) -> int:
    """Write one level's keys (canonical order); ``parents`` are the previous level's keys (None for
    level 1). Returns the method used. :func:`decode_structure` reads it back."""
    if level == 1:
        return encode_roots(w, keys, base_depth)
    assert parents is not None
    return encode_children(w, parents, keys)


def anchor_count(level_payload: bytes | memoryview) -> int | None:
    """The anchor count a LoD chunk's payload announces (``level:u8 method:u8 count:u32``), without
    decoding it; None when the payload is too short."""
    mv = memoryview(level_payload)
    return int.from_bytes(mv[2:6], "little") if len(mv) >= 6 else None


def _root_occupancy_bytes(keys: torch.Tensor, base_depth: int) -> list[np.ndarray]:
    """Per depth 0..base_depth-1, the occupancy bytes of the cells above the roots (Morton order)."""
    cells = [torch.unique_consecutive(keys >> (base_depth - d), dim=0) for d in range(base_depth + 1)]
    return [octree.children_occupancy(cells[d], cells[d + 1]).numpy().astype(np.int64) for d in range(base_depth)]


def encode_roots(w: ByteWriter, keys: torch.Tensor, base_depth: int, force: int | None = None) -> int:
    """Root keys (already in Morton order), verbatim or as the occupancy of the cells above them,
    whichever is smaller (``force``: that method); returns the method used."""
    verbatim = pack_bits(keys.reshape(-1).numpy(), max(base_depth, 1))
    occ_payload = b""
    if keys.shape[0] and base_depth:
        enc = constriction.stream.queue.RangeEncoder()
        for occ in _root_occupancy_bytes(keys, base_depth):
            models.encode_adaptive(enc, occ, 256)
        occ_payload = enc.get_compressed().tobytes()
    use_occ = keys.shape[0] > 0 and len(occ_payload) + 4 < len(verbatim)
    method = force if force is not None else (ROOT_OCCUPANCY if use_occ else ROOTS)
    w.u8(method)
    w.u32(keys.shape[0])
    if method == ROOT_OCCUPANCY:
        w.blob(occ_payload)
    else:
        w.raw(verbatim)
    return method


def _decode_roots(r: ByteReader, method: int, n: int, base_depth: int) -> torch.Tensor:
    if method == ROOTS:
        width = max(base_depth, 1)
        keys = unpack_bits(r.raw(packed_size(3 * n, width)), 3 * n, width).reshape(n, 3)
        k = torch.from_numpy(keys)
        codes = octree.morton_encode(k)
        if n > 1 and bool((codes[1:] <= codes[:-1]).any()):
            raise r.fail("root keys are not in strictly increasing Morton order (duplicates or corrupt)")
        return k
    if method != ROOT_OCCUPANCY:
        raise r.fail(f"level 1 must code roots, found structure method {method}")
    words = np.frombuffer(r.blob(limit=r.remaining()), dtype="<u4").astype(np.uint32)
    cells = torch.zeros(1, 3, dtype=torch.int64)
    dec = constriction.stream.queue.RangeDecoder(words)
    for d in range(base_depth):
        try:
            occ = models.decode_adaptive(dec, cells.shape[0], 256)
        except Exception as exc:  # constriction raises on exhausted or invalid data
            raise r.fail(f"root occupancy bytes do not decode ({exc})") from None
        cells = octree.children_from_occupancy(cells, torch.from_numpy(occ))
        if cells.shape[0] > n:
            raise r.fail(f"root occupancy gives {cells.shape[0]} cells at depth {d + 1} but the chunk has {n} roots")
    if cells.shape[0] != n:
        raise r.fail(f"root occupancy gives {cells.shape[0]} roots but the chunk says {n}")
    return cells


def encode_children(w: ByteWriter, parents: torch.Tensor, children: torch.Tensor, force: int | None = None) -> int:
    """Children of ``parents`` (both canonical); returns the method used."""
    P, C = parents.shape[0], children.shape[0]
    occ = octree.children_occupancy(parents, children).numpy().astype(np.int64)
    occ_payload = _encode_occupancy(occ) if P else b""
    width = max(1, math.ceil(math.log2(max(P, 2))))
    pidx = octree.lookup_index(children >> 1, parents).numpy()
    oct_ = octree.octant(children).numpy()
    pi_payload = pack_bits(pidx.astype(np.uint64) << np.uint64(3) | oct_.astype(np.uint64), width + 3)
    method = force if force is not None else (OCCUPANCY if len(occ_payload) + 4 < len(pi_payload) else PARENT_INDEX)
    w.u8(method)
    w.u32(C)
    if method == OCCUPANCY:
        w.blob(occ_payload)
    else:
        w.raw(pi_payload)
    return method


def decode_structure(
    r: ByteReader, level: int, parents: torch.Tensor | None, base_depth: int, max_anchors: int
) -> tuple[torch.Tensor, int]:
    """Read one level's keys; ``parents`` are the previous level's keys (None for level 1)."""
    method = r.u8()
    n = r.u32()
    if n > max_anchors:
        raise r.fail(f"level {level} claims {n} anchors, more than the limit {max_anchors}")
    if level == 1:
        return _decode_roots(r, method, n, base_depth), method
    assert parents is not None
    P = parents.shape[0]
    if method == OCCUPANCY:
        words = np.frombuffer(r.blob(limit=r.remaining()), dtype="<u4")
        if words.size == 0 and P:
            raise r.fail("empty occupancy stream")
        try:
            occ = _decode_occupancy(words.astype(np.uint32), P)
        except Exception as exc:  # constriction raises on exhausted or invalid data
            raise r.fail(f"occupancy bytes do not decode ({exc})") from None
        children = octree.children_from_occupancy(parents, torch.from_numpy(occ))
        if children.shape[0] != n:
            raise r.fail(f"occupancy gives {children.shape[0]} children but the chunk says {n}")
        return children, method
    if method == PARENT_INDEX:
        width = max(1, math.ceil(math.log2(max(P, 2))))
        packed = unpack_bits(r.raw(packed_size(n, width + 3)), n, width + 3)
        pidx = packed >> 3
        oct_ = packed & 7
        if n and int(pidx.max()) >= P:
            raise r.fail(f"parent index {int(pidx.max())} out of range (level {level - 1} has {P} anchors)")
        slots = pidx * 8 + oct_
        if n > 1 and bool((np.diff(slots) <= 0).any()):
            raise r.fail("children are not in canonical order (duplicate or corrupt parent indices)")
        children = octree.child_keys(parents[torch.from_numpy(pidx)], torch.from_numpy(oct_))
        return children, method
    raise r.fail(f"unknown structure method {method} at level {level}")
