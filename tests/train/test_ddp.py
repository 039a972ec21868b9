"""``torchrun`` with two CPU processes (gloo) trains the same model as one process with the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from repeatlab.train import train

from .conftest import CONTEXT, run_config


@pytest.mark.slow
def test_two_processes_match_one(data_dir: Path, tmp_path: Path) -> None:
    # One process: 8 sequences per step as two micro-batches of 4. Two processes: 4 sequences each.
    single = train(run_config(data_dir, micro_batch_tokens=4 * CONTEXT, n_log_evals=6), tmp_path / "single")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "repeatlab.cli.__main__", "train", str(tmp_path / "ddp"),
        "--dataset", str(data_dir / "prepared"), "--mixture", str(data_dir / "repeated"), "--model", "tiny-1l",
        "--batch-tokens", str(8 * CONTEXT), "--device", "cpu", "--lr", "0.003", "--set", "optim.warmup_steps=2",
        "--set", "train.cpu_threads=1", "--set", "train.checkpoint_every=4", "--set", "train.n_log_evals=6",
        "--set", "train.eval_test_sequences=8", "--set", "train.eval_repeated_sequences=8",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done:") == 1  # only rank 0 reports

    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == single["steps"]
    ours = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    theirs = [json.loads(x) for x in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]
    for key in ("train_loss", "test_loss", "repeated_loss"):
        got = [r[key] for r in ours if r[key] is not None]
        want = [r[key] for r in theirs if r[key] is not None]
        assert got == pytest.approx(want, rel=1e-5), key
    a = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-4)
