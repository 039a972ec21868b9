"""Figure 5: per-head induction and prefix-matching score maps, a control run beside a repeated one.

Olsson et al. 2022's induction heads attend from a token to the token after its previous occurrence; the
prefix-matching score measures that attention pattern on repeated random tokens. Hernandez et al. 2022 found
repeated data weakens exactly these heads. Scores come from each run's ``probes.json`` (``heads.<probe>``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repeatlab.report.analysis import Analysis
from repeatlab.report.load import RunRecord
from repeatlab.report.model import Section, Table, format_count, format_epochs, format_fraction
from repeatlab.report.plotting import encode, new_figure

PROBES = (("induction", "induction score"), ("prefix_matching", "prefix-matching score"))
MAX_ANNOTATED_HEADS = 96


def pair(an: Analysis) -> tuple[list[RunRecord], list[str]]:
    """The runs to compare: the largest size having a control and a repeated run with head scores (the repeated
    one being that size's worst at the reference fraction, or its most-repeated data-constrained run, when it has
    scores), else any single run with scores."""
    runs = an.data.runs

    def scored(run_id: str) -> bool:
        return run_id in runs and any(runs[run_id].head_scores(p) is not None for p, _ in PROBES)

    if an.data.is_single_run:
        return [r for r in runs.values() if scored(r.run_id)], []
    done = an.done
    if "run_id" not in done or "kind" not in done or "model" not in done:
        return [], ["the results lack run_id, kind or model"]
    peaks = an.peaks
    for size in reversed(an.sizes):
        controls = [r for r in an.controls[an.controls["model"] == size]["run_id"] if scored(r)]
        repeated = done[(done["model"] == size) & done["kind"].isin(["repeated", "data_constrained"])]
        preferred = list(peaks[peaks["model"] == size]["run_id"]) if not peaks.empty else []
        if "repeated_epochs" in repeated:
            preferred += list(repeated.sort_values("repeated_epochs", ascending=False)["run_id"])
        candidates = [r for r in preferred + list(repeated["run_id"]) if scored(r)]
        if controls and candidates:
            return [runs[controls[0]], runs[candidates[0]]], []
    any_scored = [runs[r] for r in done["run_id"] if scored(r)]
    note = "no model size has both a control and a repeated run with per-head scores in probes.json"
    return any_scored[:1], [note]


def heads_section(an: Analysis) -> Section:
    key, title = "head-maps", "Per-head induction and prefix-matching scores"
    records, notes = pair(an)
    if not records:
        return Section(key=key, title=title, missing=tuple(notes) or ("no run has per-head scores (probes.json heads.*)",))
    probes = [(p, label) for p, label in PROBES if any(r.head_scores(p) is not None for r in records)]
    notes += [f"no {label} in probes.json" for p, label in PROBES if (p, label) not in probes]
    fig = new_figure(3.4 * len(records) + 0.9, 2.7 * len(probes) + 0.2)
    axes = fig.subplots(len(probes), len(records), squeeze=False)
    # One colour scale for every map so control and repeated compare directly; at least 0..0.2 so that untrained
    # models (all scores near 0) do not have their noise stretched over the full range.
    shown = [s for r in records for p, _ in probes if (s := r.head_scores(p)) is not None]
    vmax = max(0.2, float(np.ceil(10 * max(float(s.max()) for s in shown)) / 10))
    image = None
    long_rows: dict[tuple[int, int], dict[str, object]] = {}
    for i, (probe, label) in enumerate(probes):
        for j, record in enumerate(records):
            ax = axes[i, j]
            scores = record.head_scores(probe)
            name = _describe(an, record)
            ax.set_title(f"{label}\n{name}", fontsize=8)
            if scores is None:
                ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            image = ax.imshow(scores, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
            n_layers, n_heads = scores.shape
            ax.set_xticks(range(n_heads))
            ax.set_yticks(range(n_layers))
            ax.tick_params(labelsize=7)
            ax.set_xlabel("head", fontsize=8)
            ax.set_ylabel("layer", fontsize=8)
            if scores.size <= MAX_ANNOTATED_HEADS:
                for (layer, head), value in np.ndenumerate(scores):
                    ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if value > 0.6 * vmax else "white")
            for (layer, head), value in np.ndenumerate(scores):
                long_rows.setdefault((layer, head), {"layer": layer, "head": head})[f"{probe} ({record.run_id})"] = float(value)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="score (attention mass on the target)")
    caption = (
        "Each square is one attention head (rows: layers, columns: heads). Brighter = a stronger induction "
        "(attends to the token after the previous occurrence of the current token) or prefix-matching head, "
        "scored on repeated random tokens; all maps share one colour scale. "
    )
    if len(records) == 2:
        caption += ("Left: the control run; right: a repeated run of the same size. Look for the bright heads of the "
                    "control dimming in the repeated run: repetition damages the induction circuitry.")
    frame = pd.DataFrame(list(long_rows.values()))
    return Section(key=key, title=title, caption=caption, figure=encode(fig, "Per-head score maps"),
                   tables=(Table.from_frame("Per-head scores", frame, {"layer": str, "head": str}),),
                   missing=tuple(notes))


def _describe(an: Analysis, record: RunRecord) -> str:
    results = an.data.results
    rows = results[results["run_id"] == record.run_id] if "run_id" in results else results.iloc[0:0]
    if rows.empty:
        return record.run_id
    row = rows.iloc[0]
    if row.get("kind") == "repeated":
        return f"{row.get('model')}: f={format_fraction(row.get('repeated_fraction'))}, E={format_epochs(row.get('repeated_epochs'))}"
    if row.get("kind") == "data_constrained":
        return f"{row.get('model')}: U={format_count(row.get('unique_tokens'))}, {format_epochs(row.get('repeated_epochs'))} epochs"
    return f"{row.get('model')}: {row.get('kind')}"
