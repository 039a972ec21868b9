"""Outputs that cannot be written: read-only directories, paths that are files or lie under one, ``.`` and
``..``, a directory where a file is asked for. Each is refused in one line, before any work, and leaves the file
system as it was."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import numpy as np
import pytest
import typer

from repeatlab.cli.errors import user_errors
from repeatlab.laws.results import FitError

from .conftest import CONTEXT, ReadOnly, cli, error_lines, snapshot, tiny_grid_file, train_args


@pytest.fixture(scope="module")
def finished_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = cli(*train_args(data, run_dir))
    assert result.exit_code == 0, result.output
    return run_dir


def commands(data: Path, out: Path, finished_run: Path, grid: Path) -> dict[str, list[str]]:
    """Every command that writes, with ``out`` as its output."""
    return {
        "data prepare": ["data", "prepare", str(data / "corpus"), "--out", str(out), "--tokenizer", "byte",
                         "--context", str(CONTEXT)],
        "data mix": ["data", "mix", str(data / "prepared"), "--total-tokens", str(64 * CONTEXT), "--out", str(out)],
        "train": train_args(data, out),
        "report": ["report", str(finished_run), "--out", str(out / "report.html")],
        "audit": ["audit", str(data / "corpus"), "--out", str(out / "audit.json")],
        "sweep run": ["sweep", "run", str(grid), "--out", str(out)],
    }


@pytest.mark.parametrize("command", ["data prepare", "data mix", "train", "report", "audit", "sweep run"])
def test_read_only_output_is_refused_before_the_work(command: str, data: Path, finished_run: Path, tmp_path: Path,
                                                     read_only: ReadOnly) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    grid = tiny_grid_file(data, tmp_path)
    out = locked / "out" if command not in ("report", "audit") else locked
    before = snapshot(tmp_path)
    result = read_only.run([locked], *commands(data, out, finished_run, grid)[command])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write in {locked}: "), result.stderr
    assert ("Read-only file system" if read_only.as_root else "Permission denied") in lines[0]
    assert "read 120 documents" not in result.stdout  # refused before reading the corpus
    assert snapshot(tmp_path) == before


def test_a_read_only_run_directory_is_refused(data: Path, finished_run: Path, tmp_path: Path,
                                              read_only: ReadOnly) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = read_only.run([run_dir], *train_args(data, run_dir))
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"error: cannot write in {run_dir}: "
        + ("Read-only file system; the file system is mounted read-only; choose another location" if read_only.as_root
           else "Permission denied; check its permissions, or choose another location")]
    assert list(run_dir.iterdir()) == [] and list(tmp_path.iterdir()) == [run_dir]


@pytest.mark.parametrize("command", ["data prepare", "data mix", "train", "sweep run"])
def test_output_directories_that_are_not_directories(command: str, data: Path, finished_run: Path,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("the user's file\n", encoding="utf-8")
    grid = tiny_grid_file(data, tmp_path)
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    monkeypatch.chdir(work / "inner")
    cases = {
        a_file: f"{a_file} is a file, not a directory; give the path of a directory to create",
        a_file / "sub": f"{a_file / 'sub'} lies under {a_file}, which is a file, not a directory; choose another path",
        Path("."): ". names an existing directory by '.' or '..', not an output; give a new directory's name, such "
                   "as out",
        Path(".."): ".. names an existing directory by '.' or '..', not an output; give a new directory's name, such "
                    "as ../out",
    }
    before = snapshot(tmp_path)
    for out, message in cases.items():
        result = cli(*commands(data, out, finished_run, grid)[command])
        assert result.exit_code == 2 and error_lines(result) == [f"error: {message}"], (out, result.output)
    assert snapshot(tmp_path) == before


def test_file_outputs_refuse_a_directory_before_the_work(data: Path, finished_run: Path, tmp_path: Path) -> None:
    table = tmp_path / "runs.csv"
    table.write_text("params,loss\n1e6,3.9\n1e7,3.1\n1e8,2.6\n1e9,2.3\n", encoding="utf-8")
    before = snapshot(tmp_path)
    for command, example in ((["report", str(finished_run)], "report.html"),
                             (["audit", str(data / "corpus")], "audit.json"),
                             (["probe", str(finished_run)], "probes.json"),
                             (["laws", "fit", str(table), "--form", "power"], "fit.json")):
        result = cli(*command, "--out", str(tmp_path))
        assert result.exit_code == 2, (command, result.output)
        assert error_lines(result) == [f"error: {tmp_path} is a directory; give a file name such as "
                                       f"{tmp_path / example}"], (command, result.output)
    assert snapshot(tmp_path) == before


def test_an_os_error_at_the_cli_is_one_line_and_a_bug_keeps_its_traceback() -> None:
    app = typer.Typer()

    @app.command()
    @user_errors
    def write(kind: str) -> None:
        if kind == "full":
            raise OSError(errno.ENOSPC, "No space left on device", "/data/out/train.bin")
        raise OSError(errno.EBADF, "Bad file descriptor")  # no file named: the code's fault

    from typer.testing import CliRunner

    full = CliRunner().invoke(app, ["full"])
    assert full.exit_code == 2
    assert full.output.strip() == ("error: /data/out/train.bin: No space left on device; free some space, or choose "
                                   "another location")
    bug = CliRunner().invoke(app, ["bug"])
    assert isinstance(bug.exception, OSError) and bug.exception.errno == errno.EBADF


def test_bad_input_is_one_line_and_a_libraries_value_error_keeps_its_traceback() -> None:
    """Only ``RepeatlabError`` (and its subclasses, ConfigError, FitError, ...) is bad input; a ValueError raised
    inside numpy is a bug and must reach the user with its traceback."""
    app = typer.Typer()

    @app.command()
    @user_errors
    def run(kind: str) -> None:
        if kind == "input":
            raise FitError("none of the starts converged; widen the grid")
        np.reshape(np.arange(3), (2, 2))  # numpy's own ValueError

    from typer.testing import CliRunner

    bad_input = CliRunner().invoke(app, ["input"])
    assert bad_input.exit_code == 2 and bad_input.output.strip() == "error: none of the starts converged; widen the grid"
    bug = CliRunner().invoke(app, ["bug"])
    assert type(bug.exception) is ValueError and "reshape" in str(bug.exception)


def test_a_finished_run_on_read_only_storage_still_reports(data: Path, finished_run: Path, tmp_path: Path,
                                                           read_only: ReadOnly) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(finished_run.parent, archive)
    before = snapshot(archive)
    result = read_only.run([archive], *train_args(data, archive / "run"))
    assert result.returncode == 0, result.stderr
    assert "done: 60 steps" in result.stdout
    assert snapshot(archive) == before


def test_probe_into_a_run_another_process_writes_is_refused(
    finished_run: Path, tmp_path: Path, hold_in_another_process: Callable[[Path, Path], Popen[str]]
) -> None:
    """``repeatlab probe RUNDIR`` writes RUNDIR/probes.json, so it needs the run's lock, as a sweep worker
    probing the run holds it; nothing is written while it is held."""
    release = tmp_path / "release"
    holder = hold_in_another_process(finished_run, release)
    try:
        result = cli("probe", str(finished_run), "--probes", "ov_copying")
        assert result.exit_code == 2
        assert error_lines(result) == [f"error: {finished_run} is in use by PID {holder.pid}; wait for it to "
                                       f"finish, or stop it and run the command again"]
        assert not (finished_run / "probes.json").exists()
    finally:
        release.touch()
        holder.wait(timeout=30)
    done = cli("probe", str(finished_run), "--probes", "ov_copying")
    assert done.exit_code == 0, done.output
    assert (finished_run / "probes.json").is_file()
