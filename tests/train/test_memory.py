"""A micro-batch that does not fit is refused with the largest one that does."""

from __future__ import annotations

import pytest
import torch

from repeatlab.models.gpt import ModelConfig
from repeatlab.train.config import TrainConfig
from repeatlab.train.memory import BatchTooLargeError, check_cpu_fit, check_cuda_fit, estimate_train_bytes
from repeatlab.train.plan import plan_batches

CONFIG = ModelConfig(n_layer=2, d_model=64, n_head=2, vocab_size=257, context=16)


def plan(micro_tokens: int | None = None):  # noqa: ANN201
    return plan_batches(TrainConfig(batch_tokens=48 * 16, micro_batch_tokens=micro_tokens), context=16, world_size=1,
                        n_sequences=1000)


def test_estimate_grows_with_the_micro_batch() -> None:
    one = estimate_train_bytes(CONFIG, n_params=10_000, micro_batch_sequences=1)
    assert estimate_train_bytes(CONFIG, n_params=10_000, micro_batch_sequences=8) - one == 7 * (one - 160_000)


def test_cpu_refusal_names_the_largest_micro_batch_that_fits() -> None:
    budget = estimate_train_bytes(CONFIG, n_params=10_000, micro_batch_sequences=7) / 0.9  # 7 fits, 8 does not
    with pytest.raises(BatchTooLargeError, match=r"largest micro-batch that fits is 6 sequences.*"
                                                 r"micro_batch_tokens=96 "):
        check_cpu_fit(CONFIG, plan(), n_params=10_000, available=int(budget))  # 6 = largest divisor of 48 <= 7
    check_cpu_fit(CONFIG, plan(6 * 16), n_params=10_000, available=int(budget))
    check_cpu_fit(CONFIG, plan(), n_params=10_000, available=None)


def test_cpu_refusal_when_nothing_fits() -> None:
    with pytest.raises(BatchTooLargeError, match="even one sequence"):
        check_cpu_fit(CONFIG, plan(), n_params=10_000, available=1000)


def test_cuda_probe_searches_the_largest_micro_batch() -> None:
    tried: list[int] = []

    def fake_step(micro: int) -> None:
        tried.append(micro)
        if micro > 13:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(BatchTooLargeError, match=r"does not fit in GPU memory.*largest micro-batch that fits is 12 "
                                                 r"sequences.*micro_batch_tokens=192"):
        check_cuda_fit(fake_step, plan())
    assert tried[0] == 48 and len(tried) <= 5  # halving search over the divisors of 48, not a linear scan
    tried.clear()
    check_cuda_fit(fake_step, plan(8 * 16))
    assert tried == [8]
