"""Training: losses (``losses``), the staged schedule (``schedule``), the loop (``trainer``) and
checkpoints (``checkpoint``)."""

from progs.train.checkpoint import load_checkpoint, save_checkpoint
from progs.train.schedule import Schedule, Stages
from progs.train.trainer import TrainConfig, Trainer, evaluate_lods, scale_views

__all__ = [
    "Schedule", "Stages", "TrainConfig", "Trainer", "evaluate_lods", "load_checkpoint", "save_checkpoint", "scale_views",
]
