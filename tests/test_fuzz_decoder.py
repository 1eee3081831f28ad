"""Fuzzing the decoder: whatever bytes it is given, it returns a result or raises FormatError.

Bounded in time; the number of executed cases is printed and asserted, so a silently skipped fuzz
cannot pass.
"""

from __future__ import annotations

import struct
import time
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from progs import octree
from progs.codec.container import CHUNK_OVERHEAD, PREAMBLE
from progs.codec.errors import FormatError
from progs.codec.stream import decode, encode
from progs.model.anchors import AnchorSet
from progs.model.context import ContextConfig, ContextModel
from progs.model.model import ProGSModel

COUNTS: dict[str, int] = {}


def _small_stream() -> tuple[bytes, list[tuple[str, int, int]]]:
    torch.manual_seed(11)
    g = torch.Generator().manual_seed(11)
    grid = octree.OctreeGrid((0.0, 0.0, 0.0), 1.0, 1, 3)
    a = AnchorSet.random(grid, 40, g, feat_dim=8, n_offsets=2)
    with torch.no_grad():
        a.feature.copy_(torch.randn(a.feature.shape, generator=g))
        a.offsets.copy_(torch.randn(a.offsets.shape, generator=g) * 0.3)
    from progs.model.gaussians import GaussianGenerator

    cfg = ContextConfig(levels_3d=2, levels_2d=1, log2_table_3d=6, log2_table_2d=6, hidden=8, attr_dims=(8, 6, 6))
    model = ProGSModel(a, GaussianGenerator(8, 2, 3, hidden=8), ContextModel(cfg))
    res = encode(model)
    return res.data, res.chunk_offsets


STREAM, CHUNKS = _small_stream()
LOD_ENDS = [off + size for _, off, size in CHUNKS]


def _decode_safely(data: bytes, kind: str):
    COUNTS[kind] = COUNTS.get(kind, 0) + 1
    try:
        res = decode(data)
    except FormatError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    if res.model is not None:  # the decoder skips re-validation: whatever it returns must be a strict octree
        a = res.model.anchors
        octree.validate_strict_octree(a.keys, a.levels, a.grid)
    return res


def test_truncation_at_every_offset_yields_the_longest_intact_prefix():
    t0 = time.perf_counter()
    for cut in range(len(STREAM)):
        out = _decode_safely(STREAM[:cut], "truncate")
        if cut < LOD_ENDS[0]:
            assert out is None  # no header, nothing to decode
        else:
            assert out is not None
            assert out.lods_decoded == sum(1 for e in LOD_ENDS[1:] if e <= cut)
    print(f"truncation cases: {COUNTS['truncate']} in {time.perf_counter() - t0:.1f} s")
    assert COUNTS["truncate"] == len(STREAM)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4))
def test_random_byte_flips_never_crash(flips):
    data = bytearray(STREAM)
    for pos, x in flips:
        data[pos % len(data)] ^= x
    out = _decode_safely(bytes(data), "flip")
    if out is not None:
        first = min(pos % len(data) for pos, _ in flips)
        # a flip inside LoD chunk k keeps at least the LoDs before it
        assert out.lods_decoded >= sum(1 for e in LOD_ENDS[1:] if e <= first) or first < LOD_ENDS[0]


def _chunks() -> list[bytes]:
    return [STREAM[off : off + size] for _, off, size in CHUNKS]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.permutations(list(range(len(CHUNKS)))), st.integers(0, len(CHUNKS) - 1), st.booleans())
def test_reordered_and_duplicated_chunks_are_rejected_or_cut(order, dup, duplicate):
    parts = _chunks()
    seq = [parts[i] for i in order]
    if duplicate:
        seq.insert(dup, parts[dup])
    out = _decode_safely(STREAM[:PREAMBLE] + b"".join(seq), "reorder")
    if out is not None:
        # whatever decodes is a prefix in the right order
        assert seq[0] == parts[0]
        for k in range(out.lods_decoded):
            assert seq[1 + k] == parts[1 + k]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.binary(min_size=0, max_size=400), st.booleans())
def test_garbage_never_crashes(garbage, with_preamble):
    data = (STREAM[:PREAMBLE] + garbage) if with_preamble else garbage
    _decode_safely(data, "garbage")  # any exception other than FormatError fails the test


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.integers(0, len(CHUNKS) - 1), st.integers(0, 10**6), st.integers(0, 2**32 - 1))
def test_forged_fields_with_valid_crc_never_crash(which, pos, value):
    """Overwrite 4 bytes inside a payload and fix the CRC: the parser itself must hold."""
    name, off, size = CHUNKS[which]
    payload = bytearray(STREAM[off + 8 : off + size - 4])
    p = pos % max(1, len(payload) - 3)
    payload[p : p + 4] = struct.pack("<I", value)[: len(payload[p : p + 4])]
    tag = STREAM[off : off + 4]
    rebuilt = (
        tag + struct.pack("<I", len(payload)) + bytes(payload) + struct.pack("<I", zlib.crc32(tag + bytes(payload)))
    )
    _decode_safely(STREAM[:off] + rebuilt + STREAM[off + size :], "forged")


def test_fuzz_ran_a_meaningful_number_of_cases():
    total = sum(COUNTS.values())
    print(f"decoder fuzz cases executed: {COUNTS} (total {total})")
    if len(COUNTS) < 5:
        pytest.skip("run the whole module to count cases")
    assert total >= 1000
    assert CHUNK_OVERHEAD == 12
