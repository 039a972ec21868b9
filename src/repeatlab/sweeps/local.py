"""The ``local`` backend: K worker processes on this machine, each running one run at a time.

Three parts: ``WorkerPool`` dispatches run ids to workers and notices their deaths, ``RetryPolicy`` decides what a
death means for the run, and ``LocalBackend.run`` joins them (error records are the runner's ``fail_run``).
Each worker is a long-lived process (forked from a fork server that has imported torch once) fed run ids through a pipe, so the driver always knows
which run a worker holds: when a worker dies (killed, out of memory) the run is restarted in a fresh
worker up to ``max_retries`` times, then recorded as failed; Python errors are recorded by the worker
and not retried. Workers exit as soon as the driver dies, however it dies (so no orphan trains on, holding
a run's lock and the GPU, after the driver was killed). On a GPU machine worker ``i`` sees GPU ``i mod n``, so K
workers on one GPU share it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import select
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Literal

from repeatlab.errors import RepeatlabError
from repeatlab.io import read_jsonl
from repeatlab.layout import ATTEMPTS_FILE
from repeatlab.sweeps.runner import Report, RunOutcome, execute_run, fail_run
from repeatlab.sweeps.state import SweepDir, record_attempt


def _exit_with_driver(driver_pid: int) -> None:
    """Exit this worker at once when the driver process ends (a watchdog thread).

    Workers are children of the fork server, not of the driver, and the fork server outlives the driver
    while any worker lives (workers hold its liveness pipe), so ``PR_SET_PDEATHSIG`` cannot do this.
    A pidfd (Linux) wakes the thread exactly when the driver exits; elsewhere it polls once a second.
    """
    try:
        pidfd = os.pidfd_open(driver_pid)
    except ProcessLookupError:
        os._exit(1)  # the driver is already gone
    except (AttributeError, OSError):
        pidfd = None

    def watch() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])
        else:
            while _alive(driver_pid):
                time.sleep(1.0)
        os._exit(1)  # as if killed: the run resumes from its last checkpoint under the next driver

    threading.Thread(target=watch, name="driver-watchdog", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        pass
    return True


def _context() -> mp.context.BaseContext:
    """A fork server that has imported torch and the runner once, so workers start in a fraction of a
    second (and fork no threads or CUDA state); spawn where there is no fork server."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["repeatlab.sweeps.runner"])
        return ctx
    return mp.get_context("spawn")


def _worker_main(conn: Connection, sweep_root: str, threads: int, gpu: str | None, driver_pid: int) -> None:
    """Loop of a worker process: receive a run id, execute it, send back the outcome; stop on ``None``/EOF."""
    _exit_with_driver(driver_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it stops the workers
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    while True:
        try:
            run_id = conn.recv()
        except (EOFError, OSError):
            return
        if run_id is None:
            return
        conn.send(execute_run(sweep_root, run_id, threads=threads))


@dataclass
class _Slot:
    index: int
    process: BaseProcess
    conn: Connection
    run_id: str | None = None


def visible_gpus() -> list[str]:
    """GPU ids this process may use (``CUDA_VISIBLE_DEVICES`` or all CUDA devices); empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [g.strip() for g in listed.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def default_threads(workers: int) -> int:
    """Torch threads per worker so K workers share this machine's cores without oversubscribing them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


@dataclass(frozen=True)
class LocalBackend:
    """``workers`` worker processes on this machine, ``threads`` torch threads each (``backends.Backend``)."""

    workers: int
    threads: int | None = None
    """Torch threads per worker; ``None``: this machine's cores shared evenly (``default_threads``)."""
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise RepeatlabError(f"--workers must be at least 1, got {self.workers}")

    def run(self, sweep_root: Path, run_ids: Sequence[str], report: Report) -> list[RunOutcome]:
        """Execute ``run_ids``; returns one outcome per run, in finishing order."""
        sweep = SweepDir(Path(sweep_root))
        policy = RetryPolicy(max_retries=self.max_retries, max_start_failures=max(3, self.workers))
        queue, outcomes = deque(run_ids), []

        def finish(outcome: RunOutcome) -> None:
            outcomes.append(outcome)
            report({"event": "finish", **vars(outcome)})

        threads = self.threads or default_threads(self.workers)
        with WorkerPool(sweep.root, size=min(self.workers, len(run_ids)), threads=threads) as pool:
            while queue or pool.busy():
                for slot in pool.idle():
                    if not queue:
                        break
                    pool.assign(slot, queue.popleft())
                    report({"event": "start", "run_id": slot.run_id, "worker": slot.index})
                for event in pool.wait():
                    if isinstance(event, RunOutcome):
                        finish(event)
                        continue
                    run_dir = sweep.run_dir(event.run_id)
                    decision = policy.on_death(event.run_id, started=_started_by(run_dir, event.pid),
                                               exitcode=event.exitcode)
                    if decision != "requeue":
                        record_attempt(run_dir, "died", worker_pid=event.pid, exitcode=event.exitcode)
                    if decision == "fail":
                        finish(fail_run(run_dir, event.run_id, "WorkerDied", f"the worker process died "
                                        f"{policy.deaths[event.run_id]} times (last exit code {event.exitcode}); "
                                        f"see attempts.jsonl", stage="worker"))
                        continue
                    queue.appendleft(event.run_id)
                    if decision == "retry":
                        report({"event": "retry", "run_id": event.run_id,
                                "reason": f"worker died (exit code {event.exitcode}); retry "
                                          f"{policy.deaths[event.run_id]} of {self.max_retries}"})
        return outcomes


@dataclass
class RetryPolicy:
    """What to do when a worker dies holding a run.

    A death before the run recorded its start is the worker's, not the run's: the run is requeued (and many such
    deaths mean workers cannot start at all, an error). A death during the run is retried up to ``max_retries``
    times, then the run fails.
    """

    max_retries: int
    max_start_failures: int
    deaths: Counter[str] = field(default_factory=Counter)
    start_failures: int = 0

    def on_death(self, run_id: str, *, started: bool, exitcode: int | None) -> Literal["requeue", "retry", "fail"]:
        if not started:
            self.start_failures += 1
            if self.start_failures > self.max_start_failures:
                raise RuntimeError(f"local worker processes keep dying on start-up (exit code {exitcode}); "
                                   f"their error output is above")
            return "requeue"
        self.deaths[run_id] += 1
        return "retry" if self.deaths[run_id] <= self.max_retries else "fail"


@dataclass(frozen=True)
class WorkerDied:
    """A worker process ended while it held ``run_id``."""

    run_id: str
    pid: int | None
    exitcode: int | None


class WorkerPool:
    """Worker processes fed run ids one at a time; ``wait`` returns what finished and which workers died (each
    dead worker is replaced at once). Leaving the block stops them all (busy ones are killed: their runs resume
    from a checkpoint)."""

    def __init__(self, sweep_root: Path, *, size: int, threads: int) -> None:
        self._root, self._threads = str(sweep_root), threads
        self._ctx = _context()  # not fork: the driver may hold threads (and CUDA) that a forked child must not inherit
        self._gpus = visible_gpus()
        self.slots = [self._start(i) for i in range(size)]

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        _stop(self.slots)

    def busy(self) -> list[_Slot]:
        return [s for s in self.slots if s.run_id is not None]

    def idle(self) -> list[_Slot]:
        return [s for s in self.slots if s.run_id is None]

    def assign(self, slot: _Slot, run_id: str) -> None:
        slot.run_id = run_id
        slot.conn.send(run_id)

    def wait(self, timeout_s: float = 5.0) -> list[RunOutcome | WorkerDied]:
        """Block until a busy worker sends an outcome or dies (or ``timeout_s``); free the slots that did."""
        busy = self.busy()
        wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=timeout_s)
        events: list[RunOutcome | WorkerDied] = []
        for slot in busy:
            outcome = _poll(slot)
            if outcome is not None:
                events.append(outcome)
                slot.run_id = None
            elif not slot.process.is_alive():
                events.append(WorkerDied(run_id=slot.run_id or "", pid=slot.process.pid,
                                         exitcode=slot.process.exitcode))
                slot.conn.close()
                self.slots[self.slots.index(slot)] = self._start(slot.index)
        return events

    def _start(self, index: int) -> _Slot:
        parent, child = self._ctx.Pipe()
        gpu = self._gpus[index % len(self._gpus)] if self._gpus else None
        process = self._ctx.Process(target=_worker_main, args=(child, self._root, self._threads, gpu, os.getpid()),
                                    name=f"repeatlab-sweep-worker-{index}", daemon=True)
        process.start()
        child.close()
        return _Slot(index=index, process=process, conn=parent)


def _started_by(run_dir: Path, pid: int | None) -> bool:
    """Whether process ``pid`` recorded the start of an attempt at the run."""
    return any(a["event"] == "start" and a["pid"] == pid for a in read_jsonl(run_dir / ATTEMPTS_FILE))


def _poll(slot: _Slot) -> RunOutcome | None:
    """The outcome a busy worker sent, or ``None`` if it has none (still working, or dead)."""
    try:
        if slot.conn.poll():
            return slot.conn.recv()
    except (EOFError, OSError):
        return None
    return None


def _stop(slots: list[_Slot]) -> None:
    """Ask idle workers to exit, kill busy ones (their runs resume from a checkpoint), and reap all."""
    for slot in slots:
        if slot.run_id is None and slot.process.is_alive():
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        else:
            slot.process.kill()
    for slot in slots:
        slot.process.join(timeout=10)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=5)
        slot.conn.close()
