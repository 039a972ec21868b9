"""The on-disk state of a sweep: where everything lives, and what state each run is in.

Sweep directory layout::

    grid.toml                 the resolved grid (``status`` and ``collect`` need only the directory)
    data/                     the prepared dataset, shared by every run
    mixtures/<hash>/          mixtures, shared by runs with the same MixtureSpec
    data-<variant>/           with data variants (``GridConfig.data_variants``): each variant's dataset,
    mixtures-<variant>/<hash>/  and its mixtures, instead of data/ and mixtures/
    runs/<run_id>/            one run: the trainer's files (config.json, metrics.jsonl, checkpoints/,
                              model.safetensors, summary.json) plus
                                sweep_run.json   the RunSpec (grid point, settings) of the run
                                probes.json      probe results, when the grid asks for probes
                                error.json       the error of the last failed attempt
                                attempts.jsonl   one record per attempt start and end (pid, host, time)
                                .heartbeat       touched every few seconds while it works
    runs/.<run_id>.lock       held (``io.output_lock``) by the process working on the run, as by any
                              ``repeatlab train`` of it; the driver holds ``.<sweep dir name>.lock`` beside
                              the sweep directory
    results.parquet           one row per run, rebuilt from runs/ by ``collect``

A run is *done* when ``summary.json`` (written last by the trainer) exists and, if probes were asked
for, ``probes.json`` too; *failed* when ``error.json`` exists; *running* while its lock is held or its
heartbeat is fresh; otherwise *pending* (never started, or interrupted and resumable).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from repeatlab.config import config_hash, from_dict, to_dict
from repeatlab.data.mixture import MixtureSpec
from repeatlab.io import append_jsonl, atomic_write_text, is_locked, lock_file_of, read_json
from repeatlab.layout import (
    ATTEMPTS_FILE,
    DATA_DIR,
    ERROR_FILE,
    GRID_FILE,
    HEARTBEAT_FILE,
    MIXTURES_DIR,
    PROBES_FILE,
    RESULTS_FILE,
    RUNS_DIR,
    SPEC_FILE,
    SUMMARY_FILE,
    variant_dir,
)
from repeatlab.sweeps.grid import RunSpec

RunStatus = Literal["done", "running", "failed", "pending"]
STATUSES: tuple[RunStatus, ...] = ("done", "running", "failed", "pending")

HEARTBEAT_EVERY_S = 10.0
HEARTBEAT_STALE_S = 60.0
"""A run whose heartbeat is younger than this counts as running even where its lock cannot be seen
(another machine on a file system without shared locks)."""


@dataclass(frozen=True)
class SweepDir:
    """Paths of a sweep directory (see the module docstring)."""

    root: Path

    @property
    def grid_file(self) -> Path:
        return self.root / GRID_FILE

    @property
    def data_dir(self) -> Path:
        return self.dataset_dir(None)

    def dataset_dir(self, variant: str | None) -> Path:
        """The prepared dataset of data variant ``variant`` (``None``: the grid's one dataset, ``data/``)."""
        return self.root / variant_dir(DATA_DIR, variant)

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    @property
    def results_file(self) -> Path:
        return self.root / RESULTS_FILE

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def mixture_dir(self, spec: MixtureSpec, variant: str | None = None) -> Path:
        """Where the mixture ``spec`` over data variant ``variant``'s dataset lives (a mixture's sequence ids
        index one dataset, so each variant has its own)."""
        return self.root / variant_dir(MIXTURES_DIR, variant) / config_hash(spec)

    def run_ids(self) -> list[str]:
        """Ids of every run directory holding a ``sweep_run.json``, sorted."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if (p / SPEC_FILE).is_file())


def read_spec(run_dir: Path) -> RunSpec:
    """The ``RunSpec`` stored in a run directory."""
    data = read_json(run_dir / SPEC_FILE)
    return from_dict(RunSpec, data["spec"], where="sweep_run.spec")


def spec_key(spec: RunSpec) -> str:
    """Canonical JSON of a spec: two specs are the same run exactly when their keys are equal."""
    return json.dumps(to_dict(spec), sort_keys=True, separators=(",", ":"))


def stored_specs(sweep: SweepDir) -> dict[str, RunSpec]:
    """Run id -> spec of every run directory, each spec re-read through today's config classes.

    A directory whose spec names a field that no longer exists is left out (it cannot be matched).
    """
    specs = {}
    for run_id in sweep.run_ids():
        with contextlib.suppress(ValueError):  # ConfigError is a ValueError
            specs[run_id] = read_spec(sweep.run_dir(run_id))
    return specs


def assign_run_ids(sweep: SweepDir, specs: list[RunSpec]) -> list[tuple[str, RunSpec]]:
    """The directory name of each spec: an existing run directory holding an equal spec, else its hash.

    A run's id is the hash of its spec when it is first planned. Matching by equality afterwards keeps
    finished runs when a later version of repeatlab adds a config field (its default fills the stored
    spec, so the spec is equal while its hash is not).
    """
    existing = {spec_key(spec): run_id for run_id, spec in stored_specs(sweep).items()}
    return [(existing.get(spec_key(spec), spec.run_id), spec) for spec in specs]


def is_done(run_dir: Path, spec: RunSpec) -> bool:
    return (run_dir / SUMMARY_FILE).is_file() and (spec.probes is None or (run_dir / PROBES_FILE).is_file())


def run_status(run_dir: Path, spec: RunSpec) -> RunStatus:
    """The state of one run, read from its directory (see the module docstring)."""
    if is_done(run_dir, spec):
        return "done"
    if is_locked(lock_file_of(run_dir)) or _remote_heartbeat_age(run_dir) < HEARTBEAT_STALE_S:
        return "running"
    if (run_dir / ERROR_FILE).is_file():
        return "failed"
    return "pending"


def _remote_heartbeat_age(run_dir: Path) -> float:
    """Seconds since the heartbeat of a worker on another machine (``inf`` if none, or if it is on this
    machine, where the lock alone tells whether the worker is alive)."""
    path = run_dir / HEARTBEAT_FILE
    try:
        if path.read_text(encoding="utf-8").strip() == socket.gethostname():
            return float("inf")
        return time.time() - path.stat().st_mtime
    except (FileNotFoundError, UnicodeDecodeError):
        return float("inf")


def read_error(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / ERROR_FILE
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError:
        return {"type": "CorruptErrorFile", "message": f"{path} is not valid JSON"}


def record_attempt(run_dir: Path, event: str, **fields: Any) -> None:
    """Append an attempt record (``start``, ``done``, ``failed``, ``died``) to ``attempts.jsonl``."""
    append_jsonl(run_dir / ATTEMPTS_FILE, {"event": event, "time": time.time(), "pid": os.getpid(),
                                           "host": socket.gethostname(), **fields})


# ----------------------------------------------------------------------------- heartbeats

@contextlib.contextmanager
def heartbeat(run_dir: Path, every_s: float = HEARTBEAT_EVERY_S) -> Iterator[None]:
    """Write this machine's name to ``.heartbeat`` and touch it every ``every_s`` seconds from a daemon thread,
    until the block ends."""
    path = run_dir / HEARTBEAT_FILE
    stop = threading.Event()

    atomic_write_text(path, socket.gethostname())

    def beat() -> None:
        while True:
            with contextlib.suppress(OSError):
                path.touch()
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_dir.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
