"""Run records: the schema version of every run file, and one row and status rule for the sweep and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repeatlab.layout import CONFIG_FILE, PROBES_FILE, SUMMARY_FILE
from repeatlab.records import SCHEMAS, RecordSchemaError, read_record, run_row, write_record


def test_every_run_file_is_written_with_its_schema_and_read_without_it(tmp_path: Path) -> None:
    for name, version in SCHEMAS.items():
        write_record(tmp_path / name, {"a": 1})
        assert json.loads((tmp_path / name).read_text())["schema"] == version
        assert read_record(tmp_path / name) == {"a": 1}
    with pytest.raises(KeyError, match="not a versioned run file"):
        write_record(tmp_path / "notes.json", {})


def test_files_from_before_schema_versions_still_load(tmp_path: Path) -> None:
    (tmp_path / SUMMARY_FILE).write_text(json.dumps({"test_loss": 2.5}), encoding="utf-8")
    assert read_record(tmp_path / SUMMARY_FILE) == {"test_loss": 2.5}
    # probes.json of ``repeatlab probe`` names its schema as a string.
    (tmp_path / PROBES_FILE).write_text(json.dumps({"schema": "repeatlab.probes/1", "summary": {}}), encoding="utf-8")
    assert read_record(tmp_path / PROBES_FILE) == {"summary": {}}


@pytest.mark.parametrize(("schema", "message"), [
    (SCHEMAS[CONFIG_FILE] + 1, r"schema version 2, newer than this repeatlab reads \(up to 1\); upgrade repeatlab"),
    ("v2", r"unknown schema 'v2'"),
    (-1, r"unknown schema -1"),
])
def test_a_newer_or_unknown_schema_is_refused_with_the_fix(tmp_path: Path, schema: object, message: str) -> None:
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"schema": schema, "model": "tiny-1l"}), encoding="utf-8")
    with pytest.raises(RecordSchemaError, match=message):
        read_record(tmp_path / CONFIG_FILE)


def test_a_row_takes_the_grid_point_first_and_the_summary_for_a_run_outside_a_sweep() -> None:
    summary = {"tokens": 1000, "test_loss": 3.0, "n_params": 900, "n_params_non_embedding": 800, "model": "m",
               "model_config": {"n_layer": 2, "d_model": 8},
               "mixture": {"kind": "repeated", "total_tokens": 1024, "unique_tokens": 600, "repeated_fraction": 0.49,
                           "repeated_epochs": 4}}
    alone = run_row("r", "done", summary=summary, probes={"summary": {"induction.max": 0.5, "flag": True}})
    assert alone["total_tokens"] == 1024 and alone["tokens"] == 1000  # the budget, not the tokens seen
    assert alone["repeated_fraction"] == 0.49 and alone["repeated_fraction_achieved"] == 0.49
    assert alone["params"] == 800 and alone["params_total"] == 900 and alone["n_layer"] == 2
    assert alone["probe_induction_max"] == 0.5 and "probe_flag" not in alone
    point = {"kind": "repeated", "model": "m", "total_tokens": 1000, "repeated_fraction": 0.5, "repeated_epochs": 4,
             "unique_tokens": None, "seed": 3}
    in_sweep = run_row("r", "done", sweep_run={"spec": {"point": point}}, summary=summary)
    assert in_sweep["total_tokens"] == 1000 and in_sweep["repeated_fraction"] == 0.5 and in_sweep["seed"] == 3
    assert in_sweep["unique_tokens"] == 600  # the mixture's, where the point leaves it open
    failed = run_row("r", "failed", sweep_run={"spec": {"point": point}}, error={"type": "E", "message": "boom"})
    assert failed["error"] == "E: boom" and run_row("r", "pending", error={"type": "E"})["error"] is None
