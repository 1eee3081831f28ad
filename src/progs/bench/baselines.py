"""Suite ``baselines``: plain 3DGS (uncompressed INRIA PLY, zstd, SPZ) and progs' single-rate mode,
against the progressive ProGS stream on the same scene and test views."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from progs.bench.baseline_3dgs import Fit3DGSConfig, describe, fit_3dgs, write_baseline_ply
from progs.bench.common import pyplot, rounded, save_figure
from progs.bench.workspace import Workspace

ZSTD_LEVEL = 19
# Bytes per Gaussian of a standard degree-3 INRIA PLY (62 float32 properties incl. normals; the
# data part only): what the same Gaussians would take in the usual 3DGS output.
PLY_SH3_BYTES_PER_GAUSSIAN = 62 * 4
SPZ_REASON = (
    "the only PyPI package, spz 0.0.1 (a single sdist release of a Rust extension), does not install "
    "here: building it needs crates.io, which is unreachable; no maintained pure-Python SPZ writer exists"
)


def zstd_size(path: Path, level: int = ZSTD_LEVEL) -> dict[str, Any]:
    import zstandard

    data = path.read_bytes()
    comp = zstandard.ZstdCompressor(level=level).compress(data)
    out = path.with_name(path.name + ".zst")
    out.write_bytes(comp)
    return {"bytes": len(comp), "level": level, "file": out.name,
            "zstandard": importlib.metadata.version("zstandard")}


def spz_status() -> dict[str, Any]:
    try:
        import spz  # noqa: F401
    except ImportError as exc:
        return {"available": False, "reason": f"{SPZ_REASON} (import spz: {exc})"}
    return {"available": False, "reason": "an spz module is importable but its writer API is not supported by progs bench"}


def plot_baselines(res: dict[str, Any], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    prog = res["progressive"]
    ax.plot([r["cumulative_bytes"] / 1024 for r in prog["lods"]], [r["psnr"] for r in prog["lods"]], "-o",
            label=f"ProGS progressive (λe={prog['lambda_e']:g})", markersize=4)
    for r in prog["lods"]:
        ax.annotate(f"LoD{r['lod']}", (r["cumulative_bytes"] / 1024, r["psnr"]), fontsize=6,
                    textcoords="offset points", xytext=(3, -8))
    sr = res["single_rate"]
    ax.plot([sr["bytes"] / 1024], [sr["psnr"]], "s", label="ProGS single-rate (no c2f, no InfoNCE)")
    g = res["3dgs"]
    ax.plot([g["ply_bytes"] / 1024], [g["psnr"]], "^", label="3DGS PLY (SH0)")
    ax.plot([g["zstd"]["bytes"] / 1024], [g["psnr"]], "v", label=f"3DGS PLY + zstd -{g['zstd']['level']}")
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
    fit = fit_3dgs(ws.scene, Fit3DGSConfig(iterations=cfg.profile.fit_iterations, seed=cfg.seed))
    ply = out / "baseline_3dgs.ply"
    ply_bytes = write_baseline_ply(fit, ply)
    g = describe(fit)
    g.update({"ply_bytes": ply_bytes, "ply_file": ply.name, "sh_degree": 0,
              "ply_sh3_equivalent_bytes": len(fit.cloud) * PLY_SH3_BYTES_PER_GAUSSIAN,
              "zstd": zstd_size(ply)})
    g["zstd"]["ratio_vs_ply"] = rounded(g["zstd"]["bytes"] / ply_bytes)

    full = ws.get("full")
    single = ws.get("single_rate")
    L = full.lods[-1]
    S = single.lods[-1]
    progressive = {"lambda_e": full.lambda_e, "total_bytes": full.total_bytes, "lods": full.lods}
    single_rate = {"lambda_e": single.lambda_e, "bytes": single.total_bytes, "psnr": S["psnr"], "ssim": S["ssim"],
                   "anchors": S["anchors"], "lods": single.lods}
    headline = {
        "progs_bytes": full.total_bytes, "progs_psnr": L["psnr"],
        "ply_bytes": ply_bytes, "ply_psnr": fit.psnr,
        "size_ratio_vs_ply": rounded(full.total_bytes / ply_bytes, 5),
        "compression_factor_vs_ply": rounded(ply_bytes / full.total_bytes, 2),
        "size_ratio_vs_ply_zstd": rounded(full.total_bytes / g["zstd"]["bytes"], 5),
        "psnr_gap_db": rounded(L["psnr"] - fit.psnr, 3),
        "matched_psnr": abs(L["psnr"] - fit.psnr) <= 0.5,
        "lod1_size_ratio_vs_ply": rounded(full.lods[0]["cumulative_bytes"] / ply_bytes, 6),
    }
    overhead = {
        "progressive_bytes": full.total_bytes, "single_rate_bytes": single.total_bytes,
        "ratio": rounded(full.total_bytes / single.total_bytes, 4),
        "progressive_psnr": L["psnr"], "single_rate_psnr": S["psnr"],
        "psnr_delta_db": rounded(L["psnr"] - S["psnr"], 3),
        "note": "progressive = c2f + InfoNCE (full); single-rate = same budget without them; LoD L of each",
    }
    res = {"3dgs": g, "spz": spz_status(), "single_rate": single_rate, "progressive": progressive,
           "progressive_overhead": overhead, "headline": headline, "plot": "baselines.png"}
    plot_baselines(res, out / "baselines.png", f"{ws.dataset_name}: ProGS vs baselines (test views)")
    return res


def markdown(res: dict[str, Any]) -> list[str]:
    g, h, o = res["3dgs"], res["headline"], res["progressive_overhead"]
    return [
        "| method | bytes | PSNR | SSIM |", "|---|---|---|---|",
        f"| 3DGS PLY (SH0, {g['gaussians']} Gaussians) | {g['ply_bytes']} | {g['psnr']:.2f} | {g['ssim']:.4f} |",
        f"| 3DGS PLY + zstd -{g['zstd']['level']} | {g['zstd']['bytes']} | {g['psnr']:.2f} | {g['ssim']:.4f} |",
        "| SPZ | unavailable | | |",
        f"| ProGS single-rate | {o['single_rate_bytes']} | {o['single_rate_psnr']:.2f} | {res['single_rate']['ssim']:.4f} |",
        f"| ProGS progressive (all LoDs) | {o['progressive_bytes']} | {o['progressive_psnr']:.2f} | "
        f"{res['progressive']['lods'][-1]['ssim']:.4f} |",
        "",
        f"Headline: progs / 3DGS PLY size = **{h['size_ratio_vs_ply']}** ({h['compression_factor_vs_ply']}x smaller; "
        f"PSNR {h['progs_psnr']:.2f} vs {h['ply_psnr']:.2f} dB, gap {h['psnr_gap_db']} dB"
        f"{'' if h['matched_psnr'] else ', not matched: reported'}). "
        f"Progressive overhead (progressive / single-rate bytes at LoD L) = **{o['ratio']}** "
        f"(PSNR {o['progressive_psnr']:.2f} vs {o['single_rate_psnr']:.2f} dB).",
        f"SPZ: {res['spz']['reason']}.",
    ]
