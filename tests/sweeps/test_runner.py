"""One run at a time, in this process: the run directory contract, idempotence, failures, collect."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repeatlab.io import file_lock, is_locked, lock_file_of, read_json, write_json
from repeatlab.sweeps.results import COLUMNS, add_law_columns, collect
from repeatlab.sweeps.driver import plan_sweep
from repeatlab.sweeps.grid import expand_grid
from repeatlab.sweeps.runner import execute_run, write_run_config
from repeatlab.layout import ERROR_FILE, PROBES_FILE, SPEC_FILE
from repeatlab.records import run_status
from repeatlab.sweeps.state import SweepDir, read_spec

from .conftest import attempts, metric_steps, tiny_grid, tiny_probes


@pytest.fixture(scope="module")
def finished(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> SweepDir:
    """The tiny grid with probes, every run executed in this process."""
    out = tmp_path_factory.mktemp("finished-sweep")
    plan = plan_sweep(tiny_grid(corpus, probes=tiny_probes()), out)
    for run_id in plan.todo:
        assert execute_run(out, run_id, threads=1).status == "done"
    return plan.sweep


def test_finished_run_directories_hold_the_agreed_files(finished: SweepDir) -> None:
    assert finished.grid_file.is_file() and (finished.data_dir / "meta.json").is_file()
    for run_id in finished.run_ids():
        run_dir = finished.run_dir(run_id)
        for name in ("config.json", "metrics.jsonl", "summary.json", "model.safetensors", PROBES_FILE, SPEC_FILE):
            assert (run_dir / name).is_file(), name
        spec = read_spec(run_dir)
        assert spec.run_id == run_id  # the directory is named by the hash of the stored spec
        assert run_status(run_dir, probes_required=spec.probes is not None) == "done"
        assert read_json(run_dir / "config.json")["mixture"] == str(finished.mixture_dir(spec.point.mixture_spec()))
        assert [a["event"] for a in attempts(run_dir)] == ["start", "done"]
        steps = metric_steps(run_dir)
        assert steps == sorted(set(steps)) and steps[-1] == 8
    assert len(list((finished.root / "mixtures").glob("[!.]*"))) == 2  # a control and a repeated mixture, shared


def test_execute_run_on_a_finished_run_does_nothing(finished: SweepDir) -> None:
    run_id = finished.run_ids()[0]
    run_dir = finished.run_dir(run_id)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    outcome = execute_run(finished.root, run_id)
    assert outcome.status == "done" and outcome.test_loss == read_json(run_dir / "summary.json")["test_loss"]
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_results_table(finished: SweepDir) -> None:
    frame = collect(finished.root)
    assert set(COLUMNS) <= set(frame.columns)
    assert len(frame) == 4 and set(frame["status"]) == {"done"} and frame["run_id"].is_unique
    assert sorted(frame["kind"]) == ["control", "control", "repeated", "repeated"]
    repeated = frame[frame["kind"] == "repeated"]
    assert np.isfinite(repeated["repeated_loss"]).all() and frame[frame["kind"] == "control"]["repeated_loss"].isna().all()
    assert np.allclose(repeated["repeated_fraction_achieved"], 0.5, atol=0.05)
    assert {"probe_induction_max", "probe_copying_repeated_copies_loss"} <= set(frame.columns)
    assert "n_eff_test" in frame.columns and set(frame["method_test"]) == {"interpolation"}  # two control sizes
    controls = frame[frame["kind"] == "control"]
    np.testing.assert_allclose(controls["n_eff_test"], controls["params"], rtol=1e-6)  # exact at the controls
    # The report inverts the controls by the same rule, so it prints the numbers the table holds.
    from repeatlab.report import Analysis, load_sweep

    reported = Analysis(data=load_sweep(finished.root)).repeated.set_index("run_id")
    np.testing.assert_allclose(reported.loc[repeated["run_id"], "mult_test"], repeated["mult_test"], rtol=1e-12)
    # Rebuilt from the run directories alone, the table is the same.
    finished.results_file.unlink()
    pd.testing.assert_frame_equal(collect(finished.root), frame)
    pd.testing.assert_frame_equal(pd.read_parquet(finished.results_file), frame, check_dtype=False)


def test_missing_probes_are_run_without_retraining(finished: SweepDir, tmp_path: Path) -> None:
    run_id = finished.run_ids()[1]
    run_dir = finished.run_dir(run_id)
    probes = read_json(run_dir / PROBES_FILE)
    summary_mtime = (run_dir / "summary.json").stat().st_mtime_ns
    (run_dir / PROBES_FILE).unlink()
    assert run_status(run_dir, probes_required=read_spec(run_dir).probes is not None) == "pending"
    assert execute_run(finished.root, run_id).status == "done"
    assert (run_dir / "summary.json").stat().st_mtime_ns == summary_mtime
    assert read_json(run_dir / PROBES_FILE)["summary"] == probes["summary"]  # probes are seeded


def test_a_failed_run_is_recorded_and_retried_only_when_asked(corpus: Path, tmp_path: Path) -> None:
    # batch_tokens not a multiple of the context: the trainer refuses the tiny-1l runs.
    grid = tiny_grid(corpus, sizes=("tiny-1l",), repeated_fractions=(0.5,),
                     size_overrides={"tiny-1l": {"train": {"batch_tokens": 100}}})
    plan = plan_sweep(grid, tmp_path)
    run_id = plan.todo[0]
    run_dir = plan.sweep.run_dir(run_id)
    outcome = execute_run(tmp_path, run_id)
    assert outcome.status == "failed" and "batch_tokens" in (outcome.error or "")
    error = read_json(run_dir / ERROR_FILE)
    assert error["type"] == "RepeatlabError" and error["stage"] == "train" and "Traceback" in error["traceback"]
    assert run_status(run_dir, probes_required=read_spec(run_dir).probes is not None) == "failed"
    again = plan_sweep(grid, tmp_path)
    assert run_id in again.failed and run_id not in again.todo
    retry = plan_sweep(grid, tmp_path, retry_failed=True)
    assert run_id in retry.todo and not (run_dir / ERROR_FILE).exists()
    assert [a["event"] for a in attempts(run_dir)] == ["start", "failed"]


def test_a_locked_run_is_running(finished: SweepDir) -> None:
    run_dir = finished.run_dir(finished.run_ids()[0])
    (run_dir / PROBES_FILE).rename(run_dir / "probes.bak")  # not done, so the lock decides
    try:
        assert run_status(run_dir, probes_required=read_spec(run_dir).probes is not None) == "pending"
        with file_lock(lock_file_of(run_dir)) as acquired:
            assert acquired and is_locked(lock_file_of(run_dir))
            assert run_status(run_dir, probes_required=read_spec(run_dir).probes is not None) == "running"
        assert not is_locked(lock_file_of(run_dir))
    finally:
        (run_dir / "probes.bak").rename(run_dir / PROBES_FILE)


def test_a_moved_sweep_directory_keeps_its_runs(corpus: Path, tmp_path: Path) -> None:
    spec = expand_grid(tiny_grid(corpus))[0]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = spec.run_config(tmp_path / "old" / "data", tmp_path / "old" / "mix")
    write_run_config(run_dir, config)
    moved = spec.run_config(tmp_path / "new" / "data", tmp_path / "new" / "mix")
    write_run_config(run_dir, moved)  # only the paths differ: rewritten
    assert read_json(run_dir / "config.json")["dataset"] == str(tmp_path / "new" / "data")
    older = read_json(run_dir / "config.json")
    del older["train"]["eval_seed"]  # as written before that field existed (it is at its default)
    write_json(run_dir / "config.json", older)
    write_run_config(run_dir, moved)
    assert read_json(run_dir / "config.json")["train"]["eval_seed"] == 0
    other = replace(moved, optim=replace(moved.optim, lr=0.5))
    write_run_config(run_dir, other)  # a real difference is left for the trainer to report
    assert read_json(run_dir / "config.json")["optim"]["lr"] == moved.optim.lr


def test_law_columns_recover_a_known_power_law() -> None:
    params = np.array([1e5, 2e5, 4e5, 8e5, 1.6e6])
    law = lambda n: 1.5 + (3e4 / n) ** 0.3  # noqa: E731
    rows = [dict(run_id=f"c{i}", status="done", kind="control", model=f"m{i}", params=n, total_tokens=1000,
                 test_loss=law(n)) for i, n in enumerate(params)]
    rows.append(dict(run_id="r", status="done", kind="repeated", model="m4", params=1.6e6, total_tokens=1000,
                     test_loss=law(4e5)))  # the big model does as well as the 4x smaller control
    rows.append(dict(run_id="p", status="pending", kind="repeated", model="m4", params=1.6e6, total_tokens=1000,
                     test_loss=None))
    frame = add_law_columns(pd.DataFrame(rows))
    repeated = frame.set_index("run_id").loc["r"]
    assert repeated["n_eff_test"] == pytest.approx(4e5, rel=0.02)
    assert repeated["mult_test"] == pytest.approx(0.25, rel=0.02) and repeated["method_test"] == "power-law fit"
    assert np.isnan(frame.set_index("run_id").loc["p", "n_eff_test"])


def test_sweep_run_json_records_the_grid_point(finished: SweepDir) -> None:
    for run_id in finished.run_ids():
        stored = json.loads((finished.run_dir(run_id) / SPEC_FILE).read_text())
        assert stored["run_id"] == run_id
        assert set(stored["spec"]["point"]) == {"kind", "model", "total_tokens", "repeated_fraction",
                                               "repeated_epochs", "unique_tokens", "seed", "data_variant", "train_variant"}
        assert stored["spec"]["point"]["data_variant"] is None  # a grid with one dataset


def test_a_data_constrained_run(corpus: Path, tmp_path: Path) -> None:
    grid = tiny_grid(corpus, sizes=("tiny-1l",), kind="data_constrained", total_tokens=None, repeated_fractions=(),
                     unique_tokens=(16 * 16,), repeated_epochs=(4,))
    plan = plan_sweep(grid, tmp_path)
    run_id = next(r for r, s in plan.runs.items() if s.point.kind == "data_constrained")
    assert execute_run(tmp_path, run_id, threads=1).status == "done"
    row = collect(tmp_path, laws=False).set_index("run_id").loc[run_id]
    assert row["status"] == "done" and row["kind"] == "data_constrained"
    assert row["unique_tokens"] == 256 and row["repeated_epochs"] == 4 and row["total_tokens"] == 1024
    assert row["unique_tokens_achieved"] == 256 and np.isfinite(row["repeated_loss"])
    assert read_json(plan.sweep.run_dir(run_id) / "summary.json")["steps"] == 8


def test_finished_runs_survive_a_config_field_added_later(corpus: Path, tmp_path: Path) -> None:
    grid = tiny_grid(corpus, sizes=("tiny-1l",))
    plan = plan_sweep(grid, tmp_path)
    run_id = plan.todo[0]
    assert execute_run(tmp_path, run_id, threads=1).status == "done"
    # What an older repeatlab wrote: no eval_seed field (now at its default), so another hash.
    run_dir = plan.sweep.run_dir(run_id)
    stored = read_json(run_dir / SPEC_FILE)
    del stored["spec"]["train"]["eval_seed"]
    write_json(run_dir / SPEC_FILE, stored)
    run_dir.rename(run_dir.with_name("0123456789ab"))
    again = plan_sweep(grid, tmp_path)
    assert "0123456789ab" in again.done and run_id not in again.runs
    assert not run_dir.exists() and len(collect(tmp_path)) == 2
