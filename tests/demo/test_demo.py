"""The demo pipeline end to end on a tiny grid (the real cpu-tiny preset takes minutes; its grid is tested in sweeps)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from repeatlab.data.prepare import PrepareConfig
from repeatlab.demo import induction_changes, run_demo
from repeatlab.probes.config import ProbeConfig
from repeatlab.sweeps import GridConfig, ResourcesConfig
from repeatlab.train.config import OptimConfig, TrainConfig

CONTEXT = 16
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly vexing bards".split()


def tiny_grid(corpus: Path) -> GridConfig:
    """Two 1-layer sizes x (control + f=0.5, E=4): 4 runs of 8 steps on byte tokens."""
    return GridConfig(
        name="demo-test",
        sizes=("tiny-1l", "attn-only-tiny-1l"),
        total_tokens=64 * CONTEXT,
        repeated_fractions=(0.5,),
        repeated_epochs=(4,),
        data=PrepareConfig(source=str(corpus), tokenizer="byte", context=CONTEXT, test_fraction=0.1),
        optim=OptimConfig(lr=3e-3, warmup_steps=2),
        train=TrainConfig(batch_tokens=8 * CONTEXT, n_log_evals=2, eval_test_sequences=8, eval_repeated_sequences=8,
                          checkpoint_every=4, device="cpu"),
        probes=ProbeConfig(probes=("induction", "copying"), n_random_sequences=4, induction_tokens=7,
                           n_test_sequences=4, n_copies=2, n_copy_paragraphs=2),
        resources=ResourcesConfig(local_workers=1, max_retries=1),
    )


def test_demo_runs_sweep_report_and_findings_then_reuses_work(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(80):
        body = " ".join(WORDS[(i * 5 + j * j) % len(WORDS)] for j in range(50))
        (corpus / f"d{i}.txt").write_text(f"Doc {i}. {body}.", encoding="utf-8")
    grid = tiny_grid(corpus)
    first = run_demo(tmp_path / "demo", grid=grid, workers=1)
    assert first.n_failed == 0
    html = first.report_path.read_text()
    assert "<html" in html and "Findings" in html
    results = pd.read_parquet(first.sweep_dir / "results.parquet")
    assert set(results["status"]) == {"done"} and len(results) == 4
    assert any("induction score" in line for line in first.findings)
    stamps = {p: p.stat().st_mtime_ns for p in first.sweep_dir.rglob("model.safetensors")}
    second = run_demo(tmp_path / "demo", grid=grid, workers=1)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished runs are reused, not retrained
    assert second.seconds < first.seconds


def test_induction_changes_compares_worst_run_with_control() -> None:
    frame = pd.DataFrame({
        "status": ["done"] * 3, "kind": ["control", "repeated", "repeated"], "model": ["m"] * 3,
        "params": [10] * 3, "test_loss": [3.0, 3.5, 3.2], "probe_induction_max": [0.6, 0.2, 0.5],
        "repeated_epochs": [1, 100, 10],
    })
    (line,) = induction_changes(frame)
    assert "E=100" in line and "0.200" in line and "0.600" in line and "-0.400" in line
    assert induction_changes(frame.drop(columns="probe_induction_max")) == []
