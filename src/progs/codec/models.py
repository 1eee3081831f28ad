"""Entropy models as integer frequency tables (docs/FORMAT.md, "Range coding").

Every model the stream uses is a table of integer frequencies ``f_0..f_{n-1}`` (each >= 1, summing to
2^24) derived from float64 weights by one rule that progs owns (:func:`frequencies`), so a decoder in
any language rebuilds it from IEEE-754 arithmetic alone. The range coder itself is constriction's;
it is handed weights ``f_i - 1`` whose quantization is exact (their sum is ``2^24 - n``, so its scale
factor is 1.0 and its cumulative frequencies are the table's).
"""

from __future__ import annotations

import constriction
import numpy as np

PRECISION = 24
TOTAL = 1 << PRECISION
MAX_SYMBOLS = 1 << 22  # far above any table the format builds (bins: < 50,000 symbols)


def frequencies(weights: np.ndarray) -> np.ndarray:
    """The integer table of ``weights`` (float64 >= 0, not all zero, 2 <= n < 2^22 entries):
    ``S`` and ``C_i`` are sequential float64 sums (``C_0 = 0``, ``C_{i+1} = C_i + w_i``, ``S = C_n``),
    ``k = (2^24 - n) / S``, ``left_i = floor(C_i · k) + i``, ``left_n = 2^24``, ``f_i = left_{i+1} - left_i``."""
    w = np.ascontiguousarray(weights, dtype=np.float64).reshape(-1)
    n = w.size
    if not 2 <= n < MAX_SYMBOLS or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("a frequency table needs 2..2^22 finite non-negative weights")
    cum = np.empty(n + 1, dtype=np.float64)
    cum[0] = 0.0
    np.cumsum(w, out=cum[1:])  # a sequential scan: ((w0 + w1) + w2) + ...
    total = cum[n]
    if not total > 0:
        raise ValueError("a frequency table needs a positive weight")
    k = float(TOTAL - n) / total
    left = np.floor(cum[:n] * k).astype(np.int64) + np.arange(n, dtype=np.int64)
    return np.diff(np.append(left, TOTAL))


def categorical(freqs: np.ndarray):
    """constriction's model of the integer table ``freqs`` (exactly those frequencies)."""
    return constriction.stream.model.Categorical(
        (np.asarray(freqs, dtype=np.int64) - 1).astype(np.float64), perfect=False
    )


def model(weights: np.ndarray):
    """The coder's model of ``weights`` by the table rule."""
    return categorical(frequencies(weights))


def uniform(n: int):
    """``n >= 2`` equally likely symbols."""
    return model(np.ones(n, dtype=np.float64))


FIRST_BLOCK = 64  # block-adaptive coding: blocks of 64, 128, 256, ... symbols


def _blocks(n: int):
    start, size = 0, FIRST_BLOCK
    while start < n:
        yield start, min(n, start + size)
        start += size
        size *= 2


def encode_adaptive(enc, symbols: np.ndarray, n_symbols: int) -> None:
    """Code ``symbols`` (ints in 0..n_symbols-1) block-adaptively: block k with the table of the
    symbol counts of blocks 0..k-1 plus one (Laplace), so no table is transmitted."""
    symbols = np.asarray(symbols, dtype=np.int64)
    counts = np.ones(n_symbols, dtype=np.float64)
    for s, e in _blocks(symbols.size):
        enc.encode(symbols[s:e].astype(np.int32), model(counts))
        counts += np.bincount(symbols[s:e], minlength=n_symbols)


def decode_adaptive(dec, count: int, n_symbols: int) -> np.ndarray:
    """Inverse of :func:`encode_adaptive`: ``count`` symbols (int64)."""
    out = np.empty(count, dtype=np.int64)
    counts = np.ones(n_symbols, dtype=np.float64)
    for s, e in _blocks(count):
        out[s:e] = dec.decode(model(counts), e - s)
        counts += np.bincount(out[s:e], minlength=n_symbols)
    return out
