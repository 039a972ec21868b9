"""Turn a batch size stated in tokens into sequences per process, micro-batches and the number of steps.

These values depend on the dataset's context, the mixture's length and the number of processes, so they
are derived here once the data is open, with errors that name the config field to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from repeatlab.errors import RepeatlabError
from repeatlab.train.config import TrainConfig


@dataclass(frozen=True)
class BatchPlan:
    """How one global batch is split over processes and gradient-accumulation steps."""

    context: int
    """Tokens per sequence."""
    batch_sequences: int
    """Sequences per optimizer step, over all processes."""
    micro_batch_sequences: int
    """Sequences per forward/backward pass on one process."""
    world_size: int
    """Number of data-parallel processes."""
    n_steps: int
    """Optimizer steps in the run (the mixture's sequences divided by ``batch_sequences``; a partial
    last batch is dropped)."""

    @property
    def batch_tokens(self) -> int:
        return self.batch_sequences * self.context

    @property
    def rank_sequences(self) -> int:
        """Sequences each process handles per optimizer step."""
        return self.batch_sequences // self.world_size

    @property
    def grad_accum(self) -> int:
        """Forward/backward passes per process per optimizer step."""
        return self.rank_sequences // self.micro_batch_sequences

    def rank_slice(self, rank: int) -> slice:
        """Rows of the global batch that process ``rank`` trains on."""
        return slice(rank * self.rank_sequences, (rank + 1) * self.rank_sequences)


def plan_batches(config: TrainConfig, *, context: int, world_size: int, n_sequences: int) -> BatchPlan:
    """Check that the token counts divide evenly and derive the per-process split."""
    if config.batch_tokens % context:
        lower = max(config.batch_tokens // context, 1) * context
        raise RepeatlabError(
            f"train.batch_tokens={config.batch_tokens} is not a multiple of the dataset's context {context}; "
            f"use e.g. {lower}"
        )
    batch_sequences = config.batch_tokens // context
    if batch_sequences % world_size:
        raise RepeatlabError(
            f"train.batch_tokens={config.batch_tokens} is {batch_sequences} sequences, which {world_size} processes "
            f"cannot share evenly; use a multiple of {world_size * context} tokens"
        )
    rank_sequences = batch_sequences // world_size
    micro = rank_sequences
    if config.micro_batch_tokens is not None:
        if config.micro_batch_tokens % context:
            raise RepeatlabError(
                f"train.micro_batch_tokens={config.micro_batch_tokens} is not a multiple of the context {context}"
            )
        micro = config.micro_batch_tokens // context
        if rank_sequences % micro:
            raise RepeatlabError(
                f"train.micro_batch_tokens={config.micro_batch_tokens} ({micro} sequences) does not divide the "
                f"{rank_sequences} sequences each of {world_size} process(es) trains on per step; "
                f"pick a divisor of {rank_sequences} sequences"
            )
    n_steps = n_sequences // batch_sequences
    if n_steps < 1:
        raise RepeatlabError(
            f"the mixture has {n_sequences} sequences, fewer than one batch of {batch_sequences} "
            f"(train.batch_tokens={config.batch_tokens}); lower batch_tokens or build a longer mixture"
        )
    return BatchPlan(
        context=context,
        batch_sequences=batch_sequences,
        micro_batch_sequences=micro,
        world_size=world_size,
        n_steps=n_steps,
    )


def divisors_up_to(n: int, limit: int) -> list[int]:
    """Divisors of ``n`` that are at most ``limit``, largest first (candidate micro-batch sizes)."""
    return [d for d in range(min(n, limit), 0, -1) if n % d == 0]
