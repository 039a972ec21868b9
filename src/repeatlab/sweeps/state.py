"""The on-disk state of a sweep: where everything lives, and what state each run is in.

Sweep directory layout::

    grid.toml                 the resolved grid (``status`` and ``collect`` need only the directory)
    data/                     the prepared dataset, shared by every run
    mixtures/<hash>/          mixtures, shared by runs with the same MixtureSpec
    data-<variant>/           with data variants (``GridConfig.data_variants``): each variant's dataset,
    mixtures-<variant>/<hash>/  and its mixtures, instead of data/ and mixtures/
    runs/<run_id>/            one run: the trainer's files (config.json, metrics.jsonl, checkpoints/,
                              model.safetensors, summary.json) plus
                                sweep_run.json   the RunSpec (grid point, settings) of the run, or for a
                                                 fine-tuning stage's run its ConfigRunSpec
                                probes.json      probe results, when the grid asks for probes
                                error.json       the error of the last failed attempt
                                attempts.jsonl   one record per attempt start and end (pid, host, time)
                                .heartbeat       touched every few seconds while it works
    runs/.<run_id>.lock       held (``io.output_lock``) by the process working on the run, as by any
                              ``repeatlab train`` of it; the driver holds ``.<sweep dir name>.lock`` beside
                              the sweep directory
    results.parquet           one row per run, rebuilt from runs/ by ``collect``
    finetune/                 a grid's ``[finetune]`` stage: a sweep directory of its own (runs/, results.parquet),
                              plus its mixture/ and finetune.json (``repeatlab.dynamics.finetune``)

A run's status (done, running, failed, pending) follows the one rule of ``repeatlab.records.run_status``, which
the report applies too.
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
from typing import Any

from repeatlab.config import config_hash, from_dict, to_dict
from repeatlab.data.mixture import MixtureSpec
from repeatlab.errors import RepeatlabError
from repeatlab.io import append_jsonl, atomic_write_text, read_json
from repeatlab.layout import (
    ATTEMPTS_FILE,
    DATA_DIR,
    ERROR_FILE,
    GRID_FILE,
    HEARTBEAT_FILE,
    MIXTURES_DIR,
    RESULTS_FILE,
    RUNS_DIR,
    SPEC_FILE,
    variant_dir,
)
from repeatlab.probes.config import ProbeConfig
from repeatlab.records import read_record, write_record
from repeatlab.sweeps.grid import RunPoint, RunSpec
from repeatlab.train.config import RunConfig

HEARTBEAT_EVERY_S = 10.0
"""How often a working run touches its heartbeat (``records.HEARTBEAT_STALE_S`` says when it is stale)."""


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


@dataclass(kw_only=True, frozen=True)
class ConfigRunSpec:
    """A run whose trainer config is fixed when it is planned: a fine-tuning stage's, whose dataset, mixture and
    ``init_from`` are paths outside any grid. ``point`` places it in the results table."""

    point: RunPoint
    config: RunConfig
    probes: ProbeConfig | None = None


AnySpec = RunSpec | ConfigRunSpec
_SPEC_TYPES: dict[str, type[RunSpec] | type[ConfigRunSpec]] = {"grid": RunSpec, "config": ConfigRunSpec}
"""``sweep_run.json``'s ``spec_type`` -> the spec class (``grid`` when absent, as every file before the key)."""


def read_spec(run_dir: Path) -> AnySpec:
    """The spec stored in a run directory (``sweep_run.json``)."""
    data = read_record(run_dir / SPEC_FILE)
    kind = data.get("spec_type", "grid")
    if kind not in _SPEC_TYPES:
        raise RepeatlabError(f"{run_dir / SPEC_FILE} has spec_type {kind!r}; this repeatlab knows "
                             f"{', '.join(_SPEC_TYPES)}: upgrade repeatlab")
    return from_dict(_SPEC_TYPES[kind], data["spec"], where="sweep_run.spec")


def write_spec(run_dir: Path, run_id: str, spec: AnySpec) -> None:
    """Store the spec the sweep assigned to a run (``sweep_run.json``)."""
    kind = "config" if isinstance(spec, ConfigRunSpec) else "grid"
    write_record(run_dir / SPEC_FILE, {"run_id": run_id, "spec": to_dict(spec), "spec_type": kind})


def spec_key(spec: RunSpec) -> str:
    """Canonical JSON of a spec: two specs are the same run exactly when their keys are equal."""
    return json.dumps(to_dict(spec), sort_keys=True, separators=(",", ":"))


def stored_specs(sweep: SweepDir) -> dict[str, AnySpec]:
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
