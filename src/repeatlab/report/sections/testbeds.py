"""The in-context classification testbed (Reddy 2023): ICL and IWL accuracy over training, and the phase diagram.

Reddy's question is which mechanism a network ends up using at the query: reading the label off the context
(in-context learning, ICL, measured on the task's ``icl`` set) or recalling the class's label from its weights
(in-weights learning, IWL, on the ``iwl`` set), and how the task decides it, the number of classes K and the
burstiness B above all. The curves come from each run's ``metrics.jsonl`` (``train.probe_metrics =
["classification"]``) and its task from ``sweep_run.json``, so a sweep with a data axis (``data_variants``) gets
one panel per variant and one phase-diagram cell per (K, B). Both sections are absent from other sweeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from repeatlab.config import from_dict
from repeatlab.data.classification import TASK_KIND, ClassificationTask
from repeatlab.io import read_json
from repeatlab.report.analysis import Analysis
from repeatlab.report.load import RunRecord
from repeatlab.report.model import Section, Table
from repeatlab.report.plotting import encode, grid_shape, new_figure, style
from repeatlab.report.sections.dynamics import ICL_ACCURACY, IWL_ACCURACY, IWL_FIRST_ACCURACY

ICL_FORMED = 0.5
"""ICL accuracy at which in-context learning counts as formed (the first step reaching it is reported)."""
MAX_PANELS = 12
MAX_PHASE_PANELS = 6
PHASE_AXES = ("n_classes", "burstiness")
"""The task fields of the phase diagram's rows (K) and columns (B)."""
_SHORT = {"n_classes": "K", "burstiness": "B", "zipf_exponent": "alpha", "n_labels": "L", "n_pairs": "N",
          "repeated_fraction": "f", "repeated_epochs": "E", "total_tokens": "T"}
_UNNAMED = ("kind", "model")
"""Grid-point fields shown by value alone in titles."""
Setting = tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class ClassificationRun:
    """One run of the task: its setting, its seed and its final accuracies."""

    record: RunRecord
    task: ClassificationTask
    variant: str | None
    """The run's data variant (``GridConfig.data_variants``), if the sweep has a data axis."""
    point: tuple[tuple[str, str], ...]
    """The run's grid point without its seed and data variant, as ``(field, value)`` text pairs."""
    seed: int

    @property
    def metrics(self) -> pd.DataFrame:
        return self.record.metrics

    def final(self, column: str) -> float:
        values = self.metrics[column].dropna() if column in self.metrics else pd.Series(dtype=float)
        return float(values.iloc[-1]) if len(values) else float("nan")

    def formed_at(self) -> int | None:
        """The first logged step with ICL accuracy at least ``ICL_FORMED``; ``None`` if never."""
        if "step" not in self.metrics:
            return None
        rows = self.metrics[self.metrics[ICL_ACCURACY] >= ICL_FORMED]
        return int(rows["step"].iloc[0]) if len(rows) else None


def run_task(record: RunRecord) -> ClassificationTask | None:
    """The run's task: from its sweep spec, else from its dataset's ``meta.json``; ``None`` if neither says."""
    spec = (record.sweep_run or {}).get("spec")
    data = spec.get("data") if isinstance(spec, Mapping) else None
    try:
        if isinstance(data, Mapping):
            if data.get("source") != TASK_KIND:
                return None
            return from_dict(ClassificationTask, dict(data.get(TASK_KIND) or {}))
        dataset = (record.config or {}).get("dataset")
        meta = read_json(f"{dataset}/meta.json") if isinstance(dataset, str) else {}
        return from_dict(ClassificationTask, meta[TASK_KIND]) if meta.get("task") == TASK_KIND else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def classification_runs(an: Analysis) -> list[ClassificationRun]:
    """Runs that logged ICL accuracy on a known task, ordered by K, B, setting and seed."""
    runs = []
    for record in an.data.runs.values():
        if ICL_ACCURACY not in record.metrics or not record.metrics[ICL_ACCURACY].notna().any():
            continue
        task = run_task(record)
        if task is None:
            continue
        spec = (record.sweep_run or {}).get("spec")
        point = dict(spec.get("point") or {}) if isinstance(spec, Mapping) else {}
        train = (record.config or {}).get("train") or {}
        seed = point.pop("seed", train.get("seed", 0) if isinstance(train, Mapping) else 0)
        variant = point.pop("data_variant", None)
        point.pop("unique_tokens", None)  # follows from the others
        runs.append(ClassificationRun(record=record, task=task, variant=variant if isinstance(variant, str) else None,
                                      point=tuple(sorted((k, str(v)) for k, v in point.items())), seed=int(seed)))
    return sorted(runs, key=lambda r: (r.task.n_classes, r.task.burstiness, r.variant or "", r.point, r.seed))


def varying_task_fields(runs: Sequence[ClassificationRun]) -> list[str]:
    """Task fields (but the task's seed) whose value differs between runs, in the task's field order."""
    names = [f.name for f in fields(ClassificationTask) if f.name != "seed"]
    return [n for n in names if len({getattr(r.task, n) for r in runs}) > 1]


def _varying_point(runs: Sequence[ClassificationRun]) -> list[str]:
    names = sorted({k for r in runs for k, _ in r.point})
    return [n for n in names if len({dict(r.point).get(n) for r in runs}) > 1]


def _describe(run: ClassificationRun, task_fields: Sequence[str], point_fields: Sequence[str]) -> str:
    task = ", ".join(f"{_SHORT.get(n, n)}={getattr(run.task, n):g}" for n in task_fields)
    point = _point_text(dict(run.point), point_fields)
    return " ".join(p for p in (run.variant or "", f"({task})" if task and run.variant else task, point) if p)


def _point_text(point: Mapping[str, str], names: Sequence[str]) -> str:
    return " ".join(str(point.get(n)) if n in _UNNAMED else f"{_SHORT.get(n, n)}={point.get(n)}" for n in names)


def _spread(values: Sequence[float]) -> str:
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if not len(array):
        return "–"
    return f"{array.mean():.2f} [{array.min():.2f}, {array.max():.2f}]" if len(array) > 1 else f"{array[0]:.2f}"


def winner(icl: float, iwl: float) -> str:
    """Which mechanism answers the query: the one whose evaluation set the runs answer more accurately."""
    if not (np.isfinite(icl) and np.isfinite(iwl)):
        return "–"
    return "ICL" if icl > iwl else "IWL"


def _groups(runs: Sequence[ClassificationRun], key: Any) -> dict[Any, list[ClassificationRun]]:
    groups: dict[Any, list[ClassificationRun]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return groups


def classification_curves_section(an: Analysis) -> Section | None:
    """ICL and IWL accuracy against training steps, one panel per setting, each seed a thin line."""
    runs = classification_runs(an)
    if not runs:
        return None
    task_fields, point_fields = varying_task_fields(runs), _varying_point(runs)
    settings = _groups(runs, lambda r: (r.variant, r.point, tuple(getattr(r.task, n) for n in task_fields)))
    shown = list(settings.values())[:MAX_PANELS]
    notes = [f"{len(settings) - MAX_PANELS} more setting(s) not drawn"] if len(settings) > MAX_PANELS else []
    rows_n, cols_n = grid_shape(len(shown), max_cols=2 if len(shown) == 4 else 3)
    fig = new_figure(3.3 * cols_n, 2.6 * rows_n)
    axes = fig.subplots(rows_n, cols_n, squeeze=False, sharex=True, sharey=True)
    table = []
    for ax, group in zip(axes.flat, shown):
        for run in group:
            frame = run.metrics.dropna(subset=[ICL_ACCURACY])
            ax.plot(frame["step"], frame[ICL_ACCURACY], "-", color="tab:blue", lw=0.9, alpha=0.8)
            if IWL_ACCURACY in frame:
                ax.plot(frame["step"], frame[IWL_ACCURACY], "--", color="tab:red", lw=0.9, alpha=0.8)
        ax.axhline(1 / group[0].task.n_labels, color="grey", lw=0.7, ls=":")
        ax.set_title(_describe(group[0], task_fields, point_fields) or "all runs", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        style(ax)
        icl, iwl = [r.final(ICL_ACCURACY) for r in group], [r.final(IWL_ACCURACY) for r in group]
        table.append({
            "setting": _describe(group[0], task_fields, point_fields) or "all runs",
            "seeds": ", ".join(str(r.seed) for r in group),
            "final ICL accuracy": _spread(icl), "final IWL accuracy": _spread(iwl),
            "IWL at first occurrences": _spread([r.final(IWL_FIRST_ACCURACY) for r in group]),
            "wins": winner(float(np.nanmean(icl)), float(np.nanmean(iwl))),
            f"ICL >= {ICL_FORMED:g} at step (per seed)": ", ".join(
                "–" if (s := r.formed_at()) is None else str(s) for r in group),
        })
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("query accuracy", fontsize=8)
    caption = (
        "Query accuracy over training on the in-context classification task, one panel per setting, one thin line "
        "per seed. Solid blue: the icl set (the query's class is in the context with labels drawn afresh, so only "
        "reading the context helps: in-context learning); dashed red: the iwl set (the class is absent from the "
        "context, so only the weights help: in-weights learning); dotted grey: chance, 1/L. Look for an abrupt "
        "rise of the blue curves (an induction head forming) and for the red curves falling as it does: at the "
        "query the network then copies a label from the context even when the class is not there. The table's "
        "mean [min, max] are over seeds at the last evaluation; 'wins' is the set answered better."
    )
    return Section(key="classification-curves", title="In-context classification: ICL and IWL accuracy over training",
                   caption=caption, figure=encode(fig, "ICL and IWL query accuracy over training per setting"),
                   tables=(Table.from_frame("Final accuracies per setting", pd.DataFrame(table)),),
                   missing=tuple(notes))


def phase_diagram_section(an: Analysis) -> Section | None:
    """Final ICL accuracy per (K, B) cell and which mechanism wins there; absent unless K or B varies."""
    runs = classification_runs(an)
    task_fields = varying_task_fields(runs)
    if not runs or not set(PHASE_AXES) & set(task_fields):
        return None
    other_fields = [n for n in task_fields if n not in PHASE_AXES]
    point_fields = _varying_point(runs)
    panels = _groups(runs, lambda r: (tuple(getattr(r.task, n) for n in other_fields),
                                      tuple(dict(r.point).get(n) for n in point_fields)))
    shown = list(panels.items())[:MAX_PHASE_PANELS]
    notes = [f"{len(panels) - MAX_PHASE_PANELS} more panel(s) not drawn"] if len(panels) > MAX_PHASE_PANELS else []
    rows_n, cols_n = grid_shape(len(shown), max_cols=3)
    fig = new_figure(3.4 * cols_n + 0.8, 2.9 * rows_n)
    axes = fig.subplots(rows_n, cols_n, squeeze=False)
    table, image = [], None
    for ax, ((others, point), group) in zip(axes.flat, shown):
        title = " ".join([*(f"{_SHORT.get(n, n)}={v:g}" for n, v in zip(other_fields, others)),
                          _point_text(dict(zip(point_fields, point)), point_fields)]).strip()
        ks = sorted({r.task.n_classes for r in group})
        bs = sorted({r.task.burstiness for r in group})
        icl_map = np.full((len(ks), len(bs)), np.nan)
        for (k, b), cell in _groups(group, lambda r: (r.task.n_classes, r.task.burstiness)).items():
            icl, iwl = [r.final(ICL_ACCURACY) for r in cell], [r.final(IWL_ACCURACY) for r in cell]
            mean_icl, mean_iwl = float(np.nanmean(icl)), float(np.nanmean(iwl))
            i, j = ks.index(k), bs.index(b)
            icl_map[i, j] = mean_icl
            wins = winner(mean_icl, mean_iwl)
            ax.text(j, i, f"ICL {mean_icl:.2f}\nIWL {mean_iwl:.2f}\n{wins}", ha="center", va="center", fontsize=7,
                    color="black" if mean_icl > 0.6 else "white")
            table.append({**({"panel": title} if len(panels) > 1 else {}), "K": str(k), "B": str(b),
                          "runs": str(len(cell)),
                          "final ICL accuracy": _spread(icl), "final IWL accuracy": _spread(iwl),
                          "IWL at first occurrences": _spread([r.final(IWL_FIRST_ACCURACY) for r in cell]),
                          "wins": wins})
        image = ax.imshow(icl_map, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", origin="lower")
        ax.set_xticks(range(len(bs)), [str(b) for b in bs])
        ax.set_yticks(range(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("burstiness B", fontsize=8)
        ax.set_ylabel("classes K", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(title or "final ICL accuracy", fontsize=8)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="final ICL accuracy (mean over seeds)")
    caption = (
        "Reddy 2023's phase diagram, coarse: each cell is one (K classes, burstiness B) task, coloured by the final "
        "ICL accuracy (icl set) averaged over seeds, with the final IWL accuracy (iwl set) and the mechanism that "
        "answers the query better. Reddy and Chan et al. find in-context learning where memorising the class-label "
        "map is hard (many classes) or where the context is informative (high burstiness), and in-weights learning "
        "elsewhere."
    )
    return Section(key="classification-phase", title="In-context classification: the phase diagram (K x B)",
                   caption=caption, figure=encode(fig, "Final ICL accuracy per number of classes and burstiness"),
                   tables=(Table.from_frame("Final accuracies per cell (mean [min, max] over runs)",
                                            pd.DataFrame(table)),),
                   missing=tuple(notes))


TESTBED_SECTIONS = (classification_curves_section, phase_diagram_section)

__all__ = ["ICL_FORMED", "TESTBED_SECTIONS", "ClassificationRun", "classification_curves_section",
           "classification_runs", "phase_diagram_section", "run_task", "varying_task_fields", "winner"]
