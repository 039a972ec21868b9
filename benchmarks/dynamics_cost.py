"""Share of a training run's wall time spent computing probe scores at its evaluations (``train.probe_metrics``).

    python benchmarks/dynamics_cost.py                                    # tiny-4l and hern-2l, CPU
    python benchmarks/dynamics_cost.py --sizes hern-4l --steps 400 --device cuda

Each size is trained twice on the same synthetic random-token data (a prepared dataset written directly, as in
``probe_speed.py``): without probes and with induction, previous-token, prefix-matching and ICL scores at the
default evaluation schedule (20 log-spaced evaluations), so the share is measured both from the run's own
``probe_time_s`` and from the difference in wall time. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.dynamics import train_with_probes
from repeatlab.io import read_jsonl, write_json
from repeatlab.train import OptimConfig, RunConfig, TrainConfig

PROBES = ("induction", "previous_token", "prefix_matching", "icl")


def synthetic_data(root: Path, *, vocab: int, context: int, n_sequences: int) -> tuple[Path, Path]:
    dataset = root / "prepared"
    dataset.mkdir(parents=True)
    rng = np.random.default_rng(0)
    counts = {}
    for split, n_seq in (("train", n_sequences), ("test", 256)):
        n = n_seq * context + 1
        rng.integers(0, vocab, size=n, dtype=np.uint16).tofile(dataset / f"{split}.bin")
        counts[split] = {"n_tokens": n, "n_sequences": n_seq, "n_documents": 1, "n_chars": n}
    write_json(dataset / "meta.json", {"kind": "prepared", "source": "synthetic", "vocab_size": vocab, "eot_id": 0,
                                       "dtype": "uint16", "context": context, "seed": 0, **counts})
    make_mixture(dataset, MixtureSpec(total_tokens=n_sequences * context), root / "mixture")
    return dataset, root / "mixture"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny-4l", "hern-2l"])
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batch-sequences", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dynamics-cost-"))
    try:
        dataset, mixture = synthetic_data(root, vocab=args.vocab, context=args.context,
                                          n_sequences=args.steps * args.batch_sequences)
        print(f"{'size':<20}{'steps':>7}{'evals':>7}{'wall (s)':>10}{'+probes (s)':>13}{'probe_time_s':>14}"
              f"{'share':>8}")
        for size in args.sizes:
            walls = []
            for probes in ((), PROBES):
                config = RunConfig(dataset=str(dataset), mixture=str(mixture), model=size,
                                   optim=OptimConfig(lr=1e-3, warmup_steps=10),
                                   train=TrainConfig(batch_tokens=args.batch_sequences * args.context,
                                                     device=args.device, cpu_threads=args.threads,
                                                     checkpoint_every=10**9, probe_metrics=probes))
                run_dir = root / f"{size}-{len(probes)}"
                summary = train_with_probes(config, run_dir)
                walls.append(summary["wall_time_s"])
            n_evals = len(read_jsonl(run_dir / "metrics.jsonl"))
            print(f"{size:<20}{summary['steps']:>7}{n_evals:>7}{walls[0]:>10.1f}{walls[1]:>13.1f}"
                  f"{summary['probe_time_s']:>14.2f}{summary['probe_time_share']:>8.1%}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
