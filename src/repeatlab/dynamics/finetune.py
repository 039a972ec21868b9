"""Fine-tuning after pre-training, and the comparison that measures transfer or "ossification".

Hernandez et al. (2022) fine-tuned models pre-trained with repeated data and found them worse than the
same budget trained from scratch, a loss worth a 1.6x effective-parameter factor. A fine-tuning stage here
takes every pre-trained run, fine-tunes it (``init_from``, a fresh optimizer, ``lr_scale`` times its peak
learning rate and a shorter warm-up) on one shared fine-tuning mixture, and trains each model size on the
same mixture from scratch. ``compare_finetune`` inverts the from-scratch runs' curve L(N)
(``repeatlab.laws.effective.control_curve``, the rule every effective size follows) at the fine-tuned run's
loss: N_eff, the size a from-scratch model needs to match it, and ``multiplier = N_eff(fine-tuned) / N_eff(from scratch, same size)``: above 1 pre-training transferred,
below 1 it ossified the model.

Layout of a stage directory (``plan_finetune_stage``)::

    mixture/                       the fine-tuning mixture (a control mixture of ``total_tokens``)
    runs/ft-<pretrained run>/      each fine-tuned run
    runs/scratch-<size>-seed<s>/   each size trained on the same mixture from scratch
    finetune.json                  the comparison rows (read by ``repeatlab.report.sections.dynamics``)

``run_finetune_stage`` trains the runs in this process. A sweep's ``[finetune]`` stage (``<sweep>/finetune``) is
itself a sweep directory: its runs go through the sweep's backend like any other (locks, retries, progress), each
with a ``sweep_run.json``, and ``results.parquet`` has a row per run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from repeatlab.data.mixture import MANIFEST_FILE, MixtureSpec, make_mixture
from repeatlab.dynamics.run import train_with_probes
from repeatlab.errors import RepeatlabError
from repeatlab.laws import ControlCurve, FitError, control_curve
from repeatlab.layout import CONFIG_FILE, FINETUNE_FILE, RUNS_DIR, SUMMARY_FILE
from repeatlab.records import read_config, read_record, write_record
from repeatlab.train.config import RunConfig
from repeatlab.train.run import ProgressFn


@dataclass(kw_only=True, frozen=True)
class FinetuneStage:
    """A fine-tuning stage run after a sweep's pre-training (see the module docstring)."""

    total_tokens: int
    """Fine-tuning budget in tokens, the same for every fine-tuned and from-scratch run."""
    dataset: str | None = None
    """Prepared dataset to fine-tune on; ``None`` = the pre-trained runs' own. It must use their tokenizer and
    context: prepare another corpus with ``PrepareConfig.tokenizer_from`` set to their dataset."""
    mixture_seed: int = 1
    """Seed of the fine-tuning mixture (which pool sequences, in which order)."""
    lr_scale: float = 0.5
    """Fine-tuning peak learning rate as a multiple of the pre-training one (the paper halves it)."""
    warmup_steps: int | None = None
    """Fine-tuning warm-up in optimizer steps; ``None`` = half the pre-training warm-up."""
    checkpoint: str = "final"
    """Which weights of each pre-trained run to start from (``final`` or ``step_XXXXXXX``)."""
    scratch: bool = True
    """Also train every size from scratch on the fine-tuning budget (the comparison needs it)."""

    def __post_init__(self) -> None:
        if not isinstance(self.total_tokens, int) or self.total_tokens <= 0:
            raise RepeatlabError(f"FinetuneStage.total_tokens must be a positive integer, got {self.total_tokens!r}")
        if not self.lr_scale > 0:
            raise RepeatlabError(f"FinetuneStage.lr_scale must be > 0, got {self.lr_scale!r}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise RepeatlabError(f"FinetuneStage.warmup_steps must be >= 0 or null, got {self.warmup_steps!r}")
        if self.mixture_seed < 0:
            raise RepeatlabError(f"FinetuneStage.mixture_seed must be >= 0, got {self.mixture_seed!r}")


def finetune_config(
    pretrained: RunConfig,
    pretrained_dir: Path,
    *,
    dataset: str,
    mixture: str,
    lr_scale: float = 0.5,
    warmup_steps: int | None = None,
    checkpoint: str = "final",
) -> RunConfig:
    """The fine-tuning run of a pre-trained run: its weights, model and training settings, and a new schedule
    (``lr_scale`` times its peak learning rate; ``warmup_steps``, by default half its warm-up)."""
    warmup = warmup_steps if warmup_steps is not None else pretrained.optim.warmup_steps // 2
    optim = replace(pretrained.optim, lr=pretrained.optim.lr * lr_scale, warmup_steps=warmup)
    return replace(pretrained, dataset=dataset, mixture=mixture, optim=optim,
                   init_from=str(Path(pretrained_dir).resolve()), init_checkpoint=checkpoint)


def scratch_config(pretrained: RunConfig, *, dataset: str, mixture: str) -> RunConfig:
    """The same size and settings trained on the fine-tuning mixture from a fresh initialisation."""
    return replace(pretrained, dataset=dataset, mixture=mixture, init_from=None, init_checkpoint="final")


@dataclass(frozen=True, kw_only=True)
class FinetuneComparison:
    """A fine-tuned run against training the same budget from scratch, in losses and effective sizes."""

    run: str
    """Fine-tuned run directory name."""
    pretrained: str
    """Pre-trained run directory it started from."""
    model: str
    n_params: float
    """N: the scaling-law parameter count (non-embedding)."""
    pretrain_kind: str | None
    """Mixture kind of the pre-training: control, repeated or data_constrained."""
    pretrain_repeated_fraction: float | None
    pretrain_repeated_epochs: float | None
    finetuned_loss: float
    scratch_loss: float | None
    """Loss of the same size trained from scratch on the fine-tuning budget."""
    n_eff_finetuned: float | None
    """Parameters a from-scratch model needs for the fine-tuned loss (``None`` without a law)."""
    n_eff_scratch: float | None
    multiplier: float | None
    """``n_eff_finetuned / n_eff_scratch``: > 1 transfer, < 1 ossification (``n_eff_finetuned / N`` without a
    from-scratch run of this size)."""

    def to_dict(self) -> dict[str, Any]:
        return {key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in asdict(self).items()}


def _loss(summary: dict[str, Any], metric: str) -> float:
    value = summary.get(metric)
    if not isinstance(value, (int, float)):
        raise RepeatlabError(f"the run summary has no {metric!r}; it holds: {', '.join(sorted(summary))}")
    return float(value)


def scratch_curve(scratch_runs: Sequence[Path], *, metric: str = "test_loss") -> ControlCurve:
    """The from-scratch runs' curve of ``metric`` in N (``laws.control_curve``); ``FitError`` says why there is
    none."""
    summaries = [read_record(Path(run) / SUMMARY_FILE) for run in scratch_runs]
    return control_curve([float(s["n_params_non_embedding"]) for s in summaries], [_loss(s, metric) for s in summaries],
                         metric=metric)


def compare_finetune(
    finetuned: Path, scratch: Path | None, curve: ControlCurve | None, *, metric: str = "test_loss"
) -> FinetuneComparison:
    """Compare a finished fine-tuned run with the from-scratch run of its size through the from-scratch curve."""
    summary = read_record(Path(finetuned) / SUMMARY_FILE)
    init = summary.get("init_from") or {}
    pretrained = Path(init.get("run_dir", ""))
    pre_summary = read_record(pretrained / SUMMARY_FILE) if (pretrained / SUMMARY_FILE).is_file() else {}
    mixture = pre_summary.get("mixture") or {}
    n_params = float(summary["n_params_non_embedding"])
    finetuned_loss = _loss(summary, metric)
    scratch_loss = _loss(read_record(Path(scratch) / SUMMARY_FILE), metric) if scratch is not None else None
    n_eff = n_eff_scratch = multiplier = None
    if curve is not None:
        n_eff = float(curve.effective_params(finetuned_loss))
        n_eff_scratch = float(curve.effective_params(scratch_loss)) if scratch_loss is not None else None
        multiplier = n_eff / (n_eff_scratch if n_eff_scratch is not None else n_params)
    return FinetuneComparison(
        run=Path(finetuned).name, pretrained=pretrained.name, model=str(summary["model"]), n_params=n_params,
        pretrain_kind=mixture.get("kind"), pretrain_repeated_fraction=mixture.get("repeated_fraction"),
        pretrain_repeated_epochs=mixture.get("repeated_epochs"), finetuned_loss=finetuned_loss,
        scratch_loss=scratch_loss, n_eff_finetuned=n_eff, n_eff_scratch=n_eff_scratch, multiplier=multiplier,
    )


@dataclass(frozen=True)
class FinetunePlan:
    """The runs of a fine-tuning stage in ``out``: each run's config by directory name (in training order), and
    the (fine-tuned, from-scratch) pairs the comparison reads."""

    out: Path
    stage: FinetuneStage
    configs: dict[str, RunConfig]
    pairs: tuple[tuple[str, str | None], ...]

    def run_dir(self, name: str) -> Path:
        return self.out / RUNS_DIR / name


def plan_finetune_stage(pretrained_runs: Sequence[Path], stage: FinetuneStage, out: Path) -> FinetunePlan:
    """Build the stage's mixture (once) and the configs of its runs: ``ft-<run>`` fine-tunes each finished
    pre-trained run, ``scratch-<size>-seed<s>`` trains each size and seed from scratch (one per pair of them)."""
    out = Path(out)
    configs = [read_config(RunConfig, Path(run) / CONFIG_FILE) for run in pretrained_runs]
    if not configs:
        raise RepeatlabError("the fine-tuning stage needs at least one finished pre-trained run")
    datasets = {c.dataset for c in configs}
    if stage.dataset is None and len(datasets) > 1:
        raise RepeatlabError(f"the pre-trained runs use {len(datasets)} datasets; set FinetuneStage.dataset")
    dataset = str(Path(stage.dataset).resolve()) if stage.dataset is not None else next(iter(datasets))
    mixture = out / "mixture"
    if not (mixture / MANIFEST_FILE).is_file():
        make_mixture(dataset, MixtureSpec(total_tokens=stage.total_tokens, seed=stage.mixture_seed), mixture)
    runs: dict[str, RunConfig] = {}
    pairs: list[tuple[str, str | None]] = []
    for run, config in zip(pretrained_runs, configs, strict=True):
        finetuned = f"ft-{Path(run).name}"
        runs[finetuned] = finetune_config(config, Path(run), dataset=dataset, mixture=str(mixture),
                                          lr_scale=stage.lr_scale, warmup_steps=stage.warmup_steps,
                                          checkpoint=stage.checkpoint)
        scratch = None
        if stage.scratch:
            scratch = f"scratch-{config.model}-seed{config.train.seed}"
            scratch_run = scratch_config(config, dataset=dataset, mixture=str(mixture))
            if runs.setdefault(scratch, scratch_run) != scratch_run:
                raise RepeatlabError(f"the pre-trained runs of {config.model} seed {config.train.seed} differ in "
                                     f"their training settings, so no one run from scratch compares with them all; "
                                     f"fine-tune runs of one grid")
        pairs.append((finetuned, scratch))
    return FinetunePlan(out=out, stage=stage, configs=runs, pairs=tuple(pairs))


def finish_finetune_stage(plan: FinetunePlan, *, curve: ControlCurve | None = None) -> list[FinetuneComparison]:
    """Compare the stage's finished runs and write ``finetune.json``; returns its rows.

    ``curve`` is the from-scratch L(N) to invert; ``None`` builds it from the stage's from-scratch runs (which needs
    at least two sizes; with fewer, the rows carry losses but no effective sizes). A fine-tuned run that did not
    finish (failed in a sweep) has no row; a from-scratch run that did not finish is left out of the comparison.
    """
    def finished(name: str | None) -> Path | None:
        return None if name is None or not (plan.run_dir(name) / SUMMARY_FILE).is_file() else plan.run_dir(name)

    pairs = [(ft, finished(s)) for f, s in plan.pairs if (ft := finished(f)) is not None]
    note = None
    if curve is None and plan.stage.scratch:
        scratch_dirs = sorted({s for _, s in pairs if s is not None})
        try:
            curve = scratch_curve(scratch_dirs)
        except FitError as exc:
            note = f"no from-scratch curve: {exc}"
    rows = [compare_finetune(f, s, curve) for f, s in pairs]
    write_record(plan.out / FINETUNE_FILE, {"stage": asdict(plan.stage), "note": note,
                                            "rows": [r.to_dict() for r in rows]})
    return rows


def run_finetune_stage(
    pretrained_runs: Sequence[Path],
    stage: FinetuneStage,
    out: Path,
    *,
    curve: ControlCurve | None = None,
    progress: ProgressFn | None = None,
) -> list[FinetuneComparison]:
    """Fine-tune every finished pre-trained run and train each size from scratch in this process, then compare;
    idempotent. A sweep's ``[finetune]`` stage runs the same plan through the sweep's backend instead
    (``repeatlab.sweeps.driver``). Writes ``out/finetune.json`` and returns its rows (``finish_finetune_stage``).
    """
    plan = plan_finetune_stage(pretrained_runs, stage, out)
    for name, config in plan.configs.items():
        train_with_probes(config, plan.run_dir(name), progress=progress)
    return finish_finetune_stage(plan, curve=curve)


__all__ = ["FINETUNE_FILE", "FinetuneComparison", "FinetunePlan", "FinetuneStage", "compare_finetune",
           "finetune_config", "finish_finetune_stage", "plan_finetune_stage", "run_finetune_stage", "scratch_config",
           "scratch_curve"]
