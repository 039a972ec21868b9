"""Training: AdamW with warm-up + cosine, gradient accumulation, DDP, evaluations and exact resume.

Also, driven by the run's config: extra held-out losses (``train.extra_evals``), training-time interventions
on named hook points (``train.interventions``), fine-tuning from another run (``init_from``), and step
evaluators whose scores join each metrics record (``train.probe_metrics``, supplied by ``repeatlab.dynamics``).
"""

from repeatlab.train.config import PROBE_METRICS, InterventionConfig, OptimConfig, RunConfig, TrainConfig
from repeatlab.data.corpus import PYTHON_STDLIB
from repeatlab.train.run import LoadedRun, RunDirError, init_from_weights, load_run, train
from repeatlab.train.trainer import StepEvaluator, TrainingDiverged

__all__ = ["PROBE_METRICS", "PYTHON_STDLIB", "InterventionConfig", "LoadedRun", "OptimConfig", "RunConfig",
           "RunDirError", "StepEvaluator", "TrainConfig", "TrainingDiverged", "init_from_weights", "load_run", "train"]
