"""How a sweep executes its runs: the backend protocol, and the backends by name.

A backend takes run ids of a sweep directory (each run directory holding its ``sweep_run.json``) and brings each to
done or failed through ``runner.execute_run``, reporting ``start``, ``finish`` and ``retry`` events as it goes. The
driver sends every stage through one: the grid's runs, then a fine-tuning stage's. A new backend is one class with
``run`` and one entry in ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from repeatlab.errors import RepeatlabError
from repeatlab.sweeps.grid import ResourcesConfig, check_workers
from repeatlab.sweeps.local import LocalBackend
from repeatlab.sweeps.ray_backend import RayBackend
from repeatlab.sweeps.runner import Report, RunOutcome


class Backend(Protocol):
    def run(self, sweep_root: Path, run_ids: Sequence[str], report: Report) -> list[RunOutcome]:
        """Execute ``run_ids`` of the sweep at ``sweep_root``; one outcome per run, in finishing order."""
        ...


def _local(resources: ResourcesConfig, workers: int | None, address: str | None) -> Backend:
    return LocalBackend(workers=workers or resources.local_workers, threads=max(1, int(resources.cpus_per_run)),
                        max_retries=resources.max_retries)


def _ray(resources: ResourcesConfig, workers: int | None, address: str | None) -> Backend:
    return RayBackend(address=address, workers=workers, cpus_per_run=resources.cpus_per_run,
                      gpus_per_run=resources.gpus_per_run, max_retries=resources.max_retries)


BACKENDS: dict[str, Callable[[ResourcesConfig, int | None, str | None], Backend]] = {"local": _local, "ray": _ray}
"""Backend name -> its factory from the grid's resources, ``--workers`` and ``--address``."""


def make_backend(name: str, resources: ResourcesConfig, *, workers: int | None = None,
                 address: str | None = None) -> Backend:
    """The backend ``name`` for a grid's ``resources`` (``workers``: local processes, or Ray runs in flight)."""
    if name not in BACKENDS:
        raise RepeatlabError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if workers is not None:
        check_workers("--workers", workers)
    return BACKENDS[name](resources, workers, address)


__all__ = ["BACKENDS", "Backend", "make_backend"]
