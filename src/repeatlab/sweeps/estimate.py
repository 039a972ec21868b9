"""Estimate a sweep's wall time on this machine from a few timed training steps of each size.

Used to size presets (``repeatlab sweep plan GRID --measure``): for each model size, on each of the grid's
datasets (its data variants), it trains a short control run with the grid's settings (its probe metrics too)
and the per-worker thread count, times the training steps, one evaluation and the grid's probes, then adds up
every run of the grid, with all its evaluations, and shares the total among the workers. It is an estimate:
workers running side by side slow each other down a little.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from repeatlab.config import check_int
from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepare import prepare_dataset
from repeatlab.data.prepared import META_FILE
from repeatlab.sweeps.grid import GridConfig, check_workers, expand_grid
from repeatlab.dynamics import train_with_probes
from repeatlab.layout import DATA_DIR, MIXTURES_DIR, variant_dir
from repeatlab.sweeps.runner import write_probes
from repeatlab.train.config import RunConfig

START_UP_S = 5.0
"""Per-run cost outside training, evaluation and probes (process start, imports, data opening)."""

MAX_TIMED_STEPS = 10_000
"""The most steps timed per size: a rate steadies within tens of steps, and more only delays the estimate."""


@dataclass(frozen=True)
class SweepEstimate:
    """Measured rates and the estimated wall time of a sweep."""

    tokens_per_s: dict[str, float]
    """Training tokens per second of one run of each size (and data variant: ``size data=<variant>``)."""
    eval_s: dict[str, float]
    """Seconds of one evaluation of each size (and variant), with the grid's probe metrics."""
    probes_s: dict[str, float]
    """Seconds of the grid's probes on each size (and variant; 0 without probes)."""
    threads: int
    workers: int
    train_s: float
    """Training seconds summed over every run of the grid."""
    overhead_s: float
    """Mean seconds per run spent outside training steps."""
    wall_s: float
    """Estimated wall time with ``workers`` runs side by side."""


def _key(size: str, variant: str | None) -> str:
    return size if variant is None else f"{size} data={variant}"


def check_timing(steps: int, workers: int | None) -> None:
    """Refuse timing settings that cannot work, before anything is listed, prepared or trained."""
    check_int("--steps", steps, 2, MAX_TIMED_STEPS, reason="steps trained per size only to time them")
    if workers is not None:
        check_workers("--workers", workers)


def estimate_sweep(
    grid: GridConfig,
    *,
    steps: int = 10,
    workers: int | None = None,
    work_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepEstimate:
    """Time ``steps`` training steps, one evaluation and the probes of each size on each of the grid's datasets;
    extrapolate to the grid."""
    say = progress or (lambda _text: None)
    check_timing(steps, workers)
    workers = workers or grid.resources.local_workers
    threads = max(1, int(grid.resources.cpus_per_run))  # as the backends run it
    torch.set_num_threads(threads)
    specs = expand_grid(grid)
    rates, evals, probes = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="repeatlab-estimate-") as tmp:
        root = Path(work_dir) if work_dir is not None else Path(tmp)
        for variant, data in grid.datasets.items():
            data_dir = root / variant_dir(DATA_DIR, variant)
            if not (data_dir / META_FILE).is_file():
                say(f"preparing the grid's data in {data_dir}")
                prepare_dataset(data, data_dir, progress=say)
            mixture_dir = root / f"{variant_dir(MIXTURES_DIR, variant)}-{steps}"
            if not mixture_dir.is_dir():
                make_mixture(data_dir, MixtureSpec(total_tokens=steps * grid.train.batch_tokens), mixture_dir)
            for size in grid.sizes:
                key = _key(size, variant)
                run_dir = root / f"run-{size}-{variant}-{steps}-{time.time_ns()}"
                train_config = replace(grid.train, n_log_evals=0, eval_every=None, checkpoint_every=10**9)
                config = RunConfig(dataset=str(data_dir), mixture=str(mixture_dir), model=size, optim=grid.optim,
                                   train=train_config)
                summary = train_with_probes(config, run_dir)
                rates[key] = summary["tokens"] / summary["train_time_s"]
                evals[key] = max(summary["wall_time_s"] - summary["train_time_s"], 0.0) / 2  # step 0 and final
                probes[key] = 0.0
                if grid.probes is not None:
                    spec = next(s for s in specs if s.point.model == size and s.point.data_variant == variant)
                    started = time.perf_counter()
                    write_probes(run_dir, replace(spec, train=train_config))
                    probes[key] = time.perf_counter() - started
                say(f"{key}: {rates[key]:,.0f} tokens/s, evaluation {evals[key]:.1f} s, probes {probes[key]:.1f} s")
    run_s, train_s = [], 0.0
    for spec in specs:
        key = _key(spec.point.model, spec.point.data_variant)
        n_steps = spec.point.total_tokens // grid.train.batch_tokens
        n_evals = grid.train.n_log_evals + 2 + (n_steps // grid.train.eval_every if grid.train.eval_every else 0)
        seconds = spec.point.total_tokens / rates[key]
        train_s += seconds
        run_s.append(seconds + n_evals * evals[key] + probes[key] + START_UP_S)
    overhead = (sum(run_s) - train_s) / len(run_s)
    wall = max(sum(run_s) / workers, max(run_s))
    return SweepEstimate(tokens_per_s=rates, eval_s=evals, probes_s=probes, threads=threads, workers=workers,
                         train_s=train_s, overhead_s=overhead, wall_s=wall)
