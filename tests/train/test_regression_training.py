"""The trainer on vector data: a linear self-attention layer learns in-context regression through the same
trainer, evaluator, checkpoints and probe evaluators as a token model, and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.regression import RegressionTask, write_regression_dataset
from repeatlab.dynamics import train_with_probes
from repeatlab.train.config import OptimConfig, RunConfig, TrainConfig
from repeatlab.train.run import train
from tests.train.conftest import StopTraining, stop_at_eval
from tests.train.test_run import assert_same_weights

TASK = RegressionTask(dim=4, n_pairs=8, n_train_sequences=10_000, n_test_sequences=512, seed=0)
BATCH, STEPS = 64, 240


@pytest.fixture(scope="module")
def regression_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regression")
    write_regression_dataset(TASK, root / "data")
    make_mixture(root / "data", MixtureSpec(total_tokens=STEPS * BATCH * TASK.context, repeated_fraction=0.5,
                                            repeated_epochs=20, seed=0), root / "mix")
    return root


def config(root: Path, **train_fields: Any) -> RunConfig:
    fields: dict[str, Any] = dict(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=40,
                                  eval_test_sequences=512, eval_repeated_sequences=64, checkpoint_every=40,
                                  device="cpu", cpu_threads=1)
    fields.update(train_fields)
    return RunConfig(dataset=str(root / "data"), mixture=str(root / "mix"), model="lsa-1l",
                     optim=OptimConfig(lr=1e-2, warmup_steps=50, weight_decay=0.0),
                     train=TrainConfig(**fields))


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_linear_self_attention_layer_learns_in_context_and_resumes_exactly(regression_dir: Path,
                                                                             tmp_path: Path) -> None:
    summary = train(config(regression_dir), tmp_path / "full")
    log = records(tmp_path / "full")
    # Predicting 0 scores E[y^2] / 2 = d / 6 on this task; learning from the context goes well below it.
    assert log[0]["test_loss"] > 0.9 * TASK.dim / 6
    assert summary["test_loss"] < 0.5 * log[0]["test_loss"]
    assert summary["repeated_loss"] < summary["test_loss"]  # the repeated sequences are partly memorised
    with pytest.raises(StopTraining):
        train(config(regression_dir), tmp_path / "resumed", progress=stop_at_eval(80))
    train(config(regression_dir), tmp_path / "resumed")
    assert_same_weights(tmp_path / "resumed" / "model.safetensors", tmp_path / "full" / "model.safetensors")
    assert [r["test_loss"] for r in records(tmp_path / "resumed")] == [r["test_loss"] for r in log]


def test_the_gd_comparison_is_logged_over_training(regression_dir: Path, tmp_path: Path) -> None:
    summary = train_with_probes(config(regression_dir, probe_metrics=("regression",), probe_sequences=256),
                                tmp_path / "run")
    log = records(tmp_path / "run")
    first, last = log[0], log[-1]
    assert last["regression.loss_ratio"] < first["regression.loss_ratio"]
    assert last["regression.sensitivity_cosine"] > max(0.8, first["regression.sensitivity_cosine"])
    assert summary["steps"] == STEPS
