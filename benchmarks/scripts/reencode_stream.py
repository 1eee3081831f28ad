"""Re-encode a stream's decoded model with today's encoder (a format change keeps committed streams).

    # with the progs that reads the old format:
    python benchmarks/scripts/reencode_stream.py save OLD.progs decoded.pt
    # with today's progs:
    python benchmarks/scripts/reencode_stream.py encode decoded.pt NEW.progs

The decoded model holds the quantized attributes and the header's MLP weights; encoding it again
reproduces the same values (same lattice), so the new stream decodes to the same model. The Gaussian
generator keeps the precision its weights already have (12 significant bits in streams written before
2026-11-27, 8 since), because the never-drawn rule is evaluated on those weights.
"""

from __future__ import annotations

import sys

import numpy as np
import torch


def _significant_bits(model) -> int:
    from progs.model import exact_math

    for bits in (exact_math.GENERATOR_BITS, 12):
        if all(
            np.array_equal(
                exact_math.from_fixed_point(*exact_math.fixed_point(t.double().numpy(), bits)), t.double().numpy()
            )
            for t in model.generator.state_dict().values()
        ):
            return bits
    raise SystemExit("the generator's weights are not 8- or 12-bit fixed point")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("save", "encode"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    if argv[0] == "save":
        from progs.codec.stream import decode

        r = decode(open(argv[1], "rb").read(), source=argv[1])
        if r.problem:
            raise SystemExit(r.problem)
        torch.save({"model": r.model, "background": r.background}, argv[2])
        return 0
    from progs import atomic
    from progs.codec.stream import decode, encode
    from progs.model import exact_math

    saved = torch.load(argv[1], weights_only=False)
    model = saved["model"]
    exact_math.GENERATOR_BITS = _significant_bits(model)
    res = encode(model, saved["background"])
    back = decode(res.data)
    same = torch.equal(back.model.anchors.attribute_matrix().detach(), model.anchors.attribute_matrix().detach())
    if not same:
        raise SystemExit("re-encoded stream does not decode to the same model")
    atomic.write_bytes_atomic(argv[2], res.data)
    print(f"{argv[2]}: {len(res.data):,} bytes, decodes to the same {len(model.anchors):,} anchors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
