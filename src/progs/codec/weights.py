"""MLP weights in the header: fixed point, Rice-coded (since format version 4).

Every tensor is stored as integers ``m`` with ``value = m · 2^-e``
(:func:`progs.model.exact_math.fixed_point`: each tensor keeps 8 or 12 significant bits, as exact_math
sets per MLP, relative to its largest magnitude; float16 keeps 11 per value, but MLP outputs are sums
dominated by the large weights). The integers are zigzag-mapped (0, -1, 1, -2, ... →
0, 1, 2, 3, ...) and Golomb–Rice coded with the tensor's best parameter ``k``: ``u >> k`` in unary
(ones, then a zero), then the ``k`` low bits, most significant first, packed MSB-first into bytes.
Integer-only and therefore identical on every machine; weights are near-Laplacian, for which Rice
coding comes close to their entropy (on a demo run: 29.3 kB of float16/int16 weights became
20 kB, the whole header 33.6 → 24.3 kB, at the same decoded PSNR).
"""

from __future__ import annotations

import numpy as np

from progs.codec.bytes import ByteReader, ByteWriter
from progs.model.exact_math import MAX_EXPONENT

MAX_RICE_K = 24
MAX_QUOTIENT = 1 << 16  # a longer unary run is corrupt data, not a weight


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1).astype(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.int64)
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


def _best_k(u: np.ndarray) -> int:
    if u.size == 0:
        return 0
    costs = [int((u >> np.uint64(k)).sum()) + (k + 1) * u.size for k in range(MAX_RICE_K + 1)]
    return int(np.argmin(costs))


def rice_encode(values: np.ndarray) -> tuple[int, bytes]:
    """``(k, bytes)``: the signed integers ``values`` Golomb–Rice coded with the best ``k``."""
    u = _zigzag(np.asarray(values).reshape(-1))
    k = _best_k(u)
    q = (u >> np.uint64(k)).astype(np.int64)
    if q.size and int(q.max()) > MAX_QUOTIENT:
        raise ValueError("weights too spread for Rice coding")
    lengths = q + 1 + k
    bits = np.zeros(int(lengths.sum()), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    # unary part: q ones from each start (a zero follows, already there)
    ones = np.repeat(starts, q) + (np.arange(int(q.sum())) - np.repeat(np.cumsum(q) - q, q))
    bits[ones] = 1
    for j in range(k):  # the low bits, most significant first
        bits[starts + q + 1 + j] = ((u >> np.uint64(k - 1 - j)) & np.uint64(1)).astype(np.uint8)
    return k, np.packbits(bits).tobytes()


def rice_decode(data: bytes | memoryview, k: int, count: int) -> np.ndarray:
    """Inverse of :func:`rice_encode` for ``count`` values; ValueError on data that does not decode."""
    if not 0 <= k <= MAX_RICE_K:
        raise ValueError(f"Rice parameter {k} out of range")
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    text = (bits + ord("0")).tobytes().decode("ascii")  # str.find and int(..., 2) run in C
    out = np.empty(count, dtype=np.int64)
    pos = 0
    for i in range(count):
        z = text.find("0", pos)  # the unary run ends at the first zero at or after pos
        if z < 0 or z - pos > MAX_QUOTIENT or z + 1 + k > len(text):
            raise ValueError("truncated or corrupt Rice code")
        out[i] = ((z - pos) << k) | (int(text[z + 1 : z + 1 + k], 2) if k else 0)
        pos = z + 1 + k
    if len(text) - pos >= 8 or "1" in text[pos:]:
        raise ValueError("Rice code has trailing data")
    return _unzigzag(out)


def write_weights(w: ByteWriter, mant: np.ndarray, e: int) -> None:
    """``exponent:u8 k:u8 data:blob`` (the shape is written by the caller)."""
    k, data = rice_encode(mant)
    w.u8(e)
    w.u8(k)
    w.blob(data)


def read_weights(r: ByteReader, count: int, name: str) -> tuple[np.ndarray, int]:
    """``(mantissas, e)`` of one tensor of ``count`` elements."""
    e = r.u8()
    k = r.u8()
    if e > MAX_EXPONENT:
        raise r.fail(f"tensor {name!r} has exponent {e} (at most {MAX_EXPONENT})")
    data = r.blob(limit=count * (MAX_RICE_K + 2) // 8 + 8 + (MAX_QUOTIENT // 8))
    try:
        return rice_decode(data, k, count), e
    except ValueError as exc:
        raise r.fail(f"tensor {name!r}: {exc}") from None
