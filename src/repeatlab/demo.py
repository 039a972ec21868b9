"""The main job: the ``cpu-tiny`` sweep on the built-in corpus, probed, fitted and reported, in one call; and
``repeatlab reproduce``, the same pipeline on a reproduction preset (``REPRODUCTIONS``).

Everything is reused on a second call: finished runs are skipped by the sweep, so a rerun only rebuilds
the results table and the report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from repeatlab.report import write_report
from repeatlab.sweeps import GridConfig, load_grid, run_sweep

DEMO_PRESET = "cpu-tiny"
REPRODUCTIONS = {"cpu": "cpu-repro", "icl": "cpu-icl"}
"""``repeatlab reproduce NAME`` -> the preset it runs (docs/reproduction.md says what each one tests)."""


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs and what it found."""

    sweep_dir: Path
    report_path: Path
    findings: tuple[str, ...]
    seconds: float
    n_failed: int


def run_demo(
    out: str | Path,
    *,
    grid: GridConfig | None = None,
    workers: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> DemoResult:
    """Run the ``cpu-tiny`` sweep (or ``grid``) into ``out/sweep`` and write ``out/report.html``."""
    started = time.perf_counter()
    out = Path(out)
    sweep_dir, report_path = out / "sweep", out / "report.html"
    result = run_sweep(grid or load_grid(DEMO_PRESET), sweep_dir, workers=workers, progress=progress)
    report = write_report(sweep_dir, report_path)
    findings = [item for section in report.sections if section.key == "findings" for item in section.items]
    findings += induction_changes(result.results)
    return DemoResult(
        sweep_dir=sweep_dir,
        report_path=report_path,
        findings=tuple(findings),
        seconds=time.perf_counter() - started,
        n_failed=result.n_failed,
    )


def induction_changes(results: pd.DataFrame) -> list[str]:
    """Per size: the top induction score of the run with the worst test loss against its control's."""
    needed = {"status", "kind", "model", "params", "test_loss", "probe_induction_max", "repeated_epochs"}
    if not needed <= set(results.columns):
        return []
    done = results[results["status"] == "done"]
    lines = []
    for size, runs in done.sort_values("params").groupby("model", sort=False):
        controls, repeated = runs[runs["kind"] == "control"], runs[runs["kind"] == "repeated"]
        if controls.empty or repeated.empty:
            continue
        worst = repeated.loc[repeated["test_loss"].idxmax()]
        control_score = float(controls["probe_induction_max"].mean())
        score = float(worst["probe_induction_max"])
        if math.isnan(score) or math.isnan(control_score):
            continue
        lines.append(
            f"{size}: top induction score {score:.3f} at its worst repeat count (E={worst['repeated_epochs']:g}) "
            f"against {control_score:.3f} for its control ({score - control_score:+.3f})."
        )
    return lines
