"""Atomic file writes, JSON-lines logs, and the one-writer lock and checks of every output.

A killed process must never leave a half-written result behind: every file is written to a
temporary name in the same directory and renamed into place (rename is atomic on POSIX). An output
(a run directory, a dataset, a mixture, a sweep) has one writer at a time: whoever writes it holds an
``flock`` on the hidden ``.NAME.lock`` beside it (``output_lock``), which names the holder's PID, and
the kernel drops the lock when the holder dies, however it dies, so a lock is never stale.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from repeatlab.errors import RepeatlabError

_FILE_MODE, _DIR_MODE = 0o644, 0o755


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; results should read like any file the user writes
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    """Atomically write pretty JSON (sorted keys, so files diff cleanly)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_utf8(path: str | Path) -> str:
    """The text of ``path``; a file that is not UTF-8 is a ``ValueError`` naming it and the first bad byte."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RepeatlabError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8, or give "
                         f"the right file") from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(read_utf8(path))
    except json.JSONDecodeError as exc:
        raise RepeatlabError(f"{path} is not valid JSON ({exc}); the file may be corrupt") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """Atomically save a numpy array in ``.npy`` format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; results should read like any file the user writes
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON record as a single ``write`` on an ``O_APPEND`` descriptor.

    A crash can at worst leave a truncated last line, which ``read_jsonl`` ignores.
    """
    line = (json.dumps(record, sort_keys=True, default=_json_default) + "\n").encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines log, skipping a truncated final line left by a crash."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in read_utf8(path).splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def rewrite_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Atomically replace a JSON-lines log (used to drop records past a resumed checkpoint)."""
    text = "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records)
    atomic_write_text(path, text)


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place only on success.

    If the body raises, nothing is left at ``path``. With ``overwrite``, an existing directory is
    replaced; otherwise its presence is an error (``FileExistsError``). The block holds the output's
    lock (``output_lock``), so the temporaries a killed builder left (``.NAME.*.tmp``) are removed first.
    """
    path = Path(path)
    check_output_dir(path, exists_ok=overwrite)
    with output_lock(path):
        _remove_stale_temporaries(path)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        tmp.chmod(_DIR_MODE)  # mkdtemp makes 0700; the result should read like any directory the user creates
        try:
            yield tmp
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``.NAME.*.tmp`` and ``.NAME.old`` beside ``path``: a builder killed mid-way left them (the caller
    holds the output's lock, so no live builder owns them)."""
    stale = [*path.parent.glob(f".{glob.escape(path.name)}.*.tmp"), path.with_name(f".{path.name}.old")]
    for leftover in stale:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.is_file():
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


# ----------------------------------------------------------------------------- one writer per output

class OutputError(RepeatlabError):
    """An output path cannot be written: it is not a directory, it is read-only, or another process writes it."""


class OutputInUseError(OutputError):
    """Another process holds the lock of the output."""


_held: set[str] = set()
"""Lock files this process holds: a lock taken again inside its own block (the sweep worker holds a run's lock
while the trainer takes it too) is re-entered instead of refused by itself; the outermost block releases it."""


def lock_file_of(output: str | Path) -> Path:
    """The lock file of an output: ``.NAME.lock`` beside it (never inside, so an atomic rename of the output
    cannot replace it, and refusing a writer leaves nothing in the output). Symbolic links are resolved first, so
    every path to one output names one lock."""
    output = Path(os.path.realpath(output))
    return output.parent / f".{output.name}.lock"


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (a releasing holder may have unlinked it meanwhile)."""
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


@contextlib.contextmanager
def file_lock(path: str | Path, *, wait: bool = True, poll_s: float = 0.5) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on the file ``path`` for the block; yields whether it was acquired.

    The holder writes its PID into the file (``lock_holder`` reads it) and deletes the file when the block
    ends. With ``wait=False`` the block runs at once with ``False`` when another process holds it.
    """
    with _locked(path, wait=wait, poll_s=poll_s) as (acquired, _holder):
        yield acquired


@contextlib.contextmanager
def _locked(path: str | Path, *, wait: bool, poll_s: float = 0.5) -> Iterator[tuple[bool, int | None]]:
    """``file_lock``'s work; yields ``(acquired, holder PID)``, the PID read (when refused) through the
    refused process's own descriptor, so a holder that finishes and deletes the file meanwhile is still named."""
    path = Path(os.path.realpath(path))
    if str(path) in _held:
        yield True, os.getpid()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        acquired = _try_flock(fd)
        while not acquired and wait:
            time.sleep(poll_s)
            acquired = _try_flock(fd)
        if not acquired or _same_file(fd, path):
            break
        os.close(fd)  # locked a file its last holder had just deleted: lock the new one instead
    try:
        if acquired:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _held.add(str(path))
        yield acquired, os.getpid() if acquired else _holder_of(fd)
    finally:
        if acquired:
            _held.discard(str(path))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # while still locked: a waiter that opened it re-checks with _same_file
        os.close(fd)  # closing the descriptor releases the lock


def _holder_of(fd: int, *, timeout_s: float = 2.0) -> int | None:
    """The PID the holder writes into the lock file right after taking it, read through ``fd``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, ValueError):
            return int(os.pread(fd, 32, 0).decode().strip())
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def is_locked(path: str | Path) -> bool:
    """Whether some process (this one included) holds the lock file at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        return not _try_flock(fd)
    finally:
        os.close(fd)


def lock_holder(path: str | Path) -> int | None:
    """The PID written in a held lock file (``None`` if unreadable: the holder is still writing it)."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path(path).read_text(encoding="utf-8").strip())
    return None


@contextlib.contextmanager
def output_lock(output: str | Path, *, wait: bool = False) -> Iterator[None]:
    """Be the one writer of ``output`` (a file or directory) for the block.

    Raises ``OutputInUseError`` naming the holder's PID when another process writes it (``wait=False``),
    or waits for it to finish (``wait=True``).
    """
    with _locked(lock_file_of(output), wait=wait) as (acquired, holder):
        if not acquired:
            who = f"PID {holder}" if holder is not None else "another process"
            raise OutputInUseError(f"{output} is in use by {who}; wait for it to finish, or stop it and run the "
                                   f"command again")
        yield


# ----------------------------------------------------------------------------- output checks

def check_output_dir(path: str | Path, *, exists_ok: bool = True) -> None:
    """Refuse, before any work, an output directory that cannot be created or written.

    It must be named (not ``.`` or ``..``), must not be or lie under a file, and the directory it will be
    written in (itself when it exists, and its nearest existing parent) must accept new files. Without
    ``exists_ok`` an existing ``path`` is refused (``FileExistsError``).
    """
    path = Path(path)
    _check_named(path)
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{path} is a file, not a directory; give the path of a directory to create")
        if not exists_ok:
            raise FileExistsError(f"{path} already exists; choose another --out or remove it")
        check_writable(path)
    check_writable(_existing_parent(path))


def check_output_file(path: str | Path, *, example: str = "out.json") -> None:
    """Refuse, before any work, an output file that cannot be written: an existing directory, a path under a
    file, or a directory that does not accept new files (``example`` is the file name the message suggests)."""
    path = Path(path)
    _check_named(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name such as {path / example}")
    check_writable(_existing_parent(path))


def check_writable(directory: Path) -> None:
    """Create and delete a file in ``directory``: the one test that sees permissions, read-only mounts,
    immutable flags and full disks alike."""
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".repeatlab-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write in {directory}: {describe_os_error(exc)}") from None


def _check_named(path: Path) -> None:
    if path.name in ("", ".", ".."):
        raise OutputError(f"{str(path) or '.'} names an existing directory by '.' or '..', not an output; give a new "
                          f"directory's name, such as {path / 'out'}")


def _existing_parent(path: Path) -> Path:
    """The nearest existing ancestor of ``path``, which must be a directory."""
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path} lies under {parent}, which is a file, not a directory; choose another path")
    return parent


_OS_ERROR_FIXES = {
    errno.EACCES: "check its permissions, or choose another location",
    errno.EPERM: "check its permissions and flags (chattr), or choose another location",
    errno.EROFS: "the file system is mounted read-only; choose another location",
    errno.ENOSPC: "free some space, or choose another location",
    errno.EDQUOT: "free some space within the quota, or choose another location",
}


def describe_os_error(exc: OSError) -> str:
    """``cause; fix`` of an operating-system error, e.g. ``Permission denied; check its permissions, ...``."""
    cause = exc.strerror or str(exc)
    fix = _OS_ERROR_FIXES.get(exc.errno or 0)
    return f"{cause}; {fix}" if fix else cause
