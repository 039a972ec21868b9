"""Config validation names the field; configs round-trip through JSON; batch planning checks divisibility."""

from __future__ import annotations

import json

import pytest

from repeatlab.config import from_dict, to_dict
from repeatlab.train.config import OptimConfig, RunConfig, TrainConfig
from repeatlab.train.plan import plan_batches


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (OptimConfig, "lr", 0.0),
        (OptimConfig, "min_lr_ratio", 1.5),
        (OptimConfig, "warmup_steps", -1),
        (OptimConfig, "beta2", 1.0),
        (OptimConfig, "grad_clip", 0.0),
        (TrainConfig, "batch_tokens", 0),
        (TrainConfig, "micro_batch_tokens", 0),
        (TrainConfig, "eval_every", 0),
        (TrainConfig, "keep_checkpoints", 0),
        (TrainConfig, "device", "tpu"),
        (TrainConfig, "precision", "fp16"),
    ],
)
def test_bad_values_name_the_field(cls: type, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        cls(**{field: value})


def test_micro_batch_larger_than_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="micro_batch_tokens"):
        TrainConfig(batch_tokens=64, micro_batch_tokens=128)


def test_run_config_round_trips_through_json() -> None:
    config = RunConfig(dataset="d", mixture="m", model="tiny-1l", optim=OptimConfig(lr=3e-4, grad_clip=None),
                       train=TrainConfig(batch_tokens=512, eval_every=10, precision="bf16"))
    data = json.loads(json.dumps(to_dict(config)))
    assert from_dict(RunConfig, data) == config


def test_resolved_makes_paths_absolute() -> None:
    resolved = RunConfig(dataset="d", mixture="m", model="tiny-1l").resolved()
    assert resolved.dataset.startswith("/") and resolved.mixture.startswith("/")


def test_plan_splits_the_global_batch() -> None:
    plan = plan_batches(TrainConfig(batch_tokens=32 * 16, micro_batch_tokens=4 * 16), context=16, world_size=2,
                        n_sequences=100)
    assert (plan.batch_sequences, plan.rank_sequences, plan.micro_batch_sequences, plan.grad_accum) == (32, 16, 4, 4)
    assert plan.n_steps == 3  # the partial last batch is dropped
    assert plan.rank_slice(1) == slice(16, 32)


@pytest.mark.parametrize(
    ("train", "world_size", "message"),
    [
        (TrainConfig(batch_tokens=100), 1, "batch_tokens=100 is not a multiple"),
        (TrainConfig(batch_tokens=48), 2, "cannot share evenly"),
        (TrainConfig(batch_tokens=64, micro_batch_tokens=24), 1, "micro_batch_tokens=24 is not a multiple"),
        (TrainConfig(batch_tokens=96, micro_batch_tokens=64), 1, "does not divide"),
        (TrainConfig(batch_tokens=16 * 200), 1, "fewer than one batch"),
    ],
)
def test_plan_errors_name_the_field(train: TrainConfig, world_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_batches(train, context=16, world_size=world_size, n_sequences=100)
