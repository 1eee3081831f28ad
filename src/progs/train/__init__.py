"""Training: losses (``losses``), the staged schedule (``schedule``), the loop (``trainer``),
checkpoints (``checkpoint``) and the export's distillation of plain Gaussians (``distill``)."""

from progs.train.checkpoint import load_checkpoint, save_checkpoint
from progs.train.schedule import Schedule, Stages
from progs.train.config import TrainConfig
from progs.train.trainer import Trainer

__all__ = [
    "Schedule",
    "Stages",
    "TrainConfig",
    "Trainer",
    "load_checkpoint",
    "save_checkpoint",
]
