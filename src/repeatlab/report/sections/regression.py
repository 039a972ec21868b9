"""The in-context regression testbed (von Oswald et al. 2022): each model against one step of gradient descent.

On in-context linear regression a trained linear self-attention layer can implement one step of gradient descent
on its context, so generalising has a known optimum and the gap to it measures how far a run is from it: the loss
ratio (model / one tuned GD step), the cosine of the predictions and the mean cosine of the sensitivities
``d y_hat / d x_q``. The final numbers come from each run's probe results (``probes.json``, the results columns
``probe_regression_*``), the curves from its ``metrics.jsonl`` (``train.probe_metrics = ["regression"]``). With the
repetition knob (a repeated grid) each setting is a repeated-epochs value or a control, so the section answers
whether repeating training sequences pulls a model away from GD while the repeats are memorised. Absent from
sweeps without regression runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from repeatlab.data.mixture import unique_control_tokens
from repeatlab.records import probe_column
from repeatlab.report.analysis import Analysis
from repeatlab.report.load import RunRecord
from repeatlab.report.model import Section, Table, format_count, format_epochs
from repeatlab.report.plotting import encode, new_figure, plain_log_axis, size_colors, style

LOSS_RATIO = "regression.loss_ratio"
"""Model loss over the loss of one tuned GD step (``probes.regression.GDComparison``), logged over training."""
PREDICTION_COSINE = "regression.prediction_cosine"
SENSITIVITY_COSINE = "regression.sensitivity_cosine"
NEAR_GD = 1.1
"""Loss ratio at which a run counts as having reached GD (the first evaluation at or below it is reported)."""
CLEAN, UNIQUE = "control", "unique-only control"


def regression_rows(an: Analysis) -> pd.DataFrame:
    """Finished runs with a GD comparison, with a ``setting`` column (``E=...`` or a control's name)."""
    frame = an.done
    column = probe_column(LOSS_RATIO)
    if column not in frame or not frame[column].notna().any():
        return pd.DataFrame()
    frame = frame[frame[column].notna()].copy()
    full_length = frame.groupby("model")["total_tokens"].transform("max")
    fractions = sorted({float(f) for f in frame["repeated_fraction"].fillna(0.0) if f > 0})
    settings, order = [], []
    for index, row in frame.iterrows():
        fraction = float(row.get("repeated_fraction") or 0.0)
        tokens, full = int(row["total_tokens"]), int(full_length[index])
        if fraction > 0:
            settings.append(f"f={fraction:g} E={format_epochs(row.get('repeated_epochs'))}")
            order.append((3, fraction, float(row.get("repeated_epochs") or 1)))
        elif tokens == full:
            settings.append(CLEAN)
            order.append((0, 0.0, 0.0))
        elif any(tokens == unique_control_tokens(full, f) for f in fractions):  # the grid's unique_controls
            settings.append(UNIQUE)
            order.append((1, 0.0, 0.0))
        else:
            settings.append(f"control T={format_count(tokens)}")
            order.append((2, float(tokens), 0.0))
    frame["setting"], frame["setting_order"] = settings, order
    return frame


def _spread(values: Sequence[float], digits: int = 3) -> str:
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if not len(array):
        return "–"
    if len(array) == 1:
        return f"{array[0]:.{digits}f}"
    return f"{array.mean():.{digits}f} [{array.min():.{digits}f}, {array.max():.{digits}f}]"


def reached_gd_at(record: RunRecord | None) -> int | None:
    """The first logged step whose loss ratio is at most ``NEAR_GD``; ``None`` if never (or not logged)."""
    if record is None or LOSS_RATIO not in record.metrics or "step" not in record.metrics:
        return None
    rows = record.metrics[record.metrics[LOSS_RATIO] <= NEAR_GD]
    return int(rows["step"].iloc[0]) if len(rows) else None


def regression_section(an: Analysis) -> Section | None:
    """Final loss ratio to one GD step per setting, and the loss ratio over training."""
    rows = regression_rows(an)
    if rows.empty:
        return None
    sizes = [s for s in an.sizes if s in set(rows["model"])]
    settings = list(dict.fromkeys(rows.sort_values("setting_order")["setting"]))
    colors = size_colors(sizes)
    fig = new_figure(9.6, 3.6)
    ratio_ax, curve_ax = fig.subplots(1, 2)
    positions = {setting: i for i, setting in enumerate(settings)}
    table = []
    for offset, size in zip(np.linspace(-0.15, 0.15, len(sizes)) if len(sizes) > 1 else [0.0], sizes):
        of_size = rows[rows["model"] == size]
        means, xs = [], []
        for setting in settings:
            group = of_size[of_size["setting"] == setting]
            if group.empty:
                continue
            ratios = group[probe_column(LOSS_RATIO)].to_numpy(dtype=np.float64)
            x = positions[setting] + offset
            span = [[ratios.mean() - ratios.min()], [ratios.max() - ratios.mean()]]
            ratio_ax.errorbar([x], [ratios.mean()], yerr=span, fmt="o", color=colors[size], ms=4, capsize=2, lw=1)
            xs.append(x)
            means.append(ratios.mean())
            records = [an.data.runs.get(run_id) for run_id in group["run_id"]]
            table.append({
                "model": size, "setting": setting, "seeds": ", ".join(str(int(s)) for s in group["seed"]),
                "test loss": _spread(group["test_loss"]),
                "repeated loss": _spread(group["repeated_loss"]) if "repeated_loss" in group else "–",
                "loss ratio to 1 GD step": _spread(ratios),
                "prediction cosine": _spread(group.get(probe_column(PREDICTION_COSINE), pd.Series(dtype=float))),
                "sensitivity cosine": _spread(group.get(probe_column(SENSITIVITY_COSINE), pd.Series(dtype=float))),
                f"ratio <= {NEAR_GD:g} at step (per seed)": ", ".join(
                    "–" if (s := reached_gd_at(r)) is None else str(s) for r in records),
            })
            for record in records:
                if record is not None and LOSS_RATIO in record.metrics:
                    curve = record.metrics.dropna(subset=[LOSS_RATIO])
                    curve_ax.plot(curve["step"], curve[LOSS_RATIO], color=colors[size], lw=0.6,
                                  alpha=0.35 if setting in (CLEAN, UNIQUE) else 0.8,
                                  ls="--" if setting in (CLEAN, UNIQUE) else "-")
        ratio_ax.plot(xs, means, "-", color=colors[size], lw=0.8, label=an.size_label(size))
    for ax in (ratio_ax, curve_ax):
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        style(ax)
    ratio_ax.set_xticks(range(len(settings)), settings, rotation=30, ha="right", fontsize=7)
    ratio_ax.set_ylabel("final loss / one GD step", fontsize=8)
    ratio_ax.legend(fontsize=7)
    plain_log_axis(curve_ax)
    curve_ax.set_xlabel("step", fontsize=8)
    curve_ax.set_ylabel("loss / one GD step (dashed: controls)", fontsize=8)
    caption = (
        "In-context linear regression against gradient descent (von Oswald et al. 2022). Left: each model's final "
        "test loss divided by the loss of one step of gradient descent on the same contexts (its step size tuned on "
        "separate sequences), mean and [min, max] over seeds, per training setting; 1 (dotted) is the GD solution, "
        "which one trained linear self-attention layer can implement exactly, and stacked layers can beat. Right: "
        "the same ratio over training, one line per run, controls dashed. With repeats, the table's repeated loss "
        "shows the repeated sequences being memorised; compare the loss ratio with the controls' to see whether "
        f"that pulls the model away from GD. 'ratio <= {NEAR_GD:g} at step' is the first evaluation within "
        f"{NEAR_GD - 1:.0%} of GD."
    )
    return Section(key="regression-gd", title="In-context regression: the gap to one step of gradient descent",
                   caption=caption, figure=encode(fig, "Loss ratio to one GD step per setting and over training"),
                   tables=(Table.from_frame("Final GD comparison per model and setting (mean [min, max] over seeds)",
                                            pd.DataFrame(table)),))


__all__ = ["LOSS_RATIO", "NEAR_GD", "reached_gd_at", "regression_rows", "regression_section"]
