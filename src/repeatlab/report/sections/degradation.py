"""Figures 1 and 2: the degradation curve at a fixed repeated fraction, and the effective-size heatmap.

Figure 1 is Hernandez et al. 2022's headline plot: test loss against repeated epochs, one line per model size,
against each size's control (no-repeat) level; the hump and its peak are the "poor performance region".
Figure 2 shows the effective-size multiplier over every (repeated fraction, repeated epochs) cell, per size,
with the published poor-performance band for that size overlaid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm

from repeatlab.laws.region import HERNANDEZ_2022
from repeatlab.report.analysis import Analysis
from repeatlab.report.model import Section, Table, format_count, format_epochs, format_fraction, format_multiplier
from repeatlab.report.plotting import category_position, encode, grid_shape, new_figure, size_colors, style

NEEDED = ("kind", "model", "params", "repeated_fraction", "repeated_epochs", "test_loss")


def degradation_section(an: Analysis) -> Section | None:
    if an.is_data_constrained_grid:
        return None
    key, title = "degradation", "Test loss against repeated epochs"
    missing = an.data.has(an.done, *NEEDED)
    if missing:
        return Section(key=key, title=title, missing=(f"the finished runs lack the column(s) {', '.join(missing)}",))
    table = an.at_reference_fraction()
    if table.empty:
        return Section(key=key, title=title, missing=("there are no finished repeated runs (kind = repeated)",))
    notes = []
    control = an.control_by_size
    if "test_loss" not in control:
        notes.append("no finished control runs: the control level of each size is not drawn")
    f = an.reference_fraction
    sizes = [s for s in an.sizes if s in set(table["model"])]
    colors = size_colors(an.sizes)
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    for size in sizes:
        rows = table[table["model"] == size].sort_values("repeated_epochs")
        ax.plot(rows["repeated_epochs"], rows["test_loss"], "o-", color=colors[size], label=an.size_label(size), lw=1.6)
        peak = rows.loc[rows["test_loss"].idxmax()]
        ax.plot([peak["repeated_epochs"]], [peak["test_loss"]], marker="*", ms=14, color=colors[size], mec="black", mew=0.6)
        if size in control.index and "test_loss" in control:
            ax.axhline(control.loc[size, "test_loss"], color=colors[size], ls="--", lw=1.0, alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("repeated epochs E (times each repeated token is seen)")
    ax.set_ylabel("test loss (nats/token)")
    ax.set_title(f"repeated fraction f = {format_fraction(f)}; dashed: control (f = 0) of the same size", fontsize=9)
    style(ax)
    ax.legend(fontsize=8, frameon=False)
    caption = (
        f"Each line is one model size trained with {format_fraction(f)} of its tokens drawn from a repeated subset, "
        "against how many times that subset was repeated. The dashed line of the same colour is the size's control "
        "run, trained on unique data only. Look for the hump: loss rises above the control as the subset is repeated "
        "more, peaks (star) and falls back once the subset is small enough to be memorised cheaply. Hernandez et al. "
        "2022 find the peak moves to fewer epochs as models grow."
    )
    columns = ["model", "params", "repeated_epochs", "test_loss", "control_loss", "mult_test", "n_seeds", "run_id"]
    frame = table[[c for c in columns if c in table]].copy()
    if "control_loss" in frame:
        frame.insert(frame.columns.get_loc("control_loss") + 1, "loss_increase", frame["test_loss"] - frame["control_loss"])
    frame = frame.rename(columns={"mult_test": "N_eff / N"})
    formats = {"params": format_count, "repeated_epochs": format_epochs, "N_eff / N": format_multiplier}
    return Section(
        key=key, title=title, caption=caption, figure=encode(fig, f"Test loss against repeated epochs at f = {f:g}"),
        tables=(Table.from_frame(f"Runs at repeated fraction {format_fraction(f)} (mean over seeds)", frame, formats),),
        missing=tuple(notes),
    )


def heatmap_section(an: Analysis) -> Section | None:
    if an.is_data_constrained_grid:
        return None
    key, title = "effective-size-heatmap", "Effective model size over repeated fraction and epochs"
    table = an.repeated
    if table.empty:
        return Section(key=key, title=title, missing=("there are no finished repeated runs with repeated_fraction and repeated_epochs",))
    if "mult_test" not in table or table["mult_test"].isna().all():
        reason = an.curves.get("test")
        return Section(key=key, title=title, missing=(f"no effective model size: {reason}",))
    sizes = [s for s in an.sizes if s in set(table["model"])]
    rows_n, cols_n = grid_shape(len(sizes))
    fig = new_figure(3.6 * cols_n + 0.8, 2.9 * rows_n + 0.3)
    finite = table["mult_test"][np.isfinite(table["mult_test"]) & (table["mult_test"] > 0)]
    low = float(min(finite.min(), 0.5)) if len(finite) else 0.5
    norm = LogNorm(vmin=low, vmax=max(1.0, float(finite.max()) if len(finite) else 1.0))
    band_rows = []
    axes = fig.subplots(rows_n, cols_n, squeeze=False)
    image = None
    for ax, size in zip(axes.flat, sizes):
        rows = table[table["model"] == size]
        grid = rows.pivot_table(index="repeated_fraction", columns="repeated_epochs", values="mult_test", aggfunc="mean")
        values = grid.to_numpy(dtype=np.float64)
        image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", norm=norm, aspect="auto", origin="lower")
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, format_multiplier(value), ha="center", va="center", fontsize=7)
        epochs = list(grid.columns.astype(float))
        ax.set_xticks(range(len(epochs)), [format_epochs(e) for e in epochs], fontsize=7)
        ax.set_yticks(range(len(grid.index)), [format_fraction(f) for f in grid.index], fontsize=7)
        ax.set_xlabel("repeated epochs E", fontsize=8)
        ax.set_ylabel("repeated fraction f", fontsize=8)
        ax.set_title(an.size_label(size), fontsize=9)
        params = an.size_params(size)
        first, last = HERNANDEZ_2022.band(params)
        band = (float(first), float(last))
        band_rows.append({"model": size, "params": params, "published_from": band[0], "published_to": band[1],
                          **_observed_band(an, params)})
        _draw_band(ax, band, epochs)
    for ax in list(axes.flat)[len(sizes):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="effective size multiplier N_eff / N")
    methods = sorted(set(table["method_test"]) - {""})
    caption = (
        "Each cell is a repeated run's effective model size divided by its real size: the size of a control model "
        "with the same test loss (1 = no damage, ×0.5 = as good as a control half its size). Look for the red "
        "region: the repeated epochs where damage is worst, and how it deepens with the repeated fraction. The "
        "hatched span is the poor-performance band Hernandez et al. 2022 fitted for a model of this size "
        "(E from 4.2e6 N^-0.56 to 5.1e7 N^-0.50); an arrow at the bottom means it lies beyond the epochs swept. "
        f"Effective sizes come from: {', '.join(methods)}."
    )
    frame = table[["model", "params", "repeated_fraction", "repeated_epochs", "test_loss", "n_eff_test", "mult_test"]]
    formats = {"params": format_count, "n_eff_test": format_count, "mult_test": format_multiplier,
               "repeated_fraction": format_fraction, "repeated_epochs": format_epochs}
    bands = pd.DataFrame(band_rows)
    return Section(
        key=key, title=title, caption=caption, figure=encode(fig, "Heatmaps of the effective size multiplier per model size"),
        tables=(
            Table.from_frame("Effective size of every repeated grid point", frame.rename(columns={"mult_test": "N_eff / N"}),
                             {**formats, "N_eff / N": format_multiplier}),
            Table.from_frame(
                "Poor-performance band per size, in repeated epochs: published (Hernandez et al. 2022) and this "
                "sweep's own (where test loss is at least half its worst degradation, at the reference fraction; "
                "≤/≥: the band runs off the epochs swept)", bands,
                {"params": format_count, "published_from": format_epochs, "published_to": format_epochs}),
        ),
    )


def _draw_band(ax: Axes, band: tuple[float, float], epochs: list[float]) -> None:
    """Hatch the band's span on the categorical epochs axis, or say in which direction it lies off the axis."""
    lo, hi = (category_position(v, epochs) for v in band)
    left, right = -0.5, len(epochs) - 0.5
    label = f"band: E {format_epochs(band[0])}–{format_epochs(band[1])}"
    if lo > right:
        ax.text(0.98, 0.02, f"{label} →", transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
    elif hi < left:
        ax.text(0.02, 0.02, f"← {label}", transform=ax.transAxes, ha="left", va="bottom", fontsize=7)
    else:
        ax.axvspan(max(lo, left), min(hi, right), facecolor="none", edgecolor="black", hatch="//", lw=0.8, alpha=0.6)


def _observed_band(an: Analysis, params: float) -> dict[str, str]:
    region = an.poor_region
    if isinstance(region, str):
        return {"sweep_from": "–", "sweep_to": "–"}
    band = next((b for b in region.bands if np.isclose(b.n_params, params)), None)
    if band is None:
        return {"sweep_from": "unharmed" if any(np.isclose(u, params) for u in region.unharmed_sizes) else "–",
                "sweep_to": "–"}
    return {"sweep_from": ("≤" if band.left_censored else "") + format_epochs(band.left_epochs),
            "sweep_to": ("≥" if band.right_censored else "") + format_epochs(band.right_epochs)}
