"""scripts/gpu_check.py in its --smoke mode on the CPU, so the GPU check cannot rot between GPU runs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import pytest

from progs.errors import ProgsError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_check_smoke_runs_on_cpu(tmp_path: Path) -> None:
    gpu_check = _load_script()
    lines: list[str] = []
    out = tmp_path / "out" / "gpu_check.json"
    stream = tmp_path / "out" / "fox.progs"
    report = gpu_check.main(
        [
            "--smoke",
            "--device",
            "cpu",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(out),
            "--train-seconds",
            "1",
            "--stream-out",
            str(stream),
        ],
        log=lines.append,
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["smoke"] and report["machine"]["device"] == "cpu"

    fox = report["fox"]
    probe = fox["probe"]
    assert probe["iterations_per_s"] > 0 and probe["steps"] == 4 and probe["iterations"] == 8  # the cap
    assert hashlib.sha256(stream.read_bytes()).hexdigest() == fox["stream_sha256"]
    assert fox["iterations"] == 8 and fox["iterations_per_s"] > 0 and fox["peak_rss_gib"] > 0
    lods = fox["lods"]
    assert [r["lod"] for r in lods] == [1, 2, 3]
    assert all(a["anchors"] < b["anchors"] for a, b in zip(lods, lods[1:]))
    assert lods[0]["cumulative_bytes"] == fox["header_bytes"] + lods[0]["chunk_bytes"]
    assert lods[-1]["cumulative_bytes"] == fox["total_bytes"]
    assert all(math.isfinite(r["psnr_prefix"]) and r["psnr_prefix"] > 5 for r in lods)
    # The full stream decodes to the model the checkpoint evaluation measured as decoded.
    assert lods[-1]["psnr_prefix"] == pytest.approx(lods[-1]["psnr_checkpoint"], abs=1e-3)

    # SPZ of plain 3DGS fits of the same scene, and the BD-rate of the stream's prefixes against them
    spz = report["spz"]
    assert [r["cap"] for r in spz["fits"]] == [200, 400] and not spz["skipped_caps"]
    assert all(0 < r["gaussians"] <= r["cap"] and r["bytes"] > 0 and r["psnr"] > 5 for r in spz["fits"])
    assert "bd_rate_progressive_vs_spz_percent" in spz and any(line.startswith("[spz]") for line in lines)

    mem = report["memory"]
    assert mem["anchors"] > 500 and mem["anchors_per_lod"][-1] == mem["anchors"]
    assert mem["iterations"] == 3 and mem["gaussians_finest_view"] > 0
    assert {"rate", "nce"} <= set(mem["loss_terms_seen"])
    assert mem["within_target"] is None  # a CPU run has no device memory to hold against the target
    assert any("it/s" in line for line in lines) and any(line.startswith("[memory]") for line in lines)

    # --verify: the stream decoded again here matches what the run measured (same machine: exactly).
    verified = gpu_check.main(
        ["--verify", str(stream), "--against", str(out), "--json", str(tmp_path / "v.json")], log=lines.append
    )
    assert [r["lod"] for r in verified["lods"]] == [1, 2, 3]
    assert verified["within_0_05_db"] and verified["largest_difference_db"] < 1e-6
    assert json.loads((tmp_path / "v.json").read_text())["stream_sha256"] == fox["stream_sha256"]
    other = tmp_path / "other.progs"
    other.write_bytes(stream.read_bytes()[:-1])
    with pytest.raises(ProgsError, match="not the stream"):
        gpu_check.main(["--verify", str(other), "--against", str(out)], log=lines.append)


def test_iteration_sizing_fits_the_time_and_respects_the_cap() -> None:
    gpu_check = _load_script()
    assert gpu_check.sized_iterations(300, rate=20.0, cap=7000) == 5100  # 0.85 * 300 s * 20 it/s
    assert gpu_check.sized_iterations(300, rate=100.0, cap=7000) == 7000
    assert gpu_check.sized_iterations(10, rate=5.0, cap=7000) == 300  # never below the floor
    assert gpu_check.sized_iterations(10, rate=5.0, cap=8) == 8


def test_anchor_count_sizing_hits_its_target() -> None:
    import torch

    gpu_check = _load_script()
    points, anchors = gpu_check.points_for_anchor_count(
        20_000, levels=4, base_depth=4, gen=torch.Generator().manual_seed(0)
    )
    assert abs(anchors - 20_000) <= 400 and points.shape[1] == 3
