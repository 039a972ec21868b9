"""Figure 3: learning curves of chosen runs, test loss and repeated-subset loss against tokens seen.

Hernandez et al. 2022 diagnose the peak of the degradation curve from these: damage to test loss is worst
where the repeated subset's loss heads to zero, i.e. where the model switches from generalising to memorising.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from repeatlab.report.analysis import Analysis, first_below
from repeatlab.report.load import RunRecord
from repeatlab.report.model import Section, Table, format_count, format_epochs, format_fraction
from repeatlab.report.plotting import encode, grid_shape, new_figure, plain_log_axis, style


def chosen_runs(an: Analysis) -> tuple[list[str], list[str]]:
    """Run ids to plot and notes: the user's choice, else each size's worst repeated run at the reference fraction,
    else (a data-constrained grid) each size's most-repeated run; at most ``max_curve_runs``, evenly over sizes."""
    runs = an.data.runs
    notes: list[str] = []
    if an.options.curve_runs:
        unknown = [r for r in an.options.curve_runs if r not in runs]
        if unknown:
            notes.append(f"no run directory for the requested run(s) {', '.join(unknown)}")
        return [r for r in an.options.curve_runs if r in runs], notes
    if an.data.is_single_run:
        return list(runs), notes
    peaks = an.peaks
    picked = [r for r in peaks["run_id"] if r in runs] if not peaks.empty else []
    constrained = an.data_constrained
    if not picked and not constrained.empty:
        repeated = constrained[constrained["kind"] == "data_constrained"]
        most = repeated.loc[repeated.groupby("model")["epochs"].idxmax()].sort_values("params")
        picked = [r for r in most["run_id"] if r in runs]
    if not picked:
        picked = [r for r in an.done.get("run_id", pd.Series(dtype=object)) if r in runs]
    limit = an.options.max_curve_runs
    if len(picked) > limit:
        picked = [picked[i] for i in np.linspace(0, len(picked) - 1, limit).round().astype(int)]
    return picked, notes


def curves_section(an: Analysis) -> Section:
    key, title = "learning-curves", "Learning curves: test loss and repeated-subset loss"
    picked, notes = chosen_runs(an)
    with_metrics = [r for r in picked if not an.data.runs[r].metrics.empty]
    notes += [f"run {r} has no metrics.jsonl records" for r in picked if r not in with_metrics]
    if not with_metrics:
        return Section(key=key, title=title, missing=tuple(notes or ["no run directory with metrics.jsonl"]))
    threshold = an.options.near_zero_loss
    rows_n, cols_n = grid_shape(len(with_metrics), max_cols=2)
    fig = new_figure(4.4 * cols_n, 3.1 * rows_n)
    axes = fig.subplots(rows_n, cols_n, squeeze=False)
    table_rows = []
    for ax, run_id in zip(axes.flat, with_metrics):
        record = an.data.runs[run_id]
        table_rows.append(_plot_run(ax, an, record, threshold))
    for ax in list(axes.flat)[len(with_metrics):]:
        ax.set_visible(False)
    caption = (
        "Test loss (solid) and loss on the repeated subset (dashed) during training, against tokens seen; grey "
        "dotted: the control run of the same size, where there is one. Look for the repeated-subset loss falling "
        f"far below test loss. The vertical line marks where it first drops below {threshold:g} nats: the subset "
        "is memorised, and Hernandez et al. 2022 find test loss is hurt most around the repeat count where this "
        "happens during training."
    )
    if not an.options.curve_runs and not an.data.is_single_run and not an.peaks.empty:
        caption += " Runs shown: the worst repeated run of each size at the reference repeated fraction."
    frame = pd.DataFrame(table_rows)
    formats = {"tokens_seen": format_count, "memorised_at_tokens": format_count, "repeated_fraction": format_fraction,
               "repeated_epochs": format_epochs}
    return Section(key=key, title=title, caption=caption, figure=encode(fig, "Learning curves of chosen runs"),
                   tables=(Table.from_frame("Final values and where the repeated subset was memorised", frame, formats),),
                   missing=tuple(notes))


def _plot_run(ax: Axes, an: Analysis, record: RunRecord, threshold: float) -> dict[str, object]:
    metrics = record.metrics
    row = _results_row(an, record.run_id)
    has_x = "tokens_seen" in metrics
    x = metrics["tokens_seen"] if has_x else metrics.get("step", pd.Series(range(len(metrics))))
    if "test_loss" in metrics:
        ax.plot(x, metrics["test_loss"], "-", color="tab:blue", lw=1.5, label="test loss")
    has_repeated = "repeated_loss" in metrics and metrics["repeated_loss"].notna().any()
    if has_repeated:
        ax.plot(x, metrics["repeated_loss"], "--", color="tab:red", lw=1.5, label="repeated-subset loss")
    control = _control_metrics(an, row.get("model"))
    if control is not None and "test_loss" in control and "tokens_seen" in control and has_x:
        ax.plot(control["tokens_seen"], control["test_loss"], ":", color="grey", lw=1.2, label="control test loss")
    memorised = first_below(metrics, "repeated_loss", threshold) if has_x else None
    if memorised is not None:
        ax.axvline(memorised, color="black", lw=0.9)
        ax.annotate(f"< {threshold:g} nats", xy=(memorised, 0.95), xycoords=("data", "axes fraction"), fontsize=7,
                    ha="left", va="top", xytext=(3, 0), textcoords="offset points")
    plain_log_axis(ax)
    ax.set_xlabel("tokens seen" if has_x else "step", fontsize=8)
    ax.set_ylabel("loss (nats/token)", fontsize=8)
    label = record.run_id
    if row.get("kind") == "repeated":
        label += f"  (f={format_fraction(row.get('repeated_fraction'))}, E={format_epochs(row.get('repeated_epochs'))})"
    ax.set_title(label, fontsize=8)
    style(ax)
    ax.legend(fontsize=7, frameon=False)
    last = metrics.iloc[-1]
    total = float(last["tokens_seen"]) if has_x else None
    return {
        "run_id": record.run_id, "model": row.get("model"), "repeated_fraction": row.get("repeated_fraction"),
        "repeated_epochs": row.get("repeated_epochs"), "tokens_seen": total,
        "final_test_loss": last.get("test_loss"), "final_repeated_loss": last.get("repeated_loss") if has_repeated else None,
        "memorised_at_tokens": memorised,
        "memorised_at_share": (memorised / total) if memorised is not None and total else None,
    }


def _results_row(an: Analysis, run_id: str) -> dict[str, object]:
    results = an.data.results
    rows = results[results["run_id"] == run_id] if "run_id" in results else results.iloc[0:0]
    return rows.iloc[0].to_dict() if not rows.empty else {}


def _control_metrics(an: Analysis, model: object) -> pd.DataFrame | None:
    if model is None or an.controls.empty or "run_id" not in an.controls:
        return None
    for run_id in an.controls[an.controls["model"] == model]["run_id"]:
        record = an.data.runs.get(run_id)
        if record is not None and not record.metrics.empty:
            return record.metrics
    return None
