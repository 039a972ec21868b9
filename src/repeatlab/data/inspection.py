"""What the trainer sees at a step: the batch its loader yields there, decoded with the dataset's tokenizer.

OLMo's ``inspect-train-data`` idea: to check by eye what a run trained on at step N, and which rows were
repeated-subset sequences, without replaying the run. The batch comes from the trainer's own loader
(``MixtureLoader.batch``, a pure function of the step), never from a second copy of its order logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from repeatlab.data.mixture import Mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.errors import RepeatlabError

if TYPE_CHECKING:  # the loader needs torch, imported only when a batch is built: ``repeatlab.data`` stays light
    from repeatlab.data.loader import Batch


@dataclass(frozen=True)
class BatchRow:
    """One row of a step's batch, decoded."""

    row: int
    """Position in the global batch (data-parallel processes each take a contiguous slice)."""
    sequence_id: int
    """Id of the sequence in the training pool."""
    is_repeat: bool
    """Whether the sequence belongs to the mixture's repeated subset."""
    tokens: np.ndarray
    """The row's ``context + 1`` token ids: the inputs and the last target."""
    text: str
    """``tokens`` decoded with the dataset's tokenizer."""


def batch_at_step(dataset: PreparedDataset, mixture: Mixture, *, batch_size: int, step: int) -> Batch:
    """The batch the trainer's loader yields at ``step`` with ``batch_size`` sequences per step."""
    from repeatlab.data.loader import MixtureLoader  # needs torch: imported only when a batch is built

    loader = MixtureLoader(dataset, mixture, batch_size=batch_size)
    if not 0 <= step < loader.n_steps:
        raise RepeatlabError(f"step {step} is outside the {loader.n_steps} steps of this mixture at {batch_size} "
                             f"sequences per step; give a step from 0 to {loader.n_steps - 1}")
    return loader.batch(step)


def decode_batch(dataset: PreparedDataset, batch: Batch, *, max_rows: int | None = None) -> list[BatchRow]:
    """The first ``max_rows`` rows of ``batch`` (all by default) as token ids and text."""
    if dataset.d_vector is not None:
        raise RepeatlabError(f"{dataset.path} is a vector dataset ({dataset.meta.get('task', 'vectors')}): its rows "
                             f"are vectors of {dataset.d_vector} numbers with no tokenizer, so there is no text to show")
    if max_rows is not None and max_rows < 1:
        raise RepeatlabError(f"the number of rows to show must be at least 1, got {max_rows}")
    tokens = np.concatenate([batch.inputs.numpy(), batch.targets.numpy()[:, -1:]], axis=1)  # [batch, context + 1]
    n_rows = len(tokens) if max_rows is None else min(max_rows, len(tokens))
    tokenizer = dataset.tokenizer
    return [BatchRow(row=i, sequence_id=int(batch.sequence_ids[i]), is_repeat=bool(batch.is_repeat[i]),
                     tokens=tokens[i], text=tokenizer.decode(tokens[i].tolist())) for i in range(n_rows)]
