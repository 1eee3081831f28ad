"""The command line as a user meets it: help, render, demo, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData, PlyElement

from progs.cli import DEMO_DEFAULTS, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "progs", *args], capture_output=True, text=True, timeout=600)


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("demo", "render", "info"):
        assert cmd in out.stdout


def _write_plyfile_scene(path: Path, n: int = 400) -> None:
    """A 3DGS PLY written with plyfile directly (not by progs): a coloured blob of Gaussians."""
    rng = np.random.default_rng(0)
    props = [
        "x",
        "y",
        "z",
        "nx",
        "ny",
        "nz",
        "f_dc_0",
        "f_dc_1",
        "f_dc_2",
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    arr = np.zeros(n, dtype=[(p, "f4") for p in props])
    xyz = rng.normal(0, 0.5, (n, 3))
    arr["x"], arr["y"], arr["z"] = xyz.T
    arr["f_dc_0"] = 1.5  # reddish
    arr["f_dc_1"] = -1.0
    arr["f_dc_2"] = -1.0
    arr["opacity"] = 2.0
    arr["scale_0"] = arr["scale_1"] = arr["scale_2"] = np.log(0.08)
    arr["rot_0"] = 1.0
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))


def test_render_a_ply_written_by_plyfile(tmp_path):
    ply = tmp_path / "blob.ply"
    _write_plyfile_scene(ply)
    png = tmp_path / "blob.png"
    assert main(["render", str(ply), "--out", str(png), "--width", "96", "--height", "80"]) == 0
    img = np.asarray(Image.open(png)).astype(np.float32) / 255
    assert img.shape == (80, 96, 3)
    centre = img[30:50, 38:58]
    # the blob is framed in the middle, red dominates there, and the corners stay background (black)
    assert centre[..., 0].mean() > 0.5 and centre[..., 0].mean() > 2 * centre[..., 1].mean()
    assert img[:5, :5].max() < 0.05


def test_render_with_camera_from_dataset(tmp_path):
    ply = tmp_path / "blob.ply"
    _write_plyfile_scene(ply)
    png = tmp_path / "v.png"
    assert main(["render", str(ply), "--out", str(png), "--camera-from", "demo", "--view", "2", "--width", "64"]) == 0
    assert Image.open(png).size == (64, 64)


def test_demo_writes_contact_sheet_and_ply(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--views", "12", "--size", "48", "--render-only"]) == 0
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] >= 4 * 48
    arr = np.asarray(sheet).astype(np.float32)
    assert arr.std() > 10  # not a blank sheet
    assert (out / "demo_scene.ply").stat().st_size > 100_000


@pytest.mark.parametrize(
    "args, needle",
    [
        (["render", "missing.ply", "--out", "x.png"], "missing.ply"),
        (["info", "missing.progs"], "missing.progs"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, needle):
    out = subprocess.run(
        [sys.executable, "-m", "progs", *args], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr


def test_not_a_ply_gives_one_line(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"this is not a ply file at all")
    out = run_cli("render", str(bad), "--out", str(tmp_path / "x.png"))
    assert out.returncode == 2 and str(bad) in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_train_encode_info_decode_eval_round_trip(tmp_path):
    import json

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "demo",
                "--out",
                str(run),
                "--demo-views",
                "16",
                "--demo-size",
                "32",
                "--iterations",
                "60",
                "--checkpoint-every",
                "30",
            ]
        )
        == 0
    )
    assert (run / "checkpoint.pt").is_file() and json.loads((run / "run.json").read_text())["lods"]
    stream = tmp_path / "scene.progs"
    assert main(["encode", str(run), "--out", str(stream)]) == 0
    manifest = json.loads((tmp_path / "scene.progs.json").read_text())
    assert manifest["total_bytes"] == stream.stat().st_size and len(manifest["lods"]) == 5
    info = run_cli("info", str(stream), "--json")
    info_json = json.loads(info.stdout)
    assert info.returncode == 0 and info_json["lods_decodable"] == 5
    for block in ("f", "s", "o"):  # bits actually coded vs one fitted Gaussian per channel
        p = info_json["priors"][block]
        assert p["symbols"] > 0 and p["coded_bits_per_symbol"] > 0 and p["constant_prior_bits_per_symbol"] > 0
    for fmt in ("ply", "splat"):
        assert (
            main(["decode", str(stream), "--lod", "2", "--out", str(tmp_path / f"lod2.{fmt}"), "--distill", "0"]) == 0
        )
    # the default export distils; --check prints the fidelity on the test views (held out of the export)
    chk = run_cli(
        "decode",
        str(stream),
        "--lod",
        "2",
        "--out",
        str(tmp_path / "chk.ply"),
        "--distill",
        "20",
        "--distill-size",
        "24",
        "--check",
        "demo",
        "--demo-size",
        "32",
        "--demo-views",
        "16",
    )
    assert chk.returncode == 0, chk.stderr
    assert "distilled for 20 iterations from virtual views" in chk.stdout
    assert re.search(r"export fidelity on 2 test views of demo .*\(([-+]\d+\.\d\d) dB;", chk.stdout), chk.stdout
    bad = run_cli("decode", str(stream), "--out", str(tmp_path / "x.ply"), "--distill", "-1")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--distill" in bad.stderr
    from progs.io.ply import read_ply

    assert len(read_ply(tmp_path / "lod2.ply")) > 0
    assert (tmp_path / "lod2.splat").stat().st_size % 32 == 0
    ev = run_cli("eval", str(stream), "demo", "--demo-size", "32", "--demo-views", "16", "--json")
    assert ev.returncode == 0, ev.stderr
    lods = json.loads(ev.stdout)["lods"]
    assert [r["lod"] for r in lods] == [1, 2, 3, 4, 5] and all(r["psnr"] > 10 for r in lods)
    # the run's evaluation reports what its stream decodes to (psnr) beside the float model (psnr_float)
    ev_run = run_cli("eval", str(run), "--json")
    assert ev_run.returncode == 0
    run_lods = json.loads(ev_run.stdout)["lods"]
    assert len(run_lods) == 5 and all("psnr_float" in r for r in run_lods)
    for r, s in zip(run_lods, lods):
        assert abs(r["psnr"] - s["psnr"]) <= 0.05, (r, s)
    # a truncated copy decodes to fewer LoDs with a warning, not a traceback
    cut = tmp_path / "cut.progs"
    cut.write_bytes(stream.read_bytes()[: manifest["lods"][2]["offset"] + 5])
    out = run_cli("decode", str(cut), "--out", str(tmp_path / "cut.ply"))
    assert out.returncode == 0 and "LoD 2" in out.stdout and "truncated" in out.stderr


@pytest.mark.slow
def test_interrupted_training_resumes(tmp_path):
    """--resume continues from the checkpoint to the requested iteration count."""
    import json

    run = tmp_path / "run"
    args = ["train", "demo", "--out", str(run), "--demo-views", "12", "--demo-size", "24", "--checkpoint-every", "10"]
    assert main([*args, "--iterations", "20"]) == 0
    assert main([*args, "--iterations", "30", "--resume"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["iterations"] == 30


@pytest.mark.slow
def test_demo_pipeline_writes_stream_table_and_plot(tmp_path):
    import json

    out = tmp_path / "demo"
    assert (
        main(["demo", "--out", str(out), "--views", "16", "--size", "32", "--iterations", "40", "--distill", "20"]) == 0
    )
    for name in ("scene.progs", "scene.progs.json", "rd.png", "decoded.ply", "results.json", "results.md"):
        assert (out / name).stat().st_size > 0, name
    res = json.loads((out / "results.json").read_text())
    assert [r["lod"] for r in res["stream"]] == list(range(1, DEMO_DEFAULTS["levels"] + 1))
    cum = [r["cumulative_bytes"] for r in res["stream"]]
    assert cum == sorted(cum) and cum[-1] == res["total_bytes"] == (out / "scene.progs").stat().st_size


def test_loss_switches_override_presets_only_when_given():
    from progs.cli import _train_config, build_parser
    from progs.presets import demo_overrides

    parser = build_parser()

    def config(*argv, preset=True):
        args = parser.parse_args(list(argv))
        return _train_config(args, demo_overrides() if preset else None)

    demo = config("demo")
    assert not demo.loss.infonce and demo.loss.c2f_finest_weight == 0.5 and demo.loss.c2f  # the demo preset
    assert config("demo", "--infonce").loss.infonce
    train = config("train", "demo", "--out", "x", preset=False)
    assert not train.loss.infonce and train.loss.c2f_finest_weight is None  # progs train: L_c2f as the paper's
    assert config("train", "demo", "--out", "x", "--infonce", preset=False).loss.infonce
    off = config("train", "demo", "--out", "x", "--no-c2f", "--no-adjust", "--no-rate", preset=False)
    assert not (off.loss.infonce or off.loss.c2f or off.growth.enabled or off.rate.enabled)


@pytest.mark.parametrize("option", ["--refine-fraction=0.1", "--no-infonce"])
def test_removed_options_say_they_no_longer_exist(capsys, option):
    assert main(["train", "demo", "--out", "x", option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{option.split('=')[0]} no longer exists" in err[0]


def test_decode_help_states_the_distillation_defaults():
    from progs.train.distill import DistillConfig

    out = run_cli("decode", "--help")
    text = " ".join(out.stdout.split())
    assert f"(default {DistillConfig.iterations}; 0: the closed-form SH fit only)" in text
    assert f"virtual views (default {DistillConfig.size})" in text


def test_decode_to_an_unknown_format_is_one_line(tmp_path, capsys):
    out = tmp_path / "x.xyz"
    assert main(["decode", str(tmp_path / "s.progs"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown Gaussian file format 'xyz'" in err and "\n" not in err and not out.exists()


def _one_line_error(out: subprocess.CompletedProcess, *needles: str) -> str:
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_fit_checks_its_options_and_run_folder_before_reading_the_scene(tmp_path):
    """Out-of-range training options and a bad --out are refused by option name before the scene is read
    (the scene here does not exist, so any other order would report the missing file instead), and a
    run folder's checkpoint is neither overwritten nor resumed unless asked."""
    missing = str(tmp_path / "missing.ply")
    run = tmp_path / "run"
    for option, value in (
        ("--iterations", "0"),
        ("--lambda-e", "-1"),
        ("--max-anchors", "0"),
        ("--c2f-samples", "0"),
        ("--checkpoint-every", "-1"),
    ):
        _one_line_error(run_cli("fit", missing, "--out", str(run), option, value), option)
    _one_line_error(run_cli("fit", missing, "--out", str(run), "--size", "100000"), "--size")
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line_error(run_cli("fit", missing, "--out", str(afile)), "not a folder")
    _one_line_error(run_cli("fit", missing, "--out", str(run), "--resume"), "--resume", "checkpoint")
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"a run's checkpoint")
    _one_line_error(run_cli("fit", missing, "--out", str(run)), "--overwrite")
    _one_line_error(run_cli("train", "demo", "--out", str(run), "--demo-views", "4"), "--overwrite")
    assert (run / "checkpoint.pt").read_bytes() == b"a run's checkpoint"
    # with --overwrite the folder check passes and the missing scene is what fails
    _one_line_error(run_cli("fit", missing, "--out", str(run), "--overwrite"), "missing.ply")


def test_render_checks_its_image_options_before_rendering(tmp_path):
    ply = tmp_path / "scene.ply"
    _write_plyfile_scene(ply, n=50)
    out = str(tmp_path / "x.png")
    _one_line_error(run_cli("render", str(ply), "--out", out, "--width", "-5"), "--width")
    _one_line_error(run_cli("render", str(ply), "--out", out, "--height", "0"), "--height")
    _one_line_error(run_cli("render", str(ply), "--out", str(tmp_path / "x.txt")), ".png")
    _one_line_error(run_cli("render", str(ply), "--out", str(tmp_path / "no" / "x.png")), "does not exist")
    assert not list(tmp_path.glob("x.*"))
    ok = run_cli("render", str(ply), "--out", out, "--width", "32", "--height", "24")
    assert ok.returncode == 0 and Image.open(out).size == (32, 24)


def test_decode_lod_must_be_positive(tmp_path):
    _one_line_error(
        run_cli("decode", str(tmp_path / "s.progs"), "--lod", "0", "--out", str(tmp_path / "x.ply")), "--lod"
    )
    _one_line_error(run_cli("info", str(tmp_path)), "folder")


def test_help_leaves_out_the_comparison_switches_and_fetch_names_its_options(tmp_path):
    """The switches that turn the method's parts off still work (tests, docs/RESULTS.md) but are not
    offered in --help; demo has no run folder to resume; a time budget without a link speed is named."""
    for command in ("demo", "train", "fit"):
        text = run_cli(command, "--help").stdout
        for hidden in ("--no-adjust", "--no-c2f", "--no-rate", "--infonce"):
            assert hidden not in text, (command, hidden)
    demo_help = run_cli("demo", "--help").stdout
    assert "--resume" not in demo_help and "--init-points" not in demo_help
    out = run_cli("fetch", "http://127.0.0.1:9/scene.progs", "--seconds", "2", "--out", str(tmp_path / "x.ply"))
    _one_line_error(out, "--seconds", "--bandwidth")
