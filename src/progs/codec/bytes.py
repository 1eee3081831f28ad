"""Little-endian byte writing and bounds-checked reading for the bitstream.

Every read checks the remaining length first and every count is checked against a caller-given
limit before anything is allocated, so a forged count can never trigger a huge allocation.
"""

from __future__ import annotations

import struct

import numpy as np

from progs.codec.errors import FormatError


class ByteWriter:
    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def _put(self, b: bytes) -> None:
        self._parts.append(b)
        self._size += len(b)

    def u8(self, v: int) -> None:
        self._put(struct.pack("<B", v))

    def u16(self, v: int) -> None:
        self._put(struct.pack("<H", v))

    def u32(self, v: int) -> None:
        self._put(struct.pack("<I", v))

    def u64(self, v: int) -> None:
        self._put(struct.pack("<Q", v))

    def f64(self, v: float) -> None:
        self._put(struct.pack("<d", v))

    def raw(self, b: bytes) -> None:
        self._put(bytes(b))

    def blob(self, b: bytes) -> None:
        """A u32 length followed by the bytes."""
        self.u32(len(b))
        self._put(bytes(b))

    def array(self, a: np.ndarray, dtype: str) -> None:
        """A u32 element count followed by the elements as little-endian ``dtype``."""
        arr = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
        self.u32(arr.size)
        self._put(arr.tobytes())

    def getvalue(self) -> bytes:
        return b"".join(self._parts)

    def __len__(self) -> int:
        return self._size


class ByteReader:
    """Reads a payload; errors name ``where`` (e.g. 'chunk LOD2') and the absolute byte offset."""

    def __init__(self, data: bytes | memoryview, where: str, base_offset: int = 0) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.where = where
        self.base = base_offset

    def fail(self, msg: str) -> FormatError:
        return FormatError(f"{self.where} at byte {self.base + self.pos}: {msg}")

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining():
            raise self.fail(f"needs {n} more bytes but only {self.remaining()} remain (truncated or corrupt)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self._take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self._take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self._take(8))[0]

    def f64(self) -> float:
        return struct.unpack("<d", self._take(8))[0]

    def raw(self, n: int) -> bytes:
        return bytes(self._take(n))

    def blob(self, limit: int) -> bytes:
        n = self.u32()
        if n > limit:
            raise self.fail(f"length {n} exceeds the limit {limit}")
        return self.raw(n)

    def array(self, dtype: str, limit: int) -> np.ndarray:
        n = self.u32()
        if n > limit:
            raise self.fail(f"element count {n} exceeds the limit {limit}")
        dt = np.dtype(dtype).newbyteorder("<")
        return np.frombuffer(self._take(n * dt.itemsize), dtype=dt).astype(np.dtype(dtype).newbyteorder("="))

    def expect_end(self) -> None:
        if self.remaining():
            raise self.fail(f"{self.remaining()} unexpected trailing bytes")


def pack_bits(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative integers of ``width`` bits each (MSB first) into bytes."""
    values = np.asarray(values, dtype=np.uint64)
    if width == 0 or values.size == 0:
        return b""
    if int(values.max()) >> width:
        raise ValueError(f"value does not fit in {width} bits")
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((values[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_bits(data: bytes, count: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`; ``data`` must hold at least ``count * width`` bits."""
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    need = (count * width + 7) // 8
    if len(data) < need:
        raise ValueError(f"{len(data)} bytes hold fewer than {count} values of {width} bits")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * width].reshape(count, width)
    weights = np.uint64(1) << np.arange(width - 1, -1, -1, dtype=np.uint64)
    return (bits.astype(np.uint64) * weights).sum(axis=1).astype(np.int64)


def packed_size(count: int, width: int) -> int:
    return (count * width + 7) // 8
