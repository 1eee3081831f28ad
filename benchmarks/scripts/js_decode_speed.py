"""The JavaScript decoder (web/) against the Python decoder, same streams, same machine, same run.

    python benchmarks/scripts/js_decode_speed.py [--demo-run RUN] [--rounds 3] [--reps 5] [--out benchmarks/results/js_decode]

Streams: the GPU-trained fox (benchmarks/results/gpu, 33,933 anchors, hidden-Gaussian mask), the demo
stream of RUN (encoded here, if given), and a seeded 100k-anchor synthetic model (above the encoder's
mask limit: every offset coded). Per stream and decoder: the whole decode (best of ``--rounds`` ×
``--reps``, the decoders taking turns, and the first, cold, run), anchors per second, and the
milliseconds from the header's bytes to LoD 1's anchors.
Python runs with one torch thread and with two (this machine's default); JavaScript with one thread
(StreamDecoder) and with two (ParallelStreamDecoder: the context model on a worker thread), each in a
fresh Node process, its WebAssembly kernels on (the default); the load average before and after goes into
the JSON, as other processes on a shared machine move both decoders' times. Writes ``OUT.json`` and
``OUT.png``.
Needs ``npm run build`` in web/ first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))


def _python(data: bytes, reps: int, threads: int) -> dict:
    from progs.codec.stream import decode

    torch.set_num_threads(threads)
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = decode(data)
        total = time.perf_counter() - t0
        runs.append({"seconds": total, "header_to_lod1_ms": None, "lod_seconds": [s.seconds for s in r.lods]})
        # LoD 1 alone, from the header's bytes (the same decoder, stopped after one chunk)
        t0 = time.perf_counter()
        decode(data, max_lod=1)
        runs[-1]["header_to_lod1_ms"] = 1000 * (time.perf_counter() - t0)
    return {"threads": threads, "runs": runs}


def _js(path: Path, reps: int, threads: int = 1) -> dict:
    out = subprocess.run(
        ["node", str(REPO / "web" / "bench" / "decode.mjs"), str(path), "--reps", str(reps), "--threads", str(threads)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def _summary(runs: list[dict], anchors: int) -> dict:
    best = min(r["seconds"] for r in runs)
    return {
        "best_s": round(best, 4),
        "cold_s": round(runs[0]["seconds"], 4),
        "anchors_per_s": round(anchors / best),
        "header_to_lod1_ms_best": round(min(r["header_to_lod1_ms"] for r in runs), 2),
        "header_to_lod1_ms_cold": round(runs[0]["header_to_lod1_ms"], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--demo-run", type=Path)
    ap.add_argument("--reps", type=int, default=5, help="decodes per round and decoder")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all three decoders, interleaved")
    ap.add_argument("--synthetic-anchors", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "js_decode")
    args = ap.parse_args()
    from conformance_fixtures import _model
    from progs.codec.stream import encode

    tmp = Path(tempfile.mkdtemp())
    streams = {"fox_h200": REPO / "benchmarks" / "results" / "gpu" / "h200_fox_6400.progs"}
    if args.demo_run:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "progs.cli",
                "encode",
                str(args.demo_run),
                "--out",
                str(tmp / "demo.progs"),
                "--no-eval",
            ],
            check=True,
        )
        streams["demo"] = tmp / "demo.progs"
    model = _model(n_points=args.synthetic_anchors // 4, levels=4, base_depth=6, seed=7, correlated=True, hide=False)
    res = encode(model, torch.tensor([0.1, 0.2, 0.3]))
    (tmp / "synthetic.progs").write_bytes(res.data)
    streams[f"synthetic_{len(model.anchors)}"] = tmp / "synthetic.progs"
    results = {}
    load_before = os.getloadavg()
    for name, path in streams.items():
        data = path.read_bytes()
        # rounds of JS, Python 1 thread, Python 2 threads, one after another: a shared machine's slow
        # spells then fall on all three alike (best of all rounds; "cold" is each one's first run)
        js_runs, py_runs = {1: [], 2: []}, {1: [], 2: []}
        for _ in range(args.rounds):
            for threads in (1, 2):
                js = _js(path, args.reps, threads)
                js_runs[threads] += js["runs"]
            for threads in (1, 2):
                py_runs[threads] += _python(data, args.reps, threads)["runs"]
        anchors = sum(js["anchors"])
        entry = {
            "bytes": len(data),
            "anchors": anchors,
            "anchors_per_lod": js["anchors"],
            "javascript": {"node": js["node"], "wasm": js.get("wasm"), **_summary(js_runs[1], anchors)},
            "javascript_2_threads": {"node": js["node"], "wasm": js.get("wasm"), **_summary(js_runs[2], anchors)},
        }
        for threads in (1, 2):
            entry[f"python_{threads}_thread{'s' if threads > 1 else ''}"] = _summary(py_runs[threads], anchors)
        for js_key, tag in (("javascript", "js"), ("javascript_2_threads", "js_2_threads")):
            for py_key, py_tag in (("python_1_thread", "python_1_thread"), ("python_2_threads", "python_2_threads")):
                entry[f"{tag}_over_{py_tag}"] = round(
                    entry[js_key]["anchors_per_s"] / entry[py_key]["anchors_per_s"], 3
                )
        results[name] = entry
        print(name, json.dumps(entry), flush=True)
    out = {
        "command": "python benchmarks/scripts/js_decode_speed.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} cores",
        "note": "JS: StreamDecoder on one thread and ParallelStreamDecoder on two (the context model on a worker "
        "thread), WebAssembly SIMD kernels; Python: torch threads as named; "
        f"best of {args.rounds} rounds x {args.reps} decodes, the decoders taking turns; cold = the first run",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "streams": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1))
    _plot(results, args.out.with_suffix(".png"))
    return 0


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    keys = [
        ("javascript", "JavaScript (1 thread)"),
        ("javascript_2_threads", "JavaScript (2 threads)"),
        ("python_1_thread", "Python (1 thread)"),
        ("python_2_threads", "Python (2 threads)"),
    ]
    fig, ax = plt.subplots(figsize=(7.5, 3.5))
    width = 0.2
    for i, (key, label) in enumerate(keys):
        ax.bar(
            [j + (i - 1.5) * width for j in range(len(names))],
            [results[n][key]["anchors_per_s"] for n in names],
            width,
            label=label,
        )
    ax.set_xticks(range(len(names)), [f"{n}\n{results[n]['anchors']:,} anchors" for n in names])
    ax.set_ylabel("anchors decoded per second")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
