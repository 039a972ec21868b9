"""Run a whole grid: prepare the data once, plan the runs, hand the unfinished ones to a backend, collect.

``run_sweep`` can be stopped at any point (Ctrl-C, SIGKILL, a lost machine) and called again with the
same grid and directory: finished runs are skipped, interrupted ones resume from their checkpoints, and
the set of runs is the grid's, so nothing is lost or done twice. Failed runs are left alone unless
``retry_failed``. Only one driver may work on a directory at a time (it holds the directory's ``io.output_lock``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from repeatlab.config import to_dict
from repeatlab.dynamics.finetune import run_finetune_stage
from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_write_text, check_output_dir, output_lock, write_json
from repeatlab.sweeps.results import collect
from repeatlab.sweeps.grid import GridConfig, RunSpec, check_workers, expand_grid, grid_to_toml
from repeatlab.sweeps.local import run_local
from repeatlab.sweeps.prepare import prepare_datasets
from repeatlab.sweeps.ray_backend import run_ray
from repeatlab.sweeps.runner import RunOutcome
from repeatlab.sweeps.state import (
    ERROR_FILE,
    SPEC_FILE,
    SweepDir,
    assign_run_ids,
    run_status,
)

Backend = Literal["local", "ray"]
Report = Callable[[dict[str, Any]], None]
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

    @property
    def n_failed(self) -> int:
        return sum(o.status == "failed" for o in self.outcomes) + len(self.plan.failed)


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
    todo, done, failed = [], [], []
    for run_id, spec in runs:
        run_dir = sweep.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / SPEC_FILE).is_file():
            write_json(run_dir / SPEC_FILE, {"run_id": run_id, "spec": to_dict(spec)})
        status = run_status(run_dir, spec)
        if status == "done":
            done.append(run_id)
        elif status == "failed" and not retry_failed:
            failed.append(run_id)
        else:
            if status == "failed":
                (run_dir / ERROR_FILE).unlink()
            todo.append(run_id)
    return SweepPlan(sweep=sweep, runs=dict(runs), todo=todo, done=done, failed=failed)


def run_sweep(
    grid: GridConfig,
    out: str | Path,
    *,
    backend: Backend = "local",
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
    if backend not in ("local", "ray"):
        raise RepeatlabError(f"--backend must be local or ray, got {backend!r}")
    if workers is not None:
        check_workers("--workers", workers)
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
            if plan.todo:
                res = grid.resources
                if backend == "local":
                    outcomes = run_local(out, plan.todo, workers=workers or res.local_workers,
                                         threads=max(1, int(res.cpus_per_run)), max_retries=res.max_retries,
                                         report=report)
                else:
                    outcomes = run_ray(out, plan.todo, address=address, workers=workers,
                                       cpus_per_run=res.cpus_per_run, gpus_per_run=res.gpus_per_run,
                                       max_retries=res.max_retries, report=report)
        except BaseException:
            with contextlib.suppress(Exception):  # keep the table current, but never mask the interruption
                collect(out)
            raise
        results = collect(out)
        say({"event": "collect", "path": str(plan.sweep.results_file), "rows": len(results)})
        if grid.finetune is not None:
            done = results.loc[results["status"] == "done", "run_id"] if len(results) else []
            say({"event": "message", "text": f"fine-tuning stage: {len(done)} pre-trained runs, plus from-scratch runs"})
            rows = run_finetune_stage([plan.sweep.run_dir(run_id) for run_id in done], grid.finetune, out / "finetune")
            say({"event": "message", "text": f"fine-tuning stage done: {len(rows)} comparisons in {out / 'finetune'}"})
    return SweepResult(plan=plan, outcomes=outcomes, results=results)
