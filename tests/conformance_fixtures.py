"""Conformance fixtures for a second decoder (web/test/conformance.test.mjs): streams made by the
Python encoder, with what the Python decoder makes of them.

    python tests/conformance_fixtures.py OUT_DIR [--quick]

For every stream NAME: ``NAME.progs``, ``NAME.anchors.bin`` (per anchor of the full decode, in the
decoder's order: keys int32 [N, 3], then levels int32 [N], feature float32 [N, F], scaling float32
[N, 6], offsets float32 [N, K·3], each block little-endian) and ``NAME.json`` (sizes, and per damaged
copy of the stream — truncations, flipped bytes, and flips with their chunk's CRC made valid again
(in the header's fields and in each LoD chunk) — the LoDs the Python decoder gives or its error).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def _model(
    n_points: int,
    levels: int,
    base_depth: int,
    seed: int,
    *,
    correlated: bool,
    hide: bool,
    context: dict | None = None,
    feat_dim: int = 32,
    n_offsets: int = 10,
    generator_hidden: int | None = None,
):
    """Seeded random anchors on a strict octree; ``correlated``: children resemble their parents (so
    parent predictors pay); ``hide``: an opacity head that draws some Gaussians and hides others;
    ``generator_hidden``: the generator MLPs' width (default ``feat_dim``)."""
    from progs import octree
    from progs.model.anchors import AnchorSet
    from progs.model.context import ContextConfig, ContextModel
    from progs.model.gaussians import GaussianGenerator
    from progs.model.model import ProGSModel

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    grid = octree.OctreeGrid((-1.0, -0.5, -2.0), 2.5, base_depth, levels)
    a = AnchorSet.random(
        grid,
        n_points,
        g,
        feat_dim=feat_dim,
        n_offsets=n_offsets,
        lo=torch.tensor([-0.9, -0.4, -1.9]),
        hi=torch.tensor([1.2, 1.5, 0.2]),
    )
    with torch.no_grad():
        a.feature.copy_(torch.randn(a.feature.shape, generator=g) * 0.6)
        a.offsets.copy_(torch.randn(a.offsets.shape, generator=g) * 0.5)
        a.scaling.add_(torch.randn(a.scaling.shape, generator=g) * 0.05)
        if correlated:
            parent = octree.parent_index(a.keys, a.levels)
            for level in range(2, levels + 1):  # levels ascending: a parent is final before its children
                sel = torch.nonzero(a.levels == level).squeeze(-1)
                p = parent[sel]
                a.feature[sel] = 0.8 * a.feature[p] + 0.2 * a.feature[sel]
                a.offsets[sel] = 0.7 * a.offsets[p] + 0.3 * a.offsets[sel]
    cfg = ContextConfig.for_anchor_count(len(a), attr_dims=tuple(a.layout.dims), **(context or {}))
    context = ContextModel(cfg, seed=seed)
    generator = GaussianGenerator(feat_dim, n_offsets, levels, hidden=generator_hidden) if generator_hidden else None
    model = ProGSModel(a, generator, context)
    with torch.no_grad():
        for p in model.context.parameters():  # a context model that predicts something
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        if hide:
            model.generator.mlp_opacity[2].bias.copy_(torch.linspace(-1.5, 1.5, model.generator.n_offsets))
    return model


def _anchor_bytes(anchors) -> bytes:
    parts = [
        anchors.keys.to(torch.int32),
        anchors.levels.to(torch.int32),
        anchors.feature.detach(),
        anchors.scaling.detach(),
        anchors.offsets.detach().reshape(len(anchors), -1),
    ]
    return b"".join(np.ascontiguousarray(p.numpy()).astype(p.numpy().dtype.newbyteorder("<")).tobytes() for p in parts)


def _outcome(data: bytes) -> dict:
    from progs.codec.errors import FormatError
    from progs.codec.stream import decode

    try:
        r = decode(data)
    except FormatError as exc:
        return {"error": str(exc)}
    return {"lods": r.lods_decoded, "problem": r.problem}


def _damaged(data: bytes, offsets: list[tuple[str, int, int]], seed: int) -> list[dict]:
    """Truncations at and around every chunk boundary and inside chunks; one flipped bit per chunk."""
    from progs.codec.container import chunk

    rng = np.random.default_rng(seed)
    cases = []
    if len(data) > 300_000:  # large streams: the header, the first LoD and the last one (each decode is slow)
        offsets = offsets[:2] + offsets[-1:]
    for _, start, size in offsets:
        for cut in sorted({start, start + 5, start + size // 2, start + size - 1, start + size}):
            if 0 < cut < len(data):
                cases.append({"truncate": int(cut)})
        pos = int(start + 8 + rng.integers(0, max(size - 12, 1)))
        cases.append({"flip": pos, "bit": int(rng.integers(0, 8))})
    cases += [{"truncate": 3}, {"truncate": 11}]
    # Flips in the HEAD chunk's chunk table and configuration with the CRC made valid again: the
    # decoders must read the fields alike (values out of range fail, others decode alike).
    _, head_off, head_size = offsets[0]
    for _ in range(24 if len(data) <= 300_000 else 6):
        pos = int(head_off + 8 + rng.integers(0, 140))
        cases.append({"flip": pos, "bit": int(rng.integers(0, 8)), "fix_crc": [head_off, head_size - 12]})
    # ... and in each LoD chunk: both decoders stop before a chunk that does not decode, or decode it alike
    for _, start, size in offsets[1:]:
        for _ in range(3):
            pos = int(start + 8 + rng.integers(0, max(size - 12, 1)))
            cases.append({"flip": pos, "bit": int(rng.integers(0, 8)), "fix_crc": [start, size - 12]})
    for case in cases:
        mod = bytearray(data[: case["truncate"]] if "truncate" in case else data)
        if "flip" in case:
            mod[case["flip"]] ^= 1 << case["bit"]
        if "fix_crc" in case:  # the chunk written again around its flipped payload
            off, n = case["fix_crc"]
            mod[off : off + n + 12] = chunk(bytes(mod[off : off + 4]), bytes(mod[off + 8 : off + 8 + n]))
        case["python"] = _outcome(bytes(mod))
    return cases


SPLAT_LOD = 2  # the fixtures' plain-Gaussian export: LoD 2 (what `progs decode --lod 2 --distill 0` writes)


def _write(out: Path, name: str, data: bytes, note: str) -> None:
    from progs.codec.container import scan
    from progs.codec.stream import decode
    from progs.io.ply import write_ply
    from progs.model.cloud import model_to_cloud

    r = decode(data)
    assert r.problem is None, r.problem
    a = r.model.anchors
    (out / f"{name}.progs").write_bytes(data)
    (out / f"{name}.anchors.bin").write_bytes(_anchor_bytes(a))
    chunks = scan(data).chunks
    offsets = [(c.name, c.offset, c.size) for c in chunks]
    info = {
        "name": name,
        "note": note,
        "anchors": len(a),
        "feat_dim": a.feature.shape[1],
        "n_offsets": a.offsets.shape[1],
        "lods": r.lods_decoded,
        "anchors_per_lod": [s.anchors for s in r.lods],
        "structure_methods": [s.structure_method for s in r.lods],
        "skip_hidden": bool(r.config["skip_hidden"]),
        "chunks": [{"name": n, "offset": o, "size": s} for n, o, s in offsets],
        "damaged": _damaged(data, offsets, seed=len(data)),
    }
    if r.lods_decoded >= SPLAT_LOD:
        write_ply(out / f"{name}.splats.ply", model_to_cloud(r.model, SPLAT_LOD))
        info["splat_lod"] = SPLAT_LOD
    (out / f"{name}.json").write_text(json.dumps(info, indent=1))
    print(f"{name}: {len(data):,} bytes, {len(a):,} anchors, LoDs {info['anchors_per_lod']}", flush=True)


def main(argv: list[str]) -> int:
    from progs.codec.stream import encode

    out = Path(argv[0])
    quick = "--quick" in argv
    out.mkdir(parents=True, exist_ok=True)
    bg = torch.tensor([0.1, 0.2, 0.3])
    small = dict(correlated=True, hide=True, feat_dim=16, n_offsets=5)
    small_context = {"levels_3d": 3, "levels_2d": 1, "hidden": 8, "q_hidden": 4}
    specs = [
        ("l3_plain", dict(n_points=300, levels=3, base_depth=2, seed=1, correlated=False, hide=False), {}),
        ("l4_rule_predictors", dict(n_points=900, levels=4, base_depth=2, seed=2, correlated=True, hide=True), {}),
        (
            "l5_level_context",
            dict(
                n_points=1500,
                levels=5,
                base_depth=1,
                seed=3,
                correlated=True,
                hide=True,
                context={"num_levels": 5, "levels_3d": 6, "levels_2d": 2},
            ),
            {},
        ),
        (  # a small `progs fit` (presets.SMALL_FIT_MODEL): 16-d features, 5 offsets, narrow context
            "l4_small_fit",
            dict(n_points=800, levels=4, base_depth=2, seed=6, **small, context={"num_levels": 4, **small_context}),
            {},
        ),
        (  # generator MLPs wider than the anchor features (TrainConfig.generator_hidden)
            "l3_wide_generator",
            dict(
                n_points=500,
                levels=3,
                base_depth=2,
                seed=7,
                **small,
                generator_hidden=32,
                context={"num_levels": 3, **small_context},
            ),
            {},
        ),
        (
            "l4_all_offsets",
            dict(n_points=700, levels=4, base_depth=3, seed=4, correlated=True, hide=True),
            {"skip_hidden": False},
        ),
    ]
    if not quick:
        specs.append(
            ("above_rule_limit", dict(n_points=48_000, levels=4, base_depth=4, seed=5, correlated=True, hide=True), {})
        )
    for name, kw, enc in specs:
        model = _model(**kw)
        res = encode(model, bg, **enc)  # above RULE_MAX_ANCHORS the encoder codes every offset itself
        _write(out, name, res.data, f"seeded random model {kw}")
    fox = REPO / "benchmarks" / "results" / "gpu" / "h200_fox_6400.progs"
    if not quick and fox.exists():
        _write(out, "fox_h200", fox.read_bytes(), "a real capture trained on a GPU (benchmarks/results/gpu)")
    fit = REPO / "benchmarks" / "results" / "fit_format7_playbot_lod4_teacher1024_lambda15e4" / "playbot4.progs"
    if fit.exists():  # a real `progs fit` of a splat scene: a small model, coarse predictor tables
        _write(out, "playbot_fit", fit.read_bytes(), "progs fit of playbot LoD 4 (benchmarks/results)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
