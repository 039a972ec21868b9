"""Execute one run of a sweep inside a worker process: mixture, training, probes, and the record of it.

``execute_run`` is what every backend calls (a local worker process or a Ray task). It is idempotent
and safe to call again after any crash: it holds the run's lock for its whole duration (so no two
processes ever work on one run), returns at once for a finished run, resumes an interrupted one from
its last checkpoint (the trainer resumes exactly), runs only the probes when training is finished but
they are not, and records a Python error in ``error.json`` instead of raising it. A worker killed
outright leaves no error record: the backend notices the death and restarts the run.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from dataclasses import dataclass, replace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from repeatlab.config import to_dict
from repeatlab.data.mixture import MANIFEST_FILE, make_mixture
from repeatlab.dynamics import train_with_probes
from repeatlab.io import output_lock, write_json
from repeatlab.layout import CONFIG_FILE, ERROR_FILE, PROBES_FILE, SUMMARY_FILE
from repeatlab.probes.suite import run_probes
from repeatlab.records import RunStatus, is_done, read_config, read_record, write_record
from repeatlab.sweeps.grid import RunSpec
from repeatlab.sweeps.state import AnySpec, ConfigRunSpec, SweepDir, heartbeat, read_spec, record_attempt
from repeatlab.sweeps.variants import with_siblings
from repeatlab.train.config import RunConfig
from repeatlab.train.run import load_run


Report = Callable[[dict[str, Any]], None]
"""Receives a sweep's progress events (``{"event": "start" | "finish" | "retry" | "message", ...}``)."""


@dataclass(frozen=True)
class RunOutcome:
    """What happened to a run in one ``execute_run`` call (sent back to the sweep's driver)."""

    run_id: str
    status: RunStatus
    """``done`` or ``failed``."""
    error: str | None = None
    """``Type: message`` of the error of a failed run."""
    test_loss: float | None = None
    repeated_loss: float | None = None
    wall_time_s: float | None = None
    """Seconds this call took (training resumed from a checkpoint counts only the resumed part)."""


def execute_run(sweep_root: str | Path, run_id: str, *, threads: int | None = None) -> RunOutcome:
    """Bring run ``run_id`` of the sweep at ``sweep_root`` to done, or record why it failed."""
    sweep = SweepDir(Path(sweep_root))
    run_dir = sweep.run_dir(run_id)
    spec = read_spec(run_dir)
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    started = time.perf_counter()
    with output_lock(run_dir, wait=True):
        if is_done(run_dir, probes_required=spec.probes is not None):
            return _done(run_id, run_dir, 0.0)
        record_attempt(run_dir, "start", threads=torch.get_num_threads())
        with heartbeat(run_dir):
            stage = "setup"
            try:
                config = run_config(sweep, spec)
                write_run_config(run_dir, config)
                stage = "train"
                train_with_probes(config, run_dir)
                if spec.probes is not None and not (run_dir / PROBES_FILE).is_file():
                    stage = "probes"
                    write_probes(run_dir, spec)
            except Exception as exc:  # recorded, not raised: one bad run must not stop the sweep
                message = write_error(run_dir, type(exc).__name__, str(exc), stage=stage,
                                      details=traceback.format_exc())
                return RunOutcome(run_id=run_id, status="failed", error=message,
                                  wall_time_s=round(time.perf_counter() - started, 3))
        with contextlib.suppress(FileNotFoundError):
            (run_dir / ERROR_FILE).unlink()  # an earlier failure was retried successfully
        record_attempt(run_dir, "done")
        return _done(run_id, run_dir, time.perf_counter() - started)


def fail_run(run_dir: Path, run_id: str, type_name: str, message: str, *, stage: str) -> RunOutcome:
    """Record that a backend gave up on a run (its worker died too often, its Ray task was lost): the outcome."""
    return RunOutcome(run_id=run_id, status="failed", error=write_error(run_dir, type_name, message, stage=stage))


def write_error(run_dir: Path, type_name: str, message: str, *, stage: str, details: str = "") -> str:
    """Record a failed attempt in ``error.json`` and ``attempts.jsonl``; returns ``Type: message``."""
    write_json(run_dir / ERROR_FILE, {"type": type_name, "message": message, "stage": stage,
                                      "traceback": details, "time": time.time()})
    record_attempt(run_dir, "failed", stage=stage, error=f"{type_name}: {message}")
    return f"{type_name}: {message}"


def _done(run_id: str, run_dir: Path, seconds: float) -> RunOutcome:
    summary = read_record(run_dir / SUMMARY_FILE)
    return RunOutcome(run_id=run_id, status="done", test_loss=summary.get("test_loss"),
                      repeated_loss=summary.get("repeated_loss"), wall_time_s=round(seconds, 3))


def run_config(sweep: SweepDir, spec: AnySpec) -> RunConfig:
    """The trainer's config of a run: a grid run's over the sweep's dataset and its mixture (built here once),
    a ``ConfigRunSpec``'s as stored."""
    if isinstance(spec, ConfigRunSpec):
        return spec.config
    config = spec.run_config(sweep.dataset_dir(spec.point.data_variant), ensure_mixture(sweep, spec))
    # "@<run id>": a sibling run of this sweep (GridConfig.train_variants)
    return replace(config, train=with_siblings(config.train, lambda run_id: str(sweep.run_dir(run_id))))


def ensure_mixture(sweep: SweepDir, spec: RunSpec) -> Path:
    """The run's mixture directory, built once under a lock (runs with the same spec and data variant share it)."""
    mixture_spec, variant = spec.point.mixture_spec(), spec.point.data_variant
    out = sweep.mixture_dir(mixture_spec, variant)
    if (out / MANIFEST_FILE).is_file():
        return out
    with output_lock(out, wait=True):
        if not (out / MANIFEST_FILE).is_file():
            make_mixture(sweep.dataset_dir(variant), mixture_spec, out)
    return out


def write_run_config(run_dir: Path, config: RunConfig) -> None:
    """Write the trainer's ``config.json`` before training, so the run directory is one from the start.

    A stored config that differs only in the dataset/mixture paths (the sweep directory was moved, or a
    cluster node mounts it elsewhere) or in fields added to ``RunConfig`` since it was written (at their
    defaults) is rewritten: a run's identity is its path-free ``RunSpec``.
    """
    config = config.resolved()
    asked = json.loads(json.dumps(to_dict(config)))
    path = run_dir / CONFIG_FILE
    if path.is_file():
        if read_record(path) == asked:
            return
        try:  # re-read through today's RunConfig: fields added since are filled with their defaults
            stored = read_config(RunConfig, path)
        except ValueError:
            return  # a field that no longer exists: left for the trainer to report
        if replace(stored, dataset=config.dataset, mixture=config.mixture) != config:
            return  # a real mismatch, which the trainer reports with the differing fields
    write_record(path, asked)


def write_probes(run_dir: Path, spec: AnySpec) -> dict[str, Any]:
    """Run the grid's probes on the finished model and write ``probes.json``."""
    use_cuda = spec.train.device != "cpu" and torch.cuda.is_available()
    loaded = load_run(run_dir, device="cuda" if use_cuda else "cpu")
    results = run_probes(loaded.model, loaded.dataset, loaded.mixture, spec.probes).to_dict()
    write_record(run_dir / PROBES_FILE, results)
    return results
