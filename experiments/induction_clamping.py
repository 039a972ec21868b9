"""Singh et al. (2024)'s questions on the in-context classification task: which sub-circuits must form for the
induction head (and with it in-context learning) to appear, and do several induction heads add up?

Part 1, clamping (``attn-only-min-2l``: one head per layer, so the circuit has one previous-token head in layer 0
and one induction head in layer 1). Each seed trains a baseline, then the same seed (same initialisation and
data order) again with sub-circuits clamped, from step 0 to the end, to what that seed's trained baseline computes
for the same input (``InterventionConfig(mode="reference")``):

* A, the previous-token head's attend-and-copy: ``blocks.0.attn.out``, all that layer 0 writes;
* B, the induction head's match (QK): ``blocks.1.attn.pattern``;
* C, the induction head's copy (its values, the OV input): ``blocks.1.attn.v`` (its output projection still
  learns);

every non-empty subset of {A, B, C}: 7 conditions. Part 2, additivity (``attn-only-tiny-2l``: four heads per
layer): the query's accuracy on the ``icl`` set with each layer-1 head mean-ablated alone and with all of them.

The protocol (fixed before any clamped run was trained; docs/testbeds.md has the results): the
``ClassificationTask`` defaults (512 Zipf classes, 32 labels, 8 pairs, burstiness 2, half the training sequences
relabelled, so ICL pays), seeds 0-3, 2,000 steps of 64 sequences, lr 3e-3 (the rate tuned for
``classification_phase.py``), warm-up 100, cosine; every 50 steps test loss and ICL / IWL query accuracy.
Outcomes: the step at which ICL accuracy first reaches 0.5, its 10-90% rise width, the final accuracies.

    python experiments/induction_clamping.py runs/clamping grid     # 40 runs, then the tables
    python experiments/induction_clamping.py runs/clamping table --figure docs/testbeds-clamping.png
"""

from __future__ import annotations

import argparse
import itertools
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from classification_phase import curve, rise, spread

from repeatlab.data.classification import ClassificationTask, load_eval_sequences, write_classification_dataset
from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.dynamics import train_with_probes
from repeatlab.probes.ablation import ablated, mean_head_outputs
from repeatlab.probes.classification import query_induction_scores, query_score
from repeatlab.train import InterventionConfig, OptimConfig, RunConfig, TrainConfig
from repeatlab.train.run import load_run

TASK = ClassificationTask()
CIRCUIT_SIZE, ADDITIVE_SIZE = "attn-only-min-2l", "attn-only-tiny-2l"
STEPS, BATCH, WARMUP, EVAL_EVERY, LR = 2_000, 64, 100, 50, 3e-3
SEEDS = (0, 1, 2, 3)
SUBCIRCUITS = {"A": "blocks.0.attn.out", "B": "blocks.1.attn.pattern", "C": "blocks.1.attn.v"}
CONDITIONS = ["".join(c) for n in (1, 2, 3) for c in itertools.combinations(SUBCIRCUITS, n)]


def baseline_name(size: str, seed: int) -> str:
    return f"{size}-baseline-s{seed}"


def train_one(job: dict) -> str:
    root, size, seed, clamp = Path(job["root"]), job["size"], job["seed"], job["clamp"]
    mixture = root / "mixtures" / f"s{seed}"
    if not mixture.exists():
        make_mixture(root / "data", MixtureSpec(total_tokens=STEPS * BATCH * TASK.context, seed=seed), mixture)
    reference = str(root / "runs" / baseline_name(size, seed))
    interventions = tuple(InterventionConfig(hook=SUBCIRCUITS[part], mode="reference", reference=reference)
                          for part in clamp)
    config = RunConfig(
        dataset=str(root / "data"), mixture=str(mixture), model=size, optim=OptimConfig(lr=LR, warmup_steps=WARMUP),
        train=TrainConfig(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=EVAL_EVERY,
                          eval_test_sequences=256, eval_repeated_sequences=0, checkpoint_every=1_000, device="cpu",
                          cpu_threads=1, seed=seed, probe_metrics=("classification",), interventions=interventions),
    )
    name = f"{size}-clamp{clamp}-s{seed}" if clamp else baseline_name(size, seed)
    train_with_probes(config, root / "runs" / name)
    return name


def run_all(root: Path, jobs: list[dict], workers: int) -> None:
    if not (root / "data").exists():
        write_classification_dataset(TASK, root / "data")
    for job in jobs:
        job["root"] = str(root)
    with ProcessPoolExecutor(workers) as pool:
        for name in pool.map(train_one, jobs):
            print("done", name, flush=True)


def summarise(root: Path, name: str) -> dict:
    records = curve(root, name)
    steps = np.array([r["step"] for r in records])
    icl = np.array([r["classification.icl_accuracy"] for r in records])
    formed, width = rise(steps, icl)
    return {"test_loss": records[-1]["test_loss"], "icl": icl[-1], "iwl": records[-1]["classification.iwl_accuracy"],
            "formed": formed, "width": width}


def additivity(root: Path, seed: int) -> dict:
    """ICL query accuracy of the four-head model with each layer-1 head mean-ablated, and all of them."""
    run = load_run(root / "runs" / baseline_name(ADDITIVE_SIZE, seed))
    icl = torch.from_numpy(load_eval_sequences(run.dataset, "icl"))
    test = torch.from_numpy(np.asarray(run.dataset.sequences("test")).astype(np.int64))
    means = mean_head_outputs(run.model, test, [1])
    heads = range(run.model.config.n_head)
    row: dict = {"seed": seed, "none": query_score(run.model, icl, TASK).accuracy}
    scores = query_induction_scores(run.model, icl, TASK)[1]
    for head in heads:
        with ablated(run.model, [(1, head)], mode="mean", means=means):
            row[f"L1H{head}"] = query_score(run.model, icl, TASK).accuracy
        row[f"induction L1H{head}"] = float(scores[head])
    with ablated(run.model, [(1, head) for head in heads], mode="mean", means=means):
        row["all"] = query_score(run.model, icl, TASK).accuracy
    return row


def per_seed(values: pd.Series) -> str:
    return ", ".join("—" if pd.isna(v) else str(int(v)) for v in values)


def tables(root: Path) -> None:
    rows = []
    for seed in SEEDS:
        for clamp in ("", *CONDITIONS):
            name = f"{CIRCUIT_SIZE}-clamp{clamp}-s{seed}" if clamp else baseline_name(CIRCUIT_SIZE, seed)
            if (root / "runs" / name / "summary.json").is_file():
                rows.append({"clamp": clamp or "none", "seed": seed, **summarise(root, name)})
    frame = pd.DataFrame(rows)
    print(f"Clamping ({CIRCUIT_SIZE}; mean [min, max] over seeds {SEEDS[0]}-{SEEDS[-1]}):\n")
    print("| clamped | ICL accuracy | IWL accuracy | test loss | ICL >= 0.5 at step (per seed) "
          "| ICL rise 10-90% (steps, per seed) |")
    print("|" + "---|" * 6)
    for clamp in ("none", *CONDITIONS):
        g = frame[frame.clamp == clamp]
        if len(g):
            print(f"| {clamp} | {spread(g.icl)} | {spread(g.iwl)} | {spread(g.test_loss, 3)} | {per_seed(g.formed)} "
                  f"| {per_seed(g.width)} |")
    print(f"\nAdditivity ({ADDITIVE_SIZE} baselines): ICL query accuracy with layer-1 heads mean-ablated, and each "
          "head's query-induction score\n")
    add = pd.DataFrame([additivity(root, seed) for seed in SEEDS
                        if (root / "runs" / baseline_name(ADDITIVE_SIZE, seed) / "summary.json").is_file()])
    if len(add):
        print("| seed | " + " | ".join(c for c in add.columns if c != "seed") + " |")
        print("|" + "---|" * len(add.columns))
        for _, r in add.iterrows():
            print(f"| {int(r.seed)} | " + " | ".join(f"{r[c]:.2f}" for c in add.columns if c != "seed") + " |")


def figure(root: Path, out: Path) -> None:
    """ICL query accuracy over training per clamping condition, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = ("none", *CONDITIONS)
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.6), sharex=True, sharey=True)
    for ax, clamp in zip(axes.flat, conditions):
        for seed in SEEDS:
            name = f"{CIRCUIT_SIZE}-clamp{clamp}-s{seed}" if clamp != "none" else baseline_name(CIRCUIT_SIZE, seed)
            if (root / "runs" / name / "summary.json").is_file():
                records = curve(root, name)
                ax.plot([r["step"] for r in records], [r["classification.icl_accuracy"] for r in records], lw=0.9,
                        label=f"seed {seed}")
        ax.set_title(f"clamped: {clamp}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("ICL query accuracy", fontsize=8)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"{CIRCUIT_SIZE}: sub-circuits clamped to the trained baseline from step 0 "
                 f"(A = {SUBCIRCUITS['A']}, B = {SUBCIRCUITS['B']}, C = {SUBCIRCUITS['C']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("stage", choices=("grid", "table"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--figure", type=Path, help="also draw the clamping curves into this PNG")
    args = parser.parse_args()
    root = args.out.resolve()
    if args.stage == "grid":
        baselines = [dict(size=size, seed=seed, clamp="") for size in (CIRCUIT_SIZE, ADDITIVE_SIZE) for seed in SEEDS]
        run_all(root, baselines, args.workers)
        run_all(root, [dict(size=CIRCUIT_SIZE, seed=seed, clamp=c) for seed in SEEDS for c in CONDITIONS],
                args.workers)
    tables(root)
    if args.figure:
        figure(root, args.figure)


if __name__ == "__main__":
    main()
