"""Training: AdamW with warm-up + cosine, gradient accumulation, DDP, evaluations and exact resume."""

from repeatlab.train.config import OptimConfig, RunConfig, TrainConfig
from repeatlab.train.run import LoadedRun, RunDirError, load_run, train
from repeatlab.train.trainer import TrainingDiverged

__all__ = ["LoadedRun", "OptimConfig", "RunConfig", "RunDirError", "TrainConfig", "TrainingDiverged", "load_run",
           "train"]
