"""Sweep overhead: wall time of a grid of very short runs against the sum of the runs' own times.

Runs the same grid (tiny-1l and tiny-2l, control + 3 repeated points each: 8 runs of 16 steps on byte
tokens, no probes) with the local backend at 1 and 2 workers and with Ray (a local cluster started for the
sweep), each in a fresh directory. A run's own time is its ``summary.json`` wall time (training plus
evaluation); the ratio is sweep wall time / sum of run times, so 1.0 at one worker and 0.5 at two would
mean no overhead at all. Each case runs in a fresh process and its time is that of the ``run_sweep`` call:
worker start-up (fork server or Ray cluster), every run's set-up and the final collect are counted, the
driver's own Python imports and the data preparation (done once beforehand) are not.

    .venv/bin/python benchmarks/sweep_overhead.py [--ray/--no-ray]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repeatlab.data.prepare import PrepareConfig
from repeatlab.io import read_json
from repeatlab.sweeps import GridConfig, ResourcesConfig, run_sweep
from repeatlab.sweeps.driver import prepare_data
from repeatlab.sweeps.state import SweepDir
from repeatlab.train.config import OptimConfig, TrainConfig

CONTEXT = 32
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly vexing bards".split()


def make_grid(corpus: Path) -> GridConfig:
    return GridConfig(
        name="overhead",
        sizes=("tiny-1l", "tiny-2l"),
        total_tokens=128 * CONTEXT,
        repeated_fractions=(0.5,),
        repeated_epochs=(2, 4, 8),
        data=PrepareConfig(source=str(corpus), tokenizer="byte", context=CONTEXT, test_fraction=0.1),
        optim=OptimConfig(lr=3e-3, warmup_steps=2),
        train=TrainConfig(batch_tokens=8 * CONTEXT, n_log_evals=2, eval_test_sequences=16, eval_repeated_sequences=16,
                          checkpoint_every=8, device="cpu"),
        resources=ResourcesConfig(local_workers=1),
    )


def measure(grid: GridConfig, data_from: Path, out: Path, backend: str, workers: int) -> tuple[float, float, int]:
    """(sweep wall seconds, sum of the runs' own seconds, runs) of one fresh sweep."""
    out.mkdir(parents=True)
    shutil.copytree(data_from, out / "data")
    started = time.perf_counter()
    result = run_sweep(grid, out, backend=backend, workers=workers)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    sweep = SweepDir(out)
    own = sum(read_json(sweep.run_dir(o.run_id) / "summary.json")["wall_time_s"] for o in result.outcomes)
    return wall, own, len(result.outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray", action=argparse.BooleanOptionalAction, default=True, help="also measure Ray")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: BACKEND:WORKERS:ROOT, one case per process
    args = parser.parse_args()
    if args.case:
        backend, workers, root = args.case.split(":", 2)
        wall, own, n = measure(make_grid(Path(root) / "corpus"), Path(root) / "prepared" / "data",
                               Path(root) / f"{backend}-{workers}", backend, int(workers))
        print(json.dumps({"wall": wall, "own": own, "runs": n}))
        return
    with tempfile.TemporaryDirectory(prefix="rl-sweep-bench-", dir="/tmp") as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        corpus.mkdir()
        for i in range(120):
            body = " ".join(WORDS[(i * 7 + j * 3 + j * j) % len(WORDS)] for j in range(80))
            (corpus / f"doc{i:03d}.txt").write_text(f"Document {i}. {body}.", encoding="utf-8")
        prepare_data(make_grid(corpus), SweepDir(root / "prepared"), lambda _event: None)
        cases = [("local", 1), ("local", 2)] + ([("ray", 2)] if args.ray else [])
        print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}")
        print("| backend | workers | runs | sweep wall (s) | sum of run times (s) | wall / sum | "
              "wall / (sum / workers) | overhead per run (s) |")
        print("|---|---|---|---|---|---|---|---|")
        for backend, workers in cases:
            # A fresh process per case: each pays its own worker start-up (fork server, Ray cluster) and warm-up.
            done = subprocess.run([sys.executable, __file__, "--case", f"{backend}:{workers}:{root}"],
                                  capture_output=True, text=True, check=True)
            m = json.loads(done.stdout.strip().splitlines()[-1])
            wall, own, n = m["wall"], m["own"], m["runs"]
            print(f"| {backend} | {workers} | {n} | {wall:.1f} | {own:.1f} | {wall / own:.2f} | "
                  f"{wall / (own / workers):.2f} | {(wall - own / workers) / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
