"""scripts/gpu_check.sh --dry-run: every part of the GPU check runs on the CPU at toy size and leaves its results
in the bundle; a second call resumes the sweep from the first call's bundle and runs nothing again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not any(shutil.which(cxx) for cxx in ("g++", "clang++", "c++")),
                       reason="the dry run compiles the model, which needs a C++ compiler (see tests/QUARANTINES.md)"),
]


def call(out: Path, *extra: str, **budgets: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **budgets, "PYTHON": sys.executable,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", str(out), *extra], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_dry_run_bundle_holds_every_part_and_resumes(tmp_path: Path) -> None:
    first = call(tmp_path / "out1")
    log = (tmp_path / "out1" / "gpu_check.log").read_text(encoding="utf-8")
    assert first.returncode == 0, first.stdout + first.stderr + log
    assert {p.name for p in (tmp_path / "out1").iterdir()} == {"environment.txt", "gpu_check.log", "mfu.json",
                                                                "many_models.json", "sweep"}

    mfu = json.loads((tmp_path / "out1" / "mfu.json").read_text())
    assert mfu["matmul_peak_flops"] > 0 and mfu["skipped"] == []
    assert [r["variant"] for r in mfu["results"]] == ["eager", "compiled"]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 for r in mfu["results"])

    many = json.loads((tmp_path / "out1" / "many_models.json").read_text())
    assert many["skipped"] == []
    assert {(r["k"], r["way"]) for r in many["results"]} == {(k, w) for k in (1, 2) for w in ("processes", "stacked")}
    one = next(r for r in many["results"] if r["k"] == 1 and r["way"] == "processes")
    assert one["x_k_single"] == 1.0
    assert all(r["tokens_per_s"] > 0 for r in many["results"])

    bundle = tmp_path / "out1" / "sweep" / "results.tar.gz"
    with tarfile.open(bundle) as tar:
        assert sum(n.endswith("/summary.json") for n in tar.getnames()) == 2
    assert (tmp_path / "out1" / "sweep" / "report.html").stat().st_size > 10_000
    for part in ("part mfu", "part many", "part sweep", "done"):
        assert part in log

    # A second lease with no time for (a) and (b): they record what they skipped; the sweep resumes, trains nothing.
    second = call(tmp_path / "out2", str(bundle), MFU_BUDGET_S="0", MANY_BUDGET_S="0")
    assert second.returncode == 0, second.stdout + second.stderr
    skipped = json.loads((tmp_path / "out2" / "many_models.json").read_text())["skipped"]
    assert len(skipped) == 4 and all(s["reason"] == "part budget spent" for s in skipped)
    sweep_log = (tmp_path / "out2" / "sweep" / "sweep.log").read_text(encoding="utf-8")
    assert "2 runs: 2 done, 0 failed (skipped), 0 to run" in sweep_log


def test_missing_previous_bundle_is_a_clear_error(tmp_path: Path) -> None:
    result = call(tmp_path / "out", str(tmp_path / "nope.tar.gz"))
    assert result.returncode == 2 and "no bundle at" in result.stderr
