"""Training dynamics and transfer: probe curves during training, fine-tuning stages and their comparison.

- ``train_with_probes(config, run_dir)``: train with the probe scores of ``train.probe_metrics`` logged at
  every evaluation (induction, prefix-matching, previous/duplicate-token, ICL), so a phase change is a curve.
- ``run_finetune_stage(runs, FinetuneStage(...), out)``: fine-tune pre-trained runs and train the same budget
  from scratch; ``compare_finetune`` gives the effective-parameter multiplier (transfer vs ossification).

Held-out out-of-distribution losses (``train.extra_evals``) and training-time clamping/ablation
(``train.interventions``) need no probes and live in ``repeatlab.train``.
"""

from repeatlab.dynamics.evaluators import curve_probe_config, head_metrics, probe_evaluators
from repeatlab.dynamics.finetune import (
    FINETUNE_FILE,
    FinetuneComparison,
    FinetuneStage,
    compare_finetune,
    finetune_config,
    run_finetune_stage,
    scratch_config,
    scratch_curve,
)
from repeatlab.dynamics.run import train_with_probes

__all__ = [
    "FINETUNE_FILE",
    "FinetuneComparison",
    "FinetuneStage",
    "compare_finetune",
    "curve_probe_config",
    "finetune_config",
    "head_metrics",
    "probe_evaluators",
    "run_finetune_stage",
    "scratch_config",
    "scratch_curve",
    "train_with_probes",
]
