"""The in-context classification task through the whole pipeline: prepared by the sweep, trained with its
ICL/IWL evaluators, resumed as a no-op, and drawn by the report's probe curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repeatlab.data.classification import ClassificationTask
from repeatlab.data.prepare import PrepareConfig
from repeatlab.report import load_sweep
from repeatlab.report.build import build_report
from repeatlab.sweeps.driver import run_sweep
from repeatlab.sweeps.grid import GridConfig, ResourcesConfig, load_grid
from repeatlab.train.config import OptimConfig, TrainConfig

TASK = ClassificationTask(n_classes=64, n_labels=8, n_pairs=6, n_train_sequences=1_500, n_test_sequences=64,
                          n_eval_sequences=32)
BATCH = 16


def grid() -> GridConfig:
    return GridConfig(
        name="icl-test", sizes=("cpu-2l-24",), total_tokens=40 * BATCH * TASK.context, repeated_fractions=(0.1,),
        repeated_epochs=(4,), seeds=(0,), unique_controls=True,
        data=PrepareConfig(source="classification", context=TASK.context, classification=TASK),
        optim=OptimConfig(lr=1e-2, warmup_steps=4),
        train=TrainConfig(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=20, eval_test_sequences=16,
                          eval_repeated_sequences=8, checkpoint_every=20, device="cpu",
                          probe_metrics=("classification",)),
        probes=None, resources=ResourcesConfig(local_workers=1),
    )


def test_a_classification_grid_runs_resumes_and_reports(tmp_path: Path) -> None:
    result = run_sweep(grid(), tmp_path / "sweep", workers=1)
    assert len(result.outcomes) == 3 and result.n_failed == 0  # control, (1 - f) T control, E = 4
    assert (result.results["status"] == "done").all()
    meta = json.loads((tmp_path / "sweep" / "data" / "meta.json").read_text())
    assert meta["task"] == "classification" and meta["classification"]["n_classes"] == 64
    records = [json.loads(line) for path in (tmp_path / "sweep").glob("runs/*/metrics.jsonl")
               for line in path.read_text().splitlines()]
    evals = [r for r in records if "classification.icl_accuracy" in r]
    assert evals and all(0 <= r["classification.iwl_accuracy"] <= 1 for r in evals)
    assert {"classification.icl_loss", "classification.induction.max"} <= set(evals[-1])
    again = run_sweep(grid(), tmp_path / "sweep", workers=1)  # the stored data config matches: nothing to do
    assert again.outcomes == [] and len(again.plan.done) == 3
    report = build_report(load_sweep(tmp_path / "sweep"))
    curves = next(s for s in report.sections if s.key == "probe-curves")
    assert curves.figure is not None and curves.caption.startswith("classification.icl_accuracy logged")
    findings = next(s for s in report.sections if s.key == "findings").items
    assert any(f.startswith("For cpu-2l-24 (13.8K params), in-context accuracy is lowest at E=4 with f=10%: ")
               for f in findings)


def test_the_cpu_icl_preset_is_the_documented_protocol() -> None:
    icl = load_grid("cpu-icl")
    assert icl.data.source == "classification" and icl.data.context == ClassificationTask().context == 17
    assert icl.repeated_fractions == (0.1,) and len(icl.seeds) >= 4 and icl.unique_controls
    assert "classification" in icl.train.probe_metrics and icl.train.batch_tokens == 64 * 17


def test_classification_parameters_need_the_classification_source() -> None:
    with pytest.raises(ValueError, match="classification parameters were given but source is 'builtin'"):
        PrepareConfig(source="builtin", classification=TASK)
