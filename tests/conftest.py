"""Fixtures shared across test packages: a process that holds a repeatlab output lock until told to let go."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
_HOLD = """
import sys, time
from pathlib import Path
from repeatlab.io import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    while not Path(sys.argv[2]).exists():
        time.sleep(0.01)
"""

HoldLock = Callable[[Path, Path], "subprocess.Popen[str]"]
"""``(output, release) -> process``: the process holds ``output``'s lock until the file ``release`` exists."""


def _hold(output: Path, release: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(output), str(release)], env=env,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def hold_in_another_process() -> HoldLock:
    return _hold
