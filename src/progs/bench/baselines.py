"""Suite ``baselines``: plain 3DGS (uncompressed INRIA PLY, zstd, SPZ) and progs' single-rate mode,
against the progressive ProGS stream on the same scene and test views."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from progs.bench.baseline_3dgs import Fit3DGSConfig, describe, fit_3dgs, write_baseline_ply
from progs.bench.common import bd_rate, pyplot, rounded, save_figure
from progs.bench.workspace import Workspace
from progs.errors import optional_import

ZSTD_LEVEL = 19
# Bytes per Gaussian of a standard degree-3 INRIA PLY (62 float32 properties incl. normals; the
# data part only): what the same Gaussians would take in the usual 3DGS output.
PLY_SH3_BYTES_PER_GAUSSIAN = 62 * 4


def zstd_size(path: Path, level: int = ZSTD_LEVEL) -> dict[str, Any]:
    zstandard = optional_import("zstandard", "bench", "the zstd baseline")

    data = path.read_bytes()
    comp = zstandard.ZstdCompressor(level=level).compress(data)
    out = path.with_name(path.name + ".zst")
    out.write_bytes(comp)
    return {"bytes": len(comp), "level": level, "file": out.name, "zstandard": importlib.metadata.version("zstandard")}


def spz_curve(ws: Workspace, out: Path) -> list[dict[str, Any]]:
    """Plain 3DGS fits capped at the profile's model sizes, trained for as many iterations as progs (or
    ``--fit-iterations``), each written as PLY, PLY + zstd and SPZ (through gsply); PSNR of each as its file decodes (the SPZ
    is read back, so its quantization counts). Computed once per workspace."""
    if "spz_curve" in ws.cache:
        return ws.cache["spz_curve"]
    from progs.bench.baseline_3dgs import spz_quality

    cfg = ws.cfg
    rows = []
    for cap in cfg.profile.fit_caps:
        ws.log(f"  fitting plain 3DGS capped at {cap} Gaussians ({cfg.spz_fit_iterations()} iterations)")
        fit = fit_3dgs(
            ws.scene, Fit3DGSConfig(iterations=cfg.spz_fit_iterations(), seed=cfg.seed, max_gaussians=cap), cfg.device
        )
        ply = out / f"fit_{cap}.ply"
        ply_bytes = write_baseline_ply(fit, ply)
        spz_bytes, spz_psnr, spz_ssim = spz_quality(
            fit.cloud,
            out / f"fit_{cap}.spz",
            ws.scene.test_views or ws.scene.train_views,
            ws.scene.background.float(),
            cfg.device,
        )
        rows.append(
            {
                "cap": cap,
                "gaussians": len(fit.cloud),
                "psnr_ply": fit.psnr,
                "ply_bytes": ply_bytes,
                "zstd_bytes": zstd_size(ply)["bytes"],
                "bytes": spz_bytes,
                "psnr": spz_psnr,
                "ssim": spz_ssim,
                "iterations": fit.iterations,
                "train_seconds": round(fit.seconds, 2),
            }
        )
    ws.cache["spz_curve"] = rows
    return rows


def bd_rate_vs_spz(ws: Workspace, out: Path) -> dict[str, Any]:
    """BD-rate of progs (LoD L of each λe) against the SPZ curve of plain 3DGS fits."""
    spz = spz_curve(ws, out)
    progs_pts = [
        (ws.get("full", lam).total_bytes, ws.get("full", lam).lods[-1]["psnr"]) for lam in ws.cfg.profile.lambdas
    ]
    value = bd_rate([(r["bytes"], r["psnr"]) for r in spz], progs_pts)
    return {
        "bd_rate_percent": None if value is None else rounded(value, 2),
        "progs_points": [{"bytes": b, "psnr": p} for b, p in progs_pts],
        "spz_points": [
            {"gaussians": r["gaussians"], "bytes": r["bytes"], "psnr": r["psnr"], "iterations": r["iterations"]}
            for r in spz
        ],
        "note": "negative: progs needs fewer bytes than SPZ at equal PSNR; None: the PSNR ranges do not overlap",
    }


def plot_baselines(res: dict[str, Any], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    prog = res["progressive"]
    ax.plot(
        [r["cumulative_bytes"] / 1024 for r in prog["lods"]],
        [r["psnr"] for r in prog["lods"]],
        "-o",
        label=f"ProGS progressive (λe={prog['lambda_e']:g})",
        markersize=4,
    )
    for r in prog["lods"]:
        ax.annotate(
            f"LoD{r['lod']}",
            (r["cumulative_bytes"] / 1024, r["psnr"]),
            fontsize=6,
            textcoords="offset points",
            xytext=(3, -8),
        )
    sr = res["single_rate"]
    ax.plot([sr["bytes"] / 1024], [sr["psnr"]], "s", label="ProGS single-rate (no c2f, no InfoNCE)")
    g = res["3dgs"]
    ax.plot([g["ply_bytes"] / 1024], [g["psnr"]], "^", label="3DGS PLY (SH0)")
    ax.plot([g["zstd"]["bytes"] / 1024], [g["psnr"]], "v", label=f"3DGS PLY + zstd -{g['zstd']['level']}")
    fits = sorted(res["fits"], key=lambda r: r["bytes"])
    ax.plot(
        [r["bytes"] / 1024 for r in fits],
        [r["psnr"] for r in fits],
        "-D",
        markersize=4,
        label="3DGS fits (capped sizes) as SPZ",
    )
    ax.plot(
        [r["zstd_bytes"] / 1024 for r in fits],
        [r["psnr_ply"] for r in fits],
        "--x",
        markersize=4,
        label="3DGS fits as PLY + zstd",
    )
    ax.set_xscale("log")
    ax.set_xlabel("bytes (KiB, log)")
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def run(ws: Workspace, out: Path) -> dict[str, Any]:
    cfg = ws.cfg
    ws.log(f"  fitting plain 3DGS ({cfg.profile.fit_iterations} iterations)")
    fit = fit_3dgs(ws.scene, Fit3DGSConfig(iterations=cfg.profile.fit_iterations, seed=cfg.seed), cfg.device)
    ply = out / "baseline_3dgs.ply"
    ply_bytes = write_baseline_ply(fit, ply)
    g = describe(fit)
    g.update(
        {
            "ply_bytes": ply_bytes,
            "ply_file": ply.name,
            "sh_degree": 0,
            "ply_sh3_equivalent_bytes": len(fit.cloud) * PLY_SH3_BYTES_PER_GAUSSIAN,
            "zstd": zstd_size(ply),
        }
    )
    g["zstd"]["ratio_vs_ply"] = rounded(g["zstd"]["bytes"] / ply_bytes)

    full = ws.get("full")
    single = ws.get("single_rate")
    L = full.lods[-1]
    S = single.lods[-1]
    progressive = {"lambda_e": full.lambda_e, "total_bytes": full.total_bytes, "lods": full.lods}
    single_rate = {
        "lambda_e": single.lambda_e,
        "bytes": single.total_bytes,
        "psnr": S["psnr"],
        "ssim": S["ssim"],
        "anchors": S["anchors"],
        "lods": single.lods,
    }
    headline = {
        "progs_bytes": full.total_bytes,
        "progs_psnr": L["psnr"],
        "ply_bytes": ply_bytes,
        "ply_psnr": fit.psnr,
        "size_ratio_vs_ply": rounded(full.total_bytes / ply_bytes, 5),
        "compression_factor_vs_ply": rounded(ply_bytes / full.total_bytes, 2),
        "size_ratio_vs_ply_zstd": rounded(full.total_bytes / g["zstd"]["bytes"], 5),
        "psnr_gap_db": rounded(L["psnr"] - fit.psnr, 3),
        "matched_psnr": abs(L["psnr"] - fit.psnr) <= 0.5,
        "lod1_size_ratio_vs_ply": rounded(full.lods[0]["cumulative_bytes"] / ply_bytes, 6),
    }
    overhead = {
        "progressive_bytes": full.total_bytes,
        "single_rate_bytes": single.total_bytes,
        "ratio": rounded(full.total_bytes / single.total_bytes, 4),
        "progressive_psnr": L["psnr"],
        "single_rate_psnr": S["psnr"],
        "psnr_delta_db": rounded(L["psnr"] - S["psnr"], 3),
        "note": "progressive = c2f + InfoNCE (full); single-rate = same budget without them; LoD L of each",
    }
    spz = spz_curve(ws, out)
    res = {
        "3dgs": g,
        "spz": [{k: r[k] for k in ("gaussians", "bytes", "psnr", "iterations")} for r in spz],
        "fits": spz,
        "bd_rate_vs_spz": bd_rate_vs_spz(ws, out),
        "single_rate": single_rate,
        "progressive": progressive,
        "progressive_overhead": overhead,
        "headline": headline,
        "plot": "baselines.png",
    }
    plot_baselines(res, out / "baselines.png", f"{ws.dataset_name}: ProGS vs baselines (test views)")
    return res


def markdown(res: dict[str, Any]) -> list[str]:
    g, h, o = res["3dgs"], res["headline"], res["progressive_overhead"]
    return [
        "| method | bytes | PSNR | SSIM |",
        "|---|---|---|---|",
        f"| 3DGS PLY (SH0, {g['gaussians']} Gaussians) | {g['ply_bytes']} | {g['psnr']:.2f} | {g['ssim']:.4f} |",
        f"| 3DGS PLY + zstd -{g['zstd']['level']} | {g['zstd']['bytes']} | {g['psnr']:.2f} | {g['ssim']:.4f} |",
        *[
            f"| 3DGS fit ≤ {r['cap']} Gaussians as SPZ ({r['gaussians']}) | {r['bytes']} | {r['psnr']:.2f} | {r['ssim']:.4f} |"
            for r in res["fits"]
        ],
        f"| ProGS single-rate | {o['single_rate_bytes']} | {o['single_rate_psnr']:.2f} | {res['single_rate']['ssim']:.4f} |",
        f"| ProGS progressive (all LoDs) | {o['progressive_bytes']} | {o['progressive_psnr']:.2f} | "
        f"{res['progressive']['lods'][-1]['ssim']:.4f} |",
        "",
        f"Headline: progs / 3DGS PLY size = **{h['size_ratio_vs_ply']}** ({h['compression_factor_vs_ply']}x smaller; "
        f"PSNR {h['progs_psnr']:.2f} vs {h['ply_psnr']:.2f} dB, gap {h['psnr_gap_db']} dB"
        f"{'' if h['matched_psnr'] else ', not matched: reported'}). "
        f"Progressive overhead (progressive / single-rate bytes at LoD L) = **{o['ratio']}** "
        f"(PSNR {o['progressive_psnr']:.2f} vs {o['single_rate_psnr']:.2f} dB).",
        f"BD-rate of progs (LoD L over the λe sweep) vs the SPZ curve: **{res['bd_rate_vs_spz']['bd_rate_percent']}** % "
        "(negative = progs smaller at equal PSNR).",
    ]
