"""Header MLP weights (since format version 4): 12-bit fixed point, Rice-coded; exact round trips, corrupt
data refused with a message naming the tensor, and a header smaller than the float16/int16 one."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from progs.codec.bytes import ByteReader, ByteWriter
from progs.codec.container import MAGIC, FormatError
from progs.codec.header import coding_model
from progs.codec.stream import decode, encode
from progs.codec.weights import read_weights, rice_decode, rice_encode, write_weights
from progs.model.exact_math import PRECISION_BITS, fixed_point
from test_codec import _random_model


@pytest.fixture(scope="module")
def tiny_model():
    return _random_model(n_points=300, seed=5)[0]


@pytest.mark.parametrize("scale", [0, 1, 7, 300, 20_000])
def test_rice_code_round_trips_exactly(scale):
    rng = np.random.default_rng(scale)
    values = np.round(rng.laplace(0, scale, 5000)).astype(np.int64) if scale else np.zeros(77, np.int64)
    values[:3] = [0, -1, 1]
    k, data = rice_encode(values)
    assert np.array_equal(rice_decode(data, k, values.size), values)
    if scale:  # within 10 % of the Laplacian's entropy (~log2(2e·scale) bits)
        assert len(data) * 8 / values.size < 1.1 * np.log2(2 * np.e * scale) + 1


def test_fixed_point_keeps_twelve_bits_and_is_idempotent():
    a = np.random.default_rng(0).normal(0, 0.3, (40, 32))
    mant, e = fixed_point(a)
    assert np.abs(mant).max() < 2 ** (PRECISION_BITS - 1)
    assert np.abs(mant).max() >= 2 ** (PRECISION_BITS - 2)  # the range is used
    back = mant * 2.0**-e
    assert np.abs(back - a).max() <= 2.0 ** -(e + 1)
    mant2, e2 = fixed_point(back)
    assert e2 == e and np.array_equal(mant2, mant)
    zero, ez = fixed_point(np.zeros(5))
    assert not zero.any() and ez >= 0


def test_corrupt_weights_are_refused_with_the_tensor_named():
    mant, e = fixed_point(np.random.default_rng(1).normal(0, 1, 300))
    w = ByteWriter()
    write_weights(w, mant, e)
    good = w.getvalue()
    got, ge = read_weights(ByteReader(good, "chunk HEAD"), mant.size, "t")
    assert ge == e and np.array_equal(got, mant)
    with pytest.raises(FormatError, match="tensor 'mlp.w'"):  # too few values in the code
        read_weights(ByteReader(good, "chunk HEAD"), mant.size + 50, "mlp.w")
    with pytest.raises(FormatError, match="tensor 'mlp.w'"):  # too many
        read_weights(ByteReader(good, "chunk HEAD"), mant.size - 50, "mlp.w")
    bad = bytearray(good)
    bad[1] = 99  # Rice parameter out of range
    with pytest.raises(FormatError, match="out of range"):
        read_weights(ByteReader(bytes(bad), "chunk HEAD"), mant.size, "mlp.w")


def test_stream_carries_exactly_the_coding_models_weights(tiny_model):
    res = encode(tiny_model)
    out = decode(res.data)
    ref = coding_model(tiny_model)
    for a, b in zip(ref.generator.state_dict().values(), out.model.generator.state_dict().values()):
        assert torch.equal(a, b)
    decoded = out.model.context.state_dict()
    for name, a in ref.context.state_dict().items():
        if name.startswith("mlp"):  # (the hash grids travel as their signs: grid_bits)
            assert torch.equal(a, decoded[name]), name
    # the weights take well under the 2 bytes per parameter that float16/int16 storage took
    params = sum(p.numel() for p in ref.generator.parameters())
    params += sum(p.numel() for n, p in ref.context.named_parameters() if n.startswith("mlp"))
    assert res.header_bytes < 2 * params


def test_version_3_streams_are_refused_by_name(tiny_model):
    data = bytearray(encode(tiny_model).data)
    struct.pack_into("<H", data, len(MAGIC), 3)
    with pytest.raises(FormatError, match="unsupported format version 3"):
        decode(bytes(data))


def test_each_mlp_keeps_its_precision_and_any_precision_decodes(tiny_model):
    """The encoder stores the generator and MLP_q with 8 significant bits and MLP_d with 12
    (exact_math); a decoder reads whatever precision a stream holds: one written with 12-bit
    generator weights (what earlier encoders of format 5 wrote) decodes to exactly those weights."""
    from progs.model import exact_math

    def used_bits(mant):
        return int(np.abs(mant).max()).bit_length() + 1  # with the sign

    gen = tiny_model.generator.fixed_point_weights()
    ctx = tiny_model.context.fixed_point_weights()
    assert all(used_bits(m) == exact_math.GENERATOR_BITS for m, _ in gen.values() if m.any())
    assert all(
        used_bits(m) == exact_math.STEP_MLP_BITS for n, (m, _) in ctx.items() if n.startswith("mlp_q") and m.any()
    )
    assert all(
        used_bits(m) == exact_math.PRIOR_MLP_BITS for n, (m, _) in ctx.items() if n.startswith("mlp_d") and m.any()
    )
    small = encode(tiny_model)
    old_bits = exact_math.GENERATOR_BITS
    try:
        exact_math.GENERATOR_BITS = 12
        fine = encode(tiny_model)
        want = coding_model(tiny_model).generator.state_dict()
    finally:
        exact_math.GENERATOR_BITS = old_bits
    assert len(fine.data) > len(small.data)
    got = decode(fine.data).model.generator.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)
