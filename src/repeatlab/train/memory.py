"""Refuse a micro-batch that does not fit in memory, and say the largest one that does.

On CUDA a probe runs one forward/backward pass at the configured micro-batch (with the optimizer's
memory held aside) and, on out-of-memory, searches the divisors of the per-process batch downwards.
On CPU an estimate (weights, gradients, AdamW moments, saved activations, logits) is compared with the
available RAM: CPU training swaps or is killed rather than raising, so it has to be refused up front.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.train.distributed import World
from repeatlab.train.objective import TrainingLoss
from repeatlab.train.plan import BatchPlan, divisors_up_to

_GIB = 2**30


class BatchTooLargeError(RepeatlabError):
    """The micro-batch does not fit in memory; the message names the largest that does."""


def check_memory(model: GPT, plan: BatchPlan, world: World) -> None:
    """Raise ``BatchTooLargeError`` if ``plan``'s micro-batch cannot be trained on ``world.device``."""
    if world.device.type == "cuda":
        check_cuda_fit(lambda micro: try_micro_batch(model, micro, world), plan)
    else:
        n_params = sum(p.numel() for p in model.parameters())
        check_cpu_fit(model.config, plan, n_params=n_params, available=available_memory_bytes())


def try_micro_batch(model: GPT, micro_batch_sequences: int, world: World) -> None:
    """Forward and backward on a dummy micro-batch with the AdamW moments' memory held aside; leaves no
    gradients behind."""
    n_params = sum(p.numel() for p in model.parameters())
    held = torch.empty(2 * n_params, dtype=torch.float32, device=world.device)
    try:
        config = model.config
        if config.d_vector is None:
            inputs = targets = torch.zeros(micro_batch_sequences, config.context, dtype=torch.long,
                                           device=world.device)  # [b, T]
        else:
            inputs = torch.zeros(micro_batch_sequences, config.context, config.d_vector, device=world.device)
            targets = torch.zeros(micro_batch_sequences, config.context, device=world.device)  # [b, T]
        with world.autocast():
            loss = TrainingLoss(model)(inputs, targets)  # []
        loss.backward()
    finally:
        del held
        model.zero_grad(set_to_none=True)


def estimate_train_bytes(config: ModelConfig, *, n_params: int, micro_batch_sequences: int) -> int:
    """A generous float32 estimate of the peak memory of one training step.

    Weights, gradients and two AdamW moments take 16 bytes per parameter. Per token, each layer keeps
    roughly 24 d_model floats for backward (LayerNorm, qkv, MLP input and GELU) plus the attention
    row if the attention is materialised; the logits take three V-sized buffers (logits, softmax, grad).
    """
    per_token = 4 * (config.n_layer * (24 * config.d_model + 2 * config.n_head * config.context) + 4 * config.d_model
                     + 3 * config.vocab_size)
    return 16 * n_params + micro_batch_sequences * config.context * per_token


def available_memory_bytes() -> int | None:
    """RAM available to new allocations (``MemAvailable``), or ``None`` where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def check_cpu_fit(config: ModelConfig, plan: BatchPlan, *, n_params: int, available: int | None) -> None:
    """Raise ``BatchTooLargeError`` when the estimate exceeds 90% of ``available`` bytes."""
    if available is None:
        return
    budget = 0.9 * available

    def fits(micro: int) -> bool:
        return estimate_train_bytes(config, n_params=n_params, micro_batch_sequences=micro) <= budget

    if fits(plan.micro_batch_sequences):
        return
    need = estimate_train_bytes(config, n_params=n_params, micro_batch_sequences=plan.micro_batch_sequences)
    largest = next((m for m in divisors_up_to(plan.rank_sequences, plan.micro_batch_sequences) if fits(m)), None)
    raise BatchTooLargeError(
        f"a micro-batch of {_describe(plan)} "
        f"needs about {need / _GIB:.1f} GiB of RAM but {available / _GIB:.1f} GiB is available; "
        + _advice(largest, plan)
    )


def check_cuda_fit(try_micro_batch: Callable[[int], None], plan: BatchPlan) -> None:
    """Run ``try_micro_batch(plan.micro_batch_sequences)``; on CUDA out-of-memory, find and report the
    largest divisor of the per-process batch for which it succeeds."""

    def fits(micro: int) -> bool:
        try:
            try_micro_batch(micro)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    if fits(plan.micro_batch_sequences):
        return
    # Halving search over divisors: the first that fits is the largest (each probe costs one step).
    candidates = divisors_up_to(plan.rank_sequences, plan.micro_batch_sequences - 1)
    largest = None
    while candidates:
        middle = candidates[len(candidates) // 2]
        if fits(middle):
            largest = middle
            candidates = [m for m in candidates if m > middle]
        else:
            candidates = [m for m in candidates if m < middle]
    raise BatchTooLargeError(
        f"a micro-batch of {_describe(plan)} "
        f"does not fit in GPU memory; " + _advice(largest, plan)
    )


def _describe(plan: BatchPlan) -> str:
    return f"{plan.micro_batch_sequences} sequences ({plan.micro_batch_sequences * plan.context:,} tokens)"


def _advice(largest: int | None, plan: BatchPlan) -> str:
    if largest is None:
        return "even one sequence per micro-batch does not fit: use a smaller model size or context"
    return (
        f"the largest micro-batch that fits is {largest} sequences: set train.micro_batch_tokens="
        f"{largest * plan.context} (gradient accumulation keeps the global batch of {plan.batch_tokens:,} tokens)"
    )
