"""``progs bench``: every suite runs (at a tiny size) and writes its JSON figures and plots.

The ``PROGS_BENCH_TINY`` profile shrinks everything (32x32 demo views, a few iterations, small
synthetic scaling sizes) so that this checks the plumbing and the schema, not timings or quality.
"""

from __future__ import annotations

import json

import pytest
import torch

from progs.cli import main
from progs.bench.common import TINY_ENV, loglog_exponent
from progs.bench.runner import SUITES, parse_suites
from progs.bench.scaling import points_for_anchors
from progs.errors import ProgsError

PLOTS = {
    "rd": "rd.png",
    "baselines": "baselines.png",
    "bitstream": "bitstream.png",
    "scaling": "scaling.png",
    "ablation": "ablation.png",
    "raster": "raster.png",
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv(TINY_ENV, "1")
    try:
        assert main(["bench", "--quick", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out, json.loads((out / "results.json").read_text())


def _lod_rows(rows, n_lods=None):
    assert rows and all({"lod", "anchors", "cumulative_bytes", "psnr", "ssim"} <= set(r) for r in rows)
    assert [r["lod"] for r in rows] == list(range(1, len(rows) + 1))
    cum = [r["cumulative_bytes"] for r in rows]
    assert cum == sorted(cum)
    if n_lods:
        assert len(rows) == n_lods


@pytest.mark.slow
def test_results_json_has_every_suite_and_figure(bench):
    out, res = bench
    assert set(res["suites"]) == set(SUITES)
    assert all("error" not in s for s in res["suites"].values())
    m = res["machine"]
    assert m["cpu"] and m["cores"] >= 1 and m["torch"] and m["date"]
    assert "progs bench --suite all --quick --out" in res["command"] and TINY_ENV in res["command"]
    s = res["suites"]
    # rd: >= 3 λe, per-LoD bytes / PSNR / SSIM from the decoded stream
    assert len(s["rd"]["curves"]) >= 3
    for c in s["rd"]["curves"]:
        _lod_rows(c["lods"])
    # baselines
    b = s["baselines"]
    assert b["3dgs"]["ply_bytes"] > 0 and b["3dgs"]["zstd"]["bytes"] > 0 and b["3dgs"]["psnr"] > 0
    # SPZ of plain 3DGS fits at the profile's sizes, read back for their PSNR; BD-rate in rd and baselines
    assert len(b["spz"]) >= 2 and all(r["bytes"] > 0 and r["psnr"] > 0 and r["gaussians"] > 0 for r in b["spz"])
    assert "bd_rate_percent" in s["rd"]["bd_rate_vs_spz"] and "bd_rate_percent" in b["bd_rate_vs_spz"]
    assert b["headline"]["size_ratio_vs_ply"] > 0 and b["progressive_overhead"]["ratio"] > 0
    assert b["single_rate"]["bytes"] > 0
    # bitstream: components add up to each chunk
    bs = s["bitstream"]
    for r in bs["lods"]:
        assert r["structure"] + r["prediction"] + r["f"] + r["s"] + r["o"] + r["framing"] == r["bytes"]
    assert bs["header_bytes"] + sum(r["bytes"] for r in bs["lods"]) == bs["total_bytes"]
    # speed
    sp = s["speed"]
    assert len(sp["coding"]["lods"]) == len(bs["lods"])
    assert sp["coding"]["decode_anchors_per_s"] > 0
    assert sp["entropy_coder"]["encode_ratio"] > 0 and sp["entropy_coder"]["decode_ratio"] > 0
    assert all(r["fps"] > 0 for r in sp["render"]["cpu"])
    assert "gpu" in sp["render"] and sp["rasterizer"]
    # scaling: one row per size, fitted exponents, peak memory
    sc = s["scaling"]
    assert len(sc["rows"]) >= 2 and sc["exponents"]["decode_s"] is not None
    assert all(r["decode_peak_mb"] > 0 and r["decode_anchors"] == r["anchors"] for r in sc["rows"])
    # fit: progs fit of the demo's own PLY beside SPZ, decimate+SPZ and streamed SOG of that PLY, all against
    # the PLY rendered at a viewer's size from held-out views
    f = s["fit"]["scenes"]["demo_ply"]
    assert f["teacher"]["gaussians"] > 1000 and f["spz"]["bytes"] > 0 and f["spz"]["psnr"] > 30
    assert f["progs"]["total_bytes"] > 0 and f["viewer"]["size"] > f["teacher"]["teacher_size"]
    cum = [r["bytes"] for r in f["progs"]["prefixes"]]
    assert cum == sorted(cum) and cum[-1] == f["progs"]["total_bytes"]
    if "decimate_spz" in f:  # splat-transform installed (benchmarks/package.json)
        assert f["decimate_spz"] and f["streamed_sog"]["levels"]
    # ablation: paper Table III's four variants, and progs' default where the demo preset departs from the paper
    assert [r["variant"] for r in s["ablation"]["rows"]] == ["raw", "no_mi", "no_c2f", "paper", "full"]
    for r in s["ablation"]["rows"]:
        _lod_rows(r["lods"])
    assert s["raster"]["rows"]
    assert res["key_numbers"]


@pytest.mark.slow
def test_plots_and_summary_are_written(bench):
    out, res = bench
    for suite, name in PLOTS.items():
        p = out / name
        assert p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", suite
        assert res["suites"][suite]["plot"] == name
    summary = (out / "summary.md").read_text()
    assert "progs bench" in summary and res["machine"]["torch"] in summary
    for suite in SUITES:
        assert f"## {suite}" in summary
    assert (out / "baseline_3dgs.ply").is_file()


def test_suite_parsing():
    assert parse_suites("all") == list(SUITES)
    assert parse_suites("scaling,rd") == ["rd", "scaling"]
    with pytest.raises(ProgsError):
        parse_suites("rd,nope")


def test_helpers():
    assert loglog_exponent([10, 100, 1000], [2, 20, 200]) == pytest.approx(1.0)
    assert loglog_exponent([10], [1]) is None
    n = points_for_anchors(100_000)
    assert 10_000 < n < 100_000


def test_bd_rate_of_a_curve_against_itself_and_a_halved_one():
    from progs.bench.common import bd_rate

    anchor = [(1000.0, 25.0), (2000.0, 28.0), (4000.0, 30.5), (8000.0, 32.0)]
    assert abs(bd_rate(anchor, anchor)) < 1e-6
    half = [(r / 2, p) for r, p in anchor]
    assert abs(bd_rate(anchor, half) - (-50.0)) < 1e-6
    assert bd_rate(anchor, [(10.0, 5.0), (20.0, 6.0)]) is None  # no PSNR overlap
    assert bd_rate([(100.0, 36.0), (300.0, 32.0)], anchor) is None  # a dominated point is not a curve
    # a lossless level (PSNR +inf) is left out rather than turning the integral into NaN
    assert abs(bd_rate(anchor + [(5000.0, float("inf"))], half) - (-50.0)) < 1e-6


def test_bd_rate_follows_a_saturating_curve_between_its_points():
    """A progressive stream's prefixes saturate (the last LoDs add bytes, little PSNR). The interpolation
    stays between the points (monotone), so the BD-rate agrees with a piecewise-linear reading of the same
    curves, where one cubic polynomial through all points swings far off (here it gave -1 % for -58 %)."""
    import numpy as np

    from progs.bench.common import _pchip, bd_rate

    progs = [(22434, 19.336), (33045, 21.492), (53276, 22.306), (72375, 22.416), (89162, 22.532)]
    spz = [(35078, 19.607), (88153, 20.350)]
    q = np.linspace(19.607, 20.350, 501)
    lin = np.interp(q, [p for _, p in progs], np.log10([r for r, _ in progs])) - np.interp(
        q, [p for _, p in spz], np.log10([r for r, _ in spz])
    )
    reference = (10 ** lin.mean() - 1) * 100
    assert abs(bd_rate(spz, progs) - reference) < 5.0, (bd_rate(spz, progs), reference)
    x, y = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.1, 1.15])
    v = _pchip(x, y, np.linspace(0, 3, 301))
    assert np.all(np.diff(v) >= -1e-12) and v.max() <= 1.15 + 1e-12  # monotone, no overshoot


@pytest.mark.slow
def test_a_second_bench_run_reuses_finished_trainings(bench, capsys, monkeypatch):
    """Running a suite again into the same folder reuses each finished training of the same
    configuration (a long bench can be continued) and reports the same figures."""
    out, res = bench
    monkeypatch.setenv(TINY_ENV, "1")
    capsys.readouterr()
    assert main(["bench", "rd", "--quick", "--out", str(out)]) == 0
    log = capsys.readouterr()
    again = json.loads((out / "results.json").read_text())
    assert "reusing" in log.out + log.err and "training full" not in log.out + log.err

    def points(r):
        return [
            (c["lambda_e"], c["total_bytes"], [row["psnr"] for row in c["lods"]]) for c in r["suites"]["rd"]["curves"]
        ]

    assert points(again) == points(res)


@pytest.mark.slow
def test_lambdas_option_picks_the_rd_sweep(bench, monkeypatch):
    """``--lambdas`` replaces the rd suite's λe sweep (here reusing two of the fixture's trainings)."""
    out, res = bench
    monkeypatch.setenv(TINY_ENV, "1")
    assert main(["bench", "rd", "--quick", "--out", str(out), "--lambdas", "8e-3,5e-4", "--fit-iterations", "5"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert [c["lambda_e"] for c in again["suites"]["rd"]["curves"]] == [5e-4, 8e-3]
    assert again["profile"]["lambdas"] == [5e-4, 8e-3]
    assert "--lambdas 0.008,0.0005" in again["command"]
    # --fit-iterations trains the SPZ curve's plain 3DGS fits for that many iterations
    assert "--fit-iterations 5" in again["command"]
    fits = json.loads((out / "results.json").read_text())["suites"]["rd"]["bd_rate_vs_spz"]["spz_points"]
    assert fits and all(p["iterations"] == 5 for p in fits)


def test_fit_iterations_option_refuses_zero(tmp_path, capsys):
    assert main(["bench", "rd", "--out", str(tmp_path), "--fit-iterations", "0"]) != 0
    assert "--fit-iterations" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("value", ["0,1e-3", "x", ""])
def test_lambdas_option_refuses_bad_values(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "rd", "--lambdas", value])
    assert exc.value.code == 2
    assert "--lambdas" in capsys.readouterr().err


def test_variants_with_the_same_training_config_train_once(tmp_path, monkeypatch):
    """On a dataset whose default training is the paper's, the ablation's "paper" row is the "full" model:
    the workspace trains it once and reports it under both names."""
    from types import SimpleNamespace

    from progs.bench import workspace as ws_mod
    from progs.bench.common import BenchConfig, profile_for

    monkeypatch.setitem(ws_mod.VARIANTS, "paper", {})  # as on fox, where the defaults are the paper's
    ws = ws_mod.Workspace(BenchConfig(out=tmp_path, profile=profile_for(True), iterations=2), log=lambda m: None)
    calls = []

    def fake_train_and_encode(tag, config, *rest):
        calls.append(tag)
        out = SimpleNamespace(run=tmp_path / tag, seconds=1.0, iterations=2, lods=[])
        return out, SimpleNamespace(stream=tmp_path / f"{tag}.progs", result=SimpleNamespace(data=b"x")), []

    monkeypatch.setattr(ws, "train_and_encode", fake_train_and_encode)
    full, paper = ws.get("full"), ws.get("paper")
    assert calls == ["full"] and paper.name == "paper" and paper.run == full.run
    ws.get("no_mi")  # a different configuration trains
    assert calls == ["full", "no_mi"]


def test_a_run_written_before_an_option_existed_counts_as_the_same_config():
    from progs.bench.workspace import _same_config
    from progs.train.config import TrainConfig

    config = TrainConfig().replace(iterations=600, lambda_e=2e-3)
    saved = json.loads(json.dumps(config.to_dict()))
    del saved["loss"]["c2f_finest_weight"]  # an older run.json
    assert _same_config(saved, config)
    assert not _same_config(saved, config.replace(c2f_finest_weight=0.5))
    assert not _same_config(saved, config.replace(iterations=601))
    assert not _same_config({"no_such_option": 1}, config) and not _same_config(None, config)


def test_a_run_sized_by_the_trainer_counts_as_the_config_that_left_it_open(tmp_path):
    """A config that leaves the anchor counts to the scene matches the run it trained (which records the
    counts the trainer chose), and runs written when 20,000 / 200,000 were the defaults, on a scene with
    points; on a scene without points the counts follow the views, so those old runs no longer match."""
    from _tiny_scene import tiny_scene
    from progs.bench.workspace import _finished_run
    from progs.train.config import TrainConfig

    config = TrainConfig().replace(iterations=600, lambda_e=2e-3)
    old = config.replace(init_random_points=20_000, max_anchors=200_000)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "run.json").write_text(json.dumps({"config": old.to_dict(), "iterations": 600, "lods": []}))
    assert _finished_run(run, config, tiny_scene()) is not None
    assert _finished_run(run, config, tiny_scene(with_points=False)) is None
    assert _finished_run(run, config) is None  # unsized: not comparable


def test_a_capped_3dgs_fit_starts_from_a_subset_of_the_points():
    """The SPZ curve's model sizes are real: a cap below the scene's point count starts from that many
    points (seeded), and growth never passes it."""
    from progs.bench.baseline_3dgs import Fit3DGSConfig, GaussianFit, fit_3dgs
    from progs.io.demo_scene import load_demo_scene

    scene = load_demo_scene(views=6, size=32, seed=0)
    n = scene.points.shape[0]
    assert GaussianFit(scene, Fit3DGSConfig(max_gaussians=n + 10)).means.shape[0] == n
    capped = GaussianFit(scene, Fit3DGSConfig(max_gaussians=500))
    assert capped.means.shape[0] == 500
    again = GaussianFit(scene, Fit3DGSConfig(max_gaussians=500))
    assert capped.means.equal(again.means)  # seeded
    assert all(any(torch.equal(m, p) for p in scene.points[:, :].float()) for m in capped.means[:5])
    fit = fit_3dgs(scene, Fit3DGSConfig(iterations=4, max_gaussians=500, densify_at=(0.5,), grad_threshold=0.0))
    assert 0 < len(fit.cloud) <= 500


def test_a_3dgs_fit_does_not_depend_on_the_global_random_state():
    """The SPZ curve's fits run after other fits and trainings in one bench: each is seeded on its own."""
    from progs.bench.baseline_3dgs import Fit3DGSConfig, fit_3dgs
    from progs.io.demo_scene import load_demo_scene

    scene = load_demo_scene(views=6, size=32, seed=0)
    cfg = Fit3DGSConfig(iterations=6, densify_at=(0.5,), grad_threshold=0.0, percent_dense=0.0)
    torch.manual_seed(1)
    a = fit_3dgs(scene, cfg)
    torch.manual_seed(2)
    torch.randn(100)
    b = fit_3dgs(scene, cfg)
    assert a.densifications[0]["split"] > 0
    assert torch.equal(a.cloud.means, b.cloud.means)


def test_benching_one_suite_keeps_the_others_in_the_folder(tmp_path, monkeypatch):
    """A suite run into a folder that holds an earlier results.json keeps the suites it did not run
    again, each with the command that produced it (the summary says so)."""
    monkeypatch.setenv(TINY_ENV, "1")
    assert main(["bench", "scaling", "--quick", "--out", str(tmp_path)]) == 0
    first = json.loads((tmp_path / "results.json").read_text())["suites"]["scaling"]
    assert main(["bench", "raster", "--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert list(res["suites"]) == ["scaling", "raster"] and res["suites_kept"] == ["scaling"]
    assert res["suites"]["scaling"] == first and "--suite scaling" in first["command"]
    assert "--suite raster" in res["suites"]["raster"]["command"] == res["command"]
    summary = (tmp_path / "summary.md").read_text()
    assert "## scaling" in summary and "Kept from an earlier run into this folder: `" in summary


def test_suites_of_another_dataset_are_not_kept(tmp_path):
    from progs.bench.runner import carried_suites

    path = tmp_path / "results.json"
    demo = {"spec": {"kind": "demo"}, "name": "demo"}
    path.write_text(
        json.dumps(
            {
                "command": "progs bench",
                "dataset": demo,
                "machine": {"date": "d"},
                "variants": {"full@0.002": {}},
                "suites": {"rd": {"curves": []}, "scaling": {"x": 1}, "speed": {"error": "boom"}},
            }
        )
    )
    kept, variants, _ = carried_suites(path, ["fit"], {"spec": {"kind": "folder"}})
    assert list(kept) == ["scaling"] and variants == {}  # rd measured another scene; a failed suite is dropped
    kept, variants, dataset = carried_suites(path, ["fit"], demo)
    assert list(kept) == ["rd", "scaling"] and kept["rd"]["command"] == "progs bench" and variants
    assert dataset == demo
    assert carried_suites(path, ["rd", "scaling"], demo)[0] == {}
    path.write_text("not json")
    assert carried_suites(path, ["rd"], demo) == ({}, {}, None)
