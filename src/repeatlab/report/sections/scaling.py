"""Figure 6: the scaling fit of the control runs with its residuals, and the data-constrained law.

The control fit L(N) = E + (N_c / N)^alpha is what every effective model size in the report inverts, so its
quality bounds theirs. For data-constrained grids (Muennighoff et al. 2023), loss against epochs over the same
unique data is drawn with the prediction of the data-constrained law fitted to the sweep's own runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repeatlab.report.analysis import Analysis
from repeatlab.laws.effective import MIN_POWER_FIT_SIZES, ControlCurve
from repeatlab.report.model import Section, Table, format_count, format_epochs
from repeatlab.report.plotting import encode, grid_shape, new_figure, plain_log_axis, size_colors, style


def scaling_section(an: Analysis) -> Section:
    key, title = "control-scaling", "Scaling of the control runs"
    curve = an.curves.get("test")
    if not isinstance(curve, ControlCurve):
        return Section(key=key, title=title, missing=(f"no control curve: {curve}",))
    names = pd.DataFrame({"params": curve.params, "test_loss": curve.values})
    if "model" in an.controls:
        names.insert(0, "model", names["params"].map(an.controls.groupby("params")["model"].first()))
    notes: list[str] = []
    fig = new_figure(6.2, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot(names["params"], names["test_loss"], "o", color="tab:blue", label="control runs")
    params = names["params"].to_numpy(dtype=np.float64)
    fit_table: list[Table] = []
    if curve.fit is not None:
        law = curve.fit.law
        grid = np.geomspace(params.min() / 1.5, params.max() * 1.5, 200)
        top.plot(grid, law.loss(grid), "-", color="black", lw=1.2,
                 label=f"L(N) = {law.E:.3g} + ({law.n_c:.3g} / N)^{law.alpha:.3g}")
        predicted = law.loss(params)
        names["predicted"] = predicted
        names["residual_pct"] = 100 * (names["test_loss"] - predicted) / predicted
        bottom.axhline(0, color="black", lw=0.8)
        bottom.plot(params, names["residual_pct"], "o", color="tab:blue")
        fit = curve.fit
        fit_table.append(Table(title="Fitted constants", columns=("E", "N_c", "alpha", "R²", "runs", "local minima"),
                               rows=((f"{law.E:.4g}", f"{law.n_c:.4g}", f"{law.alpha:.4g}", f"{fit.r_squared:.4f}",
                                      str(fit.n_points), str(len(fit.minima))),)))
    else:
        notes.append(f"a power law needs control runs of at least {MIN_POWER_FIT_SIZES} sizes (found {len(params)}); "
                     f"effective sizes interpolate between the controls instead")
        bottom.text(0.5, 0.5, "no fit: too few sizes", ha="center", va="center", transform=bottom.transAxes, fontsize=8)
    top.set_xscale("log")
    plain_log_axis(top)
    top.set_ylabel("test loss (nats/token)")
    top.legend(fontsize=8, frameon=False)
    bottom.set_ylabel("residual %", fontsize=8)
    bottom.set_xlabel("parameters N (non-embedding)")
    style(top)
    style(bottom)
    caption = (
        "Test loss of the control runs (no repeated data) against parameters, with the fitted law "
        "L(N) = E + (N_c / N)^alpha and its residuals below. Every effective model size in this report inverts "
        "this curve, so look for small, patternless residuals: a bend in them means the law (or a run) is off."
        if curve.fit is not None else
        "Test loss of the control runs (no repeated data) against parameters. With four or more sizes the law "
        "L(N) = E + (N_c / N)^alpha is fitted here, with its residuals; look for loss falling steadily with size."
    )
    formats = {"params": format_count}
    return Section(key=key, title=title, caption=caption, figure=encode(fig, "Control scaling fit with residuals"),
                   tables=(Table.from_frame("Control runs (mean over seeds)", names, formats), *fit_table),
                   missing=tuple(notes))


def data_constrained_section(an: Analysis) -> Section | None:
    """``None`` when the sweep has no data-constrained runs (the section does not apply)."""
    rows = an.data_constrained
    if rows.empty:
        return None
    key, title = "data-constrained", "Data-constrained runs: loss against epochs"
    notes: list[str] = []
    result = an.data_constrained_fit
    fit = None if isinstance(result, str) else result
    if fit is None:
        notes.append(f"no law prediction: {result}")
    else:
        rows = rows.assign(predicted=fit.law.loss(rows["params"], rows["total_tokens"], rows["unique_tokens"]))
    lines = rows[rows["unique_tokens"].isin(rows.loc[rows["kind"] == "data_constrained", "unique_tokens"])]
    sizes = [s for s in an.sizes if s in set(lines["model"])]
    if not sizes:
        return Section(key=key, title=title, missing=("the data-constrained runs lack a model or unique_tokens",))
    uniques = sorted(lines["unique_tokens"].unique())
    colors = size_colors([format_count(u) for u in uniques])
    rows_n, cols_n = grid_shape(len(sizes), max_cols=2)
    fig = new_figure(4.4 * cols_n, 3.2 * rows_n)
    axes = fig.subplots(rows_n, cols_n, squeeze=False, sharey=True)
    for ax, size in zip(axes.flat, sizes):
        for unique in uniques:
            runs = lines[(lines["model"] == size) & (lines["unique_tokens"] == unique)].sort_values("epochs")
            if runs.empty:
                continue
            color = colors[format_count(unique)]
            ax.plot(runs["epochs"], runs["test_loss"], "o", color=color, label=f"U = {format_count(unique)}")
            fresh = rows[(rows["model"] == size) & (rows["kind"] == "control")
                         & rows["total_tokens"].isin(unique * runs["epochs"].round())].sort_values("total_tokens")
            if len(fresh) > 1:
                ax.plot(fresh["total_tokens"] / unique, fresh["test_loss"], "o--", mfc="white", color=color, lw=0.9,
                        ms=5)
            if fit is not None:
                epochs = np.geomspace(1.0, max(float(runs["epochs"].max()), 1.0) * 1.3, 100)
                ax.plot(epochs, fit.law.loss(float(runs["params"].mean()), unique * epochs, np.full(100, unique)), "-",
                        color=color, lw=1.2)
        ax.set_xscale("log")
        ax.set_title(an.size_label(size), fontsize=9)
        ax.set_xlabel("epochs over the unique data (D / U)", fontsize=8)
        ax.set_ylabel("test loss (nats/token)", fontsize=8)
        style(ax)
        ax.legend(fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(sizes):]:
        ax.set_visible(False)
    caption = (
        "Each panel is one model size; each colour is one amount of unique data U, trained for more and more epochs "
        "over it (one epoch is the control run of D = U tokens). Hollow markers on a dashed line: control runs that "
        "read as many tokens, all fresh. Solid lines: the data-constrained law of Muennighoff et al. 2023 fitted to "
        "all of these runs. Look for the gap to fresh data staying small for the first few epochs (repeating is "
        "almost as good as new data) and opening as the curve flattens: repeated tokens lose their value, with the "
        "decay constant R_D*."
    )
    columns = ["model", "params", "kind", "unique_tokens", "total_tokens", "epochs", "test_loss"]
    columns += ["predicted"] if fit else []
    ordered = rows.sort_values(["params", "unique_tokens", "epochs"])
    tables = [Table.from_frame("Runs (controls are the one-epoch points)", ordered[columns],
                               {"params": format_count, "unique_tokens": format_count, "total_tokens": format_count,
                                "epochs": format_epochs})]
    if fit is not None:
        law = fit.law
        tables.append(Table(title="Fitted law", columns=("R_D*", "R_N*", "E", "A", "B", "alpha", "beta", "R²"),
                            rows=(tuple(f"{v:.4g}" for v in (law.r_d_star, law.r_n_star, law.base.E, law.base.A,
                                                            law.base.B, law.base.alpha, law.base.beta, fit.r_squared)),)))
    return Section(key=key, title=title, caption=caption, figure=encode(fig, "Loss against epochs with the law"),
                   tables=tuple(tables), missing=tuple(notes))
