"""Train a run directory from scratch or from its last checkpoint, and load finished runs back.

Run directory layout::

    config.json         the resolved RunConfig, written before training; a different config is refused
    metrics.jsonl       one record per evaluation (step, tokens_seen, train/test/repeated loss, lr, times;
                        extra held-out losses and probe scores when the config asks for them)
    extra_evals/        the token samples of ``train.extra_evals`` (``train.extra_evals`` module), if any
    checkpoints/        step_XXXXXXX/ resumable checkpoints, the last K kept (``train.checkpoint``)
    model.safetensors   final weights (``models.weights.save_model``)
    summary.json        final losses, steps, tokens, times, parameter counts; written last (= done)

``train`` is idempotent: the same call on a finished run returns its summary, and on an interrupted
one (even SIGKILLed) resumes from the last checkpoint and ends with the same weights, bit for bit on CPU.
A run with ``init_from`` starts from another run's weights (fine-tuning) with a fresh optimizer and its own
schedule; ``init_from_weights`` checks that the two runs share model shape, context and tokenizer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from repeatlab.config import ConfigError, config_hash, from_dict, to_dict
from repeatlab.data.mixture import Mixture, load_mixture
from repeatlab.data.prepared import META_FILE, TOKENIZER_FILE, PreparedDataset, load_prepared
from repeatlab.errors import RepeatlabError
from repeatlab.io import check_output_dir, output_lock, read_jsonl
from repeatlab.layout import CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, MODEL_FILE, SUMMARY_FILE
from repeatlab.models.gpt import GPT
from repeatlab.models.weights import CheckpointMismatchError, load_model, save_model
from repeatlab.records import read_config, read_record, write_record
from repeatlab.train.checkpoint import Checkpointer, step_dir_name
from repeatlab.train.config import RunConfig
from repeatlab.train.distributed import launch_rank, world
from repeatlab.train.extra_evals import eval_rows, load_extra_evals, save_extra_evals
from repeatlab.train.metrics import MetricsLog
from repeatlab.train.trainer import StepEvaluator, Trainer, model_shape


ProgressFn = Callable[[dict[str, Any]], None]


class RunDirError(RepeatlabError):
    """The run directory belongs to another config or is not a run directory."""


def train(
    config: RunConfig,
    run_dir: Path,
    *,
    progress: ProgressFn | None = None,
    evaluators: Mapping[str, StepEvaluator] | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (created, resumed, or returned as is when finished); return the summary.

    ``progress`` receives ``{"event": "start" | "resume" | "skip_checkpoint" | "eval" | "done", ...}`` dicts
    (eval events carry the metrics record; ``skip_checkpoint`` says why a damaged newest checkpoint was passed over
    for the one before it). ``evaluators`` compute the scores of ``config.train.probe_metrics`` (one per name,
    merged into each metrics record); ``repeatlab.dynamics.train_with_probes`` builds them. Under ``torchrun``
    every process calls this; only rank 0 writes and reports.
    """
    config, run_dir = config.resolved(), Path(run_dir)
    if (run_dir / SUMMARY_FILE).is_file():  # finished: nothing is written, so no lock (read-only archives work)
        check_run_dir(run_dir, config)
        return read_record(run_dir / SUMMARY_FILE)
    check_output_dir(run_dir)
    # One writer per run directory; under torchrun only rank 0 writes, so only it takes the lock.
    with output_lock(run_dir) if launch_rank() == 0 else contextlib.nullcontext():
        return _train_locked(config, run_dir, progress=progress, evaluators=evaluators)


def _train_locked(
    config: RunConfig,
    run_dir: Path,
    *,
    progress: ProgressFn | None,
    evaluators: Mapping[str, StepEvaluator] | None,
) -> dict[str, Any]:
    check_run_dir(run_dir, config)
    if (run_dir / SUMMARY_FILE).is_file():  # finished by the writer that held the lock before us
        return read_record(run_dir / SUMMARY_FILE)
    dataset = load_prepared(config.dataset)
    mixture = load_mixture(config.mixture, dataset)
    extra_tokens = load_extra_evals(config.train.extra_evals, dataset, run_dir,
                                    n_sequences=config.train.eval_test_sequences, seed=config.train.eval_seed)
    with world(config.train) as w:
        report = progress if progress is not None and w.is_main else (lambda _event: None)
        # Every input is checked before anything is written.
        trainer = Trainer(config, w, dataset=dataset, mixture=mixture, init_state=init_from_weights(config, dataset),
                          extra_evals={name: eval_rows(t, dataset.context) for name, t in extra_tokens.items()},
                          evaluators=evaluators, references=reference_models(config, dataset, w.device))
        n_steps = trainer.plan.n_steps
        if w.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not (run_dir / CONFIG_FILE).is_file():
                write_record(run_dir / CONFIG_FILE, to_dict(config))
            save_extra_evals(config.train.extra_evals, extra_tokens, run_dir)
        checkpointer = Checkpointer(run_dir / CHECKPOINT_DIR, every=config.train.checkpoint_every,
                                    keep=config.train.keep_checkpoints, final_step=n_steps, write=w.is_main)
        metrics = MetricsLog(run_dir, write=w.is_main)
        w.barrier()
        start, skipped = checkpointer.load_latest(trainer.states(), device=w.device)
        for reason in skipped:
            report({"event": "skip_checkpoint", "reason": reason})
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
            write_record(run_dir / SUMMARY_FILE, summary)  # last: marks the run as done
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
    stored = _with_defaults(read_record(stored_file))
    asked = json.loads(json.dumps(to_dict(config)))
    if stored != asked:
        diffs = _differences(stored, asked)
        raise RunDirError(
            f"run directory {run_dir} belongs to a different config ({'; '.join(diffs[:5])}); "
            f"it was not modified: choose another run directory, or delete this one to start over"
        )


def _with_defaults(stored: Any) -> Any:
    """A stored config with the fields added since it was written filled in with their defaults (unchanged
    when it does not parse), so runs written by an earlier version resume."""
    try:
        return json.loads(json.dumps(to_dict(from_dict(RunConfig, stored))))
    except (ConfigError, TypeError, ValueError):
        return stored


def init_from_weights(config: RunConfig, dataset: PreparedDataset) -> dict[str, Tensor] | None:
    """The weights ``config.init_from`` names (``None`` without it), checked against this run's model and data.

    The source must be a run directory whose checkpoint ``config.init_checkpoint`` holds a model of this run's
    size, vocabulary and context, and whose dataset (when still on disk) used the same tokenizer, byte for byte:
    token ids must mean the same thing in both runs (``PrepareConfig.tokenizer_from`` prepares a corpus so).
    """
    if config.init_from is None:
        return None
    source = Path(config.init_from)
    if not (source / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"init_from: {source} is not a run directory (no {CONFIG_FILE}); give the directory "
                                f"of the run to fine-tune from")
    source_config = read_config(RunConfig, source / CONFIG_FILE)
    # Before the weights: a different tokenizer or context is the cause of a shape mismatch, and a tokenizer
    # of the same size is invisible to the shapes.
    _check_same_data_shape(source, Path(source_config.dataset), dataset)
    expected = model_shape(config.model, dataset)
    try:
        model = load_model(_weights_path(source, config.init_checkpoint), expected=expected)
    except CheckpointMismatchError as exc:
        raise CheckpointMismatchError(
            f"cannot initialise from {source}: its weights do not fit model {config.model!r} over {dataset.path} "
            f"({exc}); fine-tune with the source's model size ({source_config.model}) on a dataset with the same "
            f"vocabulary and context (prepare it with --tokenizer-from {source_config.dataset} and the source's "
            f"--context)"
        ) from None
    return model.state_dict()


def reference_models(config: RunConfig, dataset: PreparedDataset, device: torch.device) -> dict[str, GPT]:
    """The final model of every run that an intervention of mode ``reference`` names, frozen, by run directory.

    Each must be a finished run of this run's model shape over data with the same tokenizer and context, so that
    its activations at a hook point have the shape (and the meaning) of this run's.
    """
    expected = model_shape(config.model, dataset)
    models: dict[str, GPT] = {}
    for path in dict.fromkeys(item.reference for item in config.train.interventions if item.reference is not None):
        source = Path(path)
        if not (source / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"interventions: reference {source} is not a run directory (no {CONFIG_FILE}); "
                                    f"give the directory of a finished run")
        _check_same_data_shape(source, Path(read_config(RunConfig, source / CONFIG_FILE).dataset), dataset, "reference")
        try:
            model = load_model(_weights_path(source, "final"), expected=expected, device=device)
        except CheckpointMismatchError as exc:
            raise CheckpointMismatchError(f"interventions: the reference run {source} has another model shape than "
                                          f"{config.model!r} over {dataset.path} ({exc}); clamp to a run of the "
                                          f"same size and data") from None
        models[path] = model.eval().requires_grad_(False)
    return models


def _check_same_data_shape(source: Path, source_dataset: Path, dataset: PreparedDataset, role: str = "init_from") -> None:
    """Refuse a dataset whose tokenizer or context differs from the one the ``init_from`` (or reference) run
    trained on."""
    if not (source_dataset / META_FILE).is_file() or source_dataset.resolve() == dataset.path.resolve():
        return  # the source's data is gone (only the weights can be checked) or it is the same dataset
    ours, theirs = dataset.path / TOKENIZER_FILE, source_dataset / TOKENIZER_FILE
    if theirs.is_file() and ours.is_file() and theirs.read_bytes() != ours.read_bytes():
        raise RepeatlabError(
            f"the dataset {dataset.path} uses another tokenizer than {source_dataset}, which the {role} run "
            f"{source} was trained on, so token ids would mean different things; prepare the fine-tuning corpus "
            f"with 'repeatlab data prepare SOURCE --tokenizer-from {source_dataset}' (PrepareConfig.tokenizer_from), "
            f"or fine-tune on a mixture over {source_dataset}"
        )
    source_context = load_prepared(source_dataset).context
    if source_context != dataset.context:
        raise CheckpointMismatchError(
            f"the dataset {dataset.path} has context {dataset.context} but the {role} run {source} was trained "
            f"at context {source_context} (on {source_dataset}), and a model's position embeddings fix its "
            f"context; prepare the fine-tuning corpus with --context {source_context} --tokenizer-from "
            f"{source_dataset}"
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
    optional: dict[str, Any] = {f"{name}_loss": final[f"{name}_loss"] for name in config.train.extra_evals}
    if config.train.probe_metrics:
        optional["probe_time_s"] = round(p.probe_time_s, 3)
        optional["probe_time_share"] = round(p.probe_time_s / p.wall_time_s, 4) if p.wall_time_s > 0 else None
    if config.init_from is not None:
        optional["init_from"] = {"run_dir": config.init_from, "checkpoint": config.init_checkpoint}
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
        "n_params_non_embedding": trainer.model.config.n_params_scaling_law,  # key kept: runs on disk use it
        "model": config.model,
        "model_config": to_dict(trainer.model.config),
        "mixture": {k: trainer.loader.mixture.manifest.get(k) for k in
                    ("kind", "total_tokens", "unique_tokens", "repeated_fraction", "repeated_epochs")},
        "batch_tokens": trainer.plan.batch_tokens,
        "world_size": trainer.world.world_size,
        "device": trainer.world.device.type,
        "precision": str(trainer.world.dtype).removeprefix("torch."),
        "config_hash": config_hash(config),
        **optional,
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
        return read_record(path) if path.is_file() else None


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
    config = read_config(RunConfig, run_dir / CONFIG_FILE)
    dataset = load_prepared(config.dataset)
    mixture = load_mixture(config.mixture, dataset)
    expected = model_shape(config.model, dataset)
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
