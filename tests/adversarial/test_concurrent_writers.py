"""Two writers of one output, as real processes started at the same instant: one works, the other is refused in
one line naming the first one's PID, and the output is exactly one writer's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from repeatlab.io import is_locked, lock_file_of, output_lock, read_json, read_jsonl
from repeatlab.sweeps.grid import GridConfig, ResourcesConfig, grid_to_toml
from repeatlab.data.prepare import PrepareConfig
from repeatlab.train.config import OptimConfig, TrainConfig

from .conftest import CONTEXT, TIMEOUT_S, Finished, cli, env, run_together, train_args


def winner_and_loser(finished: list[Finished]) -> tuple[Finished, Finished]:
    assert sorted(f.returncode for f in finished) == [0, 2], [(f.returncode, f.stderr[-2000:]) for f in finished]
    winner = next(f for f in finished if f.returncode == 0)
    loser = next(f for f in finished if f.returncode == 2)
    return winner, loser


def assert_refused(loser: Finished, output: Path, winner: Finished) -> None:
    lines = [line for line in loser.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {output} is in use by PID {winner.pid}; wait for it to finish, or stop it and run the "
                     f"command again"], loser.stderr


def test_two_identical_trains_started_together(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    winner, loser = winner_and_loser(run_together(tmp_path, train_args(data, run_dir), train_args(data, run_dir)))
    assert_refused(loser, run_dir, winner)
    steps = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 60  # every evaluation logged once
    assert not lock_file_of(run_dir).exists()  # the lock is gone with its holder


def test_two_configs_started_together_on_a_new_directory(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first, second = train_args(data, run_dir, "--lr", "0.001"), train_args(data, run_dir, "--lr", "0.002")
    finished = run_together(tmp_path, first, second)
    winner, loser = winner_and_loser(finished)
    assert_refused(loser, run_dir, winner)
    lr = read_json(run_dir / "config.json")["optim"]["lr"]
    assert lr == (0.001 if finished[0] is winner else 0.002)  # the config of the run that trained
    steps = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    assert steps == sorted(set(steps))


def test_two_prepares_and_two_mixes_started_together(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    prepare = ["data", "prepare", str(data / "corpus"), "--out", str(out), "--vocab-size", "400", "--context",
               str(CONTEXT), "--overwrite"]
    # Deterministic first: while this process holds the output's lock, a prepare is refused naming our PID.
    with output_lock(out):
        refused = run_together(tmp_path, prepare)[0]
    assert refused.returncode == 2
    assert_refused(refused, out, Finished(os.getpid(), 0, "", ""))
    assert not out.exists()
    # Then two at once. Preparing this corpus takes well under a second, so on a loaded machine the second may
    # start after the first ended and replace its output (as for the mixtures below): refused or a clean
    # replacement, never both writing, never a traceback.
    finished = run_together(tmp_path, prepare, prepare)
    assert all(f.returncode in (0, 2) and "Traceback" not in f.stderr for f in finished), finished
    for f in finished:
        if f.returncode == 2:
            assert_refused(f, out, next(g for g in finished if g is not f))
    assert cli("data", "show", str(out)).exit_code == 0
    mix = tmp_path / "mix"
    command = ["data", "mix", str(data / "prepared"), "--total-tokens", str(400 * CONTEXT), "--repeated-fraction",
               "0.5", "--repeated-epochs", "4", "--out", str(mix), "--overwrite"]
    finished = run_together(tmp_path, command, command)
    # Building a mixture takes milliseconds: the second either is refused or, started after the first ended,
    # replaces it with the same mixture. Never both at once, never a traceback.
    assert all(f.returncode in (0, 2) and "Traceback" not in f.stderr for f in finished)
    for f in finished:
        if f.returncode == 2:
            assert_refused(f, mix, next(g for g in finished if g is not f))
    assert json.loads((mix / "manifest.json").read_text())["n_sequences"] == 400
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no lock or temporary left


def test_train_is_refused_on_a_run_a_sweep_worker_is_training(data: Path, tmp_path: Path) -> None:
    grid = GridConfig(name="long-run", sizes=("tiny-1l",), total_tokens=2000 * CONTEXT, repeated_fractions=(0.5,),
                      repeated_epochs=(4,),
                      data=PrepareConfig(source=str(data / "corpus"), tokenizer="byte", context=CONTEXT,
                                         test_fraction=0.1),
                      optim=OptimConfig(lr=3e-3, warmup_steps=2),
                      train=TrainConfig(batch_tokens=8 * CONTEXT, n_log_evals=4, eval_test_sequences=8,
                                        eval_repeated_sequences=8, checkpoint_every=100, device="cpu"),
                      resources=ResourcesConfig(local_workers=1))
    grid_file, sweep = tmp_path / "grid.toml", tmp_path / "sweep"
    grid_file.write_text(grid_to_toml(grid), encoding="utf-8")
    log = tmp_path / "sweep.log"
    with log.open("w") as handle:
        driver = subprocess.Popen([sys.executable, "-m", "repeatlab.cli.__main__", "sweep", "run", str(grid_file),
                                   "--out", str(sweep)], env=env(), stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            assert driver.poll() is None and time.monotonic() < deadline, log.read_text()
            running = [p for p in sweep.glob("runs/*/config.json") if is_locked(lock_file_of(p.parent))]
            if running:
                break
            time.sleep(0.05)
        run_dir = running[0].parent
        worker_pid = next(a["pid"] for a in read_jsonl(run_dir / "attempts.jsonl") if a["event"] == "start")
        result = cli("train", str(run_dir))
        assert result.exit_code == 2
        assert result.output.strip().splitlines() == [
            f"error: {run_dir} is in use by PID {worker_pid}; wait for it to finish, or stop it and run the command "
            f"again"]
    finally:
        driver.kill()
        driver.wait()
