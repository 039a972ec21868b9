"""A grid's training axis: ``[train_variants.<name>]`` runs every point once per variant, and an intervention's
``reference = "@<variant>"`` clamps to the same point's run of that variant, which the sweep trains first (Singh et
al. 2024's clamping as a sweep). Checked on a real tiny sweep and on the grid's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from repeatlab.data.classification import ClassificationTask
from repeatlab.data.prepare import PrepareConfig
from repeatlab.io import read_jsonl
from repeatlab.sweeps.driver import run_sweep
from repeatlab.sweeps.grid import GridConfig, ResourcesConfig, expand_grid
from repeatlab.train.config import OptimConfig, TrainConfig

TASK = ClassificationTask(n_classes=32, n_labels=8, n_pairs=4, n_train_sequences=600, n_test_sequences=32,
                          n_eval_sequences=16)
BATCH, STEPS = 8, 12
CLAMP_B = {"train": {"interventions": [{"hook": "blocks.1.attn.pattern", "mode": "reference",
                                        "reference": "@baseline"}]}}


def grid(variants: dict) -> GridConfig:
    return GridConfig(
        name="clamp-test", kind="data_constrained", sizes=("attn-only-min-2l",),
        unique_tokens=(STEPS * BATCH * TASK.context,), repeated_epochs=(1,), seeds=(0, 1),
        data=PrepareConfig(source="classification", context=TASK.context, classification=TASK),
        optim=OptimConfig(lr=1e-2, warmup_steps=2),
        train=TrainConfig(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=6, eval_test_sequences=8,
                          eval_repeated_sequences=0, checkpoint_every=STEPS, device="cpu",
                          probe_metrics=("classification",)),
        train_variants=variants, resources=ResourcesConfig(local_workers=2),
    )


def test_each_point_runs_once_per_variant_and_a_reference_is_its_own_seeds_baseline(tmp_path: Path) -> None:
    specs = expand_grid(grid({"baseline": {}, "clamp-B": CLAMP_B}))
    assert [(s.point.seed, s.point.train_variant) for s in specs] == [
        (0, "baseline"), (0, "clamp-B"), (1, "baseline"), (1, "clamp-B")]
    baselines = {s.point.seed: s.run_id for s in specs if s.point.train_variant == "baseline"}
    for spec in specs:
        if spec.point.train_variant == "clamp-B":
            assert [i.reference for i in spec.train.interventions] == [f"@{baselines[spec.point.seed]}"]

    out = tmp_path / "sweep"
    result = run_sweep(grid({"baseline": {}, "clamp-B": CLAMP_B}), out)
    assert result.n_failed == 0
    frame = pd.read_parquet(out / "results.parquet")
    assert sorted(frame["train_variant"]) == ["baseline", "baseline", "clamp-B", "clamp-B"]
    for spec in specs:
        if spec.point.train_variant != "clamp-B":
            continue
        run_dir = out / "runs" / spec.run_id
        reference = json.loads((run_dir / "config.json").read_text())["train"]["interventions"][0]["reference"]
        baseline_dir = out / "runs" / baselines[spec.point.seed]
        assert Path(reference) == baseline_dir.resolve()
        # The baseline had finished before the clamped run started: the sweep ran it in an earlier wave.
        baseline_done = [r["time"] for r in read_jsonl(baseline_dir / "attempts.jsonl") if r["event"] == "done"]
        clamped_start = [r["time"] for r in read_jsonl(run_dir / "attempts.jsonl") if r["event"] == "start"]
        assert baseline_done and clamped_start and max(baseline_done) <= min(clamped_start)


def test_a_reference_must_name_another_variant_without_references() -> None:
    with pytest.raises(ValueError, match=r"reference '@nothing' must name another of the grid's train variants"):
        grid({"baseline": {}, "clamp": {"train": {"interventions": [
            {"hook": "blocks.1.attn.pattern", "mode": "reference", "reference": "@nothing"}]}}})
    chained = {"train": {"interventions": [{"hook": "blocks.0.attn.out", "mode": "reference",
                                            "reference": "@clamp-B"}]}}
    with pytest.raises(ValueError, match="refers to another variant itself"):
        grid({"baseline": {}, "clamp-B": CLAMP_B, "chained": chained})
    with pytest.raises(ValueError, match="train_variants.bad: 'data.context' is not an optim.\\* or train.\\* field"):
        grid({"bad": {"data": {"context": 3}}})
