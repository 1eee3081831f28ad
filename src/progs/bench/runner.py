"""Runs the selected benchmark suites and writes ``results.json`` (every figure), one PNG plot per
suite and ``summary.md`` (machine, command line, tables) into the output folder.

Suites share one scene and train each ProGS variant at most once (:class:`Workspace`). A failing suite
is recorded (``results.json`` ``suites.NAME.error``) and the others still run; ``results.json`` is
rewritten after every suite, so a long run leaves partial results behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch

from progs.device import CPU
from progs.errors import ProgsError
from progs.bench import ablation, baselines, bitstream, fit, raster, rd, scaling, speed
from progs.bench.common import TINY_ENV, BenchConfig, machine_info, profile_for, write_json
from progs.bench.workspace import Workspace

SUITES: dict[str, ModuleType] = {
    "rd": rd,
    "baselines": baselines,
    "bitstream": bitstream,
    "speed": speed,
    "scaling": scaling,
    "ablation": ablation,
    "raster": raster,
    "fit": fit,
}
NEEDS_SCENE = {"rd", "baselines", "bitstream", "speed", "ablation", "fit"}


def parse_suites(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names or "all" in names:
        return list(SUITES)
    bad = [n for n in names if n not in SUITES]
    if bad:
        raise ProgsError(f"unknown bench suite(s) {', '.join(bad)} (choose from {', '.join(SUITES)} or all)")
    return [n for n in SUITES if n in names]


class _NoScene:
    """Stands in for the workspace of suites that need no trained model (scaling, raster)."""

    def __init__(self, cfg: BenchConfig, log: Callable[[str], None]):
        self.cfg, self.log, self.cache = cfg, log, {}


def write_summary(path: Path, results: dict[str, Any]) -> None:
    m = results["machine"]
    lines = [
        "# progs bench",
        "",
        f"Command: `{results['command']}`  ",
        f"Date: {m['date']}  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']} "
        f"({m['torch_threads']} threads, OMP_NUM_THREADS={m['omp_num_threads']}), GPU: {m['cuda'] or 'none'}  ",
        f"Profile: {results['profile']['name']}; wall time {results['wall_seconds']:.0f} s  ",
    ]
    if results.get("dataset"):
        d = results["dataset"]
        lines.append(
            f"Dataset: {d['name']} ({d['train_views']} train / {d['test_views']} test views, "
            f"{d['width']}x{d['height']}), {d['iterations']} training iterations per model"
        )
    key = results.get("key_numbers") or {}
    if key:
        lines += ["", "## Key numbers", ""] + [f"- {k}: {v}" for k, v in key.items()]
    for name, res in results["suites"].items():
        lines += ["", f"## {name}", ""]
        if "error" in res:
            lines.append(f"FAILED: {res['error']}")
            continue
        if res.get("command") and res["command"] != results["command"]:
            lines += [
                f"Kept from an earlier run into this folder: `{res['command']}` ({res.get('date', 'date unknown')})",
                "",
            ]
        if res.get("plot"):
            lines += [f"![{name}]({res['plot']})", ""]
        try:
            lines += SUITES[name].markdown(res)
        except (KeyError, TypeError, ValueError) as exc:
            lines.append(f"(table unavailable: {type(exc).__name__}: {exc})")
        lines.append(f"\n({res['seconds']:.0f} s)")
    path.write_text("\n".join(lines) + "\n")


def key_numbers(results: dict[str, Any]) -> dict[str, Any]:
    s = results["suites"]
    out: dict[str, Any] = {}
    b = s.get("baselines", {})
    if "headline" in b:
        h, o = b["headline"], b["progressive_overhead"]
        out["progs / 3DGS PLY size"] = (
            f"{h['size_ratio_vs_ply']} (PSNR {h['progs_psnr']:.2f} vs {h['ply_psnr']:.2f} dB)"
        )
        out["progressive overhead (bytes ratio at LoD L)"] = (
            f"{o['ratio']} (PSNR {o['progressive_psnr']:.2f} vs single-rate {o['single_rate_psnr']:.2f} dB)"
        )
    sp = s.get("speed", {})
    if "coding" in sp:
        out["decode anchors/s (trained scene)"] = sp["coding"]["decode_anchors_per_s"]
        out["entropy coder ratio vs constriction (enc/dec)"] = (
            f"{sp['entropy_coder']['encode_ratio']} / {sp['entropy_coder']['decode_ratio']}"
        )
    sc = s.get("scaling", {})
    if "exponents" in sc:
        out["scaling exponent (encode / decode time)"] = (
            f"{sc['exponents']['encode_s']} / {sc['exponents']['decode_s']}"
        )
        lg = sc["largest"]
        out[f"decode of {lg['anchors']} synthetic anchors"] = (
            f"{lg['decode_s']} s, {lg['decode_anchors_per_s']:.0f} anchors/s, peak {lg['decode_peak_mb']:.0f} MiB"
        )
    return out


def carried_suites(
    path: Path, names: list[str], dataset: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """``(suites, variants, dataset)`` of an earlier ``results.json`` at ``path`` that this run keeps:
    every suite it does not run again (so that benching one suite into a folder does not drop the
    others), each with the command that produced it, and the dataset they measured. Suites that need a
    scene are kept only if they measured the same dataset (``dataset``: this run's, None when it needs
    none); failed suites are dropped."""
    try:
        prev = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, {}, None
    if not isinstance(prev, dict) or not isinstance(prev.get("suites"), dict):
        return {}, {}, None
    prev_ds = prev.get("dataset") if isinstance(prev.get("dataset"), dict) else None
    same_scene = prev_ds is not None and (dataset is None or prev_ds.get("spec") == dataset.get("spec"))
    kept = {}
    for name, res in prev["suites"].items():
        if name in names or name not in SUITES or not isinstance(res, dict) or "error" in res:
            continue
        if name in NEEDS_SCENE and not same_scene:
            continue
        kept[name] = {
            **res,
            "command": res.get("command", prev.get("command")),
            "date": res.get("date", (prev.get("machine") or {}).get("date")),
        }
    variants = prev.get("variants") if same_scene and isinstance(prev.get("variants"), dict) else {}
    return kept, variants, prev_ds


def command_line(
    suites: str,
    quick: bool,
    out: Path,
    dataset: str,
    downscale: float,
    iterations: int | None,
    seed: int,
    device: torch.device = CPU,
    lambdas: tuple[float, ...] | None = None,
    fit_iterations: int | None = None,
) -> str:
    """The ``progs bench`` invocation equivalent to these arguments, with the environment that matters."""
    env = [f"{k}={os.environ[k]}" for k in (TINY_ENV, "OMP_NUM_THREADS") if os.environ.get(k)]
    args = ["progs", "bench", "--suite", suites] + (["--quick"] if quick else []) + ["--out", str(out)]
    args += ["--dataset", dataset] + (["--downscale", f"{downscale:g}"] if dataset != "demo" else [])
    args += (["--iterations", str(iterations)] if iterations is not None else []) + (
        ["--seed", str(seed)] if seed else []
    )
    args += ["--device", str(device)] if device.type != "cpu" else []
    args += ["--lambdas", ",".join(f"{x:g}" for x in lambdas)] if lambdas else []
    args += ["--fit-iterations", str(fit_iterations)] if fit_iterations is not None else []
    return " ".join(env + [shlex.quote(a) for a in args])


def run_bench(
    suites: str = "all",
    *,
    quick: bool = False,
    out: str | Path = "benchmarks/results",
    dataset: str = "demo",
    downscale: float = 8.0,
    iterations: int | None = None,
    seed: int = 0,
    command: str | None = None,
    log: Callable[[str], None] = print,
    device: torch.device = CPU,
    lambdas: tuple[float, ...] | None = None,
    fit_iterations: int | None = None,
) -> dict[str, Any]:
    """Run the suites (comma-separated names or ``all``); returns the results written to ``results.json``.

    ``device`` is where the ProGS variants and the plain-3DGS baselines train and are evaluated; coding
    and the speed, scaling and raster suites run on the CPU. ``lambdas`` replaces the profile's λe
    sweep of the rd suite (the other suites' reference model stays λe = 2e-3). ``fit_iterations`` trains
    the plain 3DGS fits of the SPZ curve for that many iterations instead of as many as progs."""
    names = parse_suites(suites)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile = profile_for(quick)
    if lambdas:
        if any(not (x > 0) for x in lambdas):
            raise ProgsError(f"--lambdas: every λe must be positive, got {list(lambdas)}")
        profile = dataclasses.replace(profile, lambdas=tuple(sorted(float(x) for x in lambdas)))
    if fit_iterations is not None and fit_iterations < 1:
        raise ProgsError(f"--fit-iterations must be >= 1, got {fit_iterations}")
    cfg = BenchConfig(
        out=out,
        profile=profile,
        dataset=dataset,
        downscale=downscale,
        iterations=iterations,
        seed=seed,
        device=device,
        fit_iterations=fit_iterations,
    )
    cfg.command = command or command_line(
        suites, quick, out, dataset, downscale, iterations, seed, device, lambdas, fit_iterations
    )
    t_all = time.perf_counter()
    results: dict[str, Any] = {
        "command": cfg.command,
        "machine": machine_info(),
        "suites_requested": names,
        "profile": {**cfg.profile.__dict__, "lambdas": list(cfg.profile.lambdas)},
        "dataset": None,
        "suites": {},
        "variants": {},
        "wall_seconds": 0.0,
    }
    ws: Workspace | _NoScene
    if NEEDS_SCENE & set(names):
        ws = Workspace(cfg, log)
        results["dataset"] = ws.describe()
        log(
            f"bench: {ws.dataset_name} scene, {cfg.profile.name} profile, {cfg.train_iterations()} iterations per model"
        )
    else:
        ws = _NoScene(cfg, log)
    kept, kept_variants, kept_dataset = carried_suites(out / "results.json", names, results["dataset"])
    if kept:
        log(f"bench: keeping {', '.join(kept)} from the earlier results.json in {out}")
        if results["dataset"] is None and any(n in NEEDS_SCENE for n in kept):
            results["dataset"] = kept_dataset
    results["suites_kept"] = list(kept)
    results["suites"], results["variants"] = dict(kept), dict(kept_variants)
    failed = []
    for name in names:
        log(f"[{name}]")
        t0 = time.perf_counter()
        try:
            res = SUITES[name].run(ws, out)
        except Exception as exc:  # record and go on: one broken suite must not lose the others
            failed.append(name)
            res = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            log(f"  {name} FAILED: {type(exc).__name__}: {exc}")
        res["seconds"] = round(time.perf_counter() - t0, 2)
        res["command"], res["date"] = cfg.command, results["machine"]["date"]
        results["suites"][name] = res
        results["suites"] = {n: results["suites"][n] for n in SUITES if n in results["suites"]}  # in suite order
        if isinstance(ws, Workspace):
            results["variants"].update({f"{t.name}@{t.lambda_e:g}": t.summary() for t in ws.trained()})
        results["wall_seconds"] = round(time.perf_counter() - t_all, 2)
        results["key_numbers"] = key_numbers(results)
        write_json(out / "results.json", results)
        write_summary(out / "summary.md", results)
    log(f"bench: wrote {out / 'results.json'} and {out / 'summary.md'} in {results['wall_seconds']:.0f} s")
    for k, v in results["key_numbers"].items():
        log(f"  {k}: {v}")
    if failed:
        raise ProgsError(f"bench suite(s) failed: {', '.join(failed)} (see {out / 'results.json'})")
    return results
