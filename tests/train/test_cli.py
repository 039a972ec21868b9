"""``repeatlab train`` and ``repeatlab export``: thin commands over ``train.run``, errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from repeatlab.cli.__main__ import app

from .conftest import CONTEXT

runner = CliRunner()


def train_args(data_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "train", str(run_dir), "--dataset", str(data_dir / "prepared"), "--mixture", str(data_dir / "control"),
        "--model", "tiny-1l", "--batch-tokens", str(8 * CONTEXT), "--device", "cpu",
        "--set", "train.cpu_threads=1", "--set", "train.n_log_evals=3", "--set", "train.eval_test_sequences=8",
        "--set", "train.checkpoint_every=100", *extra,
    ]  # fmt: skip


def test_train_resume_refuse_and_export(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(app, train_args(data_dir, run_dir, "--lr", "0.002", "--set", "optim.warmup_steps=3"))
    assert result.exit_code == 0, result.output
    assert "starting at step 0/12" in result.output and "done: 12 steps" in result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optim"] == {**config["optim"], "lr": 0.002, "warmup_steps": 3}
    assert config["train"]["batch_tokens"] == 8 * CONTEXT and config["train"]["checkpoint_every"] == 100

    # The run directory alone is enough to resume (here: report) a run.
    again = runner.invoke(app, ["train", str(run_dir)])
    assert again.exit_code == 0 and "done: 12 steps" in again.output

    refused = runner.invoke(app, train_args(data_dir, run_dir, "--lr", "0.01"))
    assert refused.exit_code == 2
    assert "different config (optim.lr: stored 0.002, asked 0.01" in refused.output
    assert "Traceback" not in refused.output

    exported = runner.invoke(app, ["export", str(run_dir), "--to", "hf", str(tmp_path / "hf")])
    assert exported.exit_code == 0, exported.output
    assert {p.name for p in (tmp_path / "hf").iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}


def test_train_errors_are_one_line(data_dir: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["train", str(tmp_path / "run"), "--dataset", str(data_dir / "prepared")])
    assert missing.exit_code == 2 and "give --mixture, --model" in missing.output
    bad_set = runner.invoke(app, train_args(data_dir, tmp_path / "run", "--set", "train.nope=1"))
    assert bad_set.exit_code == 2 and "unknown key 'nope'" in bad_set.output
    bad_batch = runner.invoke(app, train_args(data_dir, tmp_path / "run", "--batch-tokens", "100"))
    assert bad_batch.exit_code == 2 and "batch_tokens=100 is not a multiple" in bad_batch.output
    bad_export = runner.invoke(app, ["export", str(tmp_path / "none"), "--to", "onnx", str(tmp_path / "out")])
    assert bad_export.exit_code == 2 and "--to must be hf" in bad_export.output
