"""Arithmetic coding of quantized anchor attributes with tabulated Gaussian models (format v2).

Each attribute channel is quantized *around its predicted mean* (as CompressAI's Gaussian
conditional does): the symbol is the residual ``r = round(value / q - m)``, where ``m`` is the
context model's mean in symbol units, and the decoded value is ``(r + m) · q``. The residual's model
is a zero-mean Gaussian whose deviation (in symbol units) is one of :data:`SCALE_BINS` (128 bins,
8 per octave), integrated over unit bins: a discrete distribution over ``[-T_b, T_b]`` plus an
escape symbol, tabulated once per bin. Coding then needs no per-symbol model construction:

1. the symbols of a chunk are grouped by bin (bins ascending; within a bin, anchor-major order) and
   each group is range-coded with its bin's fixed frequency table;
2. the escaped residuals (``|r| > T_b``, rare) follow in the same range-coder stream, in anchor-major
   order, each as ``r + R`` in uniform digits (:func:`escape_digits`), where ``R`` is the largest
   escaped magnitude (written before the data).

The tables are built from the standard normal tail with IEEE arithmetic only
(:mod:`progs.model.exact_math`) and turned into integer frequencies by the format's own rule
(:mod:`progs.codec.models`), so encoder and decoder build the same models on every machine.
"""

from __future__ import annotations

import math
from functools import lru_cache

import constriction
import numpy as np
import torch

from progs.codec import models
from progs.codec.bytes import ByteReader, ByteWriter
from progs.kernels import load_kernel
from progs.model import exact_math
from progs.model.context import SCALE_BINS

MAX_RANGE = 1 << 20  # largest escaped residual magnitude a stream may announce
TAIL_SIGMAS = 6.0  # a bin's table covers |r| <= ceil(6 · s_b) + 1
ESCAPE_PROBABILITY = 2.0**-20  # floor of the escape symbol's probability
MIN_PROBABILITY = 1e-12  # floor of a tabulated symbol's probability (before normalisation)
DIGIT = 1 << 12  # escaped residuals are coded in uniform digits of 12 bits


@lru_cache(maxsize=None)
def bin_table(b: int) -> tuple[int, np.ndarray, object]:
    """Bin ``b``'s table: (T, integer frequencies over r = -T..T then escape (sum 2^24), coder model)."""
    s = float(SCALE_BINS[b])
    T = int(math.ceil(TAIL_SIGMAS * s)) + 1
    # Q(z) at the bin edges 0.5, 1.5, ..., T + 0.5 (in units of s); p(r) = Q(r - 1/2) - Q(r + 1/2) for
    # r >= 1, p(0) = 1 - 2 Q(1/2), symmetric; escape = 2 Q(T + 1/2), floored.
    edges = (torch.arange(T + 1, dtype=torch.float64) + 0.5) / s
    tail = exact_math.upper_tail(edges)
    pos = (tail[:-1] - tail[1:]).clamp_min(MIN_PROBABILITY)
    centre = (1.0 - 2.0 * tail[0]).clamp_min(MIN_PROBABILITY).reshape(1)
    escape = torch.clamp_min(2.0 * tail[-1], ESCAPE_PROBABILITY).reshape(1)
    weights = torch.cat([pos.flip(0), centre, pos, escape]).numpy()
    freqs = models.frequencies(weights)
    return T, freqs, models.categorical(freqs)


@lru_cache(maxsize=None)
def escape_digits(R: int) -> tuple[object | None, int, object]:
    """How ``v = r + R`` in ``[0, 2R]`` is coded: ``(high-digit model or None, n_low, low-digit model)``.
    With ``2R + 1 <= 4096``, one symbol uniform over the ``2R + 1`` values; else two: ``v >> 12``
    uniform over ``(2R >> 12) + 1`` values, then ``v & 4095`` uniform over 4096."""
    n = 2 * R + 1
    if n <= DIGIT:
        return None, n, models.uniform(n)
    return models.uniform(((2 * R) >> 12) + 1), DIGIT, models.uniform(DIGIT)


def _encode_escapes(enc, values: np.ndarray, R: int) -> None:
    high, _, low = escape_digits(R)
    v = values.astype(np.int64) + R
    if high is None:
        enc.encode(v.astype(np.int32), low)
        return
    for x in v:  # per value: the high digit, then the low one (escapes are rare)
        enc.encode(np.array([x >> 12], dtype=np.int32), high)
        enc.encode(np.array([x & (DIGIT - 1)], dtype=np.int32), low)


def _decode_escapes(dec, count: int, R: int) -> np.ndarray:
    high, _, low = escape_digits(R)
    if high is None:
        v = np.asarray(dec.decode(low, count), dtype=np.int64)
    else:
        v = np.empty(count, dtype=np.int64)
        for i in range(count):
            hi_d = int(dec.decode(high, 1)[0])
            v[i] = (hi_d << 12) | int(dec.decode(low, 1)[0])
    return v - R


def escape_bits(R: int) -> float:
    """Bits an escaped residual costs under :func:`escape_digits` (uniform digits)."""
    high, n_low, _ = escape_digits(R)
    return float(np.log2(n_low) + (0.0 if high is None else np.log2(((2 * R) >> 12) + 1)))


def _group(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coding order (stable sort by bin) and the number of symbols per bin."""
    ext = load_kernel()
    if ext is not None:
        order, counts = ext.group_by_bin(torch.from_numpy(bins))
        return order.numpy(), counts.numpy()
    return np.argsort(bins, kind="stable"), np.bincount(bins, minlength=256)


def encode_symbols(w: ByteWriter, residuals: np.ndarray, bins: np.ndarray) -> None:
    """Code integer residuals (any shape) whose scale bins are ``bins`` (same shape, uint8)."""
    r = np.ascontiguousarray(residuals, dtype=np.int64).reshape(-1)
    b = np.ascontiguousarray(bins, dtype=np.uint8).reshape(-1)
    order, counts = _group(b)
    rs = r[order]
    enc = constriction.stream.queue.RangeEncoder()
    escaped_at: list[np.ndarray] = []
    start = 0
    for bi in np.nonzero(counts)[0]:
        n = int(counts[bi])
        T, _, model = bin_table(int(bi))
        seg = rs[start : start + n]
        esc = np.abs(seg) > T
        idx = np.where(esc, 2 * T + 1, seg + T).astype(np.int32)
        enc.encode(idx, model)
        if esc.any():
            escaped_at.append(order[start : start + n][esc])
        start += n
    esc_pos = np.sort(np.concatenate(escaped_at)) if escaped_at else np.zeros(0, dtype=np.int64)
    R = int(np.abs(r[esc_pos]).max()) if esc_pos.size else 0
    if R > MAX_RANGE:
        raise ValueError(f"residual magnitude {R} exceeds {MAX_RANGE}; the quantization step is too small")
    if esc_pos.size:
        _encode_escapes(enc, r[esc_pos], R)
    w.u32(R)
    w.array(enc.get_compressed(), "u4")


def decode_symbols(rd: ByteReader, bins: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_symbols`; returns int64 residuals shaped like ``bins``."""
    R = rd.u32()
    if R > MAX_RANGE:
        raise rd.fail(f"escaped residual range {R} exceeds {MAX_RANGE}")
    words = rd.array("u4", limit=max(rd.remaining() // 4, 0))
    b = np.ascontiguousarray(bins, dtype=np.uint8).reshape(-1)
    out = np.empty(b.size, dtype=np.int64)
    if b.size == 0:
        return out.reshape(bins.shape)
    if words.size == 0:
        raise rd.fail("attribute data is empty")
    order, counts = _group(b)
    ext = load_kernel()
    try:
        dec = constriction.stream.queue.RangeDecoder(words.astype(np.uint32))
        sorted_idx = np.empty(b.size, dtype=np.int32)
        tails = np.zeros(256, dtype=np.int64)
        start = 0
        for bi in np.nonzero(counts)[0]:
            n = int(counts[bi])
            T, _, model = bin_table(int(bi))
            tails[bi] = T
            sorted_idx[start : start + n] = dec.decode(model, n)
            start += n
        if ext is not None:
            res, esc = ext.ungroup_symbols(
                torch.from_numpy(order), torch.from_numpy(sorted_idx), torch.from_numpy(counts), torch.from_numpy(tails)
            )
            out, esc_pos = res.numpy(), esc.numpy()
        else:
            bins_sorted = b[order]
            t_sorted = tails[bins_sorted]
            idx = sorted_idx.astype(np.int64)
            is_esc = idx == 2 * t_sorted + 1
            out[order] = np.where(is_esc, 0, idx - t_sorted)
            esc_pos = np.sort(order[is_esc])
        if esc_pos.size:
            if R == 0:
                raise ValueError("escaped residuals but no escape range")
            vals = _decode_escapes(dec, int(esc_pos.size), R)
            if (np.abs(vals) > R).any():
                raise ValueError("escaped residual outside its announced range")
            out[esc_pos] = vals
    except Exception as exc:  # constriction raises on exhausted or invalid data; ValueError from the checks
        raise rd.fail(f"attribute symbols do not decode ({exc})") from None
    return out.reshape(bins.shape)


def ideal_bits(residuals: np.ndarray, bins: np.ndarray) -> float:
    """The model's cross-entropy in bits of the residuals (what an ideal coder spends on them)."""
    r = np.asarray(residuals, dtype=np.int64).reshape(-1)
    b = np.asarray(bins, dtype=np.uint8).reshape(-1)
    total = 0.0
    escaped = []
    for bi in np.unique(b):
        T, freqs, _ = bin_table(int(bi))
        seg = r[b == bi]
        esc = np.abs(seg) > T
        idx = np.where(esc, 2 * T + 1, seg + T)
        total += float(-np.log2(freqs[idx] / models.TOTAL).sum())
        if esc.any():
            escaped.append(seg[esc])
    if escaped:
        e = np.concatenate(escaped)
        total += e.size * escape_bits(int(np.abs(e).max()))
    return total
