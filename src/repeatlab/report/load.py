"""Read a sweep directory (or one run directory) into tables, tolerating whatever is missing.

A sweep directory holds ``results.parquet`` (one row per run), ``grid.toml`` and ``runs/<run_id>/`` with each
run's ``config.json``, ``metrics.jsonl``, ``summary.json``, ``probes.json``, ``sweep_run.json`` and, on
failure, ``error.json``. Any of these may be absent in a partial sweep: rows are rebuilt from the run files
where ``results.parquet`` lacks them (by ``repeatlab.records``, the row and status rule of ``repeatlab sweep
collect``), and every gap is recorded in ``SweepData.problems`` so the report can say what it could not use
instead of failing. Nothing here imports a model.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from repeatlab.errors import RepeatlabError
from repeatlab.io import read_jsonl
from repeatlab.layout import (
    CONFIG_FILE,
    ERROR_FILE,
    GRID_FILE,
    METRICS_FILE,
    PROBES_FILE,
    RESULTS_FILE,
    RUNS_DIR,
    SPEC_FILE,
    SUMMARY_FILE,
)
from repeatlab.records import probes_required, read_record, run_row, run_status

RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)

NUMERIC_COLUMNS = (
    "n_layer", "d_model", "params", "params_total", "repeated_fraction", "repeated_fraction_achieved",
    "repeated_epochs", "unique_tokens", "total_tokens", "seed", "test_loss", "repeated_loss", "train_loss",
    "wall_time_s",
)
TEXT_COLUMNS = ("run_id", "status", "error", "kind", "model")


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """The files of one run directory, each ``None`` (or empty) when absent or unreadable."""

    run_id: str
    path: Path
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    sweep_run: dict[str, Any] | None = None
    probes: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    """One row per evaluation: step, tokens_seen, train_loss, test_loss, repeated_loss, ..."""

    def head_scores(self, name: str) -> np.ndarray | None:
        """Per-head scores ``[n_layers, n_heads]`` of probe ``name`` (``heads.<name>.per_head``), if recorded."""
        heads = (self.probes or {}).get("heads")
        if not isinstance(heads, Mapping) or name not in heads:
            return None
        value = heads[name]
        if isinstance(value, Mapping):
            value = value.get("per_head")
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        return array if array.ndim == 2 and array.size > 0 else None


@dataclass(frozen=True, kw_only=True)
class SweepData:
    """Everything a report reads: the run table, the run directories and what was missing."""

    path: Path
    is_single_run: bool
    results: pd.DataFrame
    """One row per run, the agreed ``results.parquet`` columns that exist (numbers as floats)."""
    runs: Mapping[str, RunRecord]
    grid: dict[str, Any] | None = None
    grid_text: str | None = None
    """``grid.toml`` as written, shown verbatim."""
    problems: tuple[str, ...] = ()
    """Files or columns that were missing or unreadable, in words."""

    def done(self) -> pd.DataFrame:
        """Finished runs with a test loss: the rows every figure is built from."""
        frame = self.results
        if "status" in frame:
            frame = frame[frame["status"].fillna("done") == "done"]
        if "test_loss" in frame:
            frame = frame[np.isfinite(frame["test_loss"].astype(float))]
        else:
            frame = frame.iloc[0:0]
        return frame

    def has(self, frame: pd.DataFrame, *columns: str) -> list[str]:
        """The columns of ``columns`` that ``frame`` lacks or holds only nulls in."""
        return [c for c in columns if c not in frame or frame[c].isna().all()]


def load_sweep(path: str | Path) -> SweepData:
    """Read a sweep directory or a single run directory (one with ``config.json``/``metrics.jsonl``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give a sweep directory or a run directory")
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory; give a sweep directory or a run directory")
    problems: list[str] = []
    if _is_run_dir(path) and not (path / RESULTS_FILE).exists() and not (path / RUNS_DIR).is_dir():
        record = load_run_record(path, problems)
        results = _normalise(pd.DataFrame([row_from_files(record)]))
        return SweepData(path=path, is_single_run=True, results=results, runs={record.run_id: record}, problems=tuple(problems))

    runs_dir = path / RUNS_DIR
    records: dict[str, RunRecord] = {}
    if runs_dir.is_dir():
        for run_path in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            records[run_path.name] = load_run_record(run_path, problems)
    else:
        problems.append(f"no {RUNS_DIR}/ directory: learning curves and per-head maps cannot be shown")

    derived = pd.DataFrame([row_from_files(r) for r in records.values()])
    results_path = path / RESULTS_FILE
    if results_path.is_file():
        try:
            table = pd.read_parquet(results_path)
        except (OSError, ValueError) as exc:
            problems.append(f"{RESULTS_FILE} is unreadable ({exc}); rows were rebuilt from the run directories")
            table = pd.DataFrame()
    else:
        if not records:
            raise FileNotFoundError(
                f"{path} is neither a sweep directory ({RESULTS_FILE} or {RUNS_DIR}/) nor a run directory "
                f"({' / '.join(RUN_FILES)})"
            )
        problems.append(f"no {RESULTS_FILE}: rows were rebuilt from the run directories")
        table = pd.DataFrame()
    results = _merge(table, derived)
    grid_text, grid = _read_grid(path, problems)
    return SweepData(
        path=path, is_single_run=False, results=_normalise(results), runs=records, grid=grid,
        grid_text=grid_text, problems=tuple(problems),
    )


def load_run_record(path: Path, problems: list[str]) -> RunRecord:
    """Read the files of one run directory; a missing file is ``None``, a corrupt one is noted in ``problems``."""

    def json_file(name: str) -> dict[str, Any] | None:
        file = path / name
        if not file.is_file():
            return None
        try:
            return read_record(file)
        except RepeatlabError as exc:  # corrupt JSON, or a schema this version cannot read
            problems.append(str(exc))
            return None

    metrics = pd.DataFrame(read_jsonl(path / METRICS_FILE))
    for column in metrics.columns:
        metrics[column] = pd.to_numeric(metrics[column], errors="coerce")
    return RunRecord(
        run_id=path.name, path=path, config=json_file(CONFIG_FILE), summary=json_file(SUMMARY_FILE),
        sweep_run=json_file(SPEC_FILE), probes=json_file(PROBES_FILE), error=json_file(ERROR_FILE),
        metrics=metrics,
    )


def row_from_files(record: RunRecord) -> dict[str, Any]:
    """A results row rebuilt from one run's files by ``records.run_row``, the rule of ``repeatlab sweep collect``
    (used where ``results.parquet`` lacks the run or a column)."""
    status = run_status(record.path, probes_required=probes_required(record.sweep_run))
    return run_row(record.run_id, status, sweep_run=record.sweep_run, config=record.config, summary=record.summary,
                   probes=record.probes, error=record.error)


def _merge(table: pd.DataFrame, derived: pd.DataFrame) -> pd.DataFrame:
    """``results.parquet`` wins; the run files fill its gaps (missing columns, cells and runs)."""
    if table.empty or "run_id" not in table:
        return derived
    if derived.empty:
        return table
    merged = table.set_index("run_id").combine_first(derived.set_index("run_id"))
    order = list(table["run_id"]) + [r for r in derived["run_id"] if r not in set(table["run_id"])]
    return merged.loc[order].reset_index()


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as floats, text as objects, ``kind`` inferred when absent."""
    frame = frame.copy()
    for column in frame.columns:
        if column in NUMERIC_COLUMNS or str(column).startswith(("probe_", "n_eff")):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    if "kind" not in frame and len(frame):
        frame["kind"] = [_infer_kind(row) for row in frame.to_dict("records")]
    return frame.reset_index(drop=True)


def _infer_kind(row: Mapping[str, Any]) -> str:
    fraction = row.get("repeated_fraction")
    if fraction is not None and np.isfinite(fraction) and fraction > 0:
        return "repeated"
    unique, total = row.get("unique_tokens"), row.get("total_tokens")
    if unique is not None and total is not None and np.isfinite(unique) and np.isfinite(total) and unique < total:
        return "data_constrained"
    return "control"


def _is_run_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def _read_grid(path: Path, problems: list[str]) -> tuple[str | None, dict[str, Any] | None]:
    file = path / GRID_FILE
    if not file.is_file():
        return None, None
    try:
        text = file.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{GRID_FILE} is not valid TOML ({exc})")
        return None, None
