"""scripts/gpu_check.py in its --smoke mode on the CPU, so the GPU check cannot rot between GPU runs."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

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
    report = gpu_check.main(["--smoke", "--device", "cpu", "--workdir", str(tmp_path / "work"), "--json", str(out)],
                            log=lines.append)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["smoke"] and report["machine"]["device"] == "cpu"

    fox = report["fox"]
    assert fox["iterations"] == 8 and fox["iterations_per_s"] > 0 and fox["peak_rss_gib"] > 0
    lods = fox["lods"]
    assert [r["lod"] for r in lods] == [1, 2, 3]
    assert all(a["anchors"] < b["anchors"] for a, b in zip(lods, lods[1:]))
    assert lods[0]["cumulative_bytes"] == fox["header_bytes"] + lods[0]["chunk_bytes"]
    assert lods[-1]["cumulative_bytes"] == fox["total_bytes"]
    assert all(math.isfinite(r["psnr_prefix"]) and r["psnr_prefix"] > 5 for r in lods)
    # The full stream decodes to the model the checkpoint evaluation measured as decoded.
    assert lods[-1]["psnr_prefix"] == pytest.approx(lods[-1]["psnr_checkpoint"], abs=1e-3)

    mem = report["memory"]
    assert mem["anchors"] > 500 and mem["anchors_per_lod"][-1] == mem["anchors"]
    assert mem["iterations"] == 3 and mem["gaussians_finest_view"] > 0
    assert {"rate", "nce"} <= set(mem["loss_terms_seen"])
    assert mem["within_target"] is None  # a CPU run has no device memory to hold against the target
    assert any("it/s" in line for line in lines) and any(line.startswith("[memory]") for line in lines)


def test_anchor_count_sizing_hits_its_target() -> None:
    import torch

    gpu_check = _load_script()
    points, anchors = gpu_check.points_for_anchor_count(20_000, levels=4, base_depth=4,
                                                        gen=torch.Generator().manual_seed(0))
    assert abs(anchors - 20_000) <= 400 and points.shape[1] == 3
