from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FOX = REPO.parent / "shared" / "data" / "fox"


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def fox_dir() -> Path:
    if not (FOX / "transforms.json").exists():
        pytest.skip(f"real fox capture absent at {FOX} (../shared/data/fox beside the repo)")
    return FOX
