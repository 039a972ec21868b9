"""Pure functions of the step: the learning rate, and the steps at which the run is evaluated.

Nothing here holds state, so resuming at step k needs nothing but k (nanoGPT's ``get_lr``).
Steps count completed optimizer updates: step 0 is the initial model, step ``n_steps`` the final one.
"""

from __future__ import annotations

import math

import numpy as np

from repeatlab.errors import RepeatlabError
from repeatlab.train.config import OptimConfig


def learning_rate(step: int, *, optim: OptimConfig, n_steps: int) -> float:
    """Learning rate of the update that takes the model from ``step`` to ``step + 1``.

    Linear warm-up from ``lr / warmup_steps`` to ``lr`` over the first ``warmup_steps`` updates, then
    a half cosine from ``lr`` down to ``min_lr_ratio * lr`` at the last update.
    """
    if step < 0:
        raise RepeatlabError(f"step must be >= 0, got {step}")
    warmup = min(optim.warmup_steps, n_steps)
    if step < warmup:
        return optim.lr * (step + 1) / warmup
    decay_steps = n_steps - warmup
    progress = min((step - warmup) / max(decay_steps - 1, 1), 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return optim.lr * (optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine)


def eval_steps(n_steps: int, *, n_log_evals: int, eval_every: int | None) -> list[int]:
    """Sorted steps to evaluate at: 0, ``n_log_evals`` log-spaced steps in [1, n_steps], every
    ``eval_every`` steps, and always the final step ``n_steps``."""
    steps = {0, n_steps}
    if n_log_evals > 0 and n_steps >= 1:
        steps.update(int(s) for s in np.unique(np.round(np.geomspace(1, n_steps, n_log_evals))))
    if eval_every is not None:
        steps.update(range(eval_every, n_steps + 1, eval_every))
    return sorted(steps)
