"""The numbers behind the figures, computed once per report from the finished runs.

Seeds of the same grid point are averaged. Sizes are ordered by parameter count, never by name. The reference
repeated fraction (the one Figures 1 and 4 hold fixed) is the one the user asked for, else the one with the most
finished repeated runs, ties going to the value nearest Hernandez et al.'s headline 10%.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from repeatlab.errors import RepeatlabError
from repeatlab.laws.fit import fit_data_constrained
from repeatlab.laws.forms import DataConstrainedLaw
from repeatlab.laws.region import PoorRegionFit, find_poor_region
from repeatlab.laws.results import FitError, LawFit
from repeatlab.laws.effective import ControlCurve
from repeatlab.report.effective import METRICS, add_effective_sizes, control_curve
from repeatlab.report.load import SweepData
from repeatlab.report.model import format_count

HEADLINE_FRACTION = 0.1
GROUP_KEYS = ["model", "params", "repeated_fraction", "repeated_epochs"]
# A small grid of starts for all seven constants of the data-constrained law: the full grid (2,187 starts)
# takes about a minute; these 16 reach the basins of small-model sweeps in seconds.
DATA_CONSTRAINED_GRID = {
    "a": (2.0, 8.0), "b": (2.0, 8.0), "e": (0.0, 0.7), "alpha": (0.4,), "beta": (0.4,),
    "r_d_star": (5.0, 30.0), "r_n_star": (5.0,),
}
MIN_DATA_CONSTRAINED_RUNS = 8
MIN_COPYING_GAIN = 0.1
"""Nats by which the controls must predict later copies of a paragraph better than the first for the copying eval to
measure copying; below it the eval is plain loss on a few paragraphs, and its effective size says nothing of copying."""


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """Choices a reader can make; the defaults are chosen from the sweep's own numbers."""

    repeated_fraction: float | None = None
    """Repeated fraction held fixed in Figures 1 and 4; ``None`` picks the best-covered one."""
    curve_runs: tuple[str, ...] = ()
    """Run ids whose learning curves Figure 3 shows; empty picks each size's worst repeated run."""
    near_zero_loss: float = 0.1
    """Repeated-subset loss (nats) below which the subset counts as memorised in Figure 3."""
    max_curve_runs: int = 4
    """Most learning curves drawn when ``curve_runs`` is empty (spread evenly over the sizes)."""
    max_samples: int = 3
    """Repeated sequences shown as text, when the sweep's prepared data is available."""
    sample_chars: int = 600
    """Characters of each repeated sequence shown (longer ones are cut, with an ellipsis)."""

    def __post_init__(self) -> None:
        if self.repeated_fraction is not None and not 0 < self.repeated_fraction < 1:
            raise RepeatlabError(f"ReportOptions.repeated_fraction must be in (0, 1), got {self.repeated_fraction}")
        if not self.near_zero_loss > 0:
            raise RepeatlabError(f"ReportOptions.near_zero_loss must be positive, got {self.near_zero_loss}")
        for name in ("max_curve_runs", "max_samples", "sample_chars"):
            if getattr(self, name) < 0:
                raise RepeatlabError(f"ReportOptions.{name} must be non-negative, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class Analysis:
    """Derived tables of one sweep; properties are computed on first use and cached."""

    data: SweepData
    options: ReportOptions = field(default_factory=ReportOptions)

    @cached_property
    def done(self) -> pd.DataFrame:
        return self.data.done()

    @cached_property
    def sizes(self) -> list[str]:
        """Model names of the finished runs, smallest first."""
        frame = self.done
        if "model" not in frame or frame.empty:
            return []
        if "params" not in frame:
            return sorted(frame["model"].dropna().unique())
        return list(frame.groupby("model")["params"].mean().sort_values().index)

    def size_params(self, model: str) -> float:
        rows = self.done[self.done["model"] == model]
        return float(rows["params"].mean()) if "params" in rows else float("nan")

    def size_label(self, model: str) -> str:
        params = self.size_params(model)
        return f"{model} ({format_count(params)} params)" if np.isfinite(params) else model

    @cached_property
    def is_data_constrained_grid(self) -> bool:
        """The sweep has data-constrained runs and no repeated-subset runs (finished or not): Hernandez et al.'s
        figures do not apply to it, rather than being missing."""
        kinds = set(self.data.results["kind"].dropna()) if "kind" in self.data.results else set()
        return "data_constrained" in kinds and "repeated" not in kinds

    @cached_property
    def control_tokens(self) -> float | None:
        """The training length (total tokens) the control curve is taken at.

        Effective sizes compare runs of equal length, so controls are those trained as long as the repeated runs
        (the most common length among them); a data-constrained grid has controls at many lengths, and then the
        length with the most control sizes (the longest among ties) is used.
        """
        frame = self.done
        if "kind" not in frame or "total_tokens" not in frame or not frame["total_tokens"].notna().any():
            return None
        repeated = frame[(frame["kind"] == "repeated") & frame["total_tokens"].notna()]
        if not repeated.empty:
            return float(repeated["total_tokens"].mode().max())
        controls = frame[(frame["kind"] == "control") & frame["total_tokens"].notna()]
        if controls.empty:
            return None
        sizes = controls.groupby("total_tokens")["model"].nunique()
        return float(sizes[sizes == sizes.max()].index.max())

    @cached_property
    def controls(self) -> pd.DataFrame:
        """Finished control runs at ``control_tokens`` (all of them when the length is unknown)."""
        frame = self.done
        if "kind" not in frame:
            return frame.iloc[0:0]
        controls = frame[frame["kind"] == "control"]
        if self.control_tokens is not None:
            controls = controls[np.isclose(controls["total_tokens"], self.control_tokens)]
        return controls

    @cached_property
    def control_by_size(self) -> pd.DataFrame:
        """One row per size of the mean control metrics (index: model)."""
        if self.controls.empty or "model" not in self.controls:
            return pd.DataFrame()
        numeric = self.controls.select_dtypes("number")
        return numeric.groupby(self.controls["model"]).mean()

    @cached_property
    def curves(self) -> dict[str, ControlCurve | str]:
        if self.controls.empty or "params" not in self.controls:
            return {m.key: "there are no finished control runs with a params column" for m in METRICS}
        return {m.key: control_curve(self.controls, m) for m in METRICS}

    @cached_property
    def controls_copying_gain(self) -> float | None:
        """The controls' mean first-copy minus later-copies loss (``None`` when the sweep did not record both)."""
        controls = self.controls
        columns = ("probe_copying_first_copy_loss", "probe_copying_repeated_copies_loss")
        if controls.empty or any(c not in controls for c in columns):
            return None
        gain = (controls[columns[0]] - controls[columns[1]]).mean()
        return float(gain) if np.isfinite(gain) else None

    @cached_property
    def repeated(self) -> pd.DataFrame:
        """Finished repeated runs averaged over seeds, one row per (model, f, E), with effective sizes."""
        frame = self.done
        if "kind" not in frame or any(k not in frame for k in GROUP_KEYS):
            return pd.DataFrame()
        frame = frame[frame["kind"] == "repeated"]
        if self.control_tokens is not None:
            frame = frame[np.isclose(frame["total_tokens"], self.control_tokens)]
        if frame.empty:
            return pd.DataFrame()
        numeric = [c for c in frame.select_dtypes("number").columns if c not in GROUP_KEYS]
        grouped = frame.groupby(GROUP_KEYS, as_index=False)
        table = grouped[numeric].mean()
        table["n_seeds"] = grouped.size()["size"].to_numpy()
        table["run_id"] = grouped["run_id"].first()["run_id"].to_numpy()
        control = self.control_by_size
        if "test_loss" in control:
            table["control_loss"] = table["model"].map(control["test_loss"])
        return add_effective_sizes(table, self.curves).sort_values(GROUP_KEYS).reset_index(drop=True)

    @cached_property
    def reference_fraction(self) -> float | None:
        table = self.repeated
        if table.empty:
            return None
        fractions = table["repeated_fraction"].to_numpy(dtype=np.float64)
        if self.options.repeated_fraction is not None:
            nearest = fractions[np.argmin(np.abs(fractions - self.options.repeated_fraction))]
            return float(nearest)
        counts = table.groupby("repeated_fraction").size()
        best = counts[counts == counts.max()].index.to_numpy(dtype=np.float64)
        return float(best[np.argmin(np.abs(np.log(best / HEADLINE_FRACTION)))])

    def at_reference_fraction(self) -> pd.DataFrame:
        if self.reference_fraction is None:
            return pd.DataFrame()
        table = self.repeated
        return table[np.isclose(table["repeated_fraction"], self.reference_fraction)]

    @cached_property
    def peaks(self) -> pd.DataFrame:
        """Per size, the repeated epochs with the worst test loss at the reference fraction."""
        table = self.at_reference_fraction()
        if table.empty:
            return pd.DataFrame()
        rows = table.loc[table.groupby("model")["test_loss"].idxmax()]
        order = {m: i for i, m in enumerate(self.sizes)}
        return rows.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)

    @cached_property
    def poor_region(self) -> PoorRegionFit | str:
        """The sweep's own poor-performance band per size at the reference fraction (``laws.find_poor_region``)."""
        table = self.at_reference_fraction()
        controls = self.control_by_size
        if table.empty or "test_loss" not in controls:
            return "needs finished repeated runs and their controls"
        rows = pd.DataFrame({
            "params": np.concatenate([table["params"], controls["params"]]),
            "loss": np.concatenate([table["test_loss"], controls["test_loss"]]),
            "repeated_fraction": np.concatenate([table["repeated_fraction"], np.zeros(len(controls))]),
            "repeated_epochs": np.concatenate([table["repeated_epochs"], np.ones(len(controls))]),
        })
        rows = rows[rows["params"].isin(table["params"])]
        try:
            return find_poor_region(rows, repeated_fraction=self.reference_fraction)
        except ValueError as exc:
            return str(exc)

    @cached_property
    def data_constrained(self) -> pd.DataFrame:
        """Finished data-constrained runs (and controls, their one-epoch end) with epochs = D / U."""
        frame = self.done
        if "kind" not in frame or not (frame["kind"] == "data_constrained").any():
            return pd.DataFrame()
        if any(c not in frame for c in ("model", "unique_tokens", "total_tokens", "params")):
            return pd.DataFrame()
        rows = frame[frame["kind"].isin(["data_constrained", "control"])].copy()
        rows = rows[np.isfinite(rows["total_tokens"]) & np.isfinite(rows["params"]) & rows["model"].notna()]
        unique = rows["unique_tokens"].where(np.isfinite(rows["unique_tokens"]), rows["total_tokens"])
        rows["unique_tokens"] = np.minimum(unique, rows["total_tokens"])
        rows["epochs"] = rows["total_tokens"] / rows["unique_tokens"]
        return rows.reset_index(drop=True)

    @cached_property
    def data_constrained_fit(self) -> LawFit[DataConstrainedLaw] | str:
        """The data-constrained law fitted to all seven constants, or why it could not be."""
        rows = self.data_constrained
        if len(rows) < MIN_DATA_CONSTRAINED_RUNS:
            return f"the law has 7 constants and needs at least {MIN_DATA_CONSTRAINED_RUNS} runs (found {len(rows)})"
        table = pd.DataFrame({"params": rows["params"], "tokens": rows["total_tokens"],
                              "unique_tokens": rows["unique_tokens"], "loss": rows["test_loss"]})
        try:
            with np.errstate(all="ignore"):  # far-off starts of the multi-start fit overflow harmlessly
                return fit_data_constrained(table, base=None, grid=DATA_CONSTRAINED_GRID)
        except FitError as exc:
            return f"the fit failed ({exc})"


def first_below(metrics: pd.DataFrame, column: str, threshold: float) -> float | None:
    """Tokens seen at the first evaluation where ``column`` is at or below ``threshold``; ``None`` if never."""
    if column not in metrics or "tokens_seen" not in metrics:
        return None
    hits = metrics[metrics[column] <= threshold]
    return float(hits["tokens_seen"].iloc[0]) if not hits.empty else None
