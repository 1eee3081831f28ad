"""Which Gaussians the stream leaves out (format 6): the outcome of the hidden rule, coded.

The encoder marks the never-drawn Gaussians with the full rule (:mod:`progs.model.visibility`, 450
probe cameras); the decoder does not repeat it. It evaluates the same opacity head from 18 of those
cameras (:func:`progs.model.visibility.level_mask_buckets`): a Gaussian one of them draws is not
hidden, and the others get one coded bit (1 = hidden), in the context of how far below the threshold
their highest logit stays (7 buckets). The bits are grouped by bucket (buckets ascending, Gaussian
order inside), each bucket coded block-adaptively like the occupancy bytes: blocks of 64, 128, 256, …
bits, block k with the table of weights (zeros + 1, ones + 1) counted over the bucket's blocks before it.
"""

from __future__ import annotations

import constriction
import numpy as np

from progs.codec import models
from progs.codec.bytes import ByteReader, ByteWriter


def _groups(buckets: np.ndarray) -> list[np.ndarray]:
    """Per bucket (ascending), the positions of its uncertain Gaussians (bucket >= 0), in order."""
    flat = buckets.reshape(-1)
    return [np.nonzero(flat == b)[0] for b in range(int(flat.max()) + 1)] if flat.size and flat.max() >= 0 else []


def encode_mask(w: ByteWriter, hidden: np.ndarray, buckets: np.ndarray) -> None:
    """``hidden`` [N, K] bool (the rule's verdicts), ``buckets`` [N, K] (-1: drawn by a context camera,
    where ``hidden`` must be False): the bits of the uncertain Gaussians, as ``words: array of u32``."""
    flat_h = hidden.reshape(-1)
    if (flat_h & (buckets.reshape(-1) < 0)).any():
        raise ValueError("a Gaussian a context camera draws is marked hidden")
    enc = constriction.stream.queue.RangeEncoder()
    for pos in _groups(buckets):
        models.encode_adaptive(enc, flat_h[pos], 2)
    w.array(enc.get_compressed(), "u4")


def decode_mask(r: ByteReader, buckets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_mask`: hidden [N, K] bool."""
    words = r.array("u4", limit=max(r.remaining() // 4, 0))
    hidden = np.zeros(buckets.size, dtype=bool)
    groups = _groups(buckets)
    if not groups:
        return hidden.reshape(buckets.shape)
    if words.size == 0:
        raise r.fail("the hidden-Gaussian mask is empty")
    try:
        dec = constriction.stream.queue.RangeDecoder(words.astype(np.uint32))
        for pos in groups:
            hidden[pos] = models.decode_adaptive(dec, pos.size, 2) == 1
    except Exception as exc:  # constriction raises on exhausted or invalid data
        raise r.fail(f"the hidden-Gaussian mask does not decode ({exc})") from None
    return hidden.reshape(buckets.shape)
