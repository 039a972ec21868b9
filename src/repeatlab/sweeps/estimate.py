"""Estimate a sweep's wall time on this machine from a few timed training steps of each size.

Used to size presets (``repeatlab sweep plan GRID --measure``): for each model size it trains a short
control run with the grid's settings and the per-worker thread count, times the training steps, one
evaluation and the grid's probes, then adds up every run of the grid and shares the total among the
workers. It is an estimate: workers running side by side slow each other down a little.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepare import prepare_dataset
from repeatlab.data.prepared import META_FILE
from repeatlab.errors import RepeatlabError
from repeatlab.sweeps.grid import GridConfig, expand_grid
from repeatlab.sweeps.runner import write_probes
from repeatlab.train.config import RunConfig
from repeatlab.train.run import train

START_UP_S = 5.0
"""Per-run cost outside training, evaluation and probes (process start, imports, data opening)."""


@dataclass(frozen=True)
class SweepEstimate:
    """Measured rates and the estimated wall time of a sweep."""

    tokens_per_s: dict[str, float]
    """Training tokens per second of one run of each size."""
    eval_s: dict[str, float]
    """Seconds of one evaluation of each size."""
    probes_s: dict[str, float]
    """Seconds of the grid's probes on each size (0 without probes)."""
    threads: int
    workers: int
    train_s: float
    """Training seconds summed over every run of the grid."""
    overhead_s: float
    """Mean seconds per run spent outside training steps."""
    wall_s: float
    """Estimated wall time with ``workers`` runs side by side."""


def estimate_sweep(
    grid: GridConfig,
    *,
    steps: int = 10,
    workers: int | None = None,
    work_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepEstimate:
    """Time ``steps`` training steps, one evaluation and the probes of each size; extrapolate to the grid."""
    say = progress or (lambda _text: None)
    if steps < 2:
        raise RepeatlabError(f"--steps must be at least 2, got {steps}")
    workers = workers or grid.resources.local_workers
    threads = max(1, int(grid.resources.cpus_per_run))  # as the backends run it
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="repeatlab-estimate-") as tmp:
        root = Path(work_dir) if work_dir is not None else Path(tmp)
        data_dir = root / "data"
        if not (data_dir / META_FILE).is_file():
            say(f"preparing the grid's data in {data_dir}")
            prepare_dataset(grid.data, data_dir, progress=say)
        mixture_dir = root / f"mixture-{steps}"
        if not mixture_dir.is_dir():
            make_mixture(data_dir, MixtureSpec(total_tokens=steps * grid.train.batch_tokens), mixture_dir)
        rates, evals, probes = {}, {}, {}
        for size in grid.sizes:
            run_dir = root / f"run-{size}-{steps}-{time.time_ns()}"
            train_config = replace(grid.train, n_log_evals=0, eval_every=None, checkpoint_every=10**9)
            config = RunConfig(dataset=str(data_dir), mixture=str(mixture_dir), model=size, optim=grid.optim,
                               train=train_config)
            summary = train(config, run_dir)
            rates[size] = summary["tokens"] / summary["train_time_s"]
            evals[size] = max(summary["wall_time_s"] - summary["train_time_s"], 0.0) / 2  # step 0 and final
            probes[size] = 0.0
            if grid.probes is not None:
                spec = next(s for s in expand_grid(grid) if s.point.model == size)
                started = time.perf_counter()
                write_probes(run_dir, replace(spec, train=train_config))
                probes[size] = time.perf_counter() - started
            say(f"{size}: {rates[size]:,.0f} tokens/s, evaluation {evals[size]:.1f} s, probes {probes[size]:.1f} s")
    n_evals = grid.train.n_log_evals + 2
    run_s, train_s = [], 0.0
    for spec in expand_grid(grid):
        size = spec.point.model
        seconds = spec.point.total_tokens / rates[size]
        train_s += seconds
        run_s.append(seconds + n_evals * evals[size] + probes[size] + START_UP_S)
    overhead = (sum(run_s) - train_s) / len(run_s)
    wall = max(sum(run_s) / workers, max(run_s))
    return SweepEstimate(tokens_per_s=rates, eval_s=evals, probes_s=probes, threads=threads, workers=workers,
                         train_s=train_s, overhead_s=overhead, wall_s=wall)
