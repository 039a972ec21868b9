"""The records of a run directory: the schema of each JSON file, a run's status, and its results row.

One module below the trainer, the sweep and the report owns them, so ``repeatlab sweep collect`` and the report
rebuild the same row by the same rule from the same files (the report never imports torch or the trainer).

**Schema.** Every JSON file repeatlab writes for a run (``SCHEMAS``) carries ``"schema": N``, set by
``write_record``; ``read_record`` strips it and refuses a version newer than this code reads, with the fix (upgrade
repeatlab). A file without the key was written before versions existed and reads as version 0, the same layout as
version 1. ``probes.json`` written by ``repeatlab probe`` also reads with the older ``"repeatlab.probes/N"`` form.

**Status.** One rule for every reader, in this order:

- *done*: ``summary.json`` exists (the trainer writes it last) and, when the run's spec asks for probes,
  ``probes.json`` too: the sweep treats such a run as unfinished and runs its probes next time;
- *running*: its lock (``io.output_lock``) is held, or a worker on another machine touched its heartbeat less than
  ``HEARTBEAT_STALE_S`` ago. Metrics alone mean nothing: an interrupted run has metrics and resumes later;
- *failed*: ``error.json`` exists (its last attempt failed and nobody works on it);
- *pending*: otherwise (never started, or interrupted and resumable).

**Row.** ``run_row`` builds the results row of one run from its files alone: the grid point of ``sweep_run.json``,
the losses and sizes of ``summary.json``, the probe summary of ``probes.json`` and the error of ``error.json``.
``repeatlab.sweeps.results`` adds what needs the grid or the model code (sizes of unfinished runs, the mixture's
manifest, the law columns).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from repeatlab.config import ConfigError, from_dict
from repeatlab.errors import RepeatlabError
from repeatlab.io import is_locked, lock_file_of, read_json, write_json
from repeatlab.layout import (
    CONFIG_FILE,
    ERROR_FILE,
    FINETUNE_FILE,
    HEARTBEAT_FILE,
    PROBES_FILE,
    SPEC_FILE,
    SUMMARY_FILE,
)

T = TypeVar("T")

SCHEMA_KEY = "schema"
SCHEMAS: dict[str, int] = {CONFIG_FILE: 1, SUMMARY_FILE: 1, PROBES_FILE: 1, SPEC_FILE: 1, FINETUNE_FILE: 1}
"""File name -> the schema version this code writes and the newest it reads."""
_LEGACY_PROBES_SCHEMA = "repeatlab.probes/"

RunStatus = Literal["done", "running", "failed", "pending"]
STATUSES: tuple[RunStatus, ...] = ("done", "running", "failed", "pending")
HEARTBEAT_STALE_S = 60.0
"""A run whose heartbeat is younger than this counts as running even where its lock cannot be seen
(another machine on a file system without shared locks)."""


class RecordSchemaError(RepeatlabError):
    """A run file was written by a newer repeatlab (or is no repeatlab file)."""


def write_record(path: str | Path, data: Mapping[str, Any], *, kind: str | None = None) -> None:
    """Atomically write run file ``path`` with its current schema version; ``kind`` (default: the file's name, one
    of ``SCHEMAS``) names the record when it is written under another name (``repeatlab probe --out FILE``)."""
    path = Path(path)
    kind = kind or path.name
    if kind not in SCHEMAS:
        raise KeyError(f"{kind} is not a versioned run file ({', '.join(SCHEMAS)})")
    write_json(path, {**data, SCHEMA_KEY: SCHEMAS[kind]})


def read_record(path: str | Path) -> dict[str, Any]:
    """The content of run file ``path`` without its ``schema`` key, checked to be a version this code reads."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise RecordSchemaError(f"{path} holds a JSON {type(data).__name__}, not an object; it is no repeatlab "
                                f"{path.name}")
    data = dict(data)
    version = _version(path, data.pop(SCHEMA_KEY, 0))
    newest = SCHEMAS.get(path.name, 1)
    if version > newest:
        raise RecordSchemaError(f"{path} has schema version {version}, newer than this repeatlab reads (up to "
                                f"{newest}); upgrade repeatlab to read it")
    return data


def read_config(cls: type[T], path: str | Path) -> T:
    """A config dataclass (``RunConfig``) from its run file, e.g. a run's ``config.json``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return from_dict(cls, read_record(path))


def _version(path: Path, value: Any) -> int:
    if isinstance(value, str) and value.startswith(_LEGACY_PROBES_SCHEMA):
        value = value.removeprefix(_LEGACY_PROBES_SCHEMA)
        value = int(value) if value.isdigit() else value
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordSchemaError(f"{path} has an unknown schema {value!r}; it was not written by repeatlab, or by "
                                f"a newer version: upgrade repeatlab, or give the right file")
    return value


# ----------------------------------------------------------------------------- status

def is_done(run_dir: Path, *, probes_required: bool) -> bool:
    """Whether the run finished: its summary, and its probes when its spec asks for them."""
    return (run_dir / SUMMARY_FILE).is_file() and (not probes_required or (run_dir / PROBES_FILE).is_file())


def run_status(run_dir: Path, *, probes_required: bool) -> RunStatus:
    """The state of one run, read from its directory (the rule of the module docstring)."""
    if not run_dir.is_dir():
        return "pending"
    if is_done(run_dir, probes_required=probes_required):
        return "done"
    if is_locked(lock_file_of(run_dir)) or _remote_heartbeat_age(run_dir) < HEARTBEAT_STALE_S:
        return "running"
    if (run_dir / ERROR_FILE).is_file():
        return "failed"
    return "pending"


def _remote_heartbeat_age(run_dir: Path) -> float:
    """Seconds since the heartbeat of a worker on another machine (``inf`` if none, or if it is on this
    machine, where the lock alone tells whether the worker is alive)."""
    path = run_dir / HEARTBEAT_FILE
    try:
        if path.read_text(encoding="utf-8").strip() == socket.gethostname():
            return float("inf")
        return time.time() - path.stat().st_mtime
    except (FileNotFoundError, UnicodeDecodeError):
        return float("inf")


# ----------------------------------------------------------------------------- the results row

SUMMARY_COLUMNS = ("test_loss", "repeated_loss", "train_loss", "wall_time_s", "tokens", "steps", "tokens_per_s",
                   "device")
"""``summary.json`` values copied to the row under their own names."""
POINT_COLUMNS = ("kind", "model", "repeated_fraction", "repeated_epochs", "unique_tokens", "total_tokens", "seed",
                 "data_variant", "train_variant")
"""Grid-point fields of ``sweep_run.json`` (``spec.point``) that are results columns."""
MIXTURE_COLUMNS = {"kind": "kind", "total_tokens": "total_tokens", "unique_tokens": "unique_tokens",
                   "repeated_fraction": "repeated_fraction", "repeated_epochs": "repeated_epochs"}
"""Row column -> the ``summary.json`` mixture value filling it for a run without a grid point."""


def probe_column(summary_key: str) -> str:
    """The results column of a ``probes.json`` summary value (``induction.max`` -> ``probe_induction_max``)."""
    return "probe_" + summary_key.replace(".", "_")


def probes_required(sweep_run: Mapping[str, Any] | None) -> bool:
    """Whether the spec of ``sweep_run.json`` asks for probes (a run outside a sweep never does)."""
    spec = (sweep_run or {}).get("spec")
    return isinstance(spec, Mapping) and spec.get("probes") is not None


def error_text(error: Mapping[str, Any]) -> str:
    """``Type: message`` of an ``error.json``; the raw JSON when the file has neither."""
    message = error.get("message")
    if isinstance(message, str):
        return f"{error['type']}: {message}" if isinstance(error.get("type"), str) else message
    return json.dumps(dict(error), sort_keys=True)[:500]


def run_row(
    run_id: str,
    status: RunStatus,
    *,
    sweep_run: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    probes: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The results row of one run from the content of its files (each ``None`` when absent).

    The grid point wins over the config and the summary for the point's columns (``total_tokens`` is the asked
    budget; ``tokens`` what the trainer saw); the summary's mixture fills them for a run outside a sweep.
    """
    row: dict[str, Any] = {"run_id": run_id, "status": status, "error": None}
    spec = (sweep_run or {}).get("spec")
    point = spec.get("point") if isinstance(spec, Mapping) else None
    if isinstance(point, Mapping):
        row.update({key: point[key] for key in POINT_COLUMNS if point.get(key) is not None})
    config = config or {}
    if isinstance(config.get("model"), str):
        row.setdefault("model", config["model"])
    train = config.get("train")
    if isinstance(train, Mapping) and train.get("seed") is not None:
        row.setdefault("seed", train["seed"])
    if isinstance(config.get("init_from"), str):
        row["init_from"] = config["init_from"]  # a fine-tuned run: the run directory it started from
    summary = summary or {}
    for key in SUMMARY_COLUMNS:
        if summary.get(key) is not None:
            row[key] = summary[key]
    for source, target in (("n_params_non_embedding", "params"), ("n_params", "params_total")):
        if summary.get(source) is not None:
            row[target] = summary[source]
    if isinstance(summary.get("model"), str):
        row.setdefault("model", summary["model"])
    model_config = summary.get("model_config")
    if isinstance(model_config, Mapping):
        row.update({key: model_config[key] for key in ("n_layer", "d_model") if key in model_config})
    mixture = summary.get("mixture")
    if isinstance(mixture, Mapping):
        for target, source in MIXTURE_COLUMNS.items():
            if mixture.get(source) is not None:
                row.setdefault(target, mixture[source])
        for target, source in (("repeated_fraction_achieved", "repeated_fraction"),
                               ("unique_tokens_achieved", "unique_tokens")):
            if mixture.get(source) is not None:
                row[target] = mixture[source]
    if status == "failed" and error is not None:
        row["error"] = error_text(error)
    probe_summary = (probes or {}).get("summary")
    if isinstance(probe_summary, Mapping):
        for key, value in probe_summary.items():
            if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                row[probe_column(str(key))] = value
    return row


__all__ = [
    "HEARTBEAT_STALE_S",
    "POINT_COLUMNS",
    "SCHEMAS",
    "STATUSES",
    "RecordSchemaError",
    "RunStatus",
    "error_text",
    "is_done",
    "probe_column",
    "probes_required",
    "read_config",
    "read_record",
    "run_row",
    "run_status",
    "write_record",
]
