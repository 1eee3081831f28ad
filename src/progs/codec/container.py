"""The container: magic, format version, then length-prefixed chunks each closed by a CRC32.

    file  := MAGIC (8 bytes) | version u16 | reserved u16 | chunk*
    chunk := tag (4 bytes) | length u32 | payload (length bytes) | crc32(tag + payload) u32

Tags: ``HEAD`` once, first; then ``LOD1``, ``LOD2`` ... in order (tag bytes ``b"LOD" + bytes([l])``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from progs.codec.errors import FormatError

MAGIC = b"\x89PROGS\r\n"
FORMAT_VERSION = 7
PREAMBLE = len(MAGIC) + 4
CHUNK_OVERHEAD = 12


def head_tag() -> bytes:
    return b"HEAD"


def lod_tag(level: int) -> bytes:
    return b"LOD" + bytes([level])


def tag_name(tag: bytes) -> str:
    if tag[:3] == b"LOD" and len(tag) == 4:
        return f"LOD{tag[3]}"
    if all(32 <= b < 127 for b in tag):
        return tag.decode("ascii")
    return "0x" + tag.hex()


def preamble() -> bytes:
    return MAGIC + struct.pack("<HH", FORMAT_VERSION, 0)


def chunk(tag: bytes, payload: bytes) -> bytes:
    return tag + struct.pack("<I", len(payload)) + payload + struct.pack("<I", zlib.crc32(tag + payload))


@dataclass
class Chunk:
    tag: bytes
    offset: int  # of the chunk's first byte (its tag) in the file
    payload: memoryview

    @property
    def name(self) -> str:
        return tag_name(self.tag)

    @property
    def size(self) -> int:
        return len(self.payload) + CHUNK_OVERHEAD


@dataclass
class ScanResult:
    version: int
    chunks: list[Chunk]
    problem: str | None  # why scanning stopped before the end of the data, if it did


def check_preamble(data: bytes | memoryview, source: str = "stream") -> int:
    if len(data) < PREAMBLE:
        if bytes(data[: len(MAGIC)]) != MAGIC[: len(data)]:
            raise FormatError(f"{source}: not a progs stream (bad magic bytes)")
        raise FormatError(f"{source}: truncated before the end of the {PREAMBLE}-byte preamble")
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise FormatError(f"{source}: not a progs stream (bad magic bytes)")
    version = struct.unpack_from("<H", data, len(MAGIC))[0]
    if version != FORMAT_VERSION:
        raise FormatError(f"{source}: unsupported format version {version} (this progs reads version {FORMAT_VERSION})")
    return version


def scan(data: bytes | memoryview, source: str = "stream") -> ScanResult:
    """Split a (possibly truncated or damaged) stream into its intact chunks, in order.

    Stops at the first chunk that is incomplete or fails its CRC and says why in ``problem``.
    """
    mv = memoryview(data)
    version = check_preamble(mv, source)
    pos = PREAMBLE
    chunks: list[Chunk] = []
    problem = None
    while pos < len(mv):
        if len(mv) - pos < 8:
            problem = f"{source}: truncated inside a chunk header at byte {pos}"
            break
        tag = bytes(mv[pos : pos + 4])
        (length,) = struct.unpack_from("<I", mv, pos + 4)
        name = tag_name(tag)
        if length > len(mv) - pos - CHUNK_OVERHEAD:
            problem = f"{source}: chunk {name} at byte {pos} is truncated ({length} payload bytes announced, {max(0, len(mv) - pos - CHUNK_OVERHEAD)} present)"
            break
        payload = mv[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from("<I", mv, pos + 8 + length)
        if zlib.crc32(tag + bytes(payload)) != crc:
            problem = f"{source}: chunk {name} at byte {pos} fails its CRC32 check (corrupted)"
            break
        chunks.append(Chunk(tag, pos, payload))
        pos += length + CHUNK_OVERHEAD
    return ScanResult(version, chunks, problem)
