"""Batches of a mixture in training order, read through the memmap, resumable at any step.

The batch for a step is a pure function of (mixture, batch size, step), so resuming needs only
the step: nothing is replayed, and nothing but the requested rows is read from disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from repeatlab.data.mixture import Mixture, check_fits
from repeatlab.data.prepared import PreparedDataset
from repeatlab.data.regression import vector_inputs, vector_targets
from repeatlab.errors import RepeatlabError


@dataclass(frozen=True)
class Batch:
    """Inputs and next-token targets of a batch, and which rows are repeated-subset sequences."""

    inputs: torch.Tensor
    """[batch, context] int64 token ids (vector data: [batch, context, d_vector] float32)."""
    targets: torch.Tensor
    """[batch, context] int64 next-token ids (vector data: float32 targets, NaN where none)."""
    sequence_ids: np.ndarray
    """[batch] ids into the training pool (or test split)."""
    is_repeat: torch.Tensor
    """[batch] bool, True for repeated-subset sequences."""


def rows_to_batch(rows: np.ndarray, sequence_ids: np.ndarray, is_repeat: np.ndarray) -> Batch:
    """Turn ``[batch, context + 1]`` token rows into an input/target batch; ``[batch, context, d_vector]`` float
    rows of a vector dataset into its inputs and targets (``data.regression``)."""
    if rows.ndim == 3:
        vectors = torch.from_numpy(np.array(rows, dtype=np.float32))
        inputs, targets = vector_inputs(vectors), vector_targets(vectors)
    else:
        tokens = torch.from_numpy(rows.astype(np.int64))
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
    return Batch(inputs=inputs, targets=targets, sequence_ids=sequence_ids, is_repeat=torch.from_numpy(is_repeat))


class MixtureLoader:
    """Deterministic batches of ``batch_size`` sequences, in mixture order.

    Steps are numbered from 0; the last partial batch is dropped, so ``n_steps`` =
    ``n_sequences // batch_size``. ``state_dict``/``load_state_dict`` carry the next step.
    """

    def __init__(self, dataset: PreparedDataset, mixture: Mixture, *, batch_size: int) -> None:
        if batch_size < 1:
            raise RepeatlabError(f"batch_size must be at least 1 sequence, got {batch_size}")
        check_fits(mixture, dataset)
        if len(mixture.order) < batch_size:
            raise RepeatlabError(f"the mixture has {len(mixture.order)} sequences, fewer than one batch of {batch_size}")
        self.dataset, self.mixture, self.batch_size = dataset, mixture, batch_size
        self._rows = dataset.sequences("train")
        self._repeated = np.zeros(dataset.n_sequences("train"), dtype=bool)
        self._repeated[mixture.repeated_ids] = True
        self.next_step = 0

    @property
    def n_steps(self) -> int:
        return len(self.mixture.order) // self.batch_size

    def batch(self, step: int) -> Batch:
        """The batch of ``step`` (a pure function of the step)."""
        if not 0 <= step < self.n_steps:
            raise IndexError(f"step {step} is outside the mixture's {self.n_steps} steps")
        ids = self.mixture.order[step * self.batch_size : (step + 1) * self.batch_size]
        return rows_to_batch(self._rows[ids], ids, self._repeated[ids])

    def __iter__(self) -> Iterator[Batch]:
        while self.next_step < self.n_steps:
            batch = self.batch(self.next_step)
            self.next_step += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"next_step": self.next_step, "batch_size": self.batch_size, "n_sequences": len(self.mixture.order)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["batch_size"] != self.batch_size or state["n_sequences"] != len(self.mixture.order):
            raise RepeatlabError(
                f"loader state is for batch_size={state['batch_size']} over {state['n_sequences']} sequences, "
                f"not {self.batch_size} over {len(self.mixture.order)}; resume with the original settings"
            )
        self.next_step = int(state["next_step"])


def eval_sequence_ids(n_available: int, max_sequences: int, seed: int = 0) -> np.ndarray:
    """A fixed, seeded, sorted sample of at most ``max_sequences`` ids (all of them if fewer)."""
    if n_available <= max_sequences:
        return np.arange(n_available, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_available, size=max_sequences, replace=False)).astype(np.int64)


def eval_batches(
    dataset: PreparedDataset, ids: np.ndarray, *, split: str = "train", batch_size: int, is_repeat: bool = False
) -> Iterator[Batch]:
    """Batches of the given sequence ids of a split (test split, or repeated subset of the pool)."""
    rows = dataset.sequences("test" if split == "test" else "train")
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        yield rows_to_batch(rows[chunk], chunk, np.full(len(chunk), is_repeat))


def repeated_subset_batches(
    dataset: PreparedDataset, mixture: Mixture, *, batch_size: int, max_sequences: int, seed: int = 0
) -> Iterator[Batch]:
    """Evaluation batches over (a fixed sample of) the repeated subset."""
    pick = eval_sequence_ids(len(mixture.repeated_ids), max_sequences, seed)
    return eval_batches(dataset, mixture.repeated_ids[pick], split="train", batch_size=batch_size, is_repeat=True)


def test_batches(dataset: PreparedDataset, *, batch_size: int, max_sequences: int, seed: int = 0) -> Iterator[Batch]:
    """Evaluation batches over (a fixed sample of) the clean test split."""
    ids = eval_sequence_ids(dataset.n_sequences("test"), max_sequences, seed)
    return eval_batches(dataset, ids, split="test", batch_size=batch_size)
