"""Does repeating a subset of the data damage in-context learning more than test loss? Hernandez et al. 2022's
claim tested on the in-context classification task (``repeatlab.data.classification``), where tiny CPU models
learn to read labels off the context within a few hundred steps.

The protocol (fixed before any repeated run was trained; docs/reproduction.md has the results):

* task: the ``ClassificationTask`` defaults (512 Zipf classes, 32 labels, 8 pairs, burstiness 2, half the
  training sequences relabelled), a pool of 250,000 training sequences, 4,096 test sequences;
* sizes ``cpu-2l-24 .. cpu-2l-64``; 3,000 steps of 64 sequences (3.26M tokens), warm-up 100, cosine to 10%;
  learning rate per size: the best of 1e-3, 3e-3 and 1e-2 for the seed-0 control (``tune``);
* f = 0.1 with E = 10, 30, 100, 300, 1000 (the repeated subset is 1,920 down to 19 sequences), seeds 0-3 (each
  draws its own subset, order and initialisation); per size and seed an f = 0 control on T tokens and one on the
  (1 - f) T unique tokens alone;
* logged every 250 steps: test loss, repeated-subset loss, ICL and IWL query accuracy and loss (the task's two
  evaluation sets), induction and prefix-matching scores (random repeated tokens).

    python experiments/classification_repetition.py runs/icc tune      # 12 controls, about 5 min on 2 cores
    python experiments/classification_repetition.py runs/icc grid      # 112 runs, about 40 min on 2 cores
    python experiments/classification_repetition.py runs/icc table --figure docs/reproduction-cpu-icl.png

Runs are one thread each, two side by side; finished runs are reused, so a killed command resumes.
"""

from __future__ import annotations

import argparse
import itertools
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from repeatlab.data.classification import (
    EVAL_SETS,
    ClassificationTask,
    load_eval_sequences,
    pair_score_sequences,
    write_classification_dataset,
)
from repeatlab.data.mixture import MixtureSpec, make_mixture, unique_control_tokens
from repeatlab.dynamics import train_with_probes
from repeatlab.io import read_json, write_json
from repeatlab.laws.effective import MIN_R_SQUARED, effective_sizes, fit_metric_scaling
from repeatlab.laws.results import FitError
from repeatlab.probes.ablation import ablated, mean_head_outputs
from repeatlab.probes.classification import pair_scores, query_induction_scores, query_score
from repeatlab.train import OptimConfig, RunConfig, TrainConfig
from repeatlab.train.run import load_run

TASK = ClassificationTask()
SIZES = ("cpu-2l-24", "cpu-2l-32", "cpu-2l-48", "cpu-2l-64")
STEPS, BATCH, WARMUP, EVAL_EVERY = 3_000, 64, 100, 250
TUNE_LRS = (1e-3, 3e-3, 1e-2)
FRACTION, EPOCHS, SEEDS = 0.1, (10, 30, 100, 300, 1000), (0, 1, 2, 3)
ICL_FORMED = 0.5
"""ICL accuracy that counts as "in-context learning has emerged" (chance is 1/32)."""
TOTAL = STEPS * BATCH * TASK.context
KINDS = ("control", "unique", *(f"E{e}" for e in EPOCHS))


def dataset(root: Path) -> Path:
    path = root / "data"
    if not path.exists():
        write_classification_dataset(TASK, path)
    return path


def run_name(size: str, lr: float, kind: str, seed: int) -> str:
    return f"{size}-lr{lr:g}-{kind}-s{seed}"


def train_one(job: dict) -> str:
    root = Path(job["root"])
    kind, seed = job["kind"], job["seed"]
    mixture = root / "mixtures" / f"{kind}-s{seed}"
    if not mixture.exists():
        if kind == "control":
            spec = MixtureSpec(total_tokens=TOTAL, seed=seed)
        elif kind == "unique":
            spec = MixtureSpec(total_tokens=unique_control_tokens(TOTAL, FRACTION), seed=seed)
        else:
            spec = MixtureSpec(total_tokens=TOTAL, repeated_fraction=FRACTION, repeated_epochs=job["epochs"],
                               seed=seed)
        make_mixture(root / "data", spec, mixture)
    config = RunConfig(
        dataset=str(root / "data"), mixture=str(mixture), model=job["size"],
        optim=OptimConfig(lr=job["lr"], warmup_steps=WARMUP),
        train=TrainConfig(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=EVAL_EVERY,
                          eval_test_sequences=256, eval_repeated_sequences=0 if kind in ("control", "unique") else 64,
                          checkpoint_every=1_000, device="cpu", cpu_threads=1, seed=seed, probe_sequences=32,
                          probe_metrics=("classification", "induction", "prefix_matching")),
    )
    name = run_name(job["size"], job["lr"], kind, seed)
    train_with_probes(config, root / "runs" / name)
    return name


def run_all(root: Path, jobs: list[dict], workers: int) -> None:
    dataset(root)
    for job in jobs:
        job["root"] = str(root)
    with ProcessPoolExecutor(workers) as pool:
        for name in pool.map(train_one, jobs):
            print("done", name, flush=True)


def curve(root: Path, name: str) -> list[dict]:
    lines = (root / "runs" / name / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "test_loss" in r]


def tuned_lrs(root: Path) -> dict[str, float]:
    """Per size, the tuning learning rate whose seed-0 control ends with the lower test loss."""
    return {size: min(TUNE_LRS, key=lambda lr: curve(root, run_name(size, lr, "control", 0))[-1]["test_loss"])
            for size in SIZES}


def summarise(records: list[dict]) -> dict:
    last = records[-1]
    formed = next((r["step"] for r in records if r["classification.icl_accuracy"] >= ICL_FORMED), None)
    return {"test_loss": last["test_loss"], "repeated_loss": last.get("repeated_loss"),
            "icl_accuracy": last["classification.icl_accuracy"], "icl_loss": last["classification.icl_loss"],
            "iwl_accuracy": last["classification.iwl_accuracy"], "iwl_loss": last["classification.iwl_loss"],
            "task_induction": last["classification.induction.max"], "induction": last["induction.max"],
            "prefix_matching": last["prefix_matching.max"], "icl_formed_step": formed}


def final_scores(run_dir: Path) -> dict[str, float | str]:
    """From the final weights: in-distribution pair accuracies (``probes.pair_scores``, on the rows the evaluator
    uses), and the query and pair accuracies with the top query-induction head mean-ablated (means over the
    test split), the causal check that the head does the in-context part."""
    run = load_run(run_dir)
    sets = {name: torch.from_numpy(load_eval_sequences(run.dataset, name)) for name in EVAL_SETS}
    pairs = torch.from_numpy(pair_score_sequences(run.dataset))
    scores = query_induction_scores(run.model, sets["icl"], TASK)
    layer, head = divmod(int(scores.argmax()), scores.shape[1])
    before = pair_scores(run.model, pairs, TASK)
    means = mean_head_outputs(run.model, torch.from_numpy(np.asarray(run.dataset.sequences("test")).astype(np.int64)),
                              [layer])
    with ablated(run.model, [(layer, head)], mode="mean", means=means):
        after = {name: query_score(run.model, rows, TASK).accuracy for name, rows in sets.items()}
        after_pairs = pair_scores(run.model, pairs, TASK)
    return {"top_head": f"L{layer}H{head}", "iwl_first": before["iwl_first"], "icl_repeat": before["icl_repeat"],
            "icl_accuracy_ablated": after["icl"], "iwl_accuracy_ablated": after["iwl"],
            "icl_repeat_ablated": after_pairs["icl_repeat"], "iwl_first_ablated": after_pairs["iwl_first"]}


def load_rows(root: Path) -> tuple[dict[str, float], pd.DataFrame]:
    lrs = tuned_lrs(root)
    rows = []
    for size, seed in itertools.product(SIZES, SEEDS):
        for kind in KINDS:
            name = run_name(size, lrs[size], kind, seed)
            if (root / "runs" / name / "summary.json").is_file():
                summary = read_json(root / "runs" / name / "summary.json")
                epochs = int(kind[1:]) if kind.startswith("E") else 0
                mixture = summary["mixture"]
                repeats = mixture["total_tokens"] - mixture["unique_tokens"]  # (E - 1) copies of the subset
                rows.append({"size": size, "seed": seed, "kind": kind, "params": summary["n_params_non_embedding"],
                             "epochs": epochs, "n_repeated": repeats // ((epochs - 1) * TASK.context) if epochs else 0,
                             **summarise(curve(root, name)), **final_scores(root / "runs" / name)})
    return lrs, pd.DataFrame(rows)


def spread(values: pd.Series, digits: int = 3) -> str:
    """``mean [min, max]`` over seeds."""
    sign = "+" if values.mean() < 0 or values.min() < 0 else ""
    fmt = f"{{:{sign}.{digits}f}}"
    return f"{fmt.format(values.mean())} [{fmt.format(values.min())}, {fmt.format(values.max())}]"


def signed(values: pd.Series, digits: int = 3) -> str:
    fmt = f"{{:+.{digits}f}}"
    return f"{fmt.format(values.mean())} [{fmt.format(values.min())}, {fmt.format(values.max())}]"


def effective_multipliers(frame: pd.DataFrame, metric: str) -> tuple[pd.Series, float] | None:
    """Per repeated run, N_eff / N by ``metric`` against the controls' power law, and the law's R²; ``None``
    when no law fits or it explains less than ``MIN_R_SQUARED`` of the controls' variance (the project's gate)."""
    controls = frame[frame.kind == "control"]
    repeated = frame[frame.kind.str.startswith("E")]
    table = pd.concat([controls, repeated]).assign(
        loss=lambda t: t[metric], repeated_fraction=lambda t: np.where(t.kind == "control", 0.0, FRACTION),
        repeated_epochs=lambda t: np.where(t.kind == "control", 1, t.epochs))
    try:
        scaling = fit_metric_scaling(table[["params", "loss", "repeated_fraction", "repeated_epochs"]])
    except FitError:
        return None
    if scaling.fit.r_squared < MIN_R_SQUARED:
        return None
    sizes = effective_sizes(table[["params", "loss", "repeated_fraction", "repeated_epochs"]], [scaling])
    return pd.Series([e.multiplier for e in sizes], index=repeated.index), scaling.fit.r_squared


def tables(root: Path) -> None:
    lrs, frame = load_rows(root)
    write_json(root / "summary.json", {"lrs": lrs, "rows": frame.to_dict(orient="records")})
    print(f"learning rates: {lrs}; {len(frame)} finished runs\n")
    print("Learning-rate check (seed-0 controls; final test loss / ICL query accuracy):\n")
    print("| size | " + " | ".join(f"lr {lr:g}" for lr in TUNE_LRS) + " |\n|" + "---|" * (1 + len(TUNE_LRS)))
    for size in SIZES:
        finals = [curve(root, run_name(size, lr, "control", 0))[-1] for lr in TUNE_LRS]
        print(f"| {size} | " + " | ".join(f"{r['test_loss']:.3f} / {r['classification.icl_accuracy']:.2f}"
                                          for r in finals) + " |")
    print()
    print("Controls (mean [min, max] over seeds):\n")
    print("| size | N | lr | test loss | (1 − f) T control | ICL at repeats | IWL at first occurrences "
          "| ICL query (icl set) | IWL query (iwl set) | query induction score | ICL >= 0.5 at step "
          "| top head ablated: ICL at repeats | top head ablated: IWL at first occurrences |")
    print("|" + "---|" * 14)
    for size in SIZES:
        c = frame[(frame["size"] == size) & (frame.kind == "control")]
        u = frame[(frame["size"] == size) & (frame.kind == "unique")]
        if c.empty:
            continue
        print(f"| {size} | {int(c.params.iloc[0]):,} | {lrs[size]:g} | {spread(c.test_loss)} "
              f"| {spread(u.test_loss) if len(u) else '—'} | {spread(c.icl_repeat, 2)} | {spread(c.iwl_first, 2)} "
              f"| {spread(c.icl_accuracy, 2)} | {spread(c.iwl_accuracy, 2)} | {spread(c.task_induction, 2)} "
              f"| {', '.join(str(v) for v in c.icl_formed_step)} | {spread(c.icl_repeat_ablated, 2)} "
              f"| {spread(c.iwl_first_ablated, 2)} |")
    paired = frame.merge(frame[frame.kind == "control"], on=["size", "seed"], suffixes=("", "_c"))
    paired = paired.merge(frame[frame.kind == "unique"][["size", "seed", "test_loss"]], on=["size", "seed"],
                          how="left", suffixes=("", "_u"))
    for key in ("test_loss", "icl_loss", "icl_repeat", "iwl_first", "icl_accuracy", "iwl_accuracy",
                "task_induction", "icl_repeat_ablated"):
        paired[f"d_{key}"] = paired[key] - paired[f"{key}_c"]
    paired["d_unique"] = paired.test_loss - paired.test_loss_u
    print("\nRepeated runs minus their own seed's control (mean [min, max] over seeds; 'worse': in how many "
          "seeds the repeated run is worse):\n")
    print("| size | E | subset (sequences) | test loss | worse | test loss − (1 − f) T control "
          "| repeated-subset loss | ICL at repeats | worse | IWL at first occurrences | ICL query loss "
          "| IWL query (iwl set) | query induction score | ICL >= 0.5 at step |")
    print("|" + "---|" * 14)
    for size in SIZES:
        for e in EPOCHS:
            g = paired[(paired["size"] == size) & (paired.kind == f"E{e}")]
            if g.empty:
                continue
            f_achieved = g.n_repeated.iloc[0] * e * TASK.context / TOTAL
            print(f"| {size} | {e} | {int(g.n_repeated.iloc[0]):,} (f = {f_achieved:.3f}) | {signed(g.d_test_loss)} "
                  f"| {int((g.d_test_loss > 0).sum())}/{len(g)} | {signed(g.d_unique)} | {g.repeated_loss.mean():.3f} "
                  f"| {signed(g.d_icl_repeat, 2)} | {int((g.d_icl_repeat < 0).sum())}/{len(g)} "
                  f"| {signed(g.d_iwl_first, 3)} | {signed(g.d_icl_loss)} | {signed(g.d_iwl_accuracy, 2)} "
                  f"| {signed(g.d_task_induction, 2)} | {', '.join(str(v) for v in g.icl_formed_step)} |")
    print("\nEffective size N_eff / N by metric (controls' power law in N over every control seed):\n")
    for metric in ("test_loss", "icl_loss"):
        result = effective_multipliers(frame, metric)
        if result is None:
            print(f"- {metric}: no power law in N fits the controls with R² >= {MIN_R_SQUARED}; no effective sizes")
            continue
        multipliers, r2 = result
        frame[f"mult_{metric}"] = multipliers
        print(f"- {metric}: R² = {r2:.3f}")
    mult = [c for c in frame.columns if c.startswith("mult_")]
    if mult:
        print("\n| size | E | " + " | ".join(mult) + " |\n|" + "---|" * (2 + len(mult)))
        for size in SIZES:
            for e in EPOCHS:
                g = frame[(frame["size"] == size) & (frame.kind == f"E{e}")]
                if len(g):
                    print(f"| {size} | {e} | " + " | ".join(spread(g[c], 2) for c in mult) + " |")


def figure(root: Path, lrs: dict[str, float], out: Path) -> None:
    """ICL query accuracy, the query induction score and test loss against steps, mean over seeds: control
    (black), E = 10 .. 1000."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ("classification.icl_accuracy", "classification.induction.max", "test_loss")
    fig, axes = plt.subplots(len(rows), len(SIZES), figsize=(3.2 * len(SIZES), 7.6), sharex=True)
    colours = plt.get_cmap("plasma")
    for column, size in enumerate(SIZES):
        for kind in ("control", *(f"E{e}" for e in EPOCHS)):
            runs = [curve(root, run_name(size, lrs[size], kind, seed)) for seed in SEEDS
                    if (root / "runs" / run_name(size, lrs[size], kind, seed) / "summary.json").is_file()]
            if not runs:
                continue
            steps = [r["step"] for r in runs[0]]
            colour = "black" if kind == "control" else colours(0.1 + 0.8 * EPOCHS.index(int(kind[1:])) / len(EPOCHS))
            label = "control" if kind == "control" else f"E = {kind[1:]}"
            for row, key in enumerate(rows):
                mean = np.mean([[r[key] for r in run] for run in runs], axis=0)
                axes[row, column].plot(steps, mean, color=colour, lw=1.6 if kind == "control" else 1.0, label=label)
        axes[0, column].set_title(f"{size} (lr {lrs[size]:g})", fontsize=9)
        axes[-1, column].set_xlabel("step", fontsize=8)
        axes[-1, column].set_ylim(2.4, 3.4)
    axes[0, 0].set_ylabel("ICL accuracy (query, icl set)", fontsize=8)
    axes[1, 0].set_ylabel("query induction score (max over heads)", fontsize=8)
    axes[2, 0].set_ylabel("test loss", fontsize=8)
    axes[0, -1].legend(fontsize=7, frameon=False)
    fig.suptitle(f"f = {FRACTION:g}: mean over seeds {SEEDS[0]}-{SEEDS[-1]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("stage", choices=("tune", "grid", "table"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--figure", type=Path, help="table stage: also draw the curves into this PNG")
    args = parser.parse_args()
    root = args.out.resolve()
    if args.stage == "tune":
        run_all(root, [dict(size=s, lr=lr, kind="control", seed=0) for s in SIZES for lr in TUNE_LRS], args.workers)
        print("tuned learning rates:", tuned_lrs(root))
    elif args.stage == "grid":
        lrs = tuned_lrs(root)
        jobs = [dict(size=size, lr=lrs[size], kind=kind, epochs=epochs, seed=seed)
                for seed in SEEDS for size in SIZES
                for kind in KINDS for epochs in [int(kind[1:]) if kind.startswith("E") else None]]
        run_all(root, jobs, args.workers)
    if args.stage != "tune":
        tables(root)
        if args.figure:
            figure(root, tuned_lrs(root), args.figure)


if __name__ == "__main__":
    main()
