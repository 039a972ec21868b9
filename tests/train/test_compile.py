"""``train.compile`` on CPU: the model and its loss compiled as one unit give the eager losses, and a compiled
run resumed from a checkpoint equals the uninterrupted compiled run bit for bit.

Skipped where inductor has no C++ compiler to build its CPU kernels (see tests/QUARANTINES.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from repeatlab.train import train

from .conftest import StopTraining, run_config, stop_at_eval

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not any(shutil.which(cxx) for cxx in ("g++", "clang++", "c++")),
                       reason="torch.compile on CPU needs a C++ compiler (see tests/QUARANTINES.md)"),
]


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def compiled_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("compiled") / "run"
    train(run_config(data_dir, compile=True), run_dir)
    return run_dir


def test_compiled_losses_match_eager(compiled_run: Path, data_dir: Path, tmp_path: Path) -> None:
    eager = tmp_path / "eager"
    train(run_config(data_dir), eager)
    ours, theirs = records(compiled_run), records(eager)
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]
    for key in ("train_loss", "test_loss", "repeated_loss"):
        got = [r[key] for r in ours if r[key] is not None]
        want = [r[key] for r in theirs if r[key] is not None]
        assert len(got) >= 4 and got == pytest.approx(want, rel=1e-4, abs=1e-5), key
    assert ours[-1]["test_loss"] < ours[0]["test_loss"] - 0.5  # it learned: the comparison is not of two flat lines
    a, b = load_file(str(compiled_run / "model.safetensors")), load_file(str(eager / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4)


def test_compiled_resume_equals_uninterrupted(compiled_run: Path, data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(StopTraining):
        train(run_config(data_dir, compile=True), run_dir, progress=stop_at_eval(5))
    events: list[dict[str, Any]] = []
    train(run_config(data_dir, compile=True), run_dir, progress=events.append)
    assert events[0]["event"] == "resume" and events[0]["step"] == 4
    a, b = load_file(str(run_dir / "model.safetensors")), load_file(str(compiled_run / "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    for ours, theirs in zip(records(run_dir), records(compiled_run), strict=True):
        for key in ("train_loss", "test_loss", "repeated_loss", "lr"):
            assert ours[key] == theirs[key], (ours["step"], key)
