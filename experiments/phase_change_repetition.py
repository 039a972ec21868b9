"""Does a repeated subset stop the induction-head phase change? A CPU experiment on synthetic data.

``attn-only-tiny-2l`` trained for ``--steps`` steps of 32 sequences on ``repeatlab.data.synthetic`` (letters where
in-context copying pays), as a control and with half its tokens (f = 0.5) repeats of a subset seen E = 100 or
1,000 times, for each seed (the seed draws the subset, the data order and the initialisation). The layer-1
induction score (max over heads, on random repeated sequences) is logged every 250 steps; the script prints, per
run, the first step at which it reaches 0.5 ("never" if it does not) and its last value.

    python experiments/phase_change_repetition.py runs/phase-change --seeds 0-7    # ~30 s per run, 1 thread

Runs are resumed or skipped when the output directory already holds them. Results: docs/reproduction.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.synthetic import INDUCTION_CONTEXT, write_induction_dataset
from repeatlab.dynamics import train_with_probes
from repeatlab.train import OptimConfig, RunConfig, TrainConfig

BATCH = 32
POINTS = ((0.0, 1), (0.5, 100), (0.5, 1000))
FORMED = 0.5


def run(root: Path, f: float, epochs: int, seed: int, steps: int) -> list[dict]:
    name = "control" if f == 0 else f"f{f:g}-E{epochs}"
    name = f"{name}-s{seed}"
    mixture = root / "mixtures" / name
    if not mixture.exists():
        tokens = steps * BATCH * INDUCTION_CONTEXT
        spec = (MixtureSpec(total_tokens=tokens, seed=seed) if f == 0 else
                MixtureSpec(total_tokens=tokens, repeated_fraction=f, repeated_epochs=epochs, seed=seed))
        make_mixture(root / "prepared", spec, mixture)
    config = RunConfig(
        dataset=str(root / "prepared"), mixture=str(mixture), model="attn-only-tiny-2l",
        optim=OptimConfig(lr=4e-3, warmup_steps=50, weight_decay=0.0, min_lr_ratio=1.0),
        train=TrainConfig(batch_tokens=BATCH * INDUCTION_CONTEXT, n_log_evals=0, eval_every=250,
                          eval_test_sequences=16, eval_repeated_sequences=16 if f else 0, checkpoint_every=500,
                          device="cpu", cpu_threads=1, probe_metrics=("induction", "previous_token"),
                          probe_sequences=16, seed=seed),
    )
    train_with_probes(config, root / "runs" / name)
    return [json.loads(line) for line in (root / "runs" / name / "metrics.jsonl").read_text().splitlines()]


def layer1_induction(record: dict) -> float:
    return max(v for k, v in record.items() if k.startswith("induction.L1H"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", default="0-7", help="first-last, e.g. 0-7")
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    first, last = (int(s) for s in args.seeds.split("-"))
    if not (args.out / "prepared").exists():
        write_induction_dataset(args.out / "prepared", n_train=args.steps * BATCH + 1, n_test=64)
    print(f"{'f':>4} {'E':>5} {'seed':>4} {'formed at step':>14} {'last L1 induction':>17} {'test loss':>9}")
    for seed in range(first, last + 1):
        for f, epochs in POINTS:
            records = run(args.out, f, epochs, seed, args.steps)
            formed = next((r["step"] for r in records if layer1_induction(r) >= FORMED), "never")
            print(f"{f:>4g} {epochs:>5} {seed:>4} {formed!s:>14} {layer1_induction(records[-1]):>17.2f} "
                  f"{records[-1]['test_loss']:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
