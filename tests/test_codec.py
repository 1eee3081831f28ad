"""Bitstream v2: exact round trips, progressive prefixes, damage handling, determinism, coding cost."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from progs import octree
from progs.codec import structure
from progs.codec.attributes import bin_table, decode_symbols, encode_symbols, ideal_bits
from progs.codec.bytes import ByteReader, ByteWriter
from progs.codec.container import FORMAT_VERSION, MAGIC, PREAMBLE, chunk, head_tag
from progs.codec.errors import FormatError
from progs.codec.stream import decode, encode
from progs.model.anchors import AnchorSet
from progs.kernels import kernel_available
from progs.model import exact_math
from progs.model.context import SCALE_BINS, ContextConfig, ContextModel
from progs.model.model import ProGSModel


def _random_model(n_points: int = 600, seed: int = 0, **context: int) -> tuple[ProGSModel, ContextModel]:
    torch.manual_seed(seed)  # the generator MLPs' initialisation
    g = torch.Generator().manual_seed(seed)
    grid = octree.OctreeGrid((-1.0, -1.0, -1.0), 2.0, 2, 4)
    a = AnchorSet.random(grid, n_points, g)
    with torch.no_grad():
        a.feature.copy_(torch.randn(a.feature.shape, generator=g))
        a.offsets.copy_(torch.randn(a.offsets.shape, generator=g) * 0.5)
        a.scaling.add_(torch.randn(a.scaling.shape, generator=g) * 0.01)
    ctx = ContextModel(ContextConfig.for_anchor_count(len(a), **context), seed=seed)
    return ProGSModel(a, context=ctx), ctx


@pytest.fixture(scope="module")
def encoded():
    model, ctx = _random_model()
    return model, encode(model, background=torch.tensor([0.1, 0.2, 0.3]))


def _anchors_equal(x: AnchorSet, y: AnchorSet) -> bool:
    return all(torch.equal(getattr(x, k), getattr(y, k)) for k in ("keys", "levels", "feature", "scaling", "offsets"))


def test_full_decode_is_bit_identical_to_the_encoders_quantized_model(encoded):
    model, res = encoded
    out = decode(res.data)
    assert out.problem is None and out.lods_decoded == 4
    assert _anchors_equal(out.model.anchors, res.model.anchors)
    for (k1, v1), (k2, v2) in zip(res.model.generator.state_dict().items(), out.model.generator.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    assert torch.equal(out.background, torch.tensor([0.1, 0.2, 0.3]))
    # quantization error is bounded by half a step of the coarsest type (Q0 < 2 for every type)
    assert len(out.model.anchors) == len(model.anchors)


def test_a_smaller_hash_grid_round_trips_and_shrinks_the_header():
    """The hash grid's levels are an encoder choice the header carries: fewer levels decode exactly and
    cost fewer header bytes (MLP inputs and grid bits)."""
    sizes = {}
    for levels in ((12, 4), (6, 2)):
        model, _ = _random_model(levels_3d=levels[0], levels_2d=levels[1])
        res = encode(model)
        out = decode(res.data)
        assert out.problem is None and _anchors_equal(out.model.anchors, res.model.anchors)
        assert (out.model.context.cfg.levels_3d, out.model.context.cfg.levels_2d) == levels
        sizes[levels] = res.header_bytes
    assert sizes[(6, 2)] < 0.85 * sizes[(12, 4)], sizes


def test_every_prefix_decodes_to_exactly_that_lod(encoded):
    _, res = encoded
    full = res.model.anchors
    for name, offset, size in res.chunk_offsets[1:]:
        k = int(name[3:])
        prefix = res.data[: offset + size]
        out = decode(prefix)
        assert out.lods_decoded == k
        mask = full.levels <= k
        assert torch.equal(out.model.anchors.keys, full.keys[mask])
        assert torch.equal(out.model.anchors.feature, full.feature[mask])
        assert torch.equal(out.model.anchors.offsets, full.offsets[mask])
        # asking for fewer LoDs than present stops there
        assert decode(res.data, max_lod=k).lods_decoded == k


def test_truncation_anywhere_yields_the_longest_intact_prefix(encoded):
    _, res = encoded
    ends = [off + size for _, off, size in res.chunk_offsets]
    head_end = ends[0]
    for cut in list(range(head_end, len(res.data), 997)) + [e - 1 for e in ends[1:]]:
        out = decode(res.data[:cut])
        complete = sum(1 for e in ends[1:] if e <= cut)
        assert out.lods_decoded == complete
        if cut not in ends:
            assert "truncated" in out.problem
    with pytest.raises(FormatError, match="header is needed"):
        decode(res.data[: head_end - 3])


def test_flipped_byte_is_caught_by_crc_and_named(encoded):
    _, res = encoded
    name, off, size = res.chunk_offsets[3]
    bad = bytearray(res.data)
    bad[off + size // 2] ^= 0x10
    out = decode(bytes(bad))
    assert out.lods_decoded == 2
    assert f"chunk {name}" in out.problem and "CRC" in out.problem
    head = bytearray(res.data)
    head[PREAMBLE + 20] ^= 1
    with pytest.raises(FormatError, match="HEAD.*CRC"):
        decode(bytes(head))


def test_unknown_version_and_bad_magic(encoded):
    _, res = encoded
    for version in (FORMAT_VERSION - 1, FORMAT_VERSION + 1):  # the last format, and one from the future
        v = bytearray(res.data)
        struct.pack_into("<H", v, len(MAGIC), version)
        with pytest.raises(FormatError, match=f"unsupported format version {version} "):
            decode(bytes(v))
    with pytest.raises(FormatError, match="not a progs stream"):
        decode(b"PK\x03\x04" + res.data[4:])


def test_encoding_is_deterministic_across_thread_counts():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model, ctx = _random_model(seed=3)
        a = encode(model).data
        torch.set_num_threads(2)
        model, ctx = _random_model(seed=3)
        b = encode(model).data
        assert a == b
        torch.set_num_threads(1)
        d1 = decode(a).model.anchors
        torch.set_num_threads(2)
        d2 = decode(a).model.anchors
        assert _anchors_equal(d1, d2)
    finally:
        torch.set_num_threads(threads)


def test_attribute_coder_is_exact_and_within_one_percent_of_cross_entropy():
    rng = np.random.default_rng(1)
    n = 50_000
    bins = rng.integers(0, 100, n).astype(np.uint8)
    sd = SCALE_BINS.numpy()[bins] * rng.uniform(0.9, 1.1, n)
    res = np.round(sd * rng.normal(size=n)).astype(np.int64)
    w = ByteWriter()
    encode_symbols(w, res, bins)
    data = w.getvalue()
    back = decode_symbols(ByteReader(data, "test"), bins)
    assert np.array_equal(back, res)
    ideal = ideal_bits(res, bins)
    assert len(data) * 8 <= ideal * 1.01 + 64


def test_escaped_residuals_round_trip():
    rng = np.random.default_rng(2)
    n = 5000
    bins = rng.integers(0, 40, n).astype(np.uint8)
    res = np.round(SCALE_BINS.numpy()[bins] * rng.normal(size=n)).astype(np.int64)
    far = rng.choice(n, 50, replace=False)
    res[far] = rng.integers(-5000, 5000, 50)
    assert any(abs(int(res[i])) > bin_table(int(bins[i]))[0] for i in far)
    w = ByteWriter()
    encode_symbols(w, res.reshape(100, 50), bins.reshape(100, 50))
    back = decode_symbols(ByteReader(w.getvalue(), "test"), bins.reshape(100, 50))
    assert np.array_equal(back, res.reshape(100, 50))


def test_decoder_without_kernels_gives_the_same_residuals(monkeypatch):
    rng = np.random.default_rng(3)
    bins = rng.integers(0, 60, (400, 68)).astype(np.uint8)
    res = np.round(SCALE_BINS.numpy()[bins] * rng.normal(size=bins.shape)).astype(np.int64)
    res[rng.integers(0, 400, 20), rng.integers(0, 68, 20)] = 4000  # escapes
    w = ByteWriter()
    encode_symbols(w, res, bins)
    data = w.getvalue()
    fast = decode_symbols(ByteReader(data, "test"), bins)
    import progs.codec.attributes as attributes

    monkeypatch.setattr(attributes, "load_kernel", lambda: None)
    slow = decode_symbols(ByteReader(data, "test"), bins)
    assert np.array_equal(fast, res) and np.array_equal(slow, res)


def test_bin_tables_are_gaussian_and_normalised():
    for b in (0, 20, 60, 127):
        T, freqs, _ = bin_table(b)
        assert freqs.shape == (2 * T + 2,) and int(freqs.sum()) == 1 << 24 and (freqs >= 1).all()
        probs = freqs / float(1 << 24)
        s = float(SCALE_BINS[b])
        r = torch.arange(-T, T + 1, dtype=torch.float64)
        exact = (torch.special.ndtr((r + 0.5) / s) - torch.special.ndtr((r - 0.5) / s)).numpy()
        big = exact > 1e-6
        assert np.allclose(probs[:-1][big], exact[big], rtol=2e-3, atol=2.0**-22)  # 24-bit integer frequencies
        kl_bits = float((exact[big] * np.log2(exact[big] / probs[:-1][big])).sum())
        # the integer table costs < 1e-4 bit per symbol; the widest bins (45k symbols, each >= 1 count) a little more
        assert abs(kl_bits) < (1e-4 if b <= 60 else 3e-3)


def test_frequency_tables_follow_the_format_rule_and_code_exactly():
    """The integer table rule of FORMAT.md ("Range coding") and the coder agree: a symbol sequence
    coded with a table decodes back, and the table is exactly floor(C_i · k) + i differences."""
    from progs.codec import models

    rng = np.random.default_rng(5)
    for n in (2, 3, 256, 5000):
        w = rng.random(n) * (rng.random(n) < 0.7)
        w[0] = 0.0
        w[-1] += 1.0
        f = models.frequencies(w)
        assert f.sum() == 1 << 24 and (f >= 1).all()
        cum = np.concatenate([[0.0], np.cumsum(w)])
        k = ((1 << 24) - n) / cum[-1]
        left = [int(np.floor(c * k)) + i for i, c in enumerate(cum[:-1])]
        assert list(np.diff(left + [1 << 24])) == list(f)
        sym = rng.choice(n, 2000, p=f / f.sum()).astype(np.int32)
        import constriction

        enc = constriction.stream.queue.RangeEncoder()
        enc.encode(sym, models.categorical(f))
        dec = constriction.stream.queue.RangeDecoder(enc.get_compressed())
        assert np.array_equal(dec.decode(models.categorical(f), sym.size), sym)


def test_exact_math_matches_libm():
    x = torch.linspace(-40, 40, 20001, dtype=torch.float64)
    assert torch.allclose(exact_math.exp(x.clamp(max=30)), torch.exp(x.clamp(max=30)), rtol=1e-7, atol=0)
    assert torch.allclose(exact_math.softplus(x), torch.nn.functional.softplus(x, threshold=1e9), rtol=3e-7, atol=1e-12)
    assert torch.allclose(exact_math.tanh(x), torch.tanh(x), rtol=0, atol=1e-7)
    z = torch.linspace(0, 9, 901, dtype=torch.float64)
    assert torch.allclose(exact_math.upper_tail(z), 0.5 * torch.special.erfc(z / math.sqrt(2)), rtol=3e-7, atol=0)


def test_kernel_and_pytorch_coding_paths_agree_bit_for_bit():
    if not kernel_available():
        pytest.skip("C++ kernels unavailable: only the PyTorch path runs")
    torch.manual_seed(0)
    ctx = ContextModel(ContextConfig(log2_table_3d=10, log2_table_2d=10), seed=3)
    with torch.no_grad():
        for p in list(ctx.mlp_d.parameters()) + list(ctx.mlp_q.parameters()):
            p.normal_(0, 0.5)
    ctx.round_weights_to_fixed_point()
    keys = torch.randint(0, 128, (3000, 3))
    pos = (keys.double() + 0.5) / 128
    h_kernel, h_torch = ctx.exact_features(pos, use_kernel=True), ctx.exact_features(pos, use_kernel=False)
    assert torch.equal(h_kernel, h_torch)
    terms = ctx.parent_terms(ctx.exact_features(((keys >> 1).double() + 0.5) / 64))
    a, b = ctx.coding_params(h_kernel, terms, use_kernel=True), ctx.coding_params(h_kernel, terms, use_kernel=False)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and torch.equal(x, y)
    assert len(torch.unique(a[1])) > 10  # many scale bins exercised


@pytest.mark.parametrize("method", [structure.PARENT_INDEX, structure.OCCUPANCY])
def test_structure_methods_round_trip(method):
    g = torch.Generator().manual_seed(5)
    grid = octree.OctreeGrid((0, 0, 0), 1.0, 2, 4)
    keys = grid.voxel_of(torch.rand(900, 3, generator=g, dtype=torch.float64), 4)
    keys, lv = octree.complete_upward(keys, torch.full((keys.shape[0],), 4))
    per_level = [keys[lv == level] for level in range(1, 5)]
    w = ByteWriter()
    structure.encode_roots(w, per_level[0], grid.base_depth)
    for level in range(2, 5):
        assert structure.encode_children(w, per_level[level - 2], per_level[level - 1], force=method) == method
    r = ByteReader(w.getvalue(), "test")
    prev = None
    for level in range(1, 5):
        got, _ = structure.decode_structure(r, level, prev, grid.base_depth, 10**6)
        assert torch.equal(got, per_level[level - 1])
        prev = got


@pytest.mark.parametrize("base_depth", [0, 1, 3, 5])
def test_root_methods_round_trip_and_the_smaller_is_chosen(base_depth):
    g = torch.Generator().manual_seed(base_depth)
    grid = octree.OctreeGrid((0, 0, 0), 1.0, base_depth, 1)
    keys = torch.unique(grid.voxel_of(torch.rand(300, 3, generator=g, dtype=torch.float64), 1), dim=0)
    keys = keys[torch.argsort(octree.morton_encode(keys))]
    sizes = {}
    for method in (structure.ROOTS, structure.ROOT_OCCUPANCY):
        w = ByteWriter()
        assert structure.encode_roots(w, keys, base_depth, force=method) == method
        sizes[method] = len(w)
        got, m = structure.decode_structure(ByteReader(w.getvalue(), "test"), 1, None, base_depth, 10**6)
        assert m == method and torch.equal(got, keys)
    w = ByteWriter()
    chosen = structure.encode_roots(w, keys, base_depth)
    assert len(w) == min(sizes.values()) and sizes[chosen] == len(w)
    if base_depth >= 5:  # 300 roots among 32,768 cells: the occupancy beats 15 bits a root
        assert chosen == structure.ROOT_OCCUPANCY


def test_root_occupancy_that_disagrees_with_the_count_is_an_error():
    grid = octree.OctreeGrid((0, 0, 0), 1.0, 3, 1)
    keys = torch.unique(
        grid.voxel_of(torch.rand(40, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64), 1), dim=0
    )
    keys = keys[torch.argsort(octree.morton_encode(keys))]
    w = ByteWriter()
    structure.encode_roots(w, keys, 3, force=structure.ROOT_OCCUPANCY)
    payload = bytearray(w.getvalue())
    struct.pack_into("<I", payload, 1, keys.shape[0] - 1)  # method u8, then the root count
    with pytest.raises(FormatError, match="root occupancy gives .* but the chunk"):
        structure.decode_structure(ByteReader(bytes(payload), "test"), 1, None, 3, 10**6)


def test_forged_counts_are_rejected_before_allocation(encoded):
    _, res = encoded
    name, off, size = res.chunk_offsets[2]
    payload = bytearray(res.data[off + 8 : off + size - 4])
    struct.pack_into("<I", payload, 2, 0xFFFFFFF0)  # level u8, method u8, then the anchor count
    import zlib

    forged = res.data[: off + 8] + bytes(payload) + struct.pack("<I", zlib.crc32(b"LOD\x02" + bytes(payload)))
    out = decode(forged)  # the LoD before it still decodes; the problem names the chunk
    assert out.lods_decoded == 1 and "LOD2" in out.problem and "limit" in out.problem


def _with_head_field(data: bytes, field_offset: int, fmt: str, value) -> bytes:
    """``data`` with one field of the HEAD chunk's configuration replaced (``field_offset``: bytes
    after the chunk table), the chunk written again with a valid CRC."""
    (length,) = struct.unpack_from("<I", data, PREAMBLE + 4)
    payload = bytearray(data[PREAMBLE + 8 : PREAMBLE + 8 + length])
    struct.pack_into(fmt, payload, 1 + 4 * payload[0] + field_offset, value)
    return data[:PREAMBLE] + chunk(head_tag(), bytes(payload)) + data[PREAMBLE + 12 + length :]


def test_header_configuration_round_trips_and_bounds_its_fields(encoded):
    model, res = encoded
    out = decode(res.data)
    assert out.config["grid"] == model.grid.to_dict()
    assert out.config["generator"] == model.generator.args()
    assert out.config["context"] == {
        k: list(v) if isinstance(v, tuple) else v for k, v in model.context.cfg.to_json().items()
    }
    assert out.config["background"] == [float(x) for x in torch.tensor([0.1, 0.2, 0.3])]
    # origin 24 B, size 8, base depth 1, generator 7, levels_3d 1, then res_3d[0] at 41; q0[0] at 66
    for offset, fmt, value, what in [
        (41, "<I", 1 << 21, "out of range"),  # a dense level's cell count would overflow int64
        (41, "<I", 0, "out of range"),
        (66, "<d", 1e300, "out of range"),
        (66, "<d", float("nan"), "base step is not a finite number"),
        (37, "<B", 1, "the generator takes 1 levels"),
    ]:
        with pytest.raises(FormatError, match=what):
            decode(_with_head_field(res.data, offset, fmt, value))
