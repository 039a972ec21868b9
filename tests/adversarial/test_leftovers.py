"""What a killed command leaves behind is cleaned by the next one; identical runs give identical files."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from repeatlab.data.prepared import load_prepared

from .conftest import CONTEXT, TIMEOUT_S, env, run_cli, train_args, write_corpus


def test_a_killed_data_prepare_leaves_nothing_after_the_next_one(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_documents=6000)  # encoding it takes a while
    out = tmp_path / "prepared"
    command = [sys.executable, "-m", "repeatlab.cli.__main__", "data", "prepare", str(corpus), "--out", str(out),
               "--vocab-size", "400", "--context", str(CONTEXT)]
    process = subprocess.Popen(command, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + TIMEOUT_S
    while not list(tmp_path.glob(".prepared.*.tmp")):
        assert process.poll() is None, "data prepare ended before it was killed; give it a larger corpus"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(tmp_path.glob(".prepared.*.tmp")) and not out.exists()  # what the kill left
    result = run_cli("data", "prepare", str(corpus), "--out", str(out), "--vocab-size", "400", "--context",
                     str(CONTEXT))
    assert result.returncode == 0, result.stderr
    assert load_prepared(out).n_sequences("train") > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "prepared"]  # no temporary, no lock


def test_identical_runs_give_byte_identical_weights(data: Path, tmp_path: Path) -> None:
    digests = []
    for name in ("first", "second"):  # separate processes: safetensors' header order changed between them
        result = run_cli(*train_args(data, tmp_path / name))
        assert result.returncode == 0, result.stderr
        digests.append(hashlib.sha256((tmp_path / name / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
