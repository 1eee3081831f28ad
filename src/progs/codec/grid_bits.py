"""The binarized hash grid in the header: ``n_bits:u32 ones:u32`` then the bits range-coded with the
two-symbol table of weights ``(n_bits - ones, ones)`` (:mod:`progs.codec.models`), as ``u32`` words."""

from __future__ import annotations

import constriction
import numpy as np

from progs.codec import models
from progs.codec.bytes import ByteReader, ByteWriter

MAX_GRID_BITS = 1 << 28


def _bit_model(ones: int, n: int):
    return models.model(np.array([n - ones, ones], dtype=np.float64) if n else np.ones(2))


def write_grid_bits(w: ByteWriter, bits: np.ndarray) -> None:
    """``bits``: uint8 0/1 (1 = +1), as :meth:`ContextModel.grid_bits` gives them."""
    ones = int(bits.sum())
    w.u32(bits.size)
    w.u32(ones)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(bits.astype(np.int32), _bit_model(ones, bits.size))
    w.array(enc.get_compressed(), "u4")


def read_grid_bits(r: ByteReader, expected: int) -> np.ndarray:
    """The grid bits (uint8 0/1); ``expected`` is the count the configuration needs. Reads to the end."""
    n_bits = r.u32()
    ones = r.u32()
    if n_bits != expected or ones > n_bits or n_bits > MAX_GRID_BITS:
        raise r.fail(f"hash grid has {n_bits} bits, the configuration needs {expected}")
    words = r.array("u4", limit=r.remaining() // 4)
    try:
        dec = constriction.stream.queue.RangeDecoder(words.astype(np.uint32))
        bits = np.asarray(dec.decode(_bit_model(ones, n_bits), n_bits), dtype=np.uint8)
    except Exception as exc:  # constriction raises on exhausted or invalid data
        raise r.fail(f"hash grid bits do not decode ({exc})") from None
    if int(bits.sum()) != ones:
        raise r.fail("hash grid bits do not match their announced count")
    return bits
