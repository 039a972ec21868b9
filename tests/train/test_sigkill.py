"""A run killed with SIGKILL at arbitrary moments and restarted with the same command ends bitwise identical.

A real CLI process, really killed (twice, at random moments after a checkpoint), then run to the end; the
uninterrupted reference runs in this process with the same config (one CPU thread in both, so the float
arithmetic is the same).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from repeatlab.data.mixture import MixtureSpec, make_mixture

from repeatlab.train import train

from .conftest import CONTEXT, run_config

N_STEPS = 60


def command(data_dir: Path, mixture: Path, run_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "repeatlab.cli.__main__", "train", str(run_dir),
        "--dataset", str(data_dir / "prepared"), "--mixture", str(mixture), "--model", "tiny-1l",
        "--batch-tokens", str(8 * CONTEXT), "--device", "cpu", "--lr", "0.003", "--set", "train.cpu_threads=1",
        "--set", "train.checkpoint_every=2", "--set", "train.keep_checkpoints=2", "--set", "train.eval_every=10",
        "--set", "train.eval_test_sequences=8", "--set", "train.eval_repeated_sequences=8",
        "--set", "optim.warmup_steps=5", "--set", "train.n_log_evals=20",
    ]  # fmt: skip


def latest_checkpoint(run_dir: Path) -> int:
    steps = [int(p.name.removeprefix("step_")) for p in (run_dir / "checkpoints").glob("step_*")]
    return max(steps, default=0)


def kill_when(proc: subprocess.Popen[bytes], run_dir: Path, *, after_step: int, jitter_s: float) -> int:
    """SIGKILL ``proc`` a random moment after its checkpoint passes ``after_step``; return that step."""
    deadline = time.monotonic() + 120
    while latest_checkpoint(run_dir) <= after_step:
        assert proc.poll() is None, f"the run exited (code {proc.returncode}) before step {after_step}"
        assert time.monotonic() < deadline, "no progress within 120 s"
        time.sleep(0.005)
    time.sleep(jitter_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists(), "the kill came after the run finished; the test proves nothing"
    return latest_checkpoint(run_dir)


@pytest.mark.slow
def test_sigkill_and_restart_gives_identical_weights(data_dir: Path, tmp_path: Path) -> None:
    mixture = tmp_path / "long-mix"
    make_mixture(data_dir / "prepared", MixtureSpec(total_tokens=N_STEPS * 8 * CONTEXT, unique_tokens=300 * CONTEXT),
                 mixture)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    config = run_config(data_dir, mixture=str(mixture), checkpoint_every=2, eval_every=10, n_log_evals=20)
    train(replace(config, optim=replace(config.optim, lr=0.003, warmup_steps=5)), reference)

    rng = random.Random(0)
    step = 0
    for after in (N_STEPS // 6, N_STEPS // 2):
        proc = subprocess.Popen(command(data_dir, mixture, killed), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        step = kill_when(proc, killed, after_step=max(after, step), jitter_s=rng.uniform(0.0, 0.03))
    done = subprocess.run(command(data_dir, mixture, killed), check=True, capture_output=True, text=True)
    assert f"resuming at step {step}/{N_STEPS}" in done.stdout

    assert (killed / "config.json").read_text() == (reference / "config.json").read_text()  # the same run
    ours, theirs = load_file(str(killed / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [r["step"] for r in expected]  # nothing duplicated or lost
    assert [r["test_loss"] for r in records] == [r["test_loss"] for r in expected]
    assert [r["train_loss"] for r in records] == [r["train_loss"] for r in expected]
