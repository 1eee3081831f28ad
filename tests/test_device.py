"""Training devices: ``--device``, device-agnostic checkpoints, CPU encoding of a model from any device.

CI has no GPU. The CPU tests check what a GPU run relies on: the option and its one-line error, that
every tensor the training step creates names its device (so nothing lands on the CPU by accident when
the model is on CUDA), that checkpoints hold CPU tensors and encode to the same bytes after a round
trip. The CUDA tests run only where CUDA (and gsplat) are present, e.g. ``scripts/gpu_check.sh``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from _tiny_scene import tiny_scene
from progs import device as device_mod
from progs.cli import main
from progs.codec.stream import encode
from progs.device import CPU, DeviceError, randint, randperm, resolve_device, uniform
from progs.model.model import cpu_model, model_from_state
from progs.train import TrainConfig, Trainer
from progs.train.checkpoint import load_checkpoint

HAS_CUDA = torch.cuda.is_available()
SRC = Path(__file__).resolve().parents[1] / "src" / "progs"


@pytest.fixture(scope="module")
def scene():
    return tiny_scene()


def _cfg(**kw) -> TrainConfig:
    base = dict(iterations=40, levels=3, base_depth=1, interval=5, seed=0, infonce=True)  # every term
    base.update(kw)
    return TrainConfig().replace(**base)


# ----------------------------------------------------------------------------------- resolve_device


def test_resolve_device(monkeypatch) -> None:
    assert resolve_device("cpu") == CPU and resolve_device(torch.device("cpu")) == CPU
    monkeypatch.setattr(device_mod, "cuda_available", lambda: False)
    assert resolve_device("auto") == CPU and resolve_device(None) == CPU
    with pytest.raises(DeviceError, match="CUDA is not available") as err:
        resolve_device("cuda")
    assert "\n" not in str(err.value)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda:0")
    for bad in ("gpu", "mps", "cuda:x"):
        with pytest.raises(DeviceError):
            resolve_device(bad)
    monkeypatch.setattr(device_mod, "cuda_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cpu_draws_are_torchs_own() -> None:
    """The device helpers draw exactly what torch draws with the same CPU generator (CPU runs unchanged)."""
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(uniform((4, 5), g1, CPU), torch.rand((4, 5), generator=g2))
    assert torch.equal(randperm(17, g1, CPU), torch.randperm(17, generator=g2))
    assert torch.equal(randint(9, (3, 4), g1, CPU), torch.randint(0, 9, (3, 4), generator=g2))


@pytest.mark.parametrize(
    "command",
    [
        ["train", "demo", "--out", "{tmp}/run"],
        ["fit", "{tmp}/missing.ply", "--out", "{tmp}/run"],
        ["eval", "{tmp}/run"],
        ["demo", "--out", "{tmp}/demo"],
        ["bench", "--out", "{tmp}/bench"],
    ],
)
def test_device_cuda_without_cuda_is_one_line_exit_2(command, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(device_mod, "cuda_available", lambda: False)  # also on a machine with a GPU
    args = [a.format(tmp=tmp_path) for a in command] + ["--device", "cuda"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("progs: error: --device cuda: CUDA is not available"), err
    assert not list(tmp_path.iterdir()), "nothing is written before the device is checked"


def test_device_option_refuses_unknown_names(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "demo", "--out", "x", "--device", "tpu"])
    assert exc.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err


# ------------------------------------------------------------------ no tensor lands on an implicit device

FACTORIES = {
    "zeros",
    "ones",
    "full",
    "empty",
    "arange",
    "rand",
    "randn",
    "randint",
    "randperm",
    "tensor",
    "as_tensor",
    "eye",
    "linspace",
}
AUDITED = [SRC / "train", SRC / "model", SRC / "render", SRC / "octree.py", SRC / "scene.py", SRC / "metrics.py"]


class _ImplicitDeviceAudit(TorchFunctionMode):
    """Records factory calls from the audited modules that do not say on which device to create."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in FACTORIES and "device" not in kwargs and not (args and torch.is_tensor(args[0])):
            caller = sys._getframe(1)
            path = Path(caller.f_code.co_filename).resolve()
            if any(path == a or a in path.parents for a in AUDITED):
                self.sites.add(f"{path.relative_to(SRC)}:{caller.f_lineno} torch.{name}")
        return func(*args, **kwargs)


def test_training_steps_create_no_tensor_on_an_implicit_device(scene) -> None:
    """Every stage (growth, c2f sampling, InfoNCE, noise, entropy, quantization) places each
    new tensor explicitly: on a GPU an implicit CPU tensor would meet CUDA ones and fail."""
    cfg = _cfg(c2f_coarse_samples=1)
    trainer = Trainer(scene, cfg)
    audit = _ImplicitDeviceAudit()
    with audit:
        trainer.train(progress=False)
    assert trainer.adjustments and any(r["grown"] for r in trainer.adjustments), "growth must run"
    assert any("rate" in h for h in trainer.history) and any("nce" in h for h in trainer.history)
    assert not audit.sites, "tensors created without a device:\n" + "\n".join(sorted(audit.sites))


def test_3dgs_fit_steps_create_no_tensor_on_an_implicit_device(scene, monkeypatch) -> None:
    """The plain 3DGS baseline fits on a GPU too (bench --device): its steps and densification place
    every new tensor explicitly (its seeded initialisation is built on the CPU, then moved)."""
    from progs.bench.baseline_3dgs import Fit3DGSConfig, GaussianFit

    monkeypatch.setattr(sys.modules[__name__], "AUDITED", AUDITED + [SRC / "bench" / "baseline_3dgs.py"])
    fit = GaussianFit(scene, Fit3DGSConfig(iterations=6, grad_threshold=0.0, percent_dense=0.0, max_gaussians=10**6))
    n = fit.means.shape[0]
    audit = _ImplicitDeviceAudit()
    with audit:
        for it in range(3):
            fit.step(scene.train_views[it % len(scene.train_views)], it, 6)
        fit.densify_and_prune(3)
    assert fit.densifications and fit.densifications[0]["split"] > 0 and fit.means.shape[0] > n
    assert not audit.sites, "tensors created without a device:\n" + "\n".join(sorted(audit.sites))


# ------------------------------------------------------------------------ device-agnostic checkpoints


def _all_tensors(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _all_tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _all_tensors(v)


def test_checkpoint_round_trip_encodes_identically(scene, tmp_path) -> None:
    trainer = Trainer(scene, _cfg(iterations=12), device=CPU)
    trainer.train(progress=False)
    model = trainer.model
    assert cpu_model(model) is model  # a CPU model is coded as it is
    reference = encode(model).data

    state = trainer.state_dict()
    assert all(t.device == CPU for t in _all_tensors(state))
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, map_location="cpu", weights_only=False)
    assert encode(model_from_state(loaded)).data == reference
    assert encode(model_from_state(model.to_state())).data == reference

    trainer.save(str(tmp_path / "checkpoint.pt"))
    resumed = Trainer(scene, _cfg(iterations=12), device=CPU).resume(str(tmp_path / "checkpoint.pt"))
    assert resumed.model.device == CPU
    assert encode(resumed.model).data == reference


# --------------------------------------------------------------------------------------- CUDA only

cuda_only = pytest.mark.skipif(not HAS_CUDA, reason="CUDA unavailable: GPU training needs a GPU")


@cuda_only
def test_cuda_training_encodes_like_its_cpu_copy(scene, tmp_path) -> None:
    pytest.importorskip("gsplat", reason="gsplat not installed (pip install '.[cuda]')")
    cuda = torch.device("cuda")
    trainer = Trainer(scene, _cfg(iterations=40, c2f_coarse_samples=1), device=cuda)
    trainer.train(progress=False)
    model = trainer.model
    assert model.device.type == "cuda" and trainer.strategy.grad_accum.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert trainer.adjustments and all(torch.isfinite(torch.tensor(h["loss"])) for h in trainer.history)

    from_cuda = encode(model)  # the encoder copies the model to the CPU itself
    assert from_cuda.model.device == CPU
    moved = model_from_state(model.to_state())
    assert moved.device == CPU
    assert encode(moved).data == from_cuda.data

    trainer.save(str(tmp_path / "checkpoint.pt"))
    assert all(t.device == CPU for t in _all_tensors(load_checkpoint(tmp_path / "checkpoint.pt")))
    on_cpu = Trainer(scene, _cfg(iterations=44, c2f_coarse_samples=1), device=CPU).resume(
        str(tmp_path / "checkpoint.pt")
    )
    assert encode(on_cpu.model).data == from_cuda.data
    on_cpu.train(progress=False)  # a CUDA checkpoint continues on the CPU
    assert on_cpu.iteration == 44


@cuda_only
def test_cuda_3dgs_fit_matches_the_cpu_fit(scene) -> None:
    """bench --device cuda fits the SPZ curve's plain 3DGS models with gsplat: the fit returns a CPU
    cloud and reaches the CPU fit's quality (the backends differ slightly: alpha clamp, tile bound)."""
    pytest.importorskip("gsplat", reason="gsplat not installed (pip install '.[cuda]')")
    from progs.bench.baseline_3dgs import Fit3DGSConfig, fit_3dgs

    cfg = Fit3DGSConfig(iterations=60, seed=0, max_gaussians=400)
    on_cpu = fit_3dgs(scene, cfg)
    on_cuda = fit_3dgs(scene, cfg, torch.device("cuda"))
    assert on_cuda.cloud.means.device == CPU and len(on_cuda.cloud) <= 400
    assert abs(on_cuda.psnr - on_cpu.psnr) < 1.0, (on_cuda.psnr, on_cpu.psnr)
