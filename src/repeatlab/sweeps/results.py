"""``results.parquet``: one row per run, rebuilt from the run directories whenever asked.

Nothing here is the only copy of anything: every value is read from a run directory (``sweep_run.json``,
the trainer's ``summary.json``, ``probes.json``, ``error.json``, the mixture's manifest) or recomputed
from them (parameter counts, the scaling-law columns), so the table can be deleted and rebuilt at any
time with ``repeatlab sweep collect DIR``.

Law columns: at each total token count with finished controls at two or more sizes, a power law in N is
fitted to the controls' test loss (``repeatlab.laws.fit_metric_scaling``, or a pure power law when there are
fewer than four controls) and inverted at every finished run's test loss: ``n_eff`` is the size of a control
model with that loss and ``n_eff_multiplier = n_eff / params``. The same is done for the probe metrics of
``LAW_METRICS`` (``n_eff_copying``, ``n_eff_induction``, ...). Controls get an ``n_eff`` too (close to their
``params`` when the law fits well), a check of the fit.
"""

from __future__ import annotations

import functools
import io
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from repeatlab.config import from_dict
from repeatlab.data.mixture import MANIFEST_FILE
from repeatlab.io import atomic_write_bytes, read_json
from repeatlab.laws.effective import MIN_R_SQUARED, fit_metric_scaling
from repeatlab.laws.forms import PowerLaw
from repeatlab.laws.results import FitError
from repeatlab.models.gpt import ModelConfig
from repeatlab.models.sizes import SIZES, count_params, model_config
from repeatlab.sweeps.grid import GridConfig, RunSpec, expand_grid
from repeatlab.sweeps.state import PROBES_FILE, SweepDir, assign_run_ids, read_error, run_status, stored_specs
from repeatlab.train.run import SUMMARY_FILE

COLUMNS = (
    "run_id", "status", "error", "kind", "model", "n_layer", "d_model", "params", "params_total",
    "repeated_fraction", "repeated_fraction_achieved", "repeated_epochs", "unique_tokens", "total_tokens", "seed",
    "test_loss", "repeated_loss", "train_loss", "wall_time_s",
)
"""The agreed leading columns, in order; extra run facts, ``probe_*`` and law columns follow."""
EXTRA_COLUMNS = ("label", "tokens", "steps", "tokens_per_s", "unique_tokens_achieved", "device")
LAW_METRICS: dict[str, tuple[str, bool]] = {
    "n_eff": ("test_loss", False),
    "n_eff_copying": ("probe_copying_repeated_copies_loss", False),
    "n_eff_induction": ("probe_induction_max", True),
    "n_eff_prefix_matching": ("probe_prefix_matching_max", True),
}
"""Law column -> (metric it inverts, whether higher is better: scores in [0, 1) are fitted as 1 - score).
Metrics absent from the table are skipped."""


def load_sweep_grid(sweep: SweepDir) -> GridConfig | None:
    """The grid stored in the sweep directory, or ``None`` before the first ``sweep run``."""
    if not sweep.grid_file.is_file():
        return None
    return from_dict(GridConfig, tomllib.loads(sweep.grid_file.read_text(encoding="utf-8")))


def sweep_specs(sweep: SweepDir) -> dict[str, RunSpec]:
    """Every run of the sweep by id: the stored grid's runs in order, then other run directories (from an
    earlier grid)."""
    grid = load_sweep_grid(sweep)
    specs = dict(assign_run_ids(sweep, expand_grid(grid))) if grid is not None else {}
    for run_id, spec in stored_specs(sweep).items():
        specs.setdefault(run_id, spec)
    return specs


def run_rows(sweep_root: str | Path) -> pd.DataFrame:
    """One row per run with its status, grid point, results and probe summaries (no law columns)."""
    sweep = SweepDir(Path(sweep_root))
    if not sweep.root.is_dir():
        raise FileNotFoundError(f"{sweep.root} is not a sweep directory (run 'repeatlab sweep run GRID --out DIR')")
    meta_file = sweep.data_dir / "meta.json"
    meta = read_json(meta_file) if meta_file.is_file() else None
    rows = [_row(sweep, run_id, spec, meta) for run_id, spec in sweep_specs(sweep).items()]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS + EXTRA_COLUMNS))
    probe_columns = sorted(c for c in frame.columns if c.startswith("probe_"))
    return frame[list(COLUMNS + EXTRA_COLUMNS) + probe_columns]


def _row(sweep: SweepDir, run_id: str, spec: RunSpec, meta: dict[str, Any] | None) -> dict[str, Any]:
    point, run_dir = spec.point, sweep.run_dir(run_id)
    status = run_status(run_dir, spec) if run_dir.is_dir() else "pending"
    size = SIZES[point.model]
    shape = ModelConfig(n_layer=size.n_layer, d_model=size.d_model, n_head=size.n_head, vocab_size=1, context=1,
                        mlp=size.mlp)
    row: dict[str, Any] = {
        "run_id": run_id, "status": status, "error": None, "kind": point.kind, "model": point.model,
        "n_layer": size.n_layer, "d_model": size.d_model, "params": shape.n_params_non_embedding,
        "params_total": None, "repeated_fraction": point.repeated_fraction, "repeated_fraction_achieved": None,
        "repeated_epochs": point.repeated_epochs, "unique_tokens": point.unique_tokens,
        "total_tokens": point.total_tokens, "seed": point.seed, "test_loss": None, "repeated_loss": None,
        "train_loss": None, "wall_time_s": None, "label": point.label(), "tokens": None, "steps": None,
        "tokens_per_s": None, "unique_tokens_achieved": None, "device": None,
    }
    if meta is not None:
        row["params_total"] = _params_total(point.model, int(meta["vocab_size"]), int(meta["context"]))
    manifest_file = sweep.mixture_dir(point.mixture_spec()) / MANIFEST_FILE
    if manifest_file.is_file():
        manifest = read_json(manifest_file)
        row["repeated_fraction_achieved"] = manifest["repeated_fraction"]
        row["unique_tokens_achieved"] = manifest["unique_tokens"]
    if row["unique_tokens"] is None and row["unique_tokens_achieved"] is not None:
        row["unique_tokens"] = row["unique_tokens_achieved"]  # control/repeated: U follows from T, f and E
    if status == "failed":
        error = read_error(run_dir) or {}
        row["error"] = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    if (run_dir / SUMMARY_FILE).is_file():
        summary = read_json(run_dir / SUMMARY_FILE)
        for key in ("test_loss", "repeated_loss", "train_loss", "wall_time_s", "tokens", "steps", "tokens_per_s",
                    "device"):
            row[key] = summary.get(key)
        row["params_total"] = summary.get("n_params", row["params_total"])
    if (run_dir / PROBES_FILE).is_file():
        for key, value in read_json(run_dir / PROBES_FILE).get("summary", {}).items():
            row["probe_" + key.replace(".", "_")] = value
    return row


@functools.lru_cache(maxsize=256)
def _params_total(size: str, vocab_size: int, context: int) -> int:
    return count_params(model_config(size, vocab_size=vocab_size, context=context))


def add_law_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``n_eff``/``n_eff_multiplier`` (and per probe metric) where the controls allow a fit."""
    frame = frame.copy()
    for column, (metric, higher_is_better) in LAW_METRICS.items():
        if metric not in frame.columns:
            continue
        values = pd.to_numeric(frame[metric], errors="coerce").astype(float)
        effective = pd.Series(np.nan, index=frame.index, dtype=float)
        usable = (frame["status"] == "done") & np.isfinite(values)
        for _, group in frame[usable].groupby("total_tokens"):
            controls = group[group["kind"] == "control"]
            if controls["model"].nunique() < 2:
                continue
            invert = _control_scaling(controls["params"].to_numpy(dtype=float),
                                      values[controls.index].to_numpy(), higher_is_better)
            if invert is not None:
                effective[group.index] = invert(values[group.index].to_numpy())
        if effective.notna().any():
            frame[column] = effective
            frame[f"{column}_multiplier"] = effective / frame["params"].astype(float)
    return frame


def _control_scaling(
    params: np.ndarray, values: np.ndarray, higher_is_better: bool
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The inverse of a power law fitted to the controls' metric: value -> N_eff (``None`` if no fit).

    With four or more controls, ``repeatlab.laws.fit_metric_scaling`` fits L(N) = E + (N_c / N)^alpha; with
    two or three (too few for three constants) a pure power law L = (N_c / N)^alpha is fitted in log-log.
    Metrics that do not improve at every size step of the controls, and poor fits, are not inverted.
    """
    loss_like = 1 - values if higher_is_better else values
    if np.any(loss_like <= 0):
        return None
    by_size = pd.Series(loss_like).groupby(params).mean().sort_index()
    if not (np.diff(by_size.to_numpy()) < 0).all():
        return None  # the metric does not improve with every size step on the controls: nothing to invert
    if len(params) >= 4:
        table = pd.DataFrame({"params": params, "loss": loss_like, "repeated_fraction": 0.0})
        try:
            fit = fit_metric_scaling(table, "loss").fit
        except (FitError, ValueError):
            return None
        if not fit.r_squared >= MIN_R_SQUARED:
            return None
        law = fit.law
    else:
        slope, intercept = np.polyfit(np.log(params), np.log(loss_like), 1)
        alpha = -slope
        with np.errstate(over="ignore"):
            n_c = float(np.exp(intercept / alpha))
        if not np.isfinite(n_c) or n_c <= 0:
            return None  # a near-flat metric: its inverse is meaningless
        law = PowerLaw(E=0.0, n_c=n_c, alpha=float(alpha))

    def invert(run_values: np.ndarray) -> np.ndarray:
        target = 1 - run_values if higher_is_better else run_values
        out = np.full(len(target), np.nan)
        ok = np.isfinite(target) & (target > 0)
        out[ok] = law.params_for_loss(target[ok])
        return out

    return invert


def collect(sweep_root: str | Path, *, write: bool = True, laws: bool = True) -> pd.DataFrame:
    """Rebuild the results table from the run directories; with ``write``, save ``results.parquet`` atomically."""
    sweep = SweepDir(Path(sweep_root))
    frame = run_rows(sweep.root)
    if laws and not frame.empty:
        frame = add_law_columns(frame)
    frame = _parquet_ready(frame)
    if write:
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        atomic_write_bytes(sweep.results_file, buffer.getvalue())
    return frame


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Give columns of ``None`` a type Parquet can store (all-None object columns become float NaN)."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object and out[name].map(lambda v: v is None or (isinstance(v, float) and math.isnan(v))).all():
            out[name] = out[name].astype(float) if name not in ("error", "device") else out[name].astype("string")
    return out
