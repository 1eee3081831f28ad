"""Suite ``speed``: coding time per level (paper Table II layout), entropy-coder throughput against
constriction's raw range coder, rasterizer forward/backward, and inference render FPS per LoD."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from progs.bench.common import rounded
from progs.bench.workspace import Workspace


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def coding_table(ws: Workspace, reps: int) -> dict[str, Any]:
    """Encode and decode the reference model ``reps`` times; per-level medians."""
    from progs.codec.stream import decode, encode
    from progs.train.run import load_run_model

    t = ws.get("full")
    enc_levels: list[list[float]] = []
    enc_total, dec_total = [], []
    dec_levels: list[list[float]] = []
    data = t.encode.data
    for _ in range(max(1, reps)):
        model, info = load_run_model(t.run)
        t0 = time.perf_counter()
        res = encode(model, background=ws.scene.background)
        enc_total.append(time.perf_counter() - t0)
        enc_levels.append([s.seconds for s in res.lods])
        if res.data != data:
            raise RuntimeError("re-encoding the reference model gave a different stream")
        t0 = time.perf_counter()
        d = decode(data)
        dec_total.append(time.perf_counter() - t0)
        dec_levels.append([s.seconds for s in d.lods])
    L = len(t.encode.lods)
    enc_l = [_median([r[i] for r in enc_levels]) for i in range(L)]
    dec_l = [_median([r[i] for r in dec_levels]) for i in range(L)]
    anchors = [s.anchors for s in t.encode.lods]
    rows = [
        {
            "lod": i + 1,
            "anchors": anchors[i],
            "encode_s": rounded(enc_l[i], 5),
            "decode_s": rounded(dec_l[i], 5),
            "encode_anchors_per_s": rounded(anchors[i] / enc_l[i], 1) if enc_l[i] > 0 else None,
            "decode_anchors_per_s": rounded(anchors[i] / dec_l[i], 1) if dec_l[i] > 0 else None,
        }
        for i in range(L)
    ]
    n = sum(anchors)
    return {
        "reps": reps,
        "anchors": n,
        "stream_bytes": len(data),
        "header_encode_s": rounded(_median([t - sum(r) for t, r in zip(enc_total, enc_levels)]), 5),
        "header_decode_s": rounded(_median([t - sum(r) for t, r in zip(dec_total, dec_levels)]), 5),
        "encode_total_s": rounded(_median(enc_total), 5),
        "decode_total_s": rounded(_median(dec_total), 5),
        "encode_anchors_per_s": rounded(n / _median(enc_total), 1),
        "decode_anchors_per_s": rounded(n / _median(dec_total), 1),
        "lods": rows,
        "note": "header_* = median over reps of total minus that rep's per-level times (header, MLP weights, hash grid, setup)",
    }


def _symbols(ws: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """The reference model's quantized attribute residuals and their scale bins, as the encoder
    computes them."""
    from progs.codec.header import coding_model
    from progs.codec.levels import attribute_symbols
    from progs.train.run import load_run_model

    model, _ = load_run_model(ws.get("full").run)
    res, bins = [], []
    for lv in attribute_symbols(coding_model(model)):
        res.append(lv.residuals.to(torch.int64).numpy().reshape(-1))
        bins.append(lv.params.bins.numpy().reshape(-1))
    return np.concatenate(res), np.concatenate(bins)


def coder_throughput(ws: Workspace, reps: int) -> dict[str, Any]:
    """Symbols/s of ``progs.codec.attributes`` (tabulated models grouped by scale bin) vs
    constriction's RangeEncoder/RangeDecoder with a per-symbol QuantizedGaussian of the same
    deviations on the same residuals (best of ``reps``)."""
    import constriction

    from progs.codec.attributes import decode_symbols, encode_symbols
    from progs.codec.bytes import ByteReader, ByteWriter
    from progs.model.context import SCALE_BINS

    sym, bins = _symbols(ws)
    n = int(sym.size)
    r = max(1, int(np.abs(sym).max()))
    best: dict[str, float] = {}

    def timed(name: str, fn) -> Any:
        t0 = time.perf_counter()
        out = fn()
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
        return out

    for _ in range(max(1, reps)):
        w = ByteWriter()
        timed("ours_encode", lambda: encode_symbols(w, sym, bins))
        payload = w.getvalue()
        dec = timed("ours_decode", lambda: decode_symbols(ByteReader(memoryview(payload), "bench"), bins))
        assert np.array_equal(dec.reshape(-1), sym)
        s32, m64, d64 = sym.astype(np.int32), np.zeros(n), SCALE_BINS.numpy()[bins]
        model = constriction.stream.model.QuantizedGaussian(-r, r)

        def raw_encode():
            e = constriction.stream.queue.RangeEncoder()
            e.encode(s32, model, m64, d64)
            return e.get_compressed()

        words = timed("constriction_encode", raw_encode)
        timed("constriction_decode", lambda: constriction.stream.queue.RangeDecoder(words).decode(model, m64, d64))
    rate = {k: n / v for k, v in best.items()}
    return {
        "symbols": n,
        "bytes": len(payload),
        "constriction_bytes": int(words.size * 4),
        "reps": reps,
        "ours_encode_symbols_per_s": rounded(rate["ours_encode"], 1),
        "ours_decode_symbols_per_s": rounded(rate["ours_decode"], 1),
        "constriction_encode_symbols_per_s": rounded(rate["constriction_encode"], 1),
        "constriction_decode_symbols_per_s": rounded(rate["constriction_decode"], 1),
        "encode_ratio": rounded(rate["ours_encode"] / rate["constriction_encode"], 3),
        "decode_ratio": rounded(rate["ours_decode"] / rate["constriction_decode"], 3),
        "note": "ratio = ours / constriction per-symbol QuantizedGaussian on the same residuals and deviations "
        "(> 1: our tabulated, bin-grouped coding is faster than the raw per-symbol coder)",
    }


@torch.no_grad()
def render_fps(ws: Workspace, size: int, reps: int) -> dict[str, Any]:
    """Inference render (generator + rasterizer) FPS per LoD of the decoded stream at size x size."""
    from progs.codec.stream import decode

    d = decode(ws.get("full").encode.data)
    model = d.model
    model.eval()
    bg = d.background if d.background is not None else ws.scene.background
    first = ws.scene.first_camera()
    assert first is not None, "a bench workspace's scene has views"
    cam = first.resized(size, size)
    out: dict[str, Any] = {"width": size, "height": size, "reps": reps}

    def bench(device: str) -> list[dict[str, Any]]:
        rows = []
        m = model.to(device)
        b = bg.to(device)
        for lod in range(1, model.num_levels + 1):
            m.render(cam, lod, b)  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            ts = []
            for _ in range(max(1, reps)):
                t0 = time.perf_counter()
                m.render(cam, lod, b)
                if device == "cuda":
                    torch.cuda.synchronize()
                ts.append(time.perf_counter() - t0)
            s = _median(ts)
            rows.append(
                {
                    "lod": lod,
                    "anchors": int((model.anchors.levels <= lod).sum()),
                    "seconds": rounded(s, 5),
                    "fps": rounded(1.0 / s, 2),
                }
            )
        return rows

    out["cpu"] = bench("cpu")
    if torch.cuda.is_available():
        out["gpu"] = {"device": torch.cuda.get_device_name(0), "lods": bench("cuda")}
        model.to("cpu")
    else:
        out["gpu"] = {"skipped": f"CUDA not available (torch {torch.__version__})"}
    return out


def raster_rows(ws: Workspace, out: Path) -> list[dict[str, Any]]:
    """CPU rasterizer forward/backward (``bench_raster``); tiny profile: one in-process small scene."""
    from progs.bench import raster_runs as bench_raster

    if "raster_quick" in ws.cache:
        return ws.cache["raster_quick"]
    if ws.cfg.tiny:
        rows = []
        for backend in ("reference", "cpu"):
            r = bench_raster._measure(300, 32, 32, backend, 1)
            rows.append({"gaussians": 300, "width": 32, "height": 32, "backend": backend, **r})
    else:
        rows = bench_raster.run_raster_bench(out / "raster", quick=True)
    ws.cache["raster_quick"] = rows
    return rows


def run(ws: Workspace, out: Path) -> dict[str, Any]:
    p = ws.cfg.profile
    return {
        "coding": coding_table(ws, p.coder_reps),
        "entropy_coder": coder_throughput(ws, p.coder_reps),
        "render": render_fps(ws, p.render_size, p.render_reps),
        "rasterizer": raster_rows(ws, out),
    }


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def markdown(res: dict[str, Any]) -> list[str]:
    c, e, r = res["coding"], res["entropy_coder"], res["render"]
    head = "| | Header | " + " | ".join(f"LoD {x['lod']}" for x in c["lods"]) + " |"
    lines = [
        head,
        "|---" * (2 + len(c["lods"])) + "|",
        f"| Enc (s) | {c['header_encode_s']} | " + " | ".join(str(x["encode_s"]) for x in c["lods"]) + " |",
        f"| Dec (s) | {c['header_decode_s']} | " + " | ".join(str(x["decode_s"]) for x in c["lods"]) + " |",
        "| anchors | | " + " | ".join(str(x["anchors"]) for x in c["lods"]) + " |",
        f"| FPS (CPU {r['width']}²) | | " + " | ".join(str(x["fps"]) for x in r["cpu"]) + " |",
        "",
        f"Whole stream: encode {c['encode_total_s']} s ({c['encode_anchors_per_s']} anchors/s), "
        f"decode {c['decode_total_s']} s ({c['decode_anchors_per_s']} anchors/s).",
        f"Entropy coder on {e['symbols']} symbols: ours {e['ours_encode_symbols_per_s']:.3g} / "
        f"{e['ours_decode_symbols_per_s']:.3g} symbols/s (enc/dec), constriction raw "
        f"{e['constriction_encode_symbols_per_s']:.3g} / {e['constriction_decode_symbols_per_s']:.3g}: "
        f"ratio {e['encode_ratio']} / {e['decode_ratio']}.",
        f"GPU render: {r['gpu'].get('skipped') or r['gpu'].get('device')}.",
        "",
        "| rasterizer | Gaussians | size | fwd s | fwd+bwd s | peak MB |",
        "|---|---|---|---|---|---|",
    ]
    for x in res["rasterizer"]:
        lines.append(
            f"| {x['backend']} | {x['gaussians']} | {x['width']}x{x['height']} | {_num(x.get('fwd_s'))} | "
            f"{_num(x.get('fwd_bwd_s'))} | {x.get('peak_mb')} |"
        )
    return lines
