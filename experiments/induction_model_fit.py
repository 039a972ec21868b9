"""Reddy 2023's model of induction-head formation fitted to the network's curves (``dynamics.induction_model``).

Does one set of constants make the nested-logit model reproduce the minimal network's query losses on the ``icl``
and ``iwl`` sets in every cell of the coarse phase diagram, and does it predict a cell it was not fitted to?

The protocol (fixed before the model was fitted to any network curve; docs/testbeds.md has the results):

* data: the ``testbed-phase`` sweep (K in {128, 1024} x B in {1, 6}, seeds 0-3, ``attn-only-min-2l``, 2,000 steps,
  the query's cross-entropy on both evaluation sets every 50 steps), averaged over seeds per cell, since the model
  is a deterministic mean over the task's sequences;
* fit: ``fit_induction_model`` on all four cells at once (three constants: the time scale per step, the in-weights
  rate and the initial copy strength); outcomes per cell: R^2 and RMSE of the two loss curves, the winner at step
  2,000 (ICL where the icl-set loss is below the iwl-set loss) against the network's (its final ICL and IWL
  accuracy), and the first step with icl-set loss below ln 2 (the model's and each seed's);
* prediction: the same fit on three cells, then the fourth cell's curves predicted (leave one cell out, each cell in
  turn): R^2 of the held-out cell.

    repeatlab sweep run testbed-phase --out runs/testbed-phase
    python experiments/induction_model_fit.py runs/testbed-phase --figure docs/testbeds-induction-model.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from repeatlab.config import from_dict
from repeatlab.data.classification import TASK_KIND, ClassificationTask
from repeatlab.dynamics.induction_model import InductionFit, MeasuredCurves, fit_induction_model, r_squared, simulate
from repeatlab.report.sections.dynamics import ICL_ACCURACY, IWL_ACCURACY

ICL_LOSS, IWL_LOSS = "classification.icl_loss", "classification.iwl_loss"
FORMED_LOSS = float(np.log(2.0))
STARTS = [{"lr": lr, "iwl_rate": 30.0, "xi0": 0.1} for lr in (0.01, 0.1)]


def read_cells(sweep: Path) -> dict[str, dict]:
    """Variant -> its task, logged steps, and per-seed curves of the query losses and accuracies."""
    cells: dict[str, dict] = {}
    for run_dir in sorted((sweep / "runs").iterdir()):
        if not (run_dir / "summary.json").is_file():
            continue
        spec = json.loads((run_dir / "sweep_run.json").read_text())["spec"]
        task = from_dict(ClassificationTask, spec["data"][TASK_KIND] or {})
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        records = [r for r in records if ICL_LOSS in r]
        cell = cells.setdefault(spec["point"]["data_variant"], {"task": task, "steps": None, "seeds": {}})
        steps = np.array([r["step"] for r in records])
        cell["steps"] = steps if cell["steps"] is None else cell["steps"]
        assert np.array_equal(cell["steps"], steps), run_dir
        cell["seeds"][spec["point"]["seed"]] = {name: np.array([r[name] for r in records])
                                                for name in (ICL_LOSS, IWL_LOSS, ICL_ACCURACY, IWL_ACCURACY)}
    return cells


def measured(cell: dict) -> MeasuredCurves:
    seeds = cell["seeds"].values()
    return MeasuredCurves(cell["task"], cell["steps"], np.mean([s[ICL_LOSS] for s in seeds], axis=0),
                          np.mean([s[IWL_LOSS] for s in seeds], axis=0))


def first_below(steps: np.ndarray, loss: np.ndarray, level: float) -> int | None:
    hits = np.nonzero(loss < level)[0]
    return int(steps[hits[0]]) if len(hits) else None


def text(step: int | None) -> str:
    return "—" if step is None else str(step)


def report(cells: dict[str, dict], fit: InductionFit, held_out: dict[str, float]) -> None:
    c = fit.constants
    print(f"Fitted on all four cells: lr {c.lr:.4g}, in-weights rate {c.iwl_rate:.4g}, initial copy {c.xi0:.3g} "
          f"(at the search bounds: {', '.join(fit.at_bounds) or 'none'}); RMSE {fit.rmse:.3f} nats.\n")
    print("| cell | R^2 (fitted on all) | R^2 (held out) | model: final icl / iwl loss | network: final icl / iwl "
          "loss | winner, model / network | icl loss < ln 2 at step: model / seeds |")
    print("|" + "---|" * 7)
    for (name, cell), curve, score in zip(cells.items(), fit.curves, fit.r2):
        run = measured(cell)
        model_wins = "ICL" if curve.icl_loss[-1] < curve.iwl_loss[-1] else "IWL"
        seeds = cell["seeds"].values()
        icl_acc, iwl_acc = np.mean([s[ICL_ACCURACY][-1] for s in seeds]), np.mean([s[IWL_ACCURACY][-1] for s in seeds])
        net_wins = "ICL" if icl_acc > iwl_acc else "IWL"
        per_seed = ", ".join(text(first_below(cell["steps"], s[ICL_LOSS], FORMED_LOSS)) for s in seeds)
        print(f"| {name} | {score:.3f} | {held_out[name]:.3f} | {curve.icl_loss[-1]:.2f} / {curve.iwl_loss[-1]:.2f} "
              f"| {run.icl_loss[-1]:.2f} / {run.iwl_loss[-1]:.2f} | {model_wins} / {net_wins} "
              f"| {text(first_below(curve.steps, curve.icl_loss, FORMED_LOSS))} / {per_seed} |")


def figure(cells: dict[str, dict], fit: InductionFit, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3.0), sharey=True)
    for ax, (name, cell), curve in zip(np.atleast_1d(axes), cells.items(), fit.curves):
        for seed in cell["seeds"].values():
            ax.plot(cell["steps"], seed[ICL_LOSS], color="tab:blue", lw=0.5, alpha=0.4)
            ax.plot(cell["steps"], seed[IWL_LOSS], color="tab:red", lw=0.5, alpha=0.4)
        ax.plot(curve.steps, curve.icl_loss, color="tab:blue", lw=2, ls="--", label="model, icl set")
        ax.plot(curve.steps, curve.iwl_loss, color="tab:red", lw=2, ls="--", label="model, iwl set")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("query cross-entropy (thin: network seeds)", fontsize=8)
    np.atleast_1d(axes)[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    cells = read_cells(args.sweep)
    runs = {name: measured(cell) for name, cell in cells.items()}
    fit = fit_induction_model(list(runs.values()), starts=STARTS)
    held_out = {}
    for name, run in runs.items():
        others = fit_induction_model([r for n, r in runs.items() if n != name], starts=STARTS)
        predicted = simulate(run.task, others.constants, run.steps)
        held_out[name] = r_squared(run, predicted)
        print(f"held out {name}: constants {others.constants} (at the search bounds: "
              f"{', '.join(others.at_bounds) or 'none'}), R^2 {held_out[name]:.3f}", flush=True)
    report(cells, fit, held_out)
    if args.figure:
        figure(cells, fit, args.figure)


if __name__ == "__main__":
    main()
