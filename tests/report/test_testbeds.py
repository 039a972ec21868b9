"""The in-context classification sections, on run directories a real sweep over two data variants wrote: one panel
per variant with both seeds, final accuracies that are the runs' own last evaluations, and a K x B phase diagram;
neither section appears in a sweep without classification runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.classification import ClassificationTask
from repeatlab.data.prepare import PrepareConfig
from repeatlab.report import build_report, load_sweep
from repeatlab.report.analysis import Analysis
from repeatlab.report.sections.testbeds import classification_runs, winner
from repeatlab.sweeps.driver import run_sweep
from repeatlab.sweeps.grid import GridConfig, ResourcesConfig
from repeatlab.train.config import OptimConfig, TrainConfig

TASK = ClassificationTask(n_classes=24, n_labels=4, n_pairs=4, relabel_fraction=0.0, n_train_sequences=600,
                          n_test_sequences=64, n_eval_sequences=16)
BATCH = 8
VARIANTS = {"K24-B1": {"burstiness": 1}, "K48-B3": {"n_classes": 48, "burstiness": 3}}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    grid = GridConfig(
        name="testbed-test", kind="data_constrained", sizes=("attn-only-min-2l",),
        unique_tokens=(12 * BATCH * TASK.context,), repeated_epochs=(1,), seeds=(0, 1),
        data=PrepareConfig(source="classification", context=TASK.context, classification=TASK),
        data_variants=VARIANTS, optim=OptimConfig(lr=1e-2, warmup_steps=2),
        train=TrainConfig(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=4, eval_test_sequences=8,
                          eval_repeated_sequences=0, checkpoint_every=12, device="cpu",
                          probe_metrics=("classification",)),
        probes=None, resources=ResourcesConfig(local_workers=2),
    )
    out = tmp_path_factory.mktemp("testbed") / "sweep"
    assert run_sweep(grid, out).n_failed == 0
    return out


def finals(sweep: Path) -> dict[tuple[str, int], dict[str, float]]:
    """(variant, seed) -> the last evaluation's ICL/IWL accuracy, read straight from the run files."""
    out = {}
    for run_dir in (sweep / "runs").iterdir():
        point = json.loads((run_dir / "sweep_run.json").read_text())["spec"]["point"]
        last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
        out[point["data_variant"], point["seed"]] = {"icl": last["classification.icl_accuracy"],
                                                     "iwl": last["classification.iwl_accuracy"]}
    return out


def spread(values: list[float]) -> str:
    return f"{np.mean(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def test_curves_have_one_panel_per_variant_and_the_runs_own_final_accuracies(sweep: Path) -> None:
    report = build_report(load_sweep(sweep))
    section = {s.key: s for s in report.sections}["classification-curves"]
    assert section.figure is not None and not section.missing
    table = section.tables[0]
    rows = {row[0]: dict(zip(table.columns, row)) for row in table.rows}
    assert set(rows) == {"K24-B1 (K=24, B=1)", "K48-B3 (K=48, B=3)"}
    measured = finals(sweep)
    for variant in VARIANTS:
        row = rows[next(name for name in rows if name.startswith(variant))]
        icl = [measured[variant, seed]["icl"] for seed in (0, 1)]
        iwl = [measured[variant, seed]["iwl"] for seed in (0, 1)]
        assert row["seeds"] == "0, 1"
        assert row["final ICL accuracy"] == spread(icl) and row["final IWL accuracy"] == spread(iwl)
        assert row["wins"] == winner(float(np.mean(icl)), float(np.mean(iwl)))


def test_the_phase_diagram_has_a_cell_per_k_and_b(sweep: Path) -> None:
    data = load_sweep(sweep)
    runs = classification_runs(Analysis(data=data))
    assert sorted((r.task.n_classes, r.task.burstiness, r.seed) for r in runs) == [
        (24, 1, 0), (24, 1, 1), (48, 3, 0), (48, 3, 1)]
    section = {s.key: s for s in build_report(data).sections}["classification-phase"]
    assert section.figure is not None
    cells = [dict(zip(section.tables[0].columns, row)) for row in section.tables[0].rows]
    measured = finals(sweep)
    assert [(c["K"], c["B"], c["runs"]) for c in cells] == [("24", "1", "2"), ("48", "3", "2")]
    for cell, variant in zip(cells, VARIANTS):
        assert cell["final ICL accuracy"] == spread([measured[variant, s]["icl"] for s in (0, 1)])


def test_a_sweep_without_classification_runs_has_neither_section(full_report) -> None:
    keys = {s.key for s in full_report.sections}
    assert "classification-curves" not in keys and "classification-phase" not in keys
