"""Training dynamics and transfer: probe curves over training, out- vs in-distribution damage, fine-tuning.

Three section builders in the report's form (``Analysis -> Section | None``; ``None`` when a sweep has none
of the data):

- ``probe_curves_section``: induction (or prefix-matching, ICL) scores logged during training
  (``train.probe_metrics``), control beside repeated runs of each size, the phase change marked. Olsson et
  al. (2022) see induction heads form in a sharp phase change early in training; repeated data can delay,
  stop or undo it.
- ``ood_section``: how much each repeated run's loss rose over its size's control, in distribution (the test
  split) against out of distribution (``train.extra_evals``, e.g. Python code for a text model). Hernandez et
  al. (2022) found the out-of-distribution loss hurt more.
- ``finetune_section``: fine-tuned runs against the same budget trained from scratch, as effective-parameter
  multipliers (``repeatlab.dynamics.run_finetune_stage`` writes ``finetune.json``).

Everything is read from run records (``metrics.jsonl``, ``summary.json``, ``config.json``, ``finetune.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps

from repeatlab.layout import FINETUNE_FILE
from repeatlab.records import read_record
from repeatlab.report.analysis import Analysis
from repeatlab.report.load import RunRecord
from repeatlab.report.model import Section, Table, format_count, format_epochs, format_fraction, format_multiplier
from repeatlab.report.plotting import encode, grid_shape, new_figure, style

ICL_ACCURACY = "classification.icl_accuracy"
"""In-context accuracy on the in-context classification task (``train.probe_metrics = ["classification"]``)."""
IWL_ACCURACY = "classification.iwl_accuracy"
"""In-weights accuracy on the task's ``iwl`` set (the query's class absent from the context)."""
IWL_FIRST_ACCURACY = "classification.iwl_first_accuracy"
"""In-weights accuracy at each class's first occurrence in test sequences (in distribution)."""
CURVE_METRICS = (ICL_ACCURACY, "induction.max", "prefix_matching.max", "previous_token.max", "icl.score")
"""Probe columns of ``metrics.jsonl`` the curves section draws, the first one present being the main one (ICL
accuracy exists only on the in-context classification task, where it is the measure of in-context learning)."""
MIN_RISE = 0.1
"""A curve whose largest value exceeds its first by less than this shows no phase change."""
MAX_CURVE_SIZES = 4
_NON_EVAL_LOSSES = ("train_loss", "test_loss", "repeated_loss")


def phase_change(x: Sequence[float], y: Sequence[float], *, min_rise: float = MIN_RISE) -> float | None:
    """Where a score rises fastest: the ``x`` ending the largest step-to-step rise, or ``None`` when it never
    rises by ``min_rise`` over its first value (no phase change within the logged steps)."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if len(ys) < 2 or ys.max() - ys[0] < min_rise:
        return None
    return float(xs[int(np.argmax(np.diff(ys))) + 1])


def _row(an: Analysis, run_id: str) -> dict[str, Any]:
    results = an.data.results
    rows = results[results["run_id"] == run_id] if "run_id" in results else results.iloc[0:0]
    return rows.iloc[0].to_dict() if not rows.empty else {}


def _main_metric(records: Sequence[RunRecord]) -> str | None:
    for metric in CURVE_METRICS:
        if any(metric in r.metrics and r.metrics[metric].notna().any() for r in records):
            return metric
    return None


def probe_curves_section(an: Analysis) -> Section | None:
    """Probe scores against tokens seen, one panel per size, control (black) beside repeated runs."""
    records = [r for r in an.data.runs.values() if not r.metrics.empty and "tokens_seen" in r.metrics]
    metric = _main_metric(records)
    if metric is None:
        return None
    records = [r for r in records if metric in r.metrics and r.metrics[metric].notna().any()]
    by_size: dict[str, list[RunRecord]] = {}
    for record in records:
        by_size.setdefault(str(_row(an, record.run_id).get("model") or "run"), []).append(record)
    order = [s for s in an.sizes if s in by_size] + sorted(s for s in by_size if s not in an.sizes)
    notes = [f"{len(order) - MAX_CURVE_SIZES} more size(s) not drawn"] if len(order) > MAX_CURVE_SIZES else []
    order = order[-MAX_CURVE_SIZES:]
    rows_n, cols_n = grid_shape(len(order), max_cols=2)
    fig = new_figure(4.4 * cols_n, 3.1 * rows_n)
    axes = fig.subplots(rows_n, cols_n, squeeze=False)
    cmap = colormaps["plasma"]
    table: list[dict[str, Any]] = []
    for ax, size in zip(axes.flat, order):
        group = sorted(by_size[size], key=lambda r: float(_row(an, r.run_id).get("repeated_epochs") or 0.0))
        epochs = [float(_row(an, r.run_id).get("repeated_epochs") or 1.0) for r in group]
        top = max(np.log(max(epochs)), 1e-9)
        for record, e in zip(group, epochs):
            row = _row(an, record.run_id)
            kind = row.get("kind", "control")
            frame = record.metrics[record.metrics["tokens_seen"] > 0]
            x, y = frame["tokens_seen"].to_numpy(float), frame[metric].to_numpy(float)
            colour = "black" if kind == "control" else cmap(0.15 + 0.7 * np.log(max(e, 1.0)) / top)
            label = "control" if kind == "control" else _repetition(row.get("repeated_fraction"), e)
            ax.plot(x, y, "-", color=colour, lw=1.5 if kind == "control" else 1.1, label=label)
            change = phase_change(x, y)
            if change is not None:
                ax.axvline(change, color=colour, lw=0.8, ls=":")
            first = record.metrics[metric].dropna()
            table.append({"run_id": record.run_id, "model": size, "kind": kind,
                          "repeated_fraction": row.get("repeated_fraction"),
                          "repeated_epochs": row.get("repeated_epochs"),
                          "first": float(first.iloc[0]), "final": float(first.iloc[-1]), "peak": float(first.max()),
                          "phase_change_tokens": change})
        ax.set_xscale("log")
        ax.set_xlabel("tokens seen", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.set_title(an.size_label(size) if size in an.sizes else size, fontsize=8)
        style(ax)
        ax.legend(fontsize=6, frameon=False)
    for ax in list(axes.flat)[len(order):]:
        ax.set_visible(False)
    caption = (
        f"{metric} logged at every evaluation during training (train.probe_metrics), against tokens seen; black: "
        "the size's control run, colours: repeated runs from few (purple) to many (yellow) repeated epochs. Dotted "
        f"lines mark each curve's phase change (its steepest rise, when it rises by at least {MIN_RISE:g}). Olsson et "
        "al. 2022 find induction heads form in such a phase change early in training; look for repeated runs whose "
        "rise comes later, stays lower or falls back."
    )
    formats = {"repeated_fraction": format_fraction, "repeated_epochs": format_epochs,
               "phase_change_tokens": format_count}
    return Section(key="probe-curves", title="Probe scores during training: the induction-head phase change",
                   caption=caption, figure=encode(fig, f"{metric} against tokens seen, per model size"),
                   tables=(Table.from_frame("First, final and peak scores and the phase change", pd.DataFrame(table),
                                            formats),),
                   missing=tuple(notes))


def _extra_names(record: RunRecord) -> list[str]:
    summary = record.summary or {}
    return sorted(k.removesuffix("_loss") for k, v in summary.items()
                  if k.endswith("_loss") and k not in _NON_EVAL_LOSSES and isinstance(v, (int, float)))


def ood_table(an: Analysis) -> pd.DataFrame:
    """One row per repeated run and extra held-out set: relative loss increase over the size's control,
    in distribution (test loss) and out of distribution (the extra set)."""
    done = an.done
    if done.empty or "kind" not in done or "model" not in done or an.controls.empty:
        return pd.DataFrame()
    runs, rows = an.data.runs, []
    for _, row in done[done["kind"].isin(["repeated", "data_constrained"])].iterrows():
        record = runs.get(row["run_id"])
        controls = [runs[c] for c in an.controls[an.controls["model"] == row["model"]]["run_id"] if c in runs]
        if record is None or not controls or record.summary is None:
            continue
        control = controls[0].summary or {}
        for name in _extra_names(record):
            ood, ood_control = record.summary.get(f"{name}_loss"), control.get(f"{name}_loss")
            if not isinstance(ood_control, (int, float)) or not isinstance(control.get("test_loss"), (int, float)):
                continue
            rows.append({"run_id": row["run_id"], "model": row["model"], "eval": name,
                         "repeated_fraction": row.get("repeated_fraction"),
                         "repeated_epochs": row.get("repeated_epochs"),
                         "id_increase": record.summary["test_loss"] / control["test_loss"] - 1,
                         "ood_increase": ood / ood_control - 1})
    return pd.DataFrame(rows)


def ood_section(an: Analysis) -> Section | None:
    """Out-of-distribution against in-distribution loss increase of every repeated run over its control."""
    if not any(_extra_names(r) for r in an.data.runs.values()):
        return None
    key, title = "ood-degradation", "Out-of-distribution against in-distribution damage"
    table = ood_table(an)
    if table.empty:
        return Section(key=key, title=title, missing=("needs repeated runs and a control of the same size, all "
                                                      "with the same extra evaluation sets (train.extra_evals)",))
    fig = new_figure(4.6, 3.6)
    ax = fig.subplots()
    markers = dict(zip(sorted(table["eval"].unique()), "os^Dv<>"))
    sizes = [s for s in an.sizes if s in set(table["model"])]
    colours = {s: colormaps["viridis"](0.1 + 0.8 * i / max(len(sizes) - 1, 1)) for i, s in enumerate(sizes)}
    for (size, name), group in table.groupby(["model", "eval"]):
        ax.scatter(100 * group["id_increase"], 100 * group["ood_increase"], marker=markers.get(name, "o"),
                   color=colours.get(size, "grey"), s=22, label=f"{size}: {name}")
    low = 100 * min(table["id_increase"].min(), table["ood_increase"].min(), 0.0)
    high = 100 * max(table["id_increase"].max(), table["ood_increase"].max(), 0.01)
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("in-distribution (test) loss increase over control, %", fontsize=8)
    ax.set_ylabel("out-of-distribution loss increase, %", fontsize=8)
    style(ax)
    ax.legend(fontsize=6, frameon=False)
    above = int((table["ood_increase"] > table["id_increase"]).sum())
    items = (f"{above} of {len(table)} repeated runs lose more out of distribution than in distribution",)
    caption = ("Each point is a repeated run: how much its loss rose over the control of its size, on the test split "
               "(x) and on an extra held-out set (y; e.g. python = the Python standard library, for a text model). "
               "Above the dashed diagonal, repetition hurt out-of-distribution loss more, as Hernandez et al. 2022 "
               "found for Python loss.")
    formats = {"repeated_fraction": format_fraction, "repeated_epochs": format_epochs,
               "id_increase": format_fraction, "ood_increase": format_fraction}
    return Section(key=key, title=title, caption=caption, figure=encode(fig, "OOD against ID loss increase"),
                   tables=(Table.from_frame("Loss increase over the control", table, formats),), items=items)


def read_finetune(path: Path) -> dict[str, Any] | None:
    """``finetune.json`` of a sweep (in ``finetune/``) or of a stage directory itself, if there is one."""
    for candidate in (path / "finetune" / FINETUNE_FILE, path / FINETUNE_FILE):
        if candidate.is_file():
            return read_record(candidate)
    return None


def finetune_section(an: Analysis) -> Section | None:
    """Effective-parameter multipliers of fine-tuned runs against training the budget from scratch."""
    data = read_finetune(an.data.path)
    if data is None:
        return None
    key, title = "finetune", "Fine-tuning after pre-training: transfer or ossification"
    rows = pd.DataFrame(data.get("rows") or [])
    notes = tuple(n for n in [data.get("note")] if n)
    if rows.empty:
        return Section(key=key, title=title, missing=notes or ("finetune.json holds no rows",))
    figure = None
    plotted = rows[rows["multiplier"].notna()] if "multiplier" in rows else rows.iloc[0:0]
    if not plotted.empty:
        fig = new_figure(max(3.6, 0.45 * len(plotted) + 1.5), 3.2)
        ax = fig.subplots()
        colours = ["black" if k == "control" else "tab:red" for k in plotted["pretrain_kind"]]
        ax.bar(range(len(plotted)), plotted["multiplier"], color=colours)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(plotted)), [f"{m}\n{_pretraining(r)}" for m, r in zip(plotted["model"],
                                                                                      plotted.to_dict("records"))],
                      fontsize=6, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("N_eff(fine-tuned) / N_eff(from scratch)", fontsize=8)
        style(ax)
        figure = encode(fig, "Fine-tuning effective-parameter multipliers")
    caption = ("Each pre-trained run fine-tuned on one shared budget (new optimizer, its own schedule), against the "
               "same size trained on that budget from scratch. A power law fitted to the from-scratch runs turns "
               "losses into effective parameter counts; the bar is their ratio. Above 1 pre-training transferred; "
               "below 1 it ossified the model (Hernandez et al. 2022: a 1.6x effective-parameter loss for models "
               "pre-trained at the double-descent peak). Black: control pre-training; red: repeated.")
    columns = [c for c in ("run", "model", "pretrain_kind", "pretrain_repeated_fraction", "pretrain_repeated_epochs",
                           "finetuned_loss", "scratch_loss", "n_eff_finetuned", "n_eff_scratch", "multiplier")
               if c in rows]
    formats = {"pretrain_repeated_fraction": format_fraction, "pretrain_repeated_epochs": format_epochs,
               "n_eff_finetuned": format_count, "n_eff_scratch": format_count, "multiplier": format_multiplier}
    return Section(key=key, title=title, caption=caption, figure=figure,
                   tables=(Table.from_frame("Fine-tuned against from scratch", rows[columns], formats),), missing=notes)


def _repetition(fraction: Any, epochs: Any) -> str:
    return f"f={format_fraction(fraction)} E={format_epochs(epochs)}"


def _pretraining(row: dict[str, Any]) -> str:
    if row.get("pretrain_kind") == "repeated":
        return _repetition(row.get("pretrain_repeated_fraction"), row.get("pretrain_repeated_epochs"))
    return str(row.get("pretrain_kind") or "?")


DYNAMICS_SECTIONS = (probe_curves_section, ood_section, finetune_section)
"""The builders of this module, in page order (after the learning curves)."""

__all__ = ["CURVE_METRICS", "DYNAMICS_SECTIONS", "FINETUNE_FILE", "ICL_ACCURACY", "IWL_ACCURACY", "IWL_FIRST_ACCURACY",
           "finetune_section", "ood_section", "ood_table", "phase_change", "probe_curves_section", "read_finetune"]
