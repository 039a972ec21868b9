"""Evaluation losses on fixed samples, and the ``metrics.jsonl`` log of a run.

Evaluation must stay cheap next to training, so it reads a fixed, seeded sample of the clean test split
and of the repeated subset (the same sequences at every step, so curves are comparable), in eval mode
and without gradients. Under DDP each process evaluates every ``world_size``-th batch and the sums are
all-reduced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from repeatlab.data.loader import Batch, repeated_subset_batches, rows_to_batch, test_batches
from repeatlab.data.mixture import Mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.io import append_jsonl, read_jsonl, rewrite_jsonl
from repeatlab.layout import METRICS_FILE
from repeatlab.train.distributed import World
from repeatlab.train.objective import summed_loss



class Evaluator:
    """Mean loss (``train.objective``) on the test sample, the repeated-subset sample and any extra held-out sets."""

    def __init__(
        self,
        dataset: PreparedDataset,
        mixture: Mixture,
        world: World,
        *,
        test_sequences: int,
        repeated_sequences: int,
        batch_sequences: int,
        seed: int,
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """``extra`` maps a name to ``[n, context + 1]`` token rows (``train.extra_evals``): ``{name}_loss``."""
        self.world = world
        self.extra = {name: _row_batches(rows, batch_sequences) for name, rows in (extra or {}).items()}
        self.test = list(test_batches(dataset, batch_size=batch_sequences, max_sequences=test_sequences, seed=seed))
        has_repeats = len(mixture.repeated_ids) > 0 and repeated_sequences > 0
        self.repeated = (
            list(
                repeated_subset_batches(
                    dataset, mixture, batch_size=batch_sequences, max_sequences=repeated_sequences, seed=seed
                )
            )
            if has_repeats
            else None
        )

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        """``{"test_loss", "repeated_loss" (None for a control), "{name}_loss" per extra set}``; restores train mode."""
        was_training = model.training
        model.eval()
        try:
            return {
                "test_loss": self._mean_loss(model, self.test),
                "repeated_loss": self._mean_loss(model, self.repeated) if self.repeated is not None else None,
                **{f"{name}_loss": self._mean_loss(model, batches) for name, batches in self.extra.items()},
            }
        finally:
            model.train(was_training)

    def _mean_loss(self, model: nn.Module, batches: Iterable[Batch]) -> float:
        world = self.world
        total = torch.zeros((), dtype=torch.float64, device=world.device)
        count = 0
        for i, batch in enumerate(batches):
            if i % world.world_size != world.rank:
                continue
            inputs = batch.inputs.to(world.device, non_blocking=True)
            targets = batch.targets.to(world.device, non_blocking=True)
            with world.autocast():
                loss, n_targets = summed_loss(model, inputs, targets)  # [], int
            total += loss.double()
            count += n_targets
        summed, n = world.all_reduce_sum([total.item(), float(count)])
        return summed / n if n else math.nan


def _row_batches(rows: np.ndarray, batch_size: int) -> list[Batch]:
    """Batches of ``[n, context + 1]`` token rows, in order."""
    batches = []
    for start in range(0, len(rows), batch_size):
        chunk = np.asarray(rows[start : start + batch_size])
        batches.append(rows_to_batch(chunk, np.arange(start, start + len(chunk)), np.zeros(len(chunk), dtype=bool)))
    return batches


class MetricsLog:
    """``metrics.jsonl``: one record per evaluation, appended atomically; only the main process writes."""

    def __init__(self, run_dir: Path, *, write: bool = True) -> None:
        self.path, self.write = Path(run_dir) / METRICS_FILE, write

    def records(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)

    def append(self, record: dict[str, Any]) -> None:
        if self.write:
            append_jsonl(self.path, record)

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (written after the checkpoint a run resumes from), so none repeats."""
        if not self.write or not self.path.exists():
            return
        # Always rewritten: this also drops a half-written last line, which a later append would extend.
        rewrite_jsonl(self.path, [r for r in self.records() if r["step"] <= step])
