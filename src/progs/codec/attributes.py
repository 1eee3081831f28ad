"""Arithmetic coding of quantized anchor attributes with per-symbol quantized-Gaussian models.

Every symbol is an integer ``round(value / step)``; its model is a Gaussian with mean ``mu / step``
and standard deviation ``sigma / step`` integrated over the unit bin around each integer (paper
Eq. 15), clipped to ``[-R, R]`` where ``R`` (the largest magnitude in the chunk) is written before
the data. Coding uses constriction's range coder.
"""

from __future__ import annotations

import constriction
import numpy as np
import torch

from progs.codec.bytes import ByteReader, ByteWriter

MIN_STD = 1e-3  # in symbol units; constriction needs a positive finite deviation
MAX_RANGE = 1 << 20


def _model(r: int):
    return constriction.stream.model.QuantizedGaussian(-r, r)


def encode_symbols(w: ByteWriter, symbols: np.ndarray, means: np.ndarray, stds: np.ndarray) -> None:
    """Code int symbols with Gaussian models (all arrays the same shape, means/stds in symbol units)."""
    sym = np.ascontiguousarray(symbols, dtype=np.int64).reshape(-1)
    r = int(np.abs(sym).max()) if sym.size else 0
    if r > MAX_RANGE:
        raise ValueError(f"symbol magnitude {r} exceeds {MAX_RANGE}; the quantization step is too small")
    w.u32(r)
    if sym.size == 0:
        w.u32(0)
        return
    mu = np.ascontiguousarray(means, dtype=np.float64).reshape(-1)
    sd = np.maximum(np.ascontiguousarray(stds, dtype=np.float64).reshape(-1), MIN_STD)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(sym.astype(np.int32), _model(max(r, 1)), mu, sd)
    words = enc.get_compressed()
    w.array(words, "u4")


def decode_symbols(r: ByteReader, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_symbols`; returns int64 symbols shaped like ``means``."""
    rng = r.u32()
    if rng > MAX_RANGE:
        raise r.fail(f"symbol range {rng} exceeds {MAX_RANGE}")
    n = means.size
    words = r.array("u4", limit=max(r.remaining() // 4, 0))
    if n == 0:
        return np.zeros(means.shape, dtype=np.int64)
    if words.size == 0:
        raise r.fail("attribute data is empty")
    mu = np.ascontiguousarray(means, dtype=np.float64).reshape(-1)
    sd = np.maximum(np.ascontiguousarray(stds, dtype=np.float64).reshape(-1), MIN_STD)
    try:
        dec = constriction.stream.queue.RangeDecoder(words.astype(np.uint32))
        sym = dec.decode(_model(max(rng, 1)), mu, sd)
    except Exception as exc:
        raise r.fail(f"attribute symbols do not decode ({exc})") from None
    return np.asarray(sym, dtype=np.int64).reshape(means.shape)


def gaussian_bits(symbols: np.ndarray, means: np.ndarray, stds: np.ndarray) -> float:
    """The model's cross-entropy in bits of the symbols (what an ideal coder would spend)."""
    mu = torch.as_tensor(np.asarray(means, dtype=np.float64))
    sd = torch.as_tensor(np.maximum(np.asarray(stds, dtype=np.float64), MIN_STD))
    s = torch.as_tensor(np.asarray(symbols, dtype=np.float64))
    p = torch.special.ndtr((s + 0.5 - mu) / sd) - torch.special.ndtr((s - 0.5 - mu) / sd)
    return float(-torch.log2(p.clamp_min(1e-12)).sum())
