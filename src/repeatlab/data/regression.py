"""In-context linear regression (von Oswald et al. 2022; Garg et al. 2022), written as a prepared dataset.

It is the testbed where in-context learning has a known optimum: a linear self-attention layer trained on it can
implement one step of gradient descent on its context, so "generalising" is measured as the gap to that solution.

Every sequence is a fresh task: weights ``w ~ N(0, I_d)``, inputs ``x ~ U(-1, 1)^d`` and targets
``y = w . x + noise``. It is stored as ``n_pairs + 1`` vectors ``e = [x, y]`` of width ``d + 1``, the last of which
is the query::

    [x_1, y_1] [x_2, y_2] ... [x_N, y_N] [x_q, y_q]

The model sees the query with ``y_q`` set to 0 (``vector_inputs``) and is trained to predict ``y_q`` at the
query's position (``vector_targets``: NaN at every other position, so only the query counts). The training pool,
the test split and the probes' tuning set are drawn from ``seed``; a repeated-data mixture repeats whole sequences
(task, context and query alike), the testbed's unit of data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from repeatlab.config import check_seed
from repeatlab.data.prepared import META_FILE, PreparedDataset
from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_directory, write_json

if TYPE_CHECKING:  # torch only where the rows become tensors: the report reads datasets without it
    from torch import Tensor

TASK_KIND = "regression"
"""``meta.json``'s ``task`` for a dataset written here, and the ``PrepareConfig.source`` that writes one."""
TUNING_SEED_OFFSET = 3
"""Seed offset of the probes' tuning set (the training pool uses ``seed``, the test split ``seed + 1``)."""


@dataclass(kw_only=True, frozen=True)
class RegressionTask:
    """Parameters of the in-context linear regression task (see the module docstring); defaults are von Oswald
    et al.'s (d = 10, N = 10, noiseless)."""

    dim: int = 10
    """d: input dimension; each vector has ``d + 1`` entries."""
    n_pairs: int = 10
    """N: context pairs before the query."""
    noise_std: float = 0.0
    """Std of the Gaussian noise added to every ``y``."""
    seed: int = 0
    """Seeds every sequence."""
    n_train_sequences: int = 256_000
    """Sequences (tasks) in the training pool."""
    n_test_sequences: int = 4_096
    """Held-out sequences (test loss and the probes)."""

    def __post_init__(self) -> None:
        for name in ("dim", "n_pairs", "n_train_sequences", "n_test_sequences"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RepeatlabError(f"RegressionTask.{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.noise_std, (int, float)) and 0.0 <= self.noise_std < float("inf")):
            raise RepeatlabError(f"RegressionTask.noise_std must be a finite number >= 0, got {self.noise_std!r}")
        check_seed("RegressionTask.seed", self.seed)

    @property
    def context(self) -> int:
        """Vectors per sequence: the pairs and the query."""
        return self.n_pairs + 1

    @property
    def d_vector(self) -> int:
        """Width of a vector: ``x`` and ``y``."""
        return self.dim + 1

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``[n, context, d + 1]`` float32 sequences, each a fresh task, the query's true ``y`` included."""
        rng = np.random.default_rng(seed)
        weights = rng.standard_normal((n, self.dim))  # [n, d]
        x = rng.uniform(-1.0, 1.0, (n, self.context, self.dim))  # [n, N + 1, d]
        y = np.einsum("ntd,nd->nt", x, weights) + self.noise_std * rng.standard_normal((n, self.context))
        return np.concatenate([x, y[..., None]], axis=-1).astype(np.float32)  # [n, N + 1, d + 1]


def vector_inputs(rows: Tensor) -> Tensor:
    """What the model sees of ``[b, context, d + 1]`` rows: the query's ``y`` (last entry of the last vector) is 0."""
    inputs = rows.clone()
    inputs[:, -1, -1] = 0.0
    return inputs  # [b, context, d + 1]


def vector_targets(rows: Tensor) -> Tensor:
    """``[b, context]`` targets: the query's ``y`` at the query's position, NaN (no loss) everywhere else."""
    import torch

    targets = torch.full(rows.shape[:2], float("nan"), dtype=rows.dtype)
    targets[:, -1] = rows[:, -1, -1]
    return targets


def write_regression_dataset(
    task: RegressionTask, out: str | Path, *, overwrite: bool = False, config: dict[str, Any] | None = None,
) -> Path:
    """The task's prepared dataset at ``out`` (built atomically; loads with ``load_prepared``): float32 vectors in
    ``train.bin`` and ``test.bin``, no tokenizer. ``config`` is recorded as ``meta.json``'s ``config``."""
    meta: dict[str, object] = {
        "kind": "prepared", "task": TASK_KIND, TASK_KIND: asdict(task), "source": f"{TASK_KIND}:{task.seed}",
        "tokenizer": None, "vocab_size": 0, "d_vector": task.d_vector, "dtype": "float32", "context": task.context,
        "seed": task.seed, "n_documents": task.n_train_sequences + task.n_test_sequences,
        "n_train_removed_as_test_duplicates": 0, **({"config": config} if config is not None else {}),
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for split, n, seed in (("train", task.n_train_sequences, task.seed), ("test", task.n_test_sequences,
                                                                              task.seed + 1)):
            task.sample(n, seed).tofile(tmp / f"{split}.bin")
            meta[split] = {"n_documents": n, "n_tokens": n * task.context, "n_chars": 0, "n_sequences": n}
        write_json(tmp / META_FILE, meta)
    return Path(out)


def regression_task(dataset: PreparedDataset) -> RegressionTask:
    """The task a prepared dataset was written from; refused if it is not a regression dataset."""
    if dataset.meta.get("task") != TASK_KIND:
        raise RepeatlabError(f"{dataset.path} is not an in-context regression dataset (its meta.json has no "
                             f"task = {TASK_KIND!r}); write one with 'repeatlab data prepare --source regression'")
    return RegressionTask(**dataset.meta[TASK_KIND])


def tuning_sequences(task: RegressionTask, n: int) -> np.ndarray:
    """``[n, context, d + 1]`` sequences of the training distribution, apart from the pool and the test split: the
    probes tune gradient descent's learning rate on them."""
    return task.sample(n, task.seed + TUNING_SEED_OFFSET)


__all__ = ["TASK_KIND", "RegressionTask", "regression_task", "tuning_sequences", "vector_inputs", "vector_targets",
           "write_regression_dataset"]
