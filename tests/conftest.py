from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

from progs.io.dataset import data_root

# Property tests judge results, never speed: a busy machine (CI shares two cores) must not fail them.
settings.register_profile("progs", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("progs")

REPO = Path(__file__).resolve().parents[1]
FOX = data_root() / "fox"


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def fox_dir() -> Path:
    if not (FOX / "transforms.json").exists():
        pytest.skip(f"real fox capture absent at {FOX} (the data root is $PROGS_DATA, else ../shared/data)")
    return FOX


def sigint_as_default() -> None:
    """``preexec_fn`` for the Ctrl-C tests' subprocesses: SIGINT's default action in the child, as in a
    user's terminal. A shell that starts pytest as a background job (``cmd &``) ignores SIGINT, children
    inherit that, and Python then never installs its KeyboardInterrupt handler."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
