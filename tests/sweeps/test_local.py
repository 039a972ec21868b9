"""Whole sweeps with the local backend: worker processes, resume after a kill, a worker that dies, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from repeatlab.cli.__main__ import app
from repeatlab.dynamics.finetune import FINETUNE_FILE, FinetuneStage
from repeatlab.io import read_json
from repeatlab.sweeps.driver import SweepResult, run_sweep
from repeatlab.sweeps.grid import expand_grid, grid_to_toml
from repeatlab.io import is_locked, lock_file_of
from repeatlab.sweeps.state import SweepDir

from .conftest import attempts, metric_steps, tiny_grid

CLI = [sys.executable, "-m", "repeatlab.cli.__main__", "sweep", "run"]
TIMEOUT_S = 240


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def started_runs(sweep: SweepDir) -> list[str]:
    return [r for r in sweep.run_ids() if any(a["event"] == "start" for a in attempts(sweep.run_dir(r)))]


def mid_run(sweep: SweepDir) -> str | None:
    """A run that has saved a checkpoint but not finished."""
    for run_id in sweep.run_ids():
        run_dir = sweep.run_dir(run_id)
        if any((run_dir / "checkpoints").glob("step_*")) and not (run_dir / "summary.json").exists():
            return run_id
    return None


def check_complete(sweep: SweepDir, expected: set[str]) -> pd.DataFrame:
    """Every expected run is done exactly once: one directory each, no duplicated metrics, one row each."""
    assert set(sweep.run_ids()) == expected
    results = pd.read_parquet(sweep.results_file)
    assert set(results["run_id"]) == expected and results["run_id"].is_unique
    assert set(results["status"]) == {"done"}
    for run_id in expected:
        steps = metric_steps(sweep.run_dir(run_id))
        assert steps == sorted(set(steps)), f"{run_id} has duplicated metrics records: {steps}"
    return results


@pytest.fixture(scope="module")
def pool_sweep(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[SweepResult, list[dict[str, Any]]]:
    """The tiny grid (4 runs) run by two local worker processes, and the progress events it reported."""
    events: list[dict[str, Any]] = []
    result = run_sweep(tiny_grid(corpus), tmp_path_factory.mktemp("pool"), workers=2, progress=events.append)
    return result, events


def test_local_pool_runs_the_grid_and_a_second_call_does_nothing(
    corpus: Path, pool_sweep: tuple[SweepResult, list[dict[str, Any]]]
) -> None:
    result, events = pool_sweep
    grid, sweep = tiny_grid(corpus), result.plan.sweep
    expected = {s.run_id for s in expand_grid(grid)}
    check_complete(sweep, expected)
    assert {o.run_id for o in result.outcomes} == expected and all(o.status == "done" for o in result.outcomes)
    assert [e["event"] for e in events].count("finish") == 4 and events[-1]["event"] == "collect"
    pids = {a["pid"] for r in expected for a in attempts(sweep.run_dir(r))}
    assert os.getpid() not in pids and len(pids) <= 2  # worked in (at most) two worker processes
    again = run_sweep(grid, sweep.root, workers=2)
    assert again.outcomes == [] and sorted(again.plan.done) == sorted(expected)


@pytest.mark.slow
def test_a_dead_worker_is_retried_and_a_killed_sweep_resumes(corpus: Path, tmp_path: Path) -> None:
    """Two 24-step runs on one worker: kill the worker during the first run (the driver restarts it),
    then kill the driver and its worker during the second run, and start the sweep again."""
    grid = tiny_grid(corpus, sizes=("tiny-1l",), total_tokens=192 * 16)
    (tmp_path / "grid.toml").write_text(grid_to_toml(grid))
    out = tmp_path / "out"
    sweep, expected = SweepDir(out), {s.run_id for s in expand_grid(grid)}
    command = [*CLI, str(tmp_path / "grid.toml"), "--out", str(out), "--workers", "1"]
    first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: mid_run(sweep) is not None, "a checkpoint of the first run")
        victim = mid_run(sweep)
        assert victim is not None
        worker_pid = attempts(sweep.run_dir(victim))[-1]["pid"]
        assert worker_pid != first.pid
        os.kill(worker_pid, signal.SIGKILL)
        wait_for(lambda: mid_run(sweep) not in (None, victim), "a checkpoint of the second run")
        second_run = mid_run(sweep)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its worker, at once
        first.wait()
    assert second_run is not None and mid_run(sweep) == second_run
    assert [a["event"] for a in attempts(sweep.run_dir(victim))] == ["start", "died", "start", "done"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 done, 0 failed (skipped), 1 to run" in again.stdout
    check_complete(sweep, expected)
    # The second run's first attempt was cut off (no end record); the next one resumed it.
    assert [a["event"] for a in attempts(sweep.run_dir(second_run))] == ["start", "start", "done"]
    for run_id in expected:
        assert read_json(sweep.run_dir(run_id) / "summary.json")["steps"] == 24
        assert metric_steps(sweep.run_dir(run_id))[-1] == 24


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody has reaped yet counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_stopping_or_killing_the_driver_ends_its_workers(corpus: Path, tmp_path: Path) -> None:
    """SIGTERM stops a sweep as Ctrl-C does; after SIGKILL of the driver alone its worker exits at once,
    not when its run ends (a run of this 12.6M-parameter model takes tens of seconds), freeing the run's lock."""
    grid = tiny_grid(corpus, sizes=("hern-4l",), total_tokens=1200 * 16)
    (tmp_path / "grid.toml").write_text(grid_to_toml(grid))
    out = tmp_path / "out"
    sweep = SweepDir(out)
    command = [*CLI, str(tmp_path / "grid.toml"), "--out", str(out), "--workers", "1"]

    def start_and_wait_for_training(n_starts: int) -> tuple[subprocess.Popen[str], int]:
        driver = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        wait_for(lambda: len(starts()) == n_starts, f"start {n_starts} of the first run")
        wait_for(lambda: len(list((sweep.run_dir(run_id) / "checkpoints").glob("step_*"))) >= n_starts, "a checkpoint")
        return driver, starts()[-1]["pid"]

    def starts() -> list[dict[str, Any]]:
        return [a for a in attempts(sweep.run_dir(run_id)) if a["event"] == "start"]

    run_id = expand_grid(grid)[0].run_id  # a worker takes the runs in grid order
    driver, worker = start_and_wait_for_training(1)
    try:
        driver.send_signal(signal.SIGTERM)
        output, _ = driver.communicate(timeout=60)
        assert driver.returncode == 130 and "interrupted; run the same command again" in output, output
        wait_for(lambda: gone(worker), "the worker to exit", timeout_s=5)

        driver, worker = start_and_wait_for_training(2)
        driver.kill()  # the driver alone: its worker is a child of the fork server, not of the driver
        driver.wait()
        wait_for(lambda: gone(worker), "the orphaned worker to exit", timeout_s=5)
        # The leader thread shows as a zombie before the process's last threads have closed its files.
        wait_for(lambda: not is_locked(lock_file_of(sweep.run_dir(run_id))), "the run's lock to be freed", timeout_s=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    assert not (sweep.run_dir(run_id) / "summary.json").exists()  # it was stopped, not left to finish


def test_cli_run_status_collect_plan_and_errors(
    corpus: Path, tmp_path: Path, pool_sweep: tuple[SweepResult, list[dict[str, Any]]]
) -> None:
    out = pool_sweep[0].plan.sweep.root
    (tmp_path / "grid.toml").write_text(grid_to_toml(tiny_grid(corpus)))
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    planned = runner.invoke(app, ["sweep", "plan", str(tmp_path / "grid.toml")], env=env)
    assert planned.exit_code == 0, planned.output
    assert "4 runs" in planned.output and "tiny-1l f=0.5 E=4" in planned.output
    ran = runner.invoke(app, ["sweep", "run", str(tmp_path / "grid.toml"), "--out", str(out)], env=env)
    assert ran.exit_code == 0, ran.output
    assert "4 done, 0 failed (skipped), 0 to run" in ran.output
    status = runner.invoke(app, ["sweep", "status", str(out)], env=env)
    assert status.exit_code == 0, status.output
    assert "4 done, 0 running, 0 failed, 0 pending" in status.output
    assert "control" in status.output and "repeated" in status.output
    (out / "results.parquet").unlink()
    collected = runner.invoke(app, ["sweep", "collect", str(out)], env=env)
    assert collected.exit_code == 0 and len(pd.read_parquet(out / "results.parquet")) == 4
    bad = runner.invoke(app, ["sweep", "run", "no-such-grid", "--out", str(out)])
    assert bad.exit_code == 2 and "presets" in bad.output
    typo = runner.invoke(app, ["sweep", "run", "cpu-tiny", "--out", str(out), "--set", "train.colour=1"])
    assert typo.exit_code == 2 and "colour" in typo.output
    other_data = runner.invoke(app, ["sweep", "run", str(tmp_path / "grid.toml"), "--out", str(out),
                                     "--set", "data.context=8"])
    assert other_data.exit_code == 2 and "data.context" in other_data.output
    missing = runner.invoke(app, ["sweep", "status", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2


def test_grid_finetune_stage_runs_after_pretraining_without_changing_run_ids(corpus: Path, tmp_path: Path) -> None:
    grid = tiny_grid(corpus, sizes=("tiny-1l",))
    staged = replace(grid, finetune=FinetuneStage(total_tokens=16 * 16))
    assert {s.run_id for s in expand_grid(staged)} == {s.run_id for s in expand_grid(grid)}
    assert "[finetune]" in grid_to_toml(staged)
    result = run_sweep(staged, tmp_path / "sweep", workers=1)
    stage = json.loads((tmp_path / "sweep" / "finetune" / FINETUNE_FILE).read_text())
    assert sorted(r["run"] for r in stage["rows"]) == sorted(f"ft-{run_id}" for run_id in result.plan.done + [
        o.run_id for o in result.outcomes])


def test_finetune_stage_runs_go_through_the_backend_and_are_rows_of_its_results(corpus: Path, tmp_path: Path) -> None:
    grid = replace(tiny_grid(corpus, sizes=("tiny-1l",)), finetune=FinetuneStage(total_tokens=16 * 16))
    events: list[dict[str, Any]] = []
    result = run_sweep(grid, tmp_path / "sweep", workers=2, progress=events.append)
    stage = SweepDir(tmp_path / "sweep" / "finetune")
    names = {f"ft-{run_id}" for run_id in result.plan.runs} | {"scratch-tiny-1l-seed0"}
    assert {o.run_id for o in result.stage_outcomes} == names and result.n_failed == 0
    assert {e["run_id"] for e in events if e["event"] == "finish"} == set(result.plan.runs) | names
    results = pd.read_parquet(stage.results_file)
    assert set(results["run_id"]) == names and set(results["status"]) == {"done"}
    assert set(results["model"]) == {"tiny-1l"} and set(results["total_tokens"]) == {16 * 16}
    assert results["test_loss"].notna().all()
    fine_tuned = results.set_index("run_id")["init_from"].dropna()  # no control of the law columns
    assert set(fine_tuned.index) == {n for n in names if n.startswith("ft-")}
    for name in names:  # trained by a worker process of the local backend, under its lock and attempt records
        started = [a for a in attempts(stage.run_dir(name)) if a["event"] == "start"]
        assert len(started) == 1 and started[0]["pid"] != os.getpid()
        assert read_json(stage.run_dir(name) / "sweep_run.json")["spec_type"] == "config"
    # Idempotent: a second sweep trains nothing in either stage and keeps the comparison.
    again = run_sweep(grid, tmp_path / "sweep", workers=2)
    assert again.outcomes == [] and again.stage_outcomes == []
    rows = json.loads((stage.root / FINETUNE_FILE).read_text())["rows"]
    assert sorted(r["run"] for r in rows) == sorted(n for n in names if n.startswith("ft-"))


def test_retry_policy_requeues_start_up_deaths_and_fails_a_run_after_its_retries() -> None:
    from repeatlab.sweeps.local import RetryPolicy

    policy = RetryPolicy(max_retries=1, max_start_failures=2)
    assert [policy.on_death("a", started=True, exitcode=-9) for _ in range(2)] == ["retry", "fail"]
    assert policy.on_death("b", started=True, exitcode=-9) == "retry"  # counted per run
    assert [policy.on_death("c", started=False, exitcode=1) for _ in range(2)] == ["requeue", "requeue"]
    with pytest.raises(RuntimeError, match="keep dying on start-up"):
        policy.on_death("c", started=False, exitcode=1)
