"""Tables of training runs: the one input every fit takes, loaded and validated once.

A run table has one row per trained model and named numeric columns. The core ones are ``params`` (N),
``tokens`` (D, tokens seen), ``unique_tokens`` (U) and ``loss``; sweeps add ``repeated_fraction`` and
``repeated_epochs``, and any other numeric column (a copying loss, a prefix-matching score) is kept as a
metric. When ``tokens`` is missing but ``flops`` is given, D = C / (6 N). Values are checked here (positive,
finite, U <= D) so the fitters never see a NaN or a zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from repeatlab.errors import RepeatlabError
from repeatlab.laws.forms import FloatArray

CORE_COLUMNS = ("params", "tokens", "unique_tokens", "loss")
SWEEP_COLUMNS = ("repeated_fraction", "repeated_epochs")


@dataclass(frozen=True, kw_only=True)
class RunTable:
    """Validated columns of a table of runs, as float64 arrays of equal length."""

    params: FloatArray
    """N: trainable parameters of each run."""
    loss: FloatArray
    """Final evaluation loss of each run."""
    tokens: FloatArray | None = None
    """D: tokens seen in training."""
    unique_tokens: FloatArray | None = None
    """U: distinct tokens the run drew from."""
    repeated_fraction: FloatArray | None = None
    """Fraction of training tokens drawn from the repeated subset (0 for a control run)."""
    repeated_epochs: FloatArray | None = None
    """How many times the repeated subset was seen."""
    metrics: dict[str, FloatArray] = field(default_factory=dict)
    """Every other numeric column, by name."""

    def __post_init__(self) -> None:
        n = len(self.params)
        for name in ("loss", "tokens", "unique_tokens", "repeated_fraction", "repeated_epochs"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise RepeatlabError(f"RunTable.{name} has {len(column)} rows but params has {n}")
        for name, column in self.metrics.items():
            if len(column) != n:
                raise RepeatlabError(f"RunTable.metrics[{name!r}] has {len(column)} rows but params has {n}")

    def __len__(self) -> int:
        return len(self.params)

    def column(self, name: str) -> FloatArray:
        """A column by name, core or metric; a clear error when it is absent."""
        value = getattr(self, name, None) if name in CORE_COLUMNS + SWEEP_COLUMNS else self.metrics.get(name)
        if value is None:
            available = [c for c in CORE_COLUMNS + SWEEP_COLUMNS if getattr(self, c) is not None] + sorted(self.metrics)
            raise RepeatlabError(f"the run table has no column {name!r}; it has: {', '.join(available)}")
        return value

    def select(self, mask: np.ndarray) -> RunTable:
        """The rows where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)

        def pick(column: FloatArray | None) -> FloatArray | None:
            return None if column is None else column[mask]

        return RunTable(
            params=self.params[mask],
            loss=self.loss[mask],
            tokens=pick(self.tokens),
            unique_tokens=pick(self.unique_tokens),
            repeated_fraction=pick(self.repeated_fraction),
            repeated_epochs=pick(self.repeated_epochs),
            metrics={name: column[mask] for name, column in self.metrics.items()},
        )

    def control_mask(self) -> np.ndarray:
        """Rows of runs trained without repetition.

        A run is a control when its repeated fraction is 0; without that column, when it saw each unique token
        at most once (U >= D); without either, every row is taken to be a control.
        """
        if self.repeated_fraction is not None:
            return self.repeated_fraction == 0
        if self.tokens is not None and self.unique_tokens is not None:
            return self.unique_tokens >= self.tokens
        return np.ones(len(self), dtype=bool)

    def highest_loss_mask(self, count: int) -> np.ndarray:
        """Rows whose loss is among the ``count`` highest: Besiroglu et al. 2024's outlier rule.

        Their notebook (epoch-research/analyzing-chinchilla, ``data_analysis.ipynb``, ``nr_of_models_excluded = 5``)
        keeps the rows with ``loss < sorted(loss)[-count]``, so runs tied with the count-th highest go too.
        """
        if not isinstance(count, int) or count < 0:
            raise RepeatlabError(f"the number of highest-loss runs to drop must be a non-negative integer, got {count!r}")
        if count >= len(self):
            raise RepeatlabError(f"cannot drop the {count} highest-loss runs of a table of {len(self)}")
        if count == 0:
            return np.zeros(len(self), dtype=bool)
        return self.loss >= np.sort(self.loss)[-count]

    def controls(self) -> RunTable:
        mask = self.control_mask()
        if not mask.any():
            raise RepeatlabError("the run table has no control (no-repeat) runs")
        return self.select(mask)


def load_runs(source: pd.DataFrame | str | Path, *, columns: Mapping[str, str] | None = None) -> RunTable:
    """Read and validate a table of runs from a DataFrame or a CSV/Parquet file.

    Args:
        columns: renames applied first, from the file's name to repeatlab's (``{"val_loss": "loss"}``).
    """
    frame = _read(source).rename(columns=dict(columns or {}))
    for name in ("params", "loss"):
        if name not in frame.columns:
            raise RepeatlabError(
                f"the run table needs a {name!r} column (found: {', '.join(map(str, frame.columns))}); "
                "rename columns with columns={'your_name': '" + name + "'}"
            )
    if len(frame) == 0:
        raise RepeatlabError("the run table is empty")

    def numeric(name: str, *, positive: bool) -> FloatArray:
        values = _numeric_column(frame, name)
        bad = ~np.isfinite(values) | ((values <= 0) if positive else (values < 0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            rule = "positive" if positive else "non-negative"
            raise RepeatlabError(f"column {name!r} must be {rule} and finite; row {row} has {values[row]!r}")
        return values

    params = numeric("params", positive=True)
    tokens = numeric("tokens", positive=True) if "tokens" in frame else None
    if tokens is None and "flops" in frame:
        tokens = numeric("flops", positive=True) / (6 * params)
    unique = numeric("unique_tokens", positive=True) if "unique_tokens" in frame else None
    if tokens is not None and unique is not None and np.any(unique > tokens * (1 + 1e-9)):
        row = int(np.flatnonzero(unique > tokens * (1 + 1e-9))[0])
        raise RepeatlabError(f"row {row}: unique_tokens ({unique[row]:.4g}) exceeds tokens ({tokens[row]:.4g})")
    known = set(CORE_COLUMNS + SWEEP_COLUMNS + ("flops",))
    # Metrics may be negative or missing (NaN) for some runs; whoever fits one checks the rows it uses.
    metrics = {
        str(name): _numeric_column(frame, str(name))
        for name in frame.columns
        if name not in known and pd.api.types.is_numeric_dtype(frame[name])
    }
    return RunTable(
        params=params,
        loss=numeric("loss", positive=True),
        tokens=tokens,
        unique_tokens=unique,
        repeated_fraction=numeric("repeated_fraction", positive=False) if "repeated_fraction" in frame else None,
        repeated_epochs=numeric("repeated_epochs", positive=False) if "repeated_epochs" in frame else None,
        metrics=metrics,
    )


RunsLike = RunTable | pd.DataFrame | str | Path
"""What the fits accept: a validated table, or a DataFrame or CSV/Parquet path with repeatlab's column names."""


def as_run_table(runs: RunsLike) -> RunTable:
    return runs if isinstance(runs, RunTable) else load_runs(runs)


def _numeric_column(frame: pd.DataFrame, name: str) -> FloatArray:
    try:
        return pd.to_numeric(frame[name], errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise RepeatlabError(f"column {name!r} must be numeric") from None


def require_spread(table: RunTable, names: Sequence[str], form: str) -> None:
    """Refuse to fit a law to runs that all share one value of an input it depends on: no fit can tell its
    constants apart (identical rows, one model size)."""
    for name in names:
        values = np.unique(table.column(name))
        if len(values) < 2:
            raise RepeatlabError(f"every run fitted has {name} = {values[0]:.6g}; the {form} law needs runs at two or more "
                             f"values of {name}: add runs that differ in it")


def _read(source: pd.DataFrame | str | Path) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"run table {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv", ".txt"):
        raise RepeatlabError(f"run table {path} must be .csv or .parquet")
    try:
        return pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RepeatlabError(f"run table {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as "
                         f"UTF-8 CSV") from None
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RepeatlabError(f"run table {path} cannot be read as {suffix.lstrip('.')} ({exc})") from None
