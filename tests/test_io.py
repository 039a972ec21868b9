"""The one-writer lock of ``repeatlab.io``: held across processes, named by PID, re-entered in-process, gone
with its holder, and handed on correctly when the holder deletes the file a waiter has open."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from repeatlab.io import OutputInUseError, file_lock, is_locked, lock_file_of, lock_holder, output_lock

from .conftest import HoldLock


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path,
                                                         hold_in_another_process: HoldLock) -> None:
    output, release = tmp_path / "out", tmp_path / "release"
    holder = hold_in_another_process(output, release)
    try:
        assert is_locked(lock_file_of(output)) and lock_holder(lock_file_of(output)) == holder.pid
        with pytest.raises(OutputInUseError, match=f"{output} is in use by PID {holder.pid};"):
            with output_lock(output):
                pass
    finally:
        release.touch()
        holder.wait(timeout=30)
    assert not lock_file_of(output).exists()  # the holder deleted it on release
    with output_lock(output):
        assert lock_holder(lock_file_of(output)) == os.getpid()


def test_a_waiter_gets_the_lock_its_holder_deleted(tmp_path: Path, hold_in_another_process: HoldLock) -> None:
    output, release = tmp_path / "out", tmp_path / "release"
    holder = hold_in_another_process(output, release)
    lock = lock_file_of(output)
    seen: dict[str, object] = {}

    def wait_for_the_lock() -> None:
        with file_lock(lock, wait=True, poll_s=0.01) as acquired:
            # Locking the file the holder deleted would lock nothing anyone else can see.
            seen.update(acquired=acquired, exists=lock.exists(), locked=is_locked(lock), pid=lock_holder(lock))

    waiter = threading.Thread(target=wait_for_the_lock)
    waiter.start()
    time.sleep(0.3)  # the waiter has opened the holder's file and polls it
    release.touch()  # the holder deletes the file, then releases it
    waiter.join(timeout=30)
    holder.wait(timeout=30)
    assert seen == {"acquired": True, "exists": True, "locked": True, "pid": os.getpid()}


def test_the_lock_is_reentered_in_its_own_process_and_released_by_the_outer_block(tmp_path: Path) -> None:
    output = tmp_path / "out"
    with output_lock(output):
        with output_lock(output):
            pass
        assert is_locked(lock_file_of(output))  # the inner block did not release it
    assert not is_locked(lock_file_of(output)) and not lock_file_of(output).exists()


def test_a_killed_holder_leaves_a_lock_anyone_can_take(tmp_path: Path, hold_in_another_process: HoldLock) -> None:
    output = tmp_path / "out"
    holder = hold_in_another_process(output, tmp_path / "never")
    holder.kill()
    holder.wait(timeout=30)
    deadline = time.monotonic() + 10
    while is_locked(lock_file_of(output)):  # the kernel drops the lock once the process's files are closed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert lock_file_of(output).exists()  # killed before it could delete the file: a harmless leftover
    with output_lock(output):
        assert lock_holder(lock_file_of(output)) == os.getpid()


def test_every_path_to_one_output_names_one_lock(tmp_path: Path) -> None:
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "mine").symlink_to(tmp_path / "runs" / "a")
    assert lock_file_of(tmp_path / "mine") == lock_file_of(tmp_path / "runs" / ".." / "runs" / "a")
    assert lock_file_of(tmp_path / "mine") == tmp_path / "runs" / ".a.lock"
