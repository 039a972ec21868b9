"""Reddy (2023)'s questions on the token version of in-context classification: is the emergence of in-context
learning (ICL) abrupt, and how do the number of classes K, the burstiness B and the Zipf exponent alpha decide
between ICL and in-weights learning (IWL)? A coarse phase diagram, on clean data (no repeats).

The protocol (fixed before any run of the grid was trained; docs/testbeds.md has the results):

* model ``attn-only-min-2l`` (Reddy's minimal network: two single-head attention layers, d_model 64);
* task: ``ClassificationTask`` with ``relabel_fraction = 0`` (every class keeps its label in every training
  sequence, as in Reddy's and Chan et al.'s experiments, so nothing forces ICL: it has to win against memorising
  the class-label map), 8 pairs, 32 labels, 250,000 training sequences;
* grid: K in {128, 1024} x B in {1, 3, 6} at alpha = 0 (uniform classes), and alpha = 1 at B = 3 for each K;
  seeds 0-3, each its own task draw (class-label map, sequences), order and initialisation; then, seed 0 only, the
  large-K extension K = 8192 x B in {1, 3, 6} at alpha = 0. (The protocol first had K = 8192 in the full grid;
  before any K = 8192 result was seen it was cut to the single-seed extension, because one such run took about
  25 minutes on the shared 2-core machine: its 8,225-token unembedding dominates the step.)
* 2,000 steps of 64 sequences, warm-up 100, cosine to 10%; the learning rate the best of 1e-3, 3e-3, 1e-2 by
  final test loss for the seed-0 run of the middle cell (K = 1024, B = 3, alpha = 0) (``tune``);
* every 50 steps: test loss and the query's accuracy on the ``icl`` set (class in context, labels drawn afresh:
  only reading the context helps) and the ``iwl`` set (class not in context: only weights help), the in-weights
  accuracy at first occurrences in training-distribution sequences, and the query's induction-head score.

Outcomes per run: final ICL and IWL accuracy; the step at which ICL accuracy first reaches 0.5; and the width of
its rise, the steps from 10% to 90% of the way from its first value to its maximum (only where that rise is at
least ``MIN_RISE``), against 2,000 steps of training.

    python experiments/classification_phase.py runs/phase tune     # 3 runs
    python experiments/classification_phase.py runs/phase grid     # 32 runs + 3 large-K runs, then the tables
    python experiments/classification_phase.py runs/phase table --figure docs/testbeds-phase.png

Runs are one thread each, two side by side; finished runs are reused, so a killed command resumes.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from repeatlab.data.classification import ClassificationTask, write_classification_dataset
from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.dynamics import train_with_probes
from repeatlab.train import OptimConfig, RunConfig, TrainConfig

SIZE = "attn-only-min-2l"
STEPS, BATCH, WARMUP, EVAL_EVERY = 2_000, 64, 100, 50
TUNE_LRS = (1e-3, 3e-3, 1e-2)
CLASSES, BURSTINESS, SEEDS = (128, 1024), (1, 3, 6), (0, 1, 2, 3)
CELLS = [(k, b, 0.0) for k in CLASSES for b in BURSTINESS] + [(k, 3, 1.0) for k in CLASSES]
LARGE_K_CELLS, LARGE_K_SEEDS = [(8192, b, 0.0) for b in BURSTINESS], (0,)
"""The single-seed large-K extension (see the protocol)."""
TUNE_CELL = (1024, 3, 0.0)
ICL_FORMED = 0.5
MIN_RISE = 0.2
"""ICL accuracy must rise by at least this much over its first value for its rise width to be measured."""


def task(cell: tuple[int, int, float], seed: int) -> ClassificationTask:
    k, b, alpha = cell
    return ClassificationTask(n_classes=k, burstiness=b, zipf_exponent=alpha, relabel_fraction=0.0, seed=seed)


def cell_name(cell: tuple[int, int, float], seed: int) -> str:
    k, b, alpha = cell
    return f"K{k}-B{b}-a{alpha:g}-s{seed}"


def train_one(job: dict) -> str:
    root, cell, seed, lr = Path(job["root"]), tuple(job["cell"]), job["seed"], job["lr"]
    spec = task(cell, seed)
    data = root / "data" / cell_name(cell, seed)
    if not data.exists():
        write_classification_dataset(spec, data)
    mixture = root / "mixtures" / cell_name(cell, seed)
    if not mixture.exists():
        make_mixture(data, MixtureSpec(total_tokens=STEPS * BATCH * spec.context, seed=seed), mixture)
    config = RunConfig(
        dataset=str(data), mixture=str(mixture), model=SIZE,
        optim=OptimConfig(lr=lr, warmup_steps=WARMUP),
        train=TrainConfig(batch_tokens=BATCH * spec.context, n_log_evals=0, eval_every=EVAL_EVERY,
                          eval_test_sequences=256, eval_repeated_sequences=0, checkpoint_every=1_000, device="cpu",
                          cpu_threads=1, seed=seed, probe_metrics=("classification",)),
    )
    name = f"{cell_name(cell, seed)}-lr{lr:g}"
    train_with_probes(config, root / "runs" / name)
    return name


def run_all(root: Path, jobs: list[dict], workers: int) -> None:
    for job in jobs:
        job["root"] = str(root)
    with ProcessPoolExecutor(workers) as pool:
        for name in pool.map(train_one, jobs):
            print("done", name, flush=True)


def curve(root: Path, name: str) -> list[dict]:
    lines = (root / "runs" / name / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "test_loss" in r]


def tuned_lr(root: Path) -> float:
    return min(TUNE_LRS, key=lambda lr: curve(root, f"{cell_name(TUNE_CELL, 0)}-lr{lr:g}")[-1]["test_loss"])


def rise(steps: np.ndarray, accuracy: np.ndarray) -> tuple[int | None, int | None]:
    """(step where ICL accuracy first reaches ``ICL_FORMED``, steps from 10% to 90% of its rise)."""
    formed = next((int(s) for s, a in zip(steps, accuracy) if a >= ICL_FORMED), None)
    low, high = accuracy[0], accuracy.max()
    if high - low < MIN_RISE:
        return formed, None
    t10 = steps[np.argmax(accuracy >= low + 0.1 * (high - low))]
    t90 = steps[np.argmax(accuracy >= low + 0.9 * (high - low))]
    return formed, int(t90 - t10)


def all_runs() -> list[tuple[tuple[int, int, float], int]]:
    """(cell, seed) of the grid and of the large-K extension."""
    return [(c, s) for c in CELLS for s in SEEDS] + [(c, s) for c in LARGE_K_CELLS for s in LARGE_K_SEEDS]


def load_rows(root: Path, lr: float) -> pd.DataFrame:
    rows = []
    for cell, seed in all_runs():
        name = f"{cell_name(cell, seed)}-lr{lr:g}"
        if not (root / "runs" / name / "summary.json").is_file():
            continue
        records = curve(root, name)
        steps = np.array([r["step"] for r in records])
        icl = np.array([r["classification.icl_accuracy"] for r in records])
        formed, width = rise(steps, icl)
        rows.append({"K": cell[0], "B": cell[1], "alpha": cell[2], "seed": seed, "test_loss": records[-1]["test_loss"],
                     "icl": icl[-1], "iwl": records[-1]["classification.iwl_accuracy"], "icl_max": icl.max(),
                     "iwl_first": records[-1]["classification.iwl_first_accuracy"],
                     "induction": records[-1]["classification.induction.max"], "formed": formed, "width": width})
    return pd.DataFrame(rows)


def spread(values: pd.Series, digits: int = 2) -> str:
    return f"{values.mean():.{digits}f} [{values.min():.{digits}f}, {values.max():.{digits}f}]"


def tables(root: Path) -> None:
    lr = tuned_lr(root)
    print("Learning-rate check (seed 0, K = 1024, B = 3, alpha = 0; final test loss / ICL / IWL accuracy):\n")
    for candidate in TUNE_LRS:
        last = curve(root, f"{cell_name(TUNE_CELL, 0)}-lr{candidate:g}")[-1]
        print(f"- lr {candidate:g}: {last['test_loss']:.3f} / {last['classification.icl_accuracy']:.2f} / "
              f"{last['classification.iwl_accuracy']:.2f}")
    frame = load_rows(root, lr)
    print(f"\nlr {lr:g}; {len(frame)} finished runs. Mean [min, max] over seeds; chance accuracy 1/32 = 0.03.\n")
    print("| K | B | alpha | ICL accuracy (icl set) | IWL accuracy (iwl set) | IWL at first occurrences "
          "| query induction score | test loss | ICL >= 0.5 at step (per seed) | ICL rise 10-90% (steps, per seed) |")
    print("|" + "---|" * 10)
    for (k, b, alpha), g in frame.groupby(["K", "B", "alpha"]):
        formed = ", ".join("—" if pd.isna(v) else str(int(v)) for v in g.formed)
        width = ", ".join("—" if pd.isna(v) else str(int(v)) for v in g.width)
        print(f"| {k} | {b} | {alpha:g} | {spread(g.icl)} | {spread(g.iwl)} | {spread(g.iwl_first)} "
              f"| {spread(g.induction)} | {spread(g.test_loss, 3)} | {formed} | {width} |")


def figure(root: Path, out: Path) -> None:
    """ICL (solid) and IWL (dashed) query accuracy over training, one panel per (K, alpha), colour = B; thin lines
    are seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lr = tuned_lr(root)
    panels = [(k, 0.0) for k in (*CLASSES, *(c[0] for c in LARGE_K_CELLS[:1]))] + [(k, 1.0) for k in CLASSES]
    fig, axes = plt.subplots(2, 3, figsize=(10.2, 6.2), sharex=True, sharey=True)
    colours = {1: "tab:blue", 3: "tab:orange", 6: "tab:green"}
    for ax, (k, alpha) in zip([*axes[0], *axes[1]], panels):
        for cell, seed in all_runs():
            name = f"{cell_name(cell, seed)}-lr{lr:g}"
            if cell[0] != k or cell[2] != alpha or not (root / "runs" / name / "summary.json").is_file():
                continue
            records = curve(root, name)
            steps = [r["step"] for r in records]
            label = f"B = {cell[1]}" if seed == 0 else None
            ax.plot(steps, [r["classification.icl_accuracy"] for r in records], color=colours[cell[1]], lw=0.9,
                    label=label)
            ax.plot(steps, [r["classification.iwl_accuracy"] for r in records], color=colours[cell[1]], lw=0.9,
                    ls="--")
        ax.set_title(f"K = {k}, alpha = {alpha:g}" + (" (seed 0 only)" if k not in CLASSES else ""), fontsize=9)
    axes[1, 2].axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("query accuracy (solid ICL, dashed IWL)", fontsize=8)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"{SIZE}, lr {lr:g}, seeds {SEEDS[0]}-{SEEDS[-1]} (thin lines)", fontsize=9)
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
        run_all(root, [dict(cell=TUNE_CELL, seed=0, lr=lr) for lr in TUNE_LRS], args.workers)
        print("tuned learning rate:", tuned_lr(root))
        return
    if args.stage == "grid":
        lr = tuned_lr(root)
        run_all(root, [dict(cell=cell, seed=seed, lr=lr) for seed in SEEDS for cell in CELLS], args.workers)
        run_all(root, [dict(cell=cell, seed=seed, lr=lr) for seed in LARGE_K_SEEDS for cell in LARGE_K_CELLS],
                args.workers)
    tables(root)
    if args.figure:
        figure(root, args.figure)


if __name__ == "__main__":
    main()
