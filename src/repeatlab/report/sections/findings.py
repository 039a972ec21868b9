"""Figure 7: findings, as sentences computed from the sweep's numbers (never fixed prose).

Each function returns zero or more sentences; one with nothing to say returns none, so a partial sweep gives
fewer findings rather than wrong ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from repeatlab.laws.region import HERNANDEZ_2022
from repeatlab.report.analysis import MIN_COPYING_GAIN, Analysis, first_below
from repeatlab.report.sections.dynamics import ICL_ACCURACY
from repeatlab.laws.effective import ControlCurve, outside_controls
from repeatlab.report.model import Section, format_count, format_epochs, format_fraction, format_multiplier, join_names
from repeatlab.report.sections.curves import chosen_runs
from repeatlab.report.sections.damage import damage_point
from repeatlab.report.sections.heads import PROBES

Finding = Callable[[Analysis], list[str]]


def worst_repeat_count(an: Analysis) -> list[str]:
    out = []
    for row in an.peaks.to_dict("records"):
        text = (f"For {an.size_label(row['model'])}, test loss is worst at E={format_epochs(row['repeated_epochs'])} "
                f"with f={format_fraction(row['repeated_fraction'])} ({row['test_loss']:.3f}")
        control = row.get("control_loss")
        text += f" vs control {control:.3f})" if _finite(control) else "; no control run)"
        if _finite(row.get("mult_test")):
            text += f": {_effective_size(an, row)}"
        out.append(text + ".")
    return out


def _effective_size(an: Analysis, row: Mapping[str, Any]) -> str:
    """The effective size in words a reader can use: a multiplier only where it interpolates between control
    sizes; outside them the law is extrapolated (with few controls, by orders of magnitude), so say so in words."""
    by_size = an.control_by_size
    if not by_size.empty and "params" in by_size:
        where = outside_controls(row["mult_test"] * row["params"], by_size["params"].to_numpy())
        if where == "below":
            return f"worse than every control, the smallest ({by_size['params'].idxmin()}) included"
        if where == "above":
            return f"better than every control, the largest ({by_size['params'].idxmax()}) included"
    return f"effective size {format_multiplier(row['mult_test'])}"


def peak_shift(an: Analysis) -> list[str]:
    peaks = an.peaks
    if len(peaks) < 2:
        return []
    first, last = peaks.iloc[0], peaks.iloc[-1]
    if first["repeated_epochs"] == last["repeated_epochs"]:
        if peaks["repeated_epochs"].nunique() == 1:
            return [f"The worst repeat count is E={format_epochs(first['repeated_epochs'])} for all {len(peaks)} sizes."]
        return []
    direction = "fewer" if last["repeated_epochs"] < first["repeated_epochs"] else "more"
    return [(f"The worst repeat count moves from E={format_epochs(first['repeated_epochs'])} for {first['model']} to "
            f"E={format_epochs(last['repeated_epochs'])} for {last['model']}: larger models are hurt most by {direction} "
            "repeats.")]


def worst_cell(an: Analysis) -> list[str]:
    table = an.repeated
    if table.empty or "mult_test" not in table or not np.isfinite(table["mult_test"]).any():
        return []
    row = table.loc[table["mult_test"].idxmin()]
    return [(f"The largest damage in the grid is for {row['model']} at f={format_fraction(row['repeated_fraction'])}, "
             f"E={format_epochs(row['repeated_epochs'])}: {_effective_size(an, row.to_dict())}.")]


def band_agreement(an: Analysis) -> list[str]:
    """Where each size's worst repeat count falls against the published band, one sentence per relation."""
    groups: dict[str, list[str]] = {}
    for row in an.peaks.to_dict("records"):
        lo, hi = (float(v) for v in HERNANDEZ_2022.band(row["params"]))
        e = row["repeated_epochs"]
        where = "inside" if lo <= e <= hi else ("below" if e < lo else "above")
        groups.setdefault(where, []).append(
            f"{row['model']}: E={format_epochs(e)} vs {format_epochs(lo)}–{format_epochs(hi)}")
    return [f"The worst repeat count lies {where} the poor-performance band Hernandez et al. 2022 published for the "
            f"size in {len(items)} of {len(an.peaks)} sizes ({'; '.join(items)})." for where, items in groups.items()]


def band_edges(an: Analysis) -> list[str]:
    region = an.poor_region
    if isinstance(region, str):
        return []
    out = []
    for name, edge, published in (("left", region.left, HERNANDEZ_2022.left), ("right", region.right, HERNANDEZ_2022.right)):
        if edge is not None:
            out.append(f"Across sizes, the {name} edge of this sweep's poor-performance band scales as "
                       f"E ∝ N^{edge.alpha:.2f} (Hernandez et al. 2022: N^{published.alpha:.2f}).")
    if region.unharmed_sizes:
        names = [m for m in an.sizes if any(np.isclose(an.size_params(m), u) for u in region.unharmed_sizes)]
        out.append(f"No repeated run at f={format_fraction(an.reference_fraction)} was worse than its control for "
                   f"{join_names(names)}.")
    return out


def copying_damage(an: Analysis) -> list[str]:
    rows = damage_point(an)
    if rows.empty or "mult_copying" not in rows:
        return []
    gain = an.controls_copying_gain
    if gain is not None and gain < MIN_COPYING_GAIN:
        return [(f"The controls do not copy: they predict later copies of a paragraph only {gain:.3f} nats better "
                 "than its first, so the copying eval measures plain loss on its paragraphs here and its effective "
                 "size says nothing about copying.")]
    rows = rows[np.isfinite(rows["mult_copying"]) & np.isfinite(rows["mult_test"])]
    if rows.empty:
        return []
    row = rows.loc[rows["params"].idxmax()]
    ratio = row["mult_test"] / row["mult_copying"] if row["mult_copying"] > 0 else math.inf
    worse = rows["mult_copying"] < rows["mult_test"]
    text = (f"At f={format_fraction(row['repeated_fraction'])}, E={format_epochs(row['repeated_epochs'])}, {row['model']} "
            f"copies like a control {format_multiplier(row['mult_copying'])} its size, against "
            f"{format_multiplier(row['mult_test'])} for test loss")
    text += f" ({ratio:.2g}× more damage to copying)." if ratio > 1 else " (copying is not hurt more than test loss)."
    return [text, f"Copying is damaged more than test loss in {int(worse.sum())} of {len(rows)} sizes."]


def icl_damage(an: Analysis) -> list[str]:
    """Where repetition cost the most in-context accuracy on the classification task, beside its test-loss cost."""
    done, f, tokens = an.done, an.reference_fraction, an.control_tokens
    if f is None or tokens is None or done.empty:
        return []
    final = {run_id: record.metrics[ICL_ACCURACY].dropna() for run_id, record in an.data.runs.items()
             if ICL_ACCURACY in record.metrics}
    logged = [run_id for run_id, values in final.items() if len(values)]
    rows = done[done["run_id"].isin(logged) & np.isclose(done["total_tokens"], tokens)]
    if rows.empty:
        return []
    rows = rows.assign(icl=[float(final[r].iloc[-1]) for r in rows["run_id"]])
    out = []
    for size in an.sizes:
        controls = rows[(rows["model"] == size) & (rows["kind"] == "control")]
        repeated = rows[(rows["model"] == size) & (rows["kind"] == "repeated")
                        & np.isclose(rows["repeated_fraction"], f)]
        if controls.empty or repeated.empty:
            continue
        by_epochs = repeated.groupby("repeated_epochs")[["icl", "test_loss"]].mean()
        epochs = by_epochs["icl"].idxmin()
        icl, loss = by_epochs.loc[epochs, "icl"], by_epochs.loc[epochs, "test_loss"]
        out.append(f"For {an.size_label(size)}, in-context accuracy is lowest at E={format_epochs(epochs)} with "
                   f"f={format_fraction(f)}: {icl:.2f} against {controls['icl'].mean():.2f} for the control (test loss "
                   f"{loss:.3f} against {controls['test_loss'].mean():.3f}; means over seeds).")
    return out


def memorisation_point(an: Analysis) -> list[str]:
    run_ids, _ = chosen_runs(an)
    out = []
    for run_id in run_ids:
        metrics = an.data.runs[run_id].metrics
        tokens = first_below(metrics, "repeated_loss", an.options.near_zero_loss)
        if tokens is None or "tokens_seen" not in metrics:
            continue
        share = tokens / float(metrics["tokens_seen"].max())
        out.append(f"In {run_id}, the repeated-subset loss fell below {an.options.near_zero_loss:g} nats after "
                   f"{format_count(tokens)} tokens ({100 * share:.0f}% of training).")
    return out


def control_fit(an: Analysis) -> list[str]:
    curve = an.curves.get("test")
    if not isinstance(curve, ControlCurve) or curve.fit is None:
        return []
    law = curve.fit.law
    return [(f"The controls follow L(N) = {law.E:.3g} + ({format_count(law.n_c)} / N)^{law.alpha:.3g} "
            f"(R² = {curve.fit.r_squared:.3f} over {curve.fit.n_points} sizes).")]


def data_constrained(an: Analysis) -> list[str]:
    """The cost of repeating: the most-repeated run of the largest size against one epoch and against fresh data."""
    rows = an.data_constrained
    out = []
    repeated = rows[rows["kind"] == "data_constrained"] if not rows.empty else rows
    if not repeated.empty:
        largest = repeated[repeated["params"] == repeated["params"].max()]
        run = largest.loc[largest["epochs"].idxmax()]
        same = rows[rows["params"] == run["params"]]
        one_epoch = same[(same["kind"] == "control") & np.isclose(same["total_tokens"], run["unique_tokens"])]
        fresh = same[(same["kind"] == "control") & np.isclose(same["total_tokens"], run["total_tokens"])]
        text = (f"{run['model']} trained for {format_epochs(run['epochs'])} epochs over {format_count(run['unique_tokens'])} "
                f"unique tokens reaches test loss {run['test_loss']:.3f}")
        parts = []
        if not fresh.empty:
            loss = fresh["test_loss"].mean()
            parts.append(f"{loss:.3f} with {format_count(run['total_tokens'])} fresh tokens "
                         f"({100 * (run['test_loss'] - loss) / loss:+.1f}%)")
        if not one_epoch.empty:
            parts.append(f"{one_epoch['test_loss'].mean():.3f} after one epoch")
        out.append(text + (f", against {' and '.join(parts)}." if parts else "."))
    fit = an.data_constrained_fit
    if not isinstance(fit, str):
        out.append(f"The fitted data-constrained law has R_D* = {fit.law.r_d_star:.3g}: after that many repeated epochs, "
                   f"repeated tokens have lost 63% of the value of fresh ones (R² = {fit.r_squared:.3f}).")
    return out


def single_run(an: Analysis) -> list[str]:
    if not an.data.is_single_run:
        return []
    out = []
    for record in an.data.runs.values():
        final = record.metrics.iloc[-1] if not record.metrics.empty else None
        if final is not None and _finite(final.get("test_loss")):
            text = f"{record.run_id} ends at test loss {final['test_loss']:.3f}"
            if _finite(final.get("repeated_loss")):
                text += f" and repeated-subset loss {final['repeated_loss']:.3f}"
            out.append(text + ".")
        for probe, label in PROBES:
            scores = record.head_scores(probe)
            if scores is not None:
                layer, head = np.unravel_index(int(np.argmax(scores)), scores.shape)
                out.append(f"Its strongest {label} is {scores[layer, head]:.2f}, at layer {layer} head {head}.")
    return out


FINDINGS: tuple[Finding, ...] = (
    single_run, worst_repeat_count, peak_shift, worst_cell, band_agreement, band_edges, copying_damage, icl_damage,
    memorisation_point, control_fit, data_constrained,
)


def findings_section(an: Analysis) -> Section:
    items = [sentence for finding in FINDINGS for sentence in finding(an)]
    missing = () if items else ("no finished runs to draw findings from",)
    sizes = join_names(an.sizes)
    caption = "Computed from this sweep's numbers" + (f" (sizes: {sizes})." if sizes else ".")
    return Section(key="findings", title="Findings", caption=caption, items=tuple(items), missing=missing)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(float(value))
