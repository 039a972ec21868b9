"""The ``local`` backend: K worker processes on this machine, each running one run at a time.

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from repeatlab.errors import RepeatlabError
from repeatlab.io import read_jsonl
from repeatlab.sweeps.runner import RunOutcome, execute_run, write_error
from repeatlab.sweeps.state import ATTEMPTS_FILE, SweepDir, record_attempt

Report = Callable[[dict[str, Any]], None]


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


def run_local(
    sweep_root: Path,
    run_ids: list[str],
    *,
    workers: int,
    threads: int | None = None,
    max_retries: int = 2,
    report: Report | None = None,
) -> list[RunOutcome]:
    """Execute ``run_ids`` on ``workers`` local processes; returns one outcome per run, in finishing order."""
    say = report or (lambda _event: None)
    if workers < 1:
        raise RepeatlabError(f"--workers must be at least 1, got {workers}")
    sweep = SweepDir(Path(sweep_root))
    ctx = _context()  # not fork: the driver may hold threads (and CUDA) that a forked child must not inherit
    gpus = visible_gpus()
    threads = threads or default_threads(workers)
    queue, deaths, start_failures = deque(run_ids), dict.fromkeys(run_ids, 0), 0
    outcomes: list[RunOutcome] = []

    def start(index: int) -> _Slot:
        parent, child = ctx.Pipe()
        gpu = gpus[index % len(gpus)] if gpus else None
        process = ctx.Process(target=_worker_main, args=(child, str(sweep.root), threads, gpu, os.getpid()),
                              name=f"repeatlab-sweep-worker-{index}", daemon=True)
        process.start()
        child.close()
        return _Slot(index=index, process=process, conn=parent)

    slots = [start(i) for i in range(min(workers, len(run_ids)))]
    try:
        while queue or any(s.run_id for s in slots):
            for slot in slots:
                if slot.run_id is None and queue:
                    slot.run_id = queue.popleft()
                    slot.conn.send(slot.run_id)
                    say({"event": "start", "run_id": slot.run_id, "worker": slot.index})
            busy = [s for s in slots if s.run_id is not None]
            wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=5.0)
            for slot in busy:
                outcome = _poll(slot)
                if outcome is not None:
                    outcomes.append(outcome)
                    say({"event": "finish", **vars(outcome)})
                    slot.run_id = None
                elif slot.run_id is not None and not slot.process.is_alive():
                    run_id, code = slot.run_id, slot.process.exitcode
                    run_dir = sweep.run_dir(run_id)
                    slot.conn.close()
                    slots[slots.index(slot)] = start(slot.index)
                    if not _started_by(run_dir, slot.process.pid):
                        # The worker died before it began the run: not the run's fault.
                        start_failures += 1
                        if start_failures > max(3, workers):
                            raise RuntimeError(f"local worker processes keep dying on start-up (exit code {code}); "
                                               f"their error output is above")
                        queue.appendleft(run_id)
                        continue
                    deaths[run_id] += 1
                    record_attempt(run_dir, "died", worker_pid=slot.process.pid, exitcode=code)
                    if deaths[run_id] <= max_retries:
                        queue.appendleft(run_id)
                        say({"event": "retry", "run_id": run_id,
                             "reason": f"worker died (exit code {code}); retry {deaths[run_id]} of {max_retries}"})
                    else:
                        message = write_error(run_dir, "WorkerDied", f"the worker process died {deaths[run_id]} "
                                              f"times (last exit code {code}); see attempts.jsonl", stage="worker")
                        failed = RunOutcome(run_id=run_id, status="failed", error=message)
                        outcomes.append(failed)
                        say({"event": "finish", **vars(failed)})
    finally:
        _stop(slots)
    return outcomes


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
