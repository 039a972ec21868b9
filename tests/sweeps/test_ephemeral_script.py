"""scripts/ephemeral_sweep.sh: a sweep on a machine wiped between calls resumes from the bundle it wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd

from repeatlab.sweeps.grid import grid_to_toml

from .conftest import tiny_grid

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ephemeral_sweep.sh"


def call(grid: Path, bundle: str, out: Path, sweep: Path) -> subprocess.CompletedProcess[str]:
    """One lease of the machine: the sweep directory starts empty, as on a fresh machine."""
    shutil.rmtree(sweep, ignore_errors=True)
    env = {**os.environ, "SWEEP_DIR": str(sweep), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), str(grid), "240", bundle, str(out)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_second_lease_resumes_every_finished_run_from_the_bundle(tmp_path: Path, corpus: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_to_toml(tiny_grid(corpus)), encoding="utf-8")
    sweep = tmp_path / "machine" / "sweep"

    first = call(grid, "-", tmp_path / "out1", sweep)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 finished runs" in first.stdout
    bundle = tmp_path / "out1" / "results.tar.gz"
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert not any("checkpoints" in n or n.endswith(".safetensors") for n in names)
    assert sum(n.endswith("/summary.json") for n in names) == 4
    assert (tmp_path / "out1" / "report.html").stat().st_size > 10_000

    second = call(grid, str(bundle), tmp_path / "out2", sweep)
    assert second.returncode == 0, second.stdout + second.stderr
    log = (tmp_path / "out2" / "sweep.log").read_text(encoding="utf-8")
    assert "4 runs: 4 done, 0 failed (skipped), 0 to run" in log and "start " not in log  # nothing trained again
    frame = pd.read_parquet(sweep / "results.parquet")
    assert (frame["status"] == "done").all() and len(frame) == 4
    assert (tmp_path / "out2" / "report.html").is_file()


def test_missing_bundle_is_a_clear_error(tmp_path: Path) -> None:
    result = call(tmp_path / "grid.toml", str(tmp_path / "nope.tar.gz"), tmp_path / "out", tmp_path / "sweep")
    assert result.returncode == 2 and "no bundle at" in result.stderr
