"""``results.parquet``: one row per run, rebuilt from the run directories whenever asked.

Nothing here is the only copy of anything: every value is read from a run directory (``sweep_run.json``,
the trainer's ``summary.json``, ``probes.json``, ``error.json``, the mixture's manifest) or recomputed
from them (parameter counts, the scaling-law columns), so the table can be deleted and rebuilt at any
time with ``repeatlab sweep collect DIR``.

Law columns: at each total token count with finished controls at two or more sizes, the controls' curve of the
test loss in N (``repeatlab.laws.effective.control_curve``, the rule the report uses too) is inverted at every
finished run's test loss: ``n_eff_test`` is the size of a control model with that loss, ``mult_test = n_eff_test /
params`` and ``method_test`` says how (power-law fit or interpolation). The same is done for the probe metrics of
``LAW_METRICS`` (``n_eff_copying``, ``n_eff_induction``, ...). Controls get an ``n_eff_test`` too (close to their
``params`` when the law fits well), a check of the fit.
"""

from __future__ import annotations

import functools
import io
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from repeatlab.config import from_dict
from repeatlab.data.mixture import MANIFEST_FILE
from repeatlab.io import atomic_write_bytes, read_json
from repeatlab.laws.effective import control_curve
from repeatlab.laws.results import FitError
from repeatlab.models.gpt import ModelConfig
from repeatlab.models.sizes import SIZES, count_params, model_config
from repeatlab.layout import CONFIG_FILE, PROBES_FILE, SPEC_FILE, SUMMARY_FILE
from repeatlab.records import POINT_COLUMNS, read_record, run_row, run_status
from repeatlab.sweeps.grid import GridConfig, expand_grid
from repeatlab.sweeps.state import AnySpec, SweepDir, assign_run_ids, read_error, stored_specs

COLUMNS = (
    "run_id", "status", "error", "kind", "model", "n_layer", "d_model", "params", "params_total",
    "repeated_fraction", "repeated_fraction_achieved", "repeated_epochs", "unique_tokens", "total_tokens", "seed",
    "test_loss", "repeated_loss", "train_loss", "wall_time_s",
)
"""The agreed leading columns, in order; extra run facts, ``probe_*`` and law columns follow."""
EXTRA_COLUMNS = ("label", "tokens", "steps", "tokens_per_s", "unique_tokens_achieved", "device", "data_variant",
                 "train_variant", "init_from")
TEXT_COLUMNS = ("error", "device", "data_variant", "train_variant", "init_from")
"""Optional text columns, stored as strings even when every run leaves them empty."""
LAW_METRICS: dict[str, tuple[str, bool]] = {
    "test": ("test_loss", False),
    "copying": ("probe_copying_repeated_copies_loss", False),
    "induction": ("probe_induction_max", True),
    "prefix_matching": ("probe_prefix_matching_max", True),
}
"""Key of the law columns (``n_eff_<key>``, ``mult_<key>``, ``method_<key>``, as the report names them) -> (metric
it inverts, whether higher is better: scores in [0, 1) are inverted as 1 - score). Absent metrics are skipped."""


def load_sweep_grid(sweep: SweepDir) -> GridConfig | None:
    """The grid stored in the sweep directory, or ``None`` before the first ``sweep run``."""
    if not sweep.grid_file.is_file():
        return None
    return from_dict(GridConfig, tomllib.loads(sweep.grid_file.read_text(encoding="utf-8")))


def sweep_specs(sweep: SweepDir) -> dict[str, AnySpec]:
    """Every run of the sweep by id: the stored grid's runs in order, then other run directories (from an
    earlier grid)."""
    grid = load_sweep_grid(sweep)
    specs: dict[str, AnySpec] = dict(assign_run_ids(sweep, expand_grid(grid))) if grid is not None else {}
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


def _row(sweep: SweepDir, run_id: str, spec: AnySpec, meta: dict[str, Any] | None) -> dict[str, Any]:
    """``records.run_row`` of the run's files, completed from the grid: its label, its size's shape (known before
    it trains), its parameter count over the sweep's data and its mixture's achieved values."""
    point, run_dir = spec.point, sweep.run_dir(run_id)
    status = run_status(run_dir, probes_required=spec.probes is not None)
    files = {name: _record(run_dir / file) for name, file in
             (("sweep_run", SPEC_FILE), ("config", CONFIG_FILE), ("summary", SUMMARY_FILE), ("probes", PROBES_FILE))}
    error = read_error(run_dir) if status == "failed" else None
    row = dict.fromkeys(COLUMNS + EXTRA_COLUMNS)
    row.update(run_row(run_id, status, error=error, **files))
    row.update({key: getattr(point, key) for key in POINT_COLUMNS})  # the grid's spec, even of an unreadable file
    row["label"] = point.label()
    size = SIZES[point.model]
    shape = ModelConfig(n_layer=size.n_layer, d_model=size.d_model, n_head=size.n_head, vocab_size=1, context=1,
                        mlp=size.mlp)
    for key, value in (("n_layer", size.n_layer), ("d_model", size.d_model), ("params", shape.n_params_scaling_law)):
        if row[key] is None:
            row[key] = value
    if row["params_total"] is None and meta is not None:
        d_vector = meta.get("d_vector")  # vector data (in-context regression) has no vocabulary
        row["params_total"] = _params_total(point.model, int(meta["vocab_size"]), int(meta["context"]),
                                            None if d_vector is None else int(d_vector))
    manifest_file = sweep.mixture_dir(point.mixture_spec(), point.data_variant) / MANIFEST_FILE
    if manifest_file.is_file():
        manifest = read_json(manifest_file)
        row["repeated_fraction_achieved"] = manifest["repeated_fraction"]
        row["unique_tokens_achieved"] = manifest["unique_tokens"]
    if row["unique_tokens"] is None and row["unique_tokens_achieved"] is not None:
        row["unique_tokens"] = row["unique_tokens_achieved"]  # control/repeated: U follows from T, f and E
    return row


def _record(path: Path) -> dict[str, Any] | None:
    return read_record(path) if path.is_file() else None


@functools.lru_cache(maxsize=256)
def _params_total(size: str, vocab_size: int, context: int, d_vector: int | None) -> int:
    return count_params(model_config(size, vocab_size=vocab_size, context=context, d_vector=d_vector))


def add_law_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``n_eff_<key>``, ``mult_<key>`` and ``method_<key>`` (per ``LAW_METRICS``) where the controls at a run's
    total token count can be inverted (``repeatlab.laws.effective.control_curve``). A control is a run on a control
    mixture trained from scratch (a fine-tuned run, with ``init_from``, is none)."""
    frame = frame.copy()
    for key, (metric, higher_is_better) in LAW_METRICS.items():
        if metric not in frame.columns:
            continue
        values = pd.to_numeric(frame[metric], errors="coerce").astype(float)
        effective = pd.Series(np.nan, index=frame.index, dtype=float)
        method = pd.Series(None, index=frame.index, dtype=object)
        usable = (frame["status"] == "done") & np.isfinite(values)
        from_scratch = frame["init_from"].isna() if "init_from" in frame else pd.Series(True, index=frame.index)
        for _, group in frame[usable].groupby("total_tokens"):
            controls = group[(group["kind"] == "control") & from_scratch[group.index]]
            try:
                curve = control_curve(controls["params"].astype(float), values[controls.index], metric=metric,
                                      higher_is_better=higher_is_better)
            except FitError:
                continue
            effective[group.index] = curve.effective_params(values[group.index].to_numpy())
            method[group.index] = curve.method
        if effective.notna().any():
            frame[f"n_eff_{key}"] = effective
            frame[f"mult_{key}"] = effective / frame["params"].astype(float)
            frame[f"method_{key}"] = method
    return frame


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
            out[name] = out[name].astype(float) if name not in TEXT_COLUMNS else out[name].astype("string")
    return out
