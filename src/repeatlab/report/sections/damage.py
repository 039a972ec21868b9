"""Figure 4: effective model size against parameters for test loss, copying loss and prefix-matching score.

Hernandez et al. 2022 (their Figures 1 and 6) show repetition hurts copying and induction-style prefix matching
far more than it hurts test loss: a model can keep most of its test-loss-effective size while its copying
ability shrinks to that of a much smaller model. Each metric's effective size inverts the controls' own curve
for that metric (``repeatlab.report.effective``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repeatlab.report.analysis import MIN_COPYING_GAIN, Analysis
from repeatlab.report.effective import COPYING, METRICS
from repeatlab.report.model import Section, Table, format_count, format_epochs, format_fraction, format_multiplier
from repeatlab.report.plotting import encode, new_figure, style

MARKERS = {"test": ("o", "tab:blue"), "copying": ("s", "tab:red"), "prefix_matching": ("^", "tab:purple")}


def damage_point(an: Analysis) -> pd.DataFrame:
    """The repeated runs Figure 4 shows: at the reference fraction, the repeated-epochs value that the most sizes
    share; among those, the one with the worst mean test-loss multiplier."""
    table = an.at_reference_fraction()
    if table.empty or "mult_test" not in table:
        return pd.DataFrame()
    coverage = table.groupby("repeated_epochs").agg(n=("model", "nunique"), mult=("mult_test", "mean"))
    coverage = coverage[coverage["n"] == coverage["n"].max()].sort_values("mult")
    epochs = coverage.index[0]
    return table[table["repeated_epochs"] == epochs]


def damage_section(an: Analysis) -> Section | None:
    if an.is_data_constrained_grid:
        return None
    key, title = "effective-size-by-metric", "Effective model size for test loss, copying and prefix matching"
    rows = damage_point(an)
    if rows.empty:
        reason = an.curves.get("test")
        why = reason if isinstance(reason, str) else "there are no finished repeated runs at the reference fraction"
        return Section(key=key, title=title, missing=(f"no effective model size: {why}",))
    shown = [m for m in METRICS if f"mult_{m.key}" in rows and rows[f"mult_{m.key}"].notna().any()]
    notes = [f"{m.label} not shown: {_reason(an, m.key)}" for m in METRICS if m not in shown]
    gain = an.controls_copying_gain
    if COPYING in shown and gain is not None and gain < MIN_COPYING_GAIN:
        notes.append(f"copying loss: the controls predict later copies only {gain:.3f} nats better than the first, "
                     "so they do not copy and its effective size measures plain loss on the eval's paragraphs")
    f, e = an.reference_fraction, float(rows["repeated_epochs"].iloc[0])
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    params = rows["params"].to_numpy(dtype=np.float64)
    for metric in shown:
        marker, color = MARKERS.get(metric.key, ("o", "black"))
        order = np.argsort(params)
        ax.plot(params[order], rows[f"n_eff_{metric.key}"].to_numpy()[order], marker=marker, color=color, lw=1.4,
                label=metric.label)
    span = np.array([params.min() / 2, params.max() * 2])
    ax.plot(span, span, "--", color="grey", lw=1.0, label="no damage (N_eff = N)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N (non-embedding)")
    ax.set_ylabel("effective parameters N_eff")
    ax.set_title(f"f = {format_fraction(f)}, E = {format_epochs(e)}", fontsize=9)
    style(ax)
    ax.legend(fontsize=8, frameon=False)
    caption = (
        f"For the runs with {format_fraction(f)} repeated data seen {format_epochs(e)} times, the size of a control "
        "model that matches each metric, against the real size. Points on the dashed diagonal are undamaged. Look "
        "for the copying and prefix-matching points falling further below the diagonal than test loss: "
        "repetition takes a disproportionate toll on the in-context copying machinery (induction heads), as "
        "Hernandez et al. 2022 found. Prefix matching uses 1 − score, which falls with N like a loss."
    )
    columns = ["model", "params"] + [c for m in shown for c in (f"n_eff_{m.key}", f"mult_{m.key}")]
    frame = rows[columns].rename(columns={f"mult_{m.key}": f"N_eff/N ({m.label})" for m in shown}
                                 | {f"n_eff_{m.key}": f"N_eff ({m.label})" for m in shown})
    formats = {c: format_multiplier if c.startswith("N_eff/N") else format_count for c in frame.columns if c != "model"}
    return Section(key=key, title=title, caption=caption, figure=encode(fig, "Effective parameters by metric"),
                   tables=(Table.from_frame(f"Effective sizes at f = {format_fraction(f)}, E = {format_epochs(e)}", frame, formats),),
                   missing=tuple(notes))


def _reason(an: Analysis, key: str) -> str:
    curve = an.curves.get(key)
    return curve if isinstance(curve, str) else "the repeated runs have no value for it"
