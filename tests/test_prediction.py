"""The parent predictor (format 5; its precision the encoder's choice since format 7): its table
round-trips exactly at every precision, it refines priors only by an integer shift of the coding table
(the quantization lattice is the context model's), it codes a child that follows its parent in fewer
bits, and a decoder refuses a malformed table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from progs.codec.attributes import ideal_bits
from progs.codec.bytes import ByteReader, ByteWriter
from progs.codec.errors import FormatError
from progs.codec.levels import LevelParams, quantize
from progs.codec.prediction import ParentPredictor, read_predictor, write_predictor
from progs.model.context import ContextConfig, ContextModel


def _level(n: int = 400, seed: int = 0):
    """A context model with flat priors, and a level whose children follow their parents' values."""
    g = torch.Generator().manual_seed(seed)
    ctx = ContextModel(ContextConfig())
    d = ctx.layout.total
    parent = torch.randn(n, d, generator=g, dtype=torch.float64)
    child = 0.8 * parent + 0.1 + 0.2 * torch.randn(n, d, generator=g, dtype=torch.float64)
    step = torch.full((n, 3), 0.05, dtype=torch.float64)
    bins = torch.full((n, d), 60, dtype=torch.uint8)  # deviation ~ 1 in value units: the raw spread
    p = LevelParams(torch.zeros(n, d, dtype=torch.float64), bins, step, torch.arange(n))
    return ctx, p, parent, child


def test_table_round_trips_exactly():
    ctx, p, parent, child = _level()
    pred = ParentPredictor.fit(ctx, child, p, parent)
    w = ByteWriter()
    write_predictor(w, pred)
    back = read_predictor(ByteReader(memoryview(w.getvalue()), "t", 0), 2, ctx.layout.total)
    for name in ("a", "b", "c", "s"):
        assert torch.equal(getattr(back, name), getattr(pred, name)), name
    assert torch.allclose(pred.a, torch.full_like(pred.a, 0.8), atol=0.05)


def test_prediction_shifts_the_table_not_the_lattice_and_saves_bits():
    ctx, p, parent, child = _level()
    pred = ParentPredictor.fit(ctx, child, p, parent)
    q = pred.apply(ctx, p, parent)
    assert torch.equal(q.mean, p.mean) and torch.equal(q.step, p.step)  # same lattice, same decoded values
    assert torch.equal(q.shift, torch.round(q.shift))
    r = quantize(ctx, child, p)
    plain = ideal_bits(r.to(torch.int64).numpy(), p.bins.numpy())
    shifted = ideal_bits(q.coded_symbols(r).to(torch.int64).numpy(), q.bins.numpy())
    assert shifted < 0.8 * plain, (shifted, plain)


@pytest.mark.parametrize("level, flag", [(1, 1), (2, 2)])
def test_malformed_predictor_flags_are_refused(level, flag):
    data = bytes([flag]) + bytes(32)
    with pytest.raises(FormatError, match="parent-predictor flag"):
        read_predictor(ByteReader(memoryview(data), "chunk LOD1", 0), level, 68)


def test_out_of_range_table_is_refused():
    ctx, p, parent, child = _level()
    pred = ParentPredictor.fit(ctx, child, p, parent)
    pred.s = pred.s.clone()
    pred.s[3] = 0.0  # a deviation of zero cannot be coded with
    w = ByteWriter()
    write_predictor(w, pred)
    with pytest.raises(FormatError, match="deviation"):
        read_predictor(ByteReader(memoryview(w.getvalue()), "chunk LOD2", 0), 2, ctx.layout.total)
    assert np.isfinite(pred.a.numpy()).all()


@pytest.mark.parametrize("a_bits, c_bits", [(12, 14), (4, 6)])
def test_a_coarser_table_round_trips_and_costs_fewer_bytes(a_bits, c_bits):
    ctx, p, parent, child = _level()
    pred = ParentPredictor.fit(ctx, child, p, parent, a_bits=a_bits, c_bits=c_bits)
    for name, bits in (("a", a_bits), ("b", a_bits), ("c", c_bits), ("s", c_bits)):
        t = getattr(pred, name)
        assert torch.equal(t, torch.round(t * 2.0**bits) * 2.0**-bits), name  # on the chosen grid
    w = ByteWriter()
    write_predictor(w, pred)
    back = read_predictor(ByteReader(memoryview(w.getvalue()), "t", 0), 2, ctx.layout.total)
    for name in ("a", "b", "c", "s"):
        assert torch.equal(getattr(back, name), getattr(pred, name)), name
    fine = ByteWriter()
    write_predictor(fine, ParentPredictor.fit(ctx, child, p, parent))
    assert (len(w) < len(fine)) == ((a_bits, c_bits) != (12, 14))


def test_a_table_finer_than_the_format_allows_is_refused():
    ctx, p, parent, child = _level()
    pred = ParentPredictor.fit(ctx, child, p, parent, a_bits=13, c_bits=14)
    w = ByteWriter()
    write_predictor(w, pred)
    with pytest.raises(FormatError, match="exponent 13 \\(at most 12\\)"):
        read_predictor(ByteReader(memoryview(w.getvalue()), "chunk LOD2", 0), 2, ctx.layout.total)
