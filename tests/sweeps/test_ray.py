"""The ray backend against a real Ray cluster started here, including a worker killed in the middle of a run."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from repeatlab.sweeps.grid import expand_grid, grid_to_toml
from repeatlab.sweeps.state import SweepDir

from .conftest import attempts, metric_steps, tiny_grid
from .test_local import CLI, TIMEOUT_S, check_complete, mid_run, wait_for

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'repeatlab[ray]'); see tests/QUARANTINES.md")


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A two-CPU Ray cluster whose head runs in this process; shut down (with its workers) at the end."""
    temp_dir = tempfile.mkdtemp(prefix="rl-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    context = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, object_store_memory=100 * 2**20,
                       logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_ray_backend_retries_a_killed_worker_and_completes_the_grid(
    corpus: Path, tmp_path: Path, ray_address: str
) -> None:
    grid = tiny_grid(corpus, sizes=("tiny-1l",), total_tokens=192 * 16)  # two runs of 24 steps
    (tmp_path / "grid.toml").write_text(grid_to_toml(grid))
    out = tmp_path / "out"
    sweep, expected = SweepDir(out), {s.run_id for s in expand_grid(grid)}
    driver = subprocess.Popen(
        [*CLI, str(tmp_path / "grid.toml"), "--out", str(out), "--backend", "ray", "--address", ray_address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for(lambda: mid_run(sweep) is not None, "a checkpoint of an unfinished run")
        victim = mid_run(sweep)
        assert victim is not None
        worker_pid = attempts(sweep.run_dir(victim))[-1]["pid"]
        assert worker_pid not in (os.getpid(), driver.pid)  # a Ray worker process
        os.kill(worker_pid, signal.SIGKILL)
        output, _ = driver.communicate(timeout=TIMEOUT_S)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, output
    check_complete(sweep, expected)
    starts = [a for a in attempts(sweep.run_dir(victim)) if a["event"] == "start"]
    assert len(starts) == 2 and starts[0]["pid"] == worker_pid != starts[1]["pid"]  # Ray retried it elsewhere
    assert [a["event"] for a in attempts(sweep.run_dir(victim))] == ["start", "start", "done"]
    assert metric_steps(sweep.run_dir(victim))[-1] == 24
