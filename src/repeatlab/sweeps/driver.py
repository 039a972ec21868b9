"""Run a whole grid: prepare the data once, plan the runs, hand the unfinished ones to a backend, collect.

``run_sweep`` can be stopped at any point (Ctrl-C, SIGKILL, a lost machine) and called again with the
same grid and directory: finished runs are skipped, interrupted ones resume from their checkpoints, and
the set of runs is the grid's, so nothing is lost or done twice. Failed runs are left alone unless
``retry_failed``. Only one driver may work on a directory at a time (it holds the directory's ``io.output_lock``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from repeatlab.dynamics.finetune import FinetunePlan, finish_finetune_stage, plan_finetune_stage
from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_write_text, check_output_dir, output_lock
from repeatlab.layout import CONFIG_FILE, ERROR_FILE, FINETUNE_DIR, SPEC_FILE
from repeatlab.records import run_status
from repeatlab.sweeps.backends import Backend, make_backend
from repeatlab.sweeps.grid import GridConfig, RunPoint, RunSpec, expand_grid, grid_to_toml
from repeatlab.sweeps.prepare import prepare_datasets
from repeatlab.sweeps.results import collect
from repeatlab.sweeps.runner import Report, RunOutcome
from repeatlab.sweeps.state import AnySpec, ConfigRunSpec, SweepDir, assign_run_ids, write_spec
from repeatlab.sweeps.variants import sibling_references
from repeatlab.train.run import check_run_dir

COLLECT_EVERY_S = 60.0
"""Rebuild ``results.parquet`` at most this often while a sweep runs (and always at its end)."""


@dataclass(frozen=True)
class SweepPlan:
    """The runs of a grid in a sweep directory and what is left to do."""

    sweep: SweepDir
    runs: dict[str, RunSpec]
    """Every run of the grid by run id (its directory name), in dispatch order."""
    todo: list[str]
    """Run ids to execute now (pending, interrupted, and failed ones when retrying)."""
    done: list[str]
    """Run ids already finished."""
    failed: list[str]
    """Run ids that failed before and are left alone (no ``retry_failed``)."""


@dataclass(frozen=True)
class SweepResult:
    """What one ``run_sweep`` call did."""

    plan: SweepPlan
    outcomes: list[RunOutcome] = field(default_factory=list)
    """One per run executed in this call, in finishing order."""
    results: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The rebuilt ``results.parquet``."""
    stage_outcomes: list[RunOutcome] = field(default_factory=list)
    """One per run of the fine-tuning stage executed in this call (``<sweep>/finetune``)."""

    @property
    def n_failed(self) -> int:
        return sum(o.status == "failed" for o in self.outcomes + self.stage_outcomes) + len(self.plan.failed)


def check_sweep_dir(out: Path) -> None:
    """Refuse to write a sweep into a directory that holds other files and is no sweep (no ``grid.toml``)."""
    sweep = SweepDir(out)
    if out.is_dir() and not sweep.grid_file.is_file() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise RepeatlabError(f"{out} is not empty and holds no {sweep.grid_file.name}, so it is not a sweep directory; "
                         f"give a new or empty --out, or the directory of the sweep to resume")


def plan_sweep(grid: GridConfig, out: Path, *, retry_failed: bool = False, say: Report | None = None) -> SweepPlan:
    """Write ``grid.toml``, prepare the data, create a directory with ``sweep_run.json`` per run, and sort
    the runs into done, failed (kept) and to-do. With ``retry_failed`` the old errors are cleared."""
    say = say or (lambda _event: None)
    sweep = SweepDir(Path(out))
    sweep.root.mkdir(parents=True, exist_ok=True)
    text = grid_to_toml(grid)
    prepare_datasets(grid, sweep, say)
    atomic_write_text(sweep.grid_file, text)
    runs = assign_run_ids(sweep, expand_grid(grid))
    todo, done, failed = _sort_runs(sweep, dict(runs), retry_failed=retry_failed)
    return SweepPlan(sweep=sweep, runs=dict(runs), todo=todo, done=done, failed=failed)


def _sort_runs(sweep: SweepDir, specs: dict[str, AnySpec], *,
               retry_failed: bool) -> tuple[list[str], list[str], list[str]]:
    """Give each run a directory with its ``sweep_run.json`` and sort the runs into (to do, done, failed and kept);
    with ``retry_failed`` a failed run's error is cleared and it is to do."""
    todo, done, failed = [], [], []
    for run_id, spec in specs.items():
        run_dir = sweep.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / SPEC_FILE).is_file():
            write_spec(run_dir, run_id, spec)
        status = run_status(run_dir, probes_required=spec.probes is not None)
        if status == "done":
            done.append(run_id)
        elif status == "failed" and not retry_failed:
            failed.append(run_id)
        else:
            if status == "failed":
                (run_dir / ERROR_FILE).unlink()
            todo.append(run_id)
    return todo, done, failed


def dependency_waves(plan: SweepPlan) -> list[list[str]]:
    """``plan.todo`` in the order references allow: runs that refer to another run still to do (``reference =
    "@<variant>"``, ``GridConfig.train_variants``) wait for a second wave; one wave when none does. References go
    one level deep (the grid refuses a reference to a run that has references itself)."""
    todo = set(plan.todo)
    waits = {run_id for run_id in plan.todo if set(_references(plan.runs[run_id])) & todo}
    first, later = [r for r in plan.todo if r not in waits], [r for r in plan.todo if r in waits]
    return [wave for wave in (first, later) if wave]


def _references(spec: Any) -> list[str]:
    return sibling_references(spec.train) if isinstance(spec, RunSpec) else []


def run_sweep(
    grid: GridConfig,
    out: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    progress: Report | None = None,
) -> SweepResult:
    """Bring every run of ``grid`` in ``out`` to done (or failed), then rebuild ``results.parquet``.

    Args:
        workers: local worker processes (default ``grid.resources.local_workers``); for Ray, the most
            runs in flight at once (default: as many as the cluster's resources allow).
        address: Ray cluster to join (``HOST:PORT`` or ``auto``); without it Ray starts a local cluster.
        progress: receives ``{"event": "plan" | "start" | "finish" | "retry" | "message" | "collect", ...}``.
    """
    say = progress or (lambda _event: None)
    runner = make_backend(backend, grid.resources, workers=workers, address=address)
    out = Path(out)
    check_output_dir(out)
    check_sweep_dir(out)
    with output_lock(out):
        plan = plan_sweep(grid, out, retry_failed=retry_failed, say=say)
        labels = {run_id: spec.point.label() for run_id, spec in plan.runs.items()}
        say({"event": "plan", "total": len(plan.runs), "done": len(plan.done), "failed": len(plan.failed),
             "todo": len(plan.todo), "labels": labels})
        last_collect = time.monotonic()

        def report(event: dict[str, Any]) -> None:
            nonlocal last_collect
            say({**event, "label": labels.get(event.get("run_id", ""), "")})
            if event["event"] == "finish" and time.monotonic() - last_collect > COLLECT_EVERY_S:
                collect(out)
                last_collect = time.monotonic()

        outcomes: list[RunOutcome] = []
        try:
            for wave in dependency_waves(plan):
                outcomes += runner.run(out, wave, report)
        except BaseException:
            with contextlib.suppress(Exception):  # keep the table current, but never mask the interruption
                collect(out)
            raise
        results = collect(out)
        say({"event": "collect", "path": str(plan.sweep.results_file), "rows": len(results)})
        stage_outcomes: list[RunOutcome] = []
        if grid.finetune is not None:
            done = results.loc[results["status"] == "done", "run_id"] if len(results) else []
            say({"event": "message", "text": f"fine-tuning stage: {len(done)} pre-trained runs, plus from-scratch runs"})
            stage = plan_finetune_stage([plan.sweep.run_dir(run_id) for run_id in done], grid.finetune,
                                        out / FINETUNE_DIR)
            stage_outcomes = run_stage(stage, runner, say, retry_failed=retry_failed)
            rows = finish_finetune_stage(stage)
            say({"event": "message", "text": f"fine-tuning stage done: {len(rows)} comparisons in {stage.out}"})
    return SweepResult(plan=plan, outcomes=outcomes, results=results, stage_outcomes=stage_outcomes)


def run_stage(stage: FinetunePlan, runner: Backend, say: Report, *, retry_failed: bool = False) -> list[RunOutcome]:
    """Run a fine-tuning stage's unfinished runs through ``runner``, as a sweep directory of their own (each run a
    ``ConfigRunSpec``), and rebuild its ``results.parquet``. Failed runs are left alone unless ``retry_failed``."""
    sweep = SweepDir(stage.out)
    specs = {
        name: ConfigRunSpec(point=RunPoint(kind="control", model=config.model, total_tokens=stage.stage.total_tokens,
                                           seed=config.train.seed), config=config)
        for name, config in stage.configs.items()
    }
    for name, spec in specs.items():  # the stage is planned anew each time: a changed one is refused, as by train
        run_dir = sweep.run_dir(name)
        if (run_dir / CONFIG_FILE).is_file():
            check_run_dir(run_dir, spec.config.resolved())
        run_dir.mkdir(parents=True, exist_ok=True)
        write_spec(run_dir, name, spec)
    todo, _, _ = _sort_runs(sweep, specs, retry_failed=retry_failed)
    outcomes: list[RunOutcome] = []
    try:
        if todo:
            outcomes = runner.run(sweep.root, todo, lambda event: say({**event, "label": event.get("run_id", "")}))
    finally:
        collect(sweep.root)
    return outcomes
