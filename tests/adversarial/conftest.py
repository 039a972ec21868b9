"""The hostile user's tools: a tiny dataset, the CLI in this process and in real processes started together,
and read-only directories (a read-only bind mount in a user namespace when running as root, chmod otherwise)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from repeatlab.cli.__main__ import app
from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.probes.config import ProbeConfig
from repeatlab.sweeps.grid import GridConfig, grid_to_toml
from repeatlab.train.config import TrainConfig

CONTEXT = 16
SRC = Path(__file__).resolve().parents[2] / "src"
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly vexing bards".split()
TIMEOUT_S = 300

# Imports the CLI (torch and all), says it is ready, then waits for the gate file before running the command,
# so processes started together reach the command within a millisecond of each other.
_GATED = """
import sys, time
from pathlib import Path
from repeatlab.cli.__main__ import app
ready, gate = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not gate.exists():
    time.sleep(0.001)
sys.argv = ["repeatlab", *sys.argv[3:]]
app()
"""


def write_corpus(folder: Path, n_documents: int = 120) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_documents):
        body = " ".join(WORDS[(i * 7 + j * 3 + j * j) % len(WORDS)] for j in range(60))
        (folder / f"doc{i:03d}.txt").write_text(f"Document {i}. {body}.", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``corpus/``, ``prepared/`` (byte tokens, context 16) and ``mix/`` (f = 0.5, E = 4, 480 sequences)."""
    root = tmp_path_factory.mktemp("adversarial-data")
    write_corpus(root / "corpus")
    prepare_dataset(PrepareConfig(source=str(root / "corpus"), tokenizer="byte", context=CONTEXT, test_fraction=0.1),
                    root / "prepared")
    make_mixture(root / "prepared", MixtureSpec(total_tokens=480 * CONTEXT, repeated_fraction=0.5, repeated_epochs=4),
                 root / "mix")
    return root


def train_args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    """``repeatlab train`` of a 1-layer model, 60 steps of 8 sequences on CPU."""
    return ["train", str(run_dir), "--dataset", str(data / "prepared"), "--mixture", str(data / "mix"),
            "--model", "tiny-1l", "--batch-tokens", str(8 * CONTEXT), "--device", "cpu",
            "--set", "train.eval_test_sequences=8", "--set", "train.eval_repeated_sequences=8",
            "--set", "train.checkpoint_every=20", "--set", "train.cpu_threads=1", *extra]


_runner = CliRunner()


def cli(*args: str) -> Result:
    """Run the CLI in this process."""
    return _runner.invoke(app, list(args))


def error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "COLUMNS": "500"}


@dataclass
class Finished:
    pid: int
    returncode: int
    stdout: str
    stderr: str


def run_together(tmp_path: Path, *commands: list[str]) -> list[Finished]:
    """Start one real ``repeatlab`` process per command, release them at the same instant, wait for all."""
    gate = tmp_path / "gate"
    gate.unlink(missing_ok=True)
    processes = []
    for i, command in enumerate(commands):
        ready = tmp_path / f"ready-{i}"
        ready.unlink(missing_ok=True)
        processes.append((ready, subprocess.Popen([sys.executable, "-c", _GATED, str(ready), str(gate), *command],
                                                  env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                  text=True)))
    deadline = time.monotonic() + TIMEOUT_S
    while not all(ready.exists() for ready, _ in processes):
        assert time.monotonic() < deadline, "the processes did not start"
        assert all(p.poll() is None for _, p in processes), [p.communicate() for _, p in processes]
        time.sleep(0.02)
    gate.touch()
    finished = []
    for _, process in processes:
        out, err = process.communicate(timeout=TIMEOUT_S)
        finished.append(Finished(process.pid, process.returncode, out, err))
    return finished


def run_cli(*args: str, wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a new process (inside ``wrap``, e.g. a namespace with a read-only mount)."""
    command = [*(wrap or []), sys.executable, "-m", "repeatlab.cli.__main__", *args]
    return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=TIMEOUT_S)


def _userns_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


class ReadOnly:
    """Runs CLI commands in new processes that see some directories read-only."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        if self.as_root and not _userns_works():
            pytest.skip("running as root, where chmod cannot make a directory read-only, and no user namespace "
                        "(unshare -rm) for a read-only bind mount; see tests/QUARANTINES.md")

    @contextlib.contextmanager
    def _chmod(self, directories: list[Path]) -> Iterator[None]:
        modes = [d.stat().st_mode for d in directories]
        for d in directories:
            d.chmod(0o555)
        try:
            yield
        finally:
            for d, mode in zip(directories, modes):
                d.chmod(mode)

    def run(self, directories: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
        """``repeatlab ARGS`` with every one of ``directories`` read-only."""
        if not self.as_root:
            with self._chmod(directories):
                return run_cli(*args)
        mounts = " && ".join(f'mount --bind "{d}" "{d}" && mount -o remount,ro,bind "{d}"' for d in directories)
        return run_cli(*args, wrap=["unshare", "-rm", "sh", "-c", f'{mounts} && exec "$@"', "sh"])


@pytest.fixture()
def read_only() -> ReadOnly:
    return ReadOnly()


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under ``root``, with each file's size and modification time: equal snapshots mean nothing was
    written (a directory's own time is left out: checking that it accepts files creates and deletes one)."""
    return {str(p.relative_to(root)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def tiny_grid_file(data: Path, folder: Path, probes: ProbeConfig | None = None) -> Path:
    """``folder/grid.toml``: one tiny-1l size at f = 0.5, E = 4 over the ``data`` corpus (64 sequences)."""
    grid = GridConfig(name="tiny", sizes=("tiny-1l",), total_tokens=64 * CONTEXT, repeated_fractions=(0.5,),
                      repeated_epochs=(4,), probes=probes,
                      data=PrepareConfig(source=str(data / "corpus"), tokenizer="byte", context=CONTEXT,
                                         test_fraction=0.1),
                      train=TrainConfig(batch_tokens=8 * CONTEXT, n_log_evals=2, eval_test_sequences=8,
                                        eval_repeated_sequences=8, device="cpu"))
    path = folder / "grid.toml"
    path.write_text(grid_to_toml(grid), encoding="utf-8")
    return path
