"""Train a run directory from scratch or from its last checkpoint, and load finished runs back.

Run directory layout::

    config.json         the resolved RunConfig, written before training; a different config is refused
    metrics.jsonl       one record per evaluation (step, tokens_seen, train/test/repeated loss, lr, times)
    checkpoints/        step_XXXXXXX/ resumable checkpoints, the last K kept (``train.checkpoint``)
    model.safetensors   final weights (``models.weights.save_model``)
    summary.json        final losses, steps, tokens, times, parameter counts; written last (= done)

``train`` is idempotent: the same call on a finished run returns its summary, and on an interrupted
one (even SIGKILLed) resumes from the last checkpoint and ends with the same weights, bit for bit on CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from repeatlab.config import config_hash, load_json, to_dict
from repeatlab.data.mixture import Mixture, load_mixture
from repeatlab.data.prepared import PreparedDataset, load_prepared
from repeatlab.io import read_json, read_jsonl, write_json
from repeatlab.models.gpt import GPT
from repeatlab.models.sizes import model_config
from repeatlab.models.weights import load_model, save_model
from repeatlab.train.checkpoint import Checkpointer, step_dir_name
from repeatlab.train.config import RunConfig
from repeatlab.train.distributed import world
from repeatlab.train.metrics import METRICS_FILE, MetricsLog
from repeatlab.train.trainer import Trainer

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.safetensors"
CHECKPOINT_DIR = "checkpoints"

ProgressFn = Callable[[dict[str, Any]], None]


class RunDirError(ValueError):
    """The run directory belongs to another config or is not a run directory."""


def train(config: RunConfig, run_dir: Path, *, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (created, resumed, or returned as is when finished); return the summary.

    ``progress`` receives ``{"event": "start" | "resume" | "eval" | "done", ...}`` dicts (eval events carry
    the metrics record). Under ``torchrun`` every process calls this; only rank 0 writes and reports.
    """
    config, run_dir = config.resolved(), Path(run_dir)
    check_run_dir(run_dir, config)
    if (run_dir / SUMMARY_FILE).is_file():
        return read_json(run_dir / SUMMARY_FILE)
    dataset, mixture = load_prepared(config.dataset), load_mixture(config.mixture)
    with world(config.train) as w:
        report = progress if progress is not None and w.is_main else (lambda _event: None)
        trainer = Trainer(config, w, dataset=dataset, mixture=mixture)  # every input checked before writing
        n_steps = trainer.plan.n_steps
        if w.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not (run_dir / CONFIG_FILE).is_file():
                write_json(run_dir / CONFIG_FILE, to_dict(config))
        checkpointer = Checkpointer(run_dir / CHECKPOINT_DIR, every=config.train.checkpoint_every,
                                    keep=config.train.keep_checkpoints, final_step=n_steps, write=w.is_main)
        metrics = MetricsLog(run_dir, write=w.is_main)
        w.barrier()
        start = checkpointer.latest()
        if start is not None:
            checkpointer.load(start, trainer.states(), device=w.device)
        metrics.truncate_after(start if start is not None else -1)
        w.barrier()
        report({"event": "resume" if start else "start", "step": trainer.step, "n_steps": n_steps,
                "n_params": trainer.model.n_params(), "batch_tokens": trainer.plan.batch_tokens})

        final: list[dict[str, Any]] = []  # the final step's record, once evaluated in this session

        def log(record: dict[str, Any] | None) -> None:
            if record is not None:
                metrics.append(record)
                report({"event": "eval", **record})
                final[:] = [record] if record["step"] == n_steps else []

        if trainer.step == 0:
            log(trainer.maybe_eval())
        while trainer.step < n_steps:
            trainer.train_step()
            log(trainer.maybe_eval())
            checkpointer.maybe_save(trainer.step, trainer.states)
        # Resumed from the final checkpoint (killed before the summary): the record is already on disk.
        summary = _summary(config, trainer, final[0] if final else _final_record(metrics.records(), n_steps))
        if w.is_main:
            save_model(trainer.model, run_dir / MODEL_FILE)
            write_json(run_dir / SUMMARY_FILE, summary)  # last: marks the run as done
        w.barrier()
    report({"event": "done", **summary})
    return summary


def check_run_dir(run_dir: Path, config: RunConfig) -> None:
    """Refuse a run directory that holds another config, or files but no config."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} is a file")
    stored_file = run_dir / CONFIG_FILE
    if not stored_file.is_file():
        if any(p for p in run_dir.iterdir() if not p.name.startswith(".")):
            raise RunDirError(f"{run_dir} is not empty and holds no {CONFIG_FILE}; it is not a run directory: "
                              f"choose another one")
        return
    stored = read_json(stored_file)
    asked = json.loads(json.dumps(to_dict(config)))
    if stored != asked:
        diffs = _differences(stored, asked)
        raise RunDirError(
            f"run directory {run_dir} belongs to a different config ({'; '.join(diffs[:5])}); "
            f"it was not modified: choose another run directory, or delete this one to start over"
        )


def _differences(stored: Any, asked: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(asked, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(asked)):
            out += _differences(stored.get(key), asked.get(key), f"{prefix}{key}.")
        return out
    return [] if stored == asked else [f"{prefix.rstrip('.')}: stored {stored!r}, asked {asked!r}"]


def _final_record(records: list[dict[str, Any]], n_steps: int) -> dict[str, Any]:
    final = [r for r in records if r["step"] == n_steps]
    if not final:
        raise RuntimeError(f"no metrics record for the final step {n_steps}; metrics.jsonl was edited during the run")
    return final[-1]


def _summary(config: RunConfig, trainer: Trainer, final: dict[str, Any]) -> dict[str, Any]:
    p = trainer.progress
    return {
        "steps": p.step,
        "tokens": p.tokens_seen,
        "test_loss": final["test_loss"],
        "repeated_loss": final["repeated_loss"],
        "train_loss": final["train_loss"],
        "wall_time_s": round(p.wall_time_s, 3),
        "train_time_s": round(p.train_time_s, 3),
        "tokens_per_s": round(p.tokens_seen / p.train_time_s, 1) if p.train_time_s > 0 else None,
        "n_params": trainer.model.n_params(),
        "n_params_non_embedding": trainer.model.config.n_params_non_embedding,
        "model": config.model,
        "model_config": to_dict(trainer.model.config),
        "mixture": {k: trainer.loader.mixture.manifest.get(k) for k in
                    ("kind", "total_tokens", "unique_tokens", "repeated_fraction", "repeated_epochs")},
        "batch_tokens": trainer.plan.batch_tokens,
        "world_size": trainer.world.world_size,
        "device": trainer.world.device.type,
        "precision": str(trainer.world.dtype).removeprefix("torch."),
        "config_hash": config_hash(config),
    }


@dataclass
class LoadedRun:
    """A run read back from its directory, with the model of one checkpoint (or the final weights)."""

    config: RunConfig
    model: GPT
    dataset: PreparedDataset
    mixture: Mixture
    run_dir: Path
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any] | None:
        """The final summary, or ``None`` while the run is unfinished."""
        path = self.run_dir / SUMMARY_FILE
        return read_json(path) if path.is_file() else None


def load_run(run_dir: Path, *, device: str | torch.device = "cpu", checkpoint: str = "final") -> LoadedRun:
    """Open a run directory: its config, data, metrics and the weights of ``checkpoint``.

    ``checkpoint`` is ``"final"`` (``model.safetensors`` of a finished run), ``"latest"`` (the newest
    resumable checkpoint) or a checkpoint name such as ``"step_0000120"``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a run directory (no {CONFIG_FILE}); train one with 'repeatlab train'"
        )
    config = load_json(RunConfig, run_dir / CONFIG_FILE)
    dataset, mixture = load_prepared(config.dataset), load_mixture(config.mixture)
    expected = model_config(config.model, vocab_size=dataset.vocab_size, context=dataset.context)
    path = _weights_path(run_dir, checkpoint)
    return LoadedRun(
        config=config,
        model=load_model(path, expected=expected, device=device),
        dataset=dataset,
        mixture=mixture,
        run_dir=run_dir,
        metrics=read_jsonl(run_dir / METRICS_FILE),
    )


def _weights_path(run_dir: Path, checkpoint: str) -> Path:
    checkpoints = Checkpointer(run_dir / CHECKPOINT_DIR, every=1, keep=1, final_step=0, write=False)
    available = [step_dir_name(s) for s in checkpoints.steps()]
    if checkpoint == "final":
        if not (run_dir / MODEL_FILE).is_file():
            raise FileNotFoundError(
                f"run {run_dir} has not finished (no {MODEL_FILE}); load a checkpoint instead "
                f"(checkpoint='latest' or one of {available or 'none saved yet'})"
            )
        return run_dir / MODEL_FILE
    if checkpoint == "latest":
        if not available:
            raise FileNotFoundError(f"run {run_dir} has no checkpoint yet")
        checkpoint = available[-1]
    if checkpoint not in available:
        raise FileNotFoundError(
            f"run {run_dir} has no checkpoint {checkpoint!r}; available: final"
            f"{' (not finished)' if not (run_dir / MODEL_FILE).is_file() else ''}, latest, {', '.join(available)}"
        )
    return run_dir / CHECKPOINT_DIR / checkpoint / MODEL_FILE
