"""Von Oswald et al. (2022)'s headline on CPU, and Hernandez et al.'s repetition knob on it: does a linear
self-attention layer trained on in-context linear regression match one step of gradient descent on its context,
and does repeating part of the training data pull it away from that solution?

The protocol (fixed before any run of the grid was trained; docs/testbeds.md has the results):

* task: ``RegressionTask`` defaults, von Oswald et al.'s (d = 10, N = 10 pairs, x ~ U(-1, 1)^d, w ~ N(0, I), no
  noise); one prepared pool of 384,000 sequences (seed 0), so seeds vary the initialisation, the data order and
  (for repeated runs) which sequences are repeated, not the pool;
* models: ``lsa-1l`` (the headline), ``lsa-2l`` and ``lsa-3l`` (stacked layers);
* 3,000 steps of 128 sequences, warm-up 200, cosine to 10%, no weight decay, gradient clipping at 1; the learning
  rate per size the best of 3e-3, 1e-2, 3e-2 by final test loss for the seed-0 clean run (``tune``);
* headline (``grid``): every size, seeds 0-3, clean data; on 2,048 test sequences, the trained model against 1,
  2 and 3 steps of GD from W = 0 with step sizes tuned on 4,096 separate sequences: loss ratio, cosine of
  predictions and mean cosine of sensitivities d y_hat / d x_q (``probes.regression``);
* repetition (``repetition``): ``lsa-1l`` and ``lsa-2l``, seeds 0-3, f = 0.1 of the training sequences drawn from a
  repeated subset seen E = 10, 100, 1,000 or 10,000 times (3,840 down to 4 distinct sequences), against the f = 0
  control and the control on the (1 - f) T unique sequences alone; outcomes: final test loss, the loss on the
  repeated subset (memorisation), the gap to one GD step (loss ratio) and the sensitivity cosine, and the first
  evaluation step at which the loss ratio is within 10% of GD (``regression.loss_ratio <= 1.1``), logged every 250
  steps on 512 test sequences;
* GD++ (``gdpp``, fixed before it was run on any model): are the stacked models closer to von Oswald et al.'s
  curvature-corrected GD (``probes.gdpp``) than to plain GD? For lsa-2l and lsa-3l (K = 2, 3 layers), each
  headline run against K steps of GD++ with its 2K step sizes tuned on the 4,096 tuning sequences' targets (loss
  ratio and cosines on the 2,048 test sequences, as for GD); and, asking which algorithm the model *is*, K steps of
  plain GD with K free step sizes and K steps of GD++ with 2K, each fitted to the model's own predictions on 1,024
  tuning sequences, then compared with the model on the test sequences (prediction cosine, and the residual
  ``|model - fit| / |fit|``).

    python experiments/regression_gd.py runs/regression tune        # 9 runs
    python experiments/regression_gd.py runs/regression grid        # 12 runs, then the tables
    python experiments/regression_gd.py runs/regression repetition  # 40 runs
    python experiments/regression_gd.py runs/regression gdpp        # after grid: GD++ against lsa-2l, lsa-3l
    python experiments/regression_gd.py runs/regression table --figure docs/testbeds-regression.png

Runs are one thread each, two side by side; finished runs are reused, so a killed command resumes.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch

from repeatlab.data.mixture import MixtureSpec, make_mixture, unique_control_tokens
from repeatlab.data.regression import (RegressionTask, regression_task, tuning_sequences, vector_inputs,
                                      write_regression_dataset)
from repeatlab.dynamics import train_with_probes
from repeatlab.probes.gdpp import predictor, tune_gdpp
from repeatlab.probes.regression import (GD_TUNING_SEQUENCES, compare_to_gd, match_predictor, model_predictions,
                                         regression_inputs)
from repeatlab.report.sections.regression import NEAR_GD
from repeatlab.train import OptimConfig, RunConfig, TrainConfig
from repeatlab.train.run import load_run

SIZES = ("lsa-1l", "lsa-2l", "lsa-3l")
REPETITION_SIZES = ("lsa-1l", "lsa-2l")
STEPS, BATCH, WARMUP, EVAL_EVERY = 3_000, 128, 200, 250
TUNE_LRS = (3e-3, 1e-2, 3e-2)
SEEDS = (0, 1, 2, 3)
FRACTION, EPOCHS = 0.1, (10, 100, 1_000, 10_000)
GD_STEPS = (1, 2, 3)
TEST_SEQUENCES, PROBE_SEQUENCES = 2_048, 512
GDPP_SIZES = {"lsa-2l": 2, "lsa-3l": 3}
FIT_SEQUENCES = 1_024
TASK = RegressionTask(n_train_sequences=STEPS * BATCH)


def mixture_name(epochs: int | None, unique_only: bool = False) -> str:
    """``clean`` (f = 0), ``unique`` (the (1 - f) T unique sequences alone) or ``E{epochs}``."""
    return "unique" if unique_only else ("clean" if epochs is None else f"E{epochs}")


def mixture_spec(name: str, seed: int) -> MixtureSpec:
    total = STEPS * BATCH * TASK.context
    if name == "clean":
        return MixtureSpec(total_tokens=total, seed=seed)
    if name == "unique":
        return MixtureSpec(total_tokens=unique_control_tokens(total, FRACTION), seed=seed)
    return MixtureSpec(total_tokens=total, repeated_fraction=FRACTION, repeated_epochs=int(name[1:]), seed=seed)


def run_name(size: str, mixture: str, seed: int, lr: float) -> str:
    return f"{size}-{mixture}-s{seed}-lr{lr:g}"


def train_one(job: dict) -> str:
    root, size, mixture, seed, lr = Path(job["root"]), job["size"], job["mixture"], job["seed"], job["lr"]
    mixture_dir = root / "mixtures" / f"{mixture}-s{seed}"
    spec = mixture_spec(mixture, seed)
    n_steps = spec.total_tokens // (BATCH * TASK.context)
    config = RunConfig(
        dataset=str(root / "data"), mixture=str(mixture_dir), model=size,
        optim=OptimConfig(lr=lr, warmup_steps=WARMUP, weight_decay=0.0),
        train=TrainConfig(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=EVAL_EVERY,
                          eval_test_sequences=TEST_SEQUENCES, eval_repeated_sequences=512,
                          checkpoint_every=max(n_steps // 2, 1), device="cpu", cpu_threads=1, seed=seed,
                          probe_metrics=("regression",), probe_sequences=PROBE_SEQUENCES),
    )
    name = run_name(size, mixture, seed, lr)
    train_with_probes(config, root / "runs" / name)
    return name


def run_all(root: Path, jobs: list[dict], workers: int) -> None:
    if not (root / "data").exists():
        write_regression_dataset(TASK, root / "data")
    for job in jobs:
        job["root"] = str(root)
        mixture_dir = root / "mixtures" / f"{job['mixture']}-s{job['seed']}"
        if not mixture_dir.exists():  # here, once: runs of several sizes share a mixture
            make_mixture(root / "data", mixture_spec(job["mixture"], job["seed"]), mixture_dir)
    with ProcessPoolExecutor(workers) as pool:
        for name in pool.map(train_one, jobs):
            print("done", name, flush=True)


def curve(root: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (root / "runs" / name / "metrics.jsonl").read_text().splitlines()]


def tuned_lr(root: Path, size: str) -> float:
    return min(TUNE_LRS, key=lambda lr: curve(root, run_name(size, "clean", 0, lr))[-1]["test_loss"])


def spread(values: pd.Series, digits: int = 3) -> str:
    return f"{values.mean():.{digits}f} [{values.min():.{digits}f}, {values.max():.{digits}f}]"


def headline(root: Path) -> pd.DataFrame:
    """Every clean run against 1, 2 and 3 GD steps on the held-out sequences."""
    dataset = load_run(root / "runs" / run_name(SIZES[0], "clean", 0, tuned_lr(root, SIZES[0]))).dataset
    inputs = {k: regression_inputs(dataset, n_sequences=TEST_SEQUENCES, seed=0, n_steps=k) for k in GD_STEPS}
    rows = []
    for size in SIZES:
        lr = tuned_lr(root, size)
        for seed in SEEDS:
            model = load_run(root / "runs" / run_name(size, "clean", seed, lr)).model
            for k in GD_STEPS:
                gd = compare_to_gd(model, inputs[k].rows, gd_lr=inputs[k].gd_lr, n_steps=k)
                rows.append({"size": size, "seed": seed, **vars(gd)})
    return pd.DataFrame(rows)


def gdpp_rows(root: Path) -> pd.DataFrame:
    """The stacked clean runs against tuned GD++, and plain GD / GD++ fitted to each model's predictions."""
    dataset = load_run(root / "runs" / run_name(SIZES[0], "clean", 0, tuned_lr(root, SIZES[0]))).dataset
    test = regression_inputs(dataset, n_sequences=TEST_SEQUENCES, seed=0).rows
    tuning = torch.from_numpy(tuning_sequences(regression_task(dataset), GD_TUNING_SEQUENCES))
    tuned = {k: tune_gdpp(tuning, k) for k in GDPP_SIZES.values()}
    fit_rows = tuning[:FIT_SEQUENCES]
    rows = []
    for size, k in GDPP_SIZES.items():
        lr = tuned_lr(root, size)
        print(f"GD++ over {k} steps tuned on the task: lrs {tuned[k].lrs}, gammas {tuned[k].gammas}", flush=True)
        for seed in SEEDS:
            model = load_run(root / "runs" / run_name(size, "clean", seed, lr)).model
            with torch.no_grad():
                own = model_predictions(model.eval(), vector_inputs(fit_rows))
            row = {"size": size, "seed": seed, "steps": k}
            row.update({f"tuned_{n}": v for n, v in vars(match_predictor(model, test, predictor(tuned[k]))).items()})
            for name, curvature in (("gd_fit", False), ("gdpp_fit", True)):
                fitted = tune_gdpp(fit_rows, k, targets=own, curvature=curvature)
                match = match_predictor(model, test, predictor(fitted))
                row[f"{name}_cosine"], row[f"{name}_residual"] = match.prediction_cosine, match.prediction_difference
                row[f"{name}_sensitivity"] = match.sensitivity_cosine
            rows.append(row)
            print(f"  {size} seed {seed}: {row}", flush=True)
    return pd.DataFrame(rows)


def gdpp_table(root: Path) -> None:
    frame = gdpp_rows(root)
    print(f"\nStacked models against GD++ (mean [min, max] over seeds {SEEDS[0]}-{SEEDS[-1]}; {TEST_SEQUENCES} test "
          "sequences). Tuned on the task: K steps of GD++ with step sizes tuned on the tuning set's targets. Fitted: "
          f"K steps fitted to the model's own predictions on {FIT_SEQUENCES} tuning sequences.\n")
    print("| model | K | GD++ loss | model loss | loss ratio vs tuned GD++ | prediction cosine | sensitivity cosine "
          "| fitted GD (K step sizes): cosine, residual | fitted GD++ (2K): cosine, residual |")
    print("|" + "---|" * 9)
    for size, g in frame.groupby("size"):
        print(f"| {size} | {g.steps.iloc[0]} | {g.tuned_reference_loss.iloc[0]:.4f} | {spread(g.tuned_model_loss, 4)} "
              f"| {spread(g.tuned_loss_ratio)} | {spread(g.tuned_prediction_cosine, 4)} "
              f"| {spread(g.tuned_sensitivity_cosine, 4)} | {spread(g.gd_fit_cosine, 4)}, {spread(g.gd_fit_residual)} "
              f"| {spread(g.gdpp_fit_cosine, 4)}, {spread(g.gdpp_fit_residual)} |")


def repetition_rows(root: Path) -> pd.DataFrame:
    rows = []
    for size in REPETITION_SIZES:
        lr = tuned_lr(root, size)
        for mixture in ("clean", "unique", *(mixture_name(e) for e in EPOCHS)):
            for seed in SEEDS:
                name = run_name(size, mixture, seed, lr)
                if not (root / "runs" / name / "summary.json").is_file():
                    continue
                records = curve(root, name)
                near = next((r["step"] for r in records if r["regression.loss_ratio"] <= NEAR_GD), None)
                last = records[-1]
                rows.append({"size": size, "mixture": mixture, "seed": seed, "test_loss": last["test_loss"],
                             "repeated_loss": last["repeated_loss"], "loss_ratio": last["regression.loss_ratio"],
                             "sensitivity_cosine": last["regression.sensitivity_cosine"], "near_gd": near})
    return pd.DataFrame(rows)


def tables(root: Path) -> None:
    print("Learning-rate check (seed 0, clean data; final test loss):\n")
    for size in SIZES:
        losses = ", ".join(f"{lr:g}: {curve(root, run_name(size, 'clean', 0, lr))[-1]['test_loss']:.4f}"
                           for lr in TUNE_LRS)
        print(f"- {size}: {losses} -> {tuned_lr(root, size):g}")
    frame = headline(root)
    first = frame.iloc[0]
    print(f"\nHeld-out loss of predicting 0: {first.zero_loss:.4f}; of exact least squares: "
          f"{first.least_squares_loss:.2e}. Mean [min, max] over seeds {SEEDS[0]}-{SEEDS[-1]}.\n")
    print("| model | GD steps | GD step size | GD loss | model loss | loss ratio | prediction cosine "
          "| prediction difference | sensitivity cosine |")
    print("|" + "---|" * 9)
    for (size, k), g in frame.groupby(["size", "n_steps"]):
        print(f"| {size} | {k} | {g.gd_lr.iloc[0]:.3f} | {g.gd_loss.iloc[0]:.4f} | {spread(g.model_loss, 4)} "
              f"| {spread(g.loss_ratio)} | {spread(g.prediction_cosine, 4)} | {spread(g.prediction_difference)} "
              f"| {spread(g.sensitivity_cosine, 4)} |")
    reps = repetition_rows(root)
    if reps.empty:
        return
    print(f"\nRepetition (f = {FRACTION}; loss ratio and sensitivity cosine against one GD step on "
          f"{PROBE_SEQUENCES} test sequences; steps to within {NEAR_GD:g}x of GD per seed):\n")
    print("| model | data | test loss | repeated-subset loss | loss ratio vs 1 GD step | sensitivity cosine "
          "| step loss ratio <= 1.1 (per seed) |")
    print("|" + "---|" * 7)
    order = {"clean": 0, "unique": 1, **{mixture_name(e): 2 + i for i, e in enumerate(EPOCHS)}}
    for (size, mixture), g in sorted(reps.groupby(["size", "mixture"]), key=lambda item: (item[0][0],
                                                                                             order[item[0][1]])):
        repeated = "—" if g.repeated_loss.isna().all() else spread(g.repeated_loss, 4)
        near = ", ".join("—" if pd.isna(v) else str(int(v)) for v in g.near_gd)
        print(f"| {size} | {mixture} | {spread(g.test_loss, 4)} | {repeated} | {spread(g.loss_ratio)} "
              f"| {spread(g.sensitivity_cosine, 4)} | {near} |")


def figure(root: Path, out: Path) -> None:
    """Left: loss ratio to one GD step over training (clean runs, one colour per size). Right: final test and
    repeated-subset loss across E for lsa-1l and lsa-2l, with the two controls as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = dict(zip(SIZES, ("tab:blue", "tab:orange", "tab:green")))
    for size in SIZES:
        lr = tuned_lr(root, size)
        for seed in SEEDS:
            records = curve(root, run_name(size, "clean", seed, lr))
            left.plot([r["step"] for r in records], [r["regression.loss_ratio"] for r in records], lw=0.9,
                      color=colours[size], label=size if seed == 0 else None)
    left.axhline(1.0, color="grey", lw=0.6, ls=":")
    left.set_yscale("log")
    left.set_xlabel("step", fontsize=8)
    left.set_ylabel("test loss / loss of one GD step", fontsize=8)
    left.legend(fontsize=7, frameon=False)
    reps = repetition_rows(root)
    for size in REPETITION_SIZES:
        g = reps[reps["size"] == size]
        means = g.groupby("mixture").mean(numeric_only=True)
        xs = list(EPOCHS)
        left_of = [mixture_name(e) for e in EPOCHS]
        right.plot(xs, [means.loc[m, "test_loss"] for m in left_of], marker="o", color=colours[size],
                   label=f"{size} test")
        right.plot(xs, [means.loc[m, "repeated_loss"] for m in left_of], marker="x", ls="--", color=colours[size],
                   label=f"{size} repeated subset")
        right.axhline(means.loc["clean", "test_loss"], color=colours[size], lw=0.6, ls=":")
        right.axhline(means.loc["unique", "test_loss"], color=colours[size], lw=0.6, ls="-.")
    right.set_xscale("log")
    right.set_xlabel(f"E (f = {FRACTION}); dotted: clean control, dash-dot: unique-only control", fontsize=8)
    right.set_ylabel("final loss (mean of seeds)", fontsize=8)
    right.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("stage", choices=["tune", "grid", "repetition", "gdpp", "table"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    if args.stage == "tune":
        run_all(args.root, [{"size": s, "mixture": "clean", "seed": 0, "lr": lr} for s in SIZES for lr in TUNE_LRS],
                args.workers)
    elif args.stage == "grid":
        run_all(args.root, [{"size": s, "mixture": "clean", "seed": seed, "lr": tuned_lr(args.root, s)}
                            for s in SIZES for seed in SEEDS], args.workers)
    elif args.stage == "repetition":
        mixtures = ["unique", *(mixture_name(e) for e in EPOCHS)]
        run_all(args.root, [{"size": s, "mixture": m, "seed": seed, "lr": tuned_lr(args.root, s)}
                            for s in REPETITION_SIZES for m in mixtures for seed in SEEDS], args.workers)
    if args.stage in ("grid", "repetition", "table"):
        tables(args.root)
    if args.stage == "gdpp":
        gdpp_table(args.root)
    if args.figure:
        figure(args.root, args.figure)


if __name__ == "__main__":
    main()
