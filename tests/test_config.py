"""Training configuration and dataset specs: typed, validated, unknown names refused, old runs readable."""

from __future__ import annotations

import pytest

from progs.io.dataset import DatasetSpec
from progs.errors import InputError
from progs.train.config import ConfigError, TrainConfig


def test_replace_by_field_and_section_names():
    cfg = TrainConfig().replace(
        lambda_e=0.004, **{"loss.lambda_nce": 0.01, "growth.enabled": False}, beta=0.5, iterations=7
    )
    assert cfg.rate.lambda_e == 0.004 and cfg.loss.lambda_nce == 0.01
    assert cfg.growth.enabled is False and cfg.growth.beta == 0.5 and cfg.iterations == 7
    assert TrainConfig().rate.lambda_e == 0.002  # replace makes a copy


@pytest.mark.parametrize(
    "bad",
    [
        {"lambda_x": 1},
        {"enabled": False},
        {"loss.nope": 1},
        {"adjust": False},
        {"refine_fraction": 0.1},
        {"growth.level_budget": True},
    ],
)
def test_unknown_or_ambiguous_names_are_refused(bad):
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig().replace(**bad)


@pytest.mark.parametrize(
    "bad",
    [{"iterations": 0}, {"lambda_e": -1.0}, {"levels": 3, "init_level": 4}, {"nce_fraction": 0.0}, {"backend": "tpu"}],
)
def test_out_of_range_values_are_refused(bad):
    with pytest.raises(ConfigError):
        TrainConfig().replace(**bad)


def test_round_trip_and_older_runs_read_with_a_warning():
    cfg = TrainConfig().replace(lambda_e=0.003, c2f_coarse_samples=2, interval=50)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    flat = {
        "iterations": 600,
        "levels": 4,
        "grad_beta": 0.01,
        "adjust": True,
        "lr_feature": 0.01,
        "downscale": 1.0,
        "lambda_e": 0.002,
        "rate": False,
        "schedule": TrainConfig().schedule.to_dict(),
        "refine_fraction": 0.0,
    }
    with pytest.warns(
        UserWarning, match="older progs: read adjust, downscale, grad_beta, lr_feature, rate, refine_fraction"
    ):
        old = TrainConfig.from_dict(flat)
    assert old.iterations == 600 and old.growth.beta == 0.01 and old.lr.feature == 0.01 and old.rate.enabled is False


def test_dataset_spec_options_apply_to_every_kind_or_are_refused(tmp_path):
    demo = DatasetSpec.from_argument("demo", downscale=2.0, size=64, test_every=4)
    assert DatasetSpec.from_json(demo.to_json()) == demo
    scene = DatasetSpec.create("demo", views=9, size=32, downscale=2.0, test_every=3).load()
    assert scene.train_views[0].camera.width == 16 and len(scene.test_views) == 3  # views 0, 3, 6
    with pytest.raises(InputError, match="does not apply to a folder dataset"):
        DatasetSpec.from_argument(tmp_path, views=12)
    with pytest.raises(InputError, match="downscale must be"):
        DatasetSpec.create("demo", downscale=0.5)
    with pytest.raises(InputError, match="no such dataset folder"):
        DatasetSpec.from_argument(tmp_path / "missing")
    legacy = DatasetSpec.from_json({"kind": "path", "path": str(tmp_path), "downscale": 8})
    assert legacy.kind == "folder" and legacy.downscale == 8.0
