"""The progressive bitstream: container (chunks, CRC), header, structure and attribute coding, and
the encoder/decoder that compose them (``progs.codec.stream``). Normative text: docs/FORMAT.md.

    from progs.codec import encode, decode
    result = encode(model)                    # EncodeResult: .data (bytes), .lods, .model
    back = decode(result.data, max_lod=2)     # DecodeResult: .model (LoD 2), .problem
"""

from progs.codec.container import FORMAT_VERSION
from progs.codec.errors import FormatError
from progs.codec.stream import DecodeResult, EncodeResult, LodStats, decode, encode

__all__ = ["encode", "decode", "EncodeResult", "DecodeResult", "LodStats", "FormatError", "FORMAT_VERSION"]
