"""The in-context regression section, on run directories a real repeated sweep of lsa-1l wrote (a control, a
unique-only control and one repeated setting, two seeds): one table row per setting whose loss ratios are the
runs' own probe results, curves from the runs' metrics, and no section in a sweep without regression runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.prepare import PrepareConfig
from repeatlab.data.regression import RegressionTask
from repeatlab.probes.config import ProbeConfig
from repeatlab.report import build_report, load_sweep
from repeatlab.report.sections.regression import NEAR_GD, reached_gd_at
from repeatlab.report.load import load_run_record
from repeatlab.sweeps.driver import run_sweep
from repeatlab.sweeps.grid import GridConfig, ResourcesConfig
from repeatlab.train.config import OptimConfig, TrainConfig

TASK = RegressionTask(dim=4, n_pairs=6, n_train_sequences=2_000, n_test_sequences=128)
BATCH, STEPS = 32, 40


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    grid = GridConfig(
        name="regression-test", kind="repeated", sizes=("lsa-1l",), total_tokens=STEPS * BATCH * TASK.context,
        repeated_fractions=(0.25,), repeated_epochs=(10,), seeds=(0, 1), unique_controls=True,
        data=PrepareConfig(source="regression", context=TASK.context, regression=TASK),
        optim=OptimConfig(lr=3e-2, warmup_steps=2, weight_decay=0.0),
        train=TrainConfig(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=10, eval_test_sequences=64,
                          eval_repeated_sequences=16, checkpoint_every=STEPS, device="cpu",
                          probe_metrics=("regression",), probe_sequences=64),
        probes=ProbeConfig(probes=("regression",), n_test_sequences=64), resources=ResourcesConfig(local_workers=2),
    )
    out = tmp_path_factory.mktemp("regression") / "sweep"
    assert run_sweep(grid, out).n_failed == 0
    return out


def probe_ratios(sweep: Path) -> dict[str, list[float]]:
    """Setting -> the runs' final loss ratios, read straight from each run's files."""
    out: dict[str, list[float]] = {}
    for run_dir in sorted((sweep / "runs").iterdir(), key=lambda p: json.loads((p / "sweep_run.json").read_text())
                          ["spec"]["point"]["seed"]):
        point = json.loads((run_dir / "sweep_run.json").read_text())["spec"]["point"]
        ratio = json.loads((run_dir / "probes.json").read_text())["summary"]["regression.loss_ratio"]
        if point["repeated_fraction"] > 0:
            setting = f"f=0.25 E={point['repeated_epochs']}"
        else:
            setting = "unique-only control" if point["total_tokens"] < STEPS * BATCH * TASK.context else "control"
        out.setdefault(setting, []).append(ratio)
    return out


def test_one_row_per_setting_with_the_runs_own_loss_ratios(sweep: Path) -> None:
    section = {s.key: s for s in build_report(load_sweep(sweep)).sections}["regression-gd"]
    assert section.figure is not None
    rows = [dict(zip(section.tables[0].columns, row)) for row in section.tables[0].rows]
    assert [r["setting"] for r in rows] == ["control", "unique-only control", "f=0.25 E=10"]
    measured = probe_ratios(sweep)
    for row in rows:
        ratios = measured[row["setting"]]
        assert row["seeds"] == "0, 1"
        assert row["loss ratio to 1 GD step"] == f"{np.mean(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]"


def test_reaching_gd_is_the_first_logged_step_within_the_margin(sweep: Path) -> None:
    for run_dir in (sweep / "runs").iterdir():
        lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        logged = [(r["step"], r["regression.loss_ratio"]) for r in lines if "regression.loss_ratio" in r]
        assert logged, "the runs log the GD comparison over training"
        expected = next((step for step, ratio in logged if ratio <= NEAR_GD), None)
        assert reached_gd_at(load_run_record(run_dir, [])) == expected


def test_a_sweep_without_regression_runs_has_no_section(full_report) -> None:
    assert "regression-gd" not in {s.key for s in full_report.sections}
