"""Reading sweep and run directories, whole or partial."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repeatlab.io import file_lock, lock_file_of
from repeatlab.records import read_record, write_record
from repeatlab.report.load import load_sweep


def test_full_sweep_reads_every_run(full_sweep: Path) -> None:
    data = load_sweep(full_sweep)
    expected = pd.read_parquet(full_sweep / "results.parquet")
    assert not data.is_single_run
    assert list(data.results["run_id"]) == list(expected["run_id"])
    assert set(data.runs) == {p.name for p in (full_sweep / "runs").iterdir()}
    assert data.results["test_loss"].dtype == np.float64
    done = data.done()
    assert set(done["status"]) == {"done"} and len(done) == int((expected["status"] == "done").sum())
    record = data.runs["hern-4l-control-s0"]
    assert record.head_scores("induction").shape == (4, 4)
    assert record.head_scores("no_such_probe") is None
    assert {"step", "tokens_seen", "test_loss", "repeated_loss"} <= set(record.metrics.columns)
    assert "grid.toml" not in " ".join(data.problems) and data.grid["models"][0] == "tiny-1l"


def test_rows_are_rebuilt_from_run_files_without_results(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(with_results=False, n_pending=0))
    data = load_sweep(sweep)
    assert any("results.parquet" in p for p in data.problems)
    results = data.results.set_index("run_id")
    row = results.loc["tiny-4l-f0.1-E100-s0"]
    assert row["status"] == "done" and row["kind"] == "repeated"
    assert row["params"] == synth.SIZES[2].params and row["repeated_epochs"] == 100
    assert row["probe_copying_repeated_copies_loss"] > 0 and np.isfinite(row["test_loss"])
    assert results.loc["failed-0", "status"] == "failed"
    assert "CUDA out of memory" in results.loc["failed-0", "error"]


def test_results_gaps_are_filled_from_run_files(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(drop_columns=("probe_copying_repeated_copies_loss", "params")))
    data = load_sweep(sweep)
    done = data.done()
    assert done["params"].notna().all() and done["probe_copying_repeated_copies_loss"].notna().all()


def test_corrupt_files_are_reported_not_raised(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(sizes=synth.SIZES[:2], epochs=(10,)))
    (sweep / "runs" / "tiny-1l-control-s0" / "probes.json").write_text("{not json", encoding="utf-8")
    (sweep / "grid.toml").write_text("models = [", encoding="utf-8")
    data = load_sweep(sweep)
    assert any("probes.json" in p for p in data.problems)
    assert any("grid.toml" in p for p in data.problems)
    assert data.runs["tiny-1l-control-s0"].probes is None


def test_single_run_directory(tmp_path: Path, synth) -> None:
    run = synth.write_run(tmp_path / "one-run")
    data = load_sweep(run)
    assert data.is_single_run and list(data.runs) == ["one-run"]
    row = data.results.iloc[0]
    assert row["status"] == "done" and row["model"] == "tiny-4l" and row["kind"] == "repeated"


def test_an_unfinished_run_is_running_only_while_its_lock_is_held(tmp_path: Path, synth) -> None:
    """The status rule of ``repeatlab.records``: metrics alone are an interrupted (pending) run, not a running one."""
    run = synth.write_run(tmp_path / "r")
    (run / "summary.json").unlink()
    (run / "sweep_run.json").unlink()
    data = load_sweep(run)
    assert data.results.iloc[0]["status"] == "pending"
    assert data.done().empty
    with file_lock(lock_file_of(run)) as acquired:
        assert acquired and load_sweep(run).results.iloc[0]["status"] == "running"


def test_a_run_whose_spec_asks_for_probes_is_done_only_with_them(tmp_path: Path, synth) -> None:
    run = synth.write_run(tmp_path / "r")
    (run / "probes.json").unlink()
    spec = read_record(run / "sweep_run.json")
    write_record(run / "sweep_run.json", {**spec, "spec": {**spec["spec"], "probes": {}}})
    assert load_sweep(run).results.iloc[0]["status"] == "pending"
    write_record(run / "sweep_run.json", spec)  # no probes asked: the summary is enough
    assert load_sweep(run).results.iloc[0]["status"] == "done"


def test_missing_or_foreign_directories_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sweep(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a sweep directory"):
        load_sweep(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError):
        load_sweep(tmp_path / "file.txt")


def test_sweep_without_runs_dir_uses_results_only(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(sizes=synth.SIZES[:2], epochs=(10, 100)))
    shutil.rmtree(sweep / "runs")
    data = load_sweep(sweep)
    assert not data.runs and len(data.done()) == 2 * (1 + 2 * 2)
    assert any("runs/" in p for p in data.problems)


def test_error_json_without_message_is_kept_as_json(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(sizes=synth.SIZES[:1], epochs=(10,), with_results=False))
    (sweep / "runs" / "failed-0" / "error.json").write_text(json.dumps({"code": 3}), encoding="utf-8")
    data = load_sweep(sweep)
    assert '"code": 3' in data.results.set_index("run_id").loc["failed-0", "error"]
