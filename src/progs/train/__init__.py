"""Training: losses (``losses``), the staged schedule (``schedule``), the loop (``trainer``) and
checkpoints (``checkpoint``)."""

from progs.train.checkpoint import load_checkpoint, save_checkpoint
from progs.train.schedule import Schedule, Stages
from progs.train.config import TrainConfig
from progs.train.trainer import Trainer

__all__ = [
    "Schedule", "Stages", "TrainConfig", "Trainer", "load_checkpoint", "save_checkpoint",
]
