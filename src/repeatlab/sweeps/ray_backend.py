"""The ``ray`` backend: each run is a Ray task holding its CPUs/GPUs, on an existing or a local cluster.

With ``address`` the driver joins a running cluster (``ray start --head`` on one machine, ``ray start
--address=HEAD:6379`` on the others; every node needs repeatlab installed and the sweep directory at
the same path, e.g. a shared file system). Without it a local cluster is started for the sweep and
stopped at the end. A task whose worker process dies is retried by Ray (``max_retries``); the run's
lock and the trainer's checkpoints make the retry resume where the dead worker stopped. A Python
error inside a run is recorded by the run itself and not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from repeatlab.errors import RepeatlabError
from repeatlab.sweeps.runner import Report, RunOutcome, execute_run, fail_run
from repeatlab.sweeps.state import SweepDir


def _task(sweep_root: str, run_id: str, threads: int) -> RunOutcome:
    """Body of a Ray task (a module-level function, so workers import it instead of unpickling code)."""
    return execute_run(sweep_root, run_id, threads=threads)


@dataclass(frozen=True)
class RayBackend:
    """Each run a Ray task holding ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs (``backends.Backend``)."""

    address: str | None = None
    """Ray cluster to join (``HOST:PORT`` or ``auto``); ``None`` starts a local cluster for the sweep."""
    workers: int | None = None
    """At most this many runs in flight at once; ``None``: as many as the cluster's resources allow."""
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 2

    def run(self, sweep_root: Path, run_ids: Sequence[str], report: Report) -> list[RunOutcome]:
        """Execute ``run_ids`` as Ray tasks; returns one outcome per run, in finishing order."""
        try:
            import ray
        except ImportError:
            raise RepeatlabError("the ray backend needs Ray: pip install 'repeatlab[ray]'") from None
        sweep = SweepDir(Path(sweep_root))
        owns = not ray.is_initialized()
        if owns:
            if self.address:
                report({"event": "message", "text": f"connecting to the Ray cluster at {self.address}"})
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                n_cpus = None if self.workers is None else max(1, int(self.workers * self.cpus_per_run + 0.999))
                report({"event": "message", "text": "starting a local Ray cluster for this sweep"})
                ray.init(num_cpus=n_cpus, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
        remote = ray.remote(_task).options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=self.max_retries,
            retry_exceptions=False,
        )
        threads = max(1, int(self.cpus_per_run))
        pending, in_flight = list(run_ids), {}
        outcomes: list[RunOutcome] = []
        limit = self.workers or len(run_ids)
        try:
            while pending or in_flight:
                while pending and len(in_flight) < limit:
                    run_id = pending.pop(0)
                    in_flight[remote.remote(str(sweep.root), run_id, threads)] = run_id
                    report({"event": "start", "run_id": run_id})
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=5.0)
                for ref in ready:
                    run_id = in_flight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died more than max_retries times, or the node
                        outcome = fail_run(sweep.run_dir(run_id), run_id, type(exc).__name__,
                                           str(exc).strip()[:2000], stage="ray")
                    outcomes.append(outcome)
                    report({"event": "finish", **vars(outcome)})
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            if owns:
                ray.shutdown()
        return outcomes
