"""Configs of a training run: the optimiser, the training loop, and the run that ties them to data and a model.

A ``RunConfig`` is the whole identity of a run: it is written to ``config.json`` in the run directory,
and a run directory whose stored config differs from the asked one is refused (``train.run``).
Values that depend on the data (sequences per batch, gradient-accumulation steps) are derived in
``train.plan`` once the dataset's context is known.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

from repeatlab.config import added_later, check_seed
from repeatlab.errors import RepeatlabError

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16"]
InterventionMode = Literal["zero", "mean", "clamp", "reference"]
ProbeMetric = Literal["induction", "previous_token", "duplicate_token", "prefix_matching", "icl", "classification",
                      "regression"]
PROBE_METRICS: tuple[ProbeMetric, ...] = get_args(ProbeMetric)
"""Probe scores a run can log at its evaluations; ``repeatlab.dynamics`` supplies the functions that compute them."""
RESERVED_EVAL_NAMES = frozenset({"train", "test", "repeated"})
_EVAL_NAME = re.compile(r"[a-z][a-z0-9_]*")
_HOOK_NAME = re.compile(r"[a-z_]+(\.[a-z0-9_]+)*")


def _positive_int(owner: str, name: str, value: object, *, allow_zero: bool = False) -> None:
    lower = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < lower:
        kind = "a non-negative" if allow_zero else "a positive"
        raise RepeatlabError(f"{owner}.{name} must be {kind} integer, got {value!r}")


@dataclass(kw_only=True, frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay (``train.schedule.learning_rate``)."""

    lr: float = 1e-3
    """Peak learning rate, reached at the end of warm-up."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of ``lr`` (the floor of the cosine)."""
    warmup_steps: int = 100
    """Optimizer steps of linear warm-up; if it exceeds the run, the whole run warms up."""
    weight_decay: float = 0.1
    """Decoupled weight decay, applied to weight matrices and embeddings only (not biases or LayerNorms)."""
    beta1: float = 0.9
    """AdamW first-moment decay."""
    beta2: float = 0.95
    """AdamW second-moment decay."""
    eps: float = 1e-8
    """AdamW denominator epsilon."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value; ``None`` disables clipping."""
    embedding_lr_scale: float = added_later(1.0)
    """Multiplier of the learning rate of the token (tied unembedding) and position embeddings: slows their
    early updates, the lever on the collapse of their effective rank studied in docs/reproduction.md."""

    def __post_init__(self) -> None:
        if not 0 < self.lr < math.inf:
            raise RepeatlabError(f"OptimConfig.lr must be > 0 and finite, got {self.lr!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise RepeatlabError(f"OptimConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        _positive_int("OptimConfig", "warmup_steps", self.warmup_steps, allow_zero=True)
        if not 0 <= self.weight_decay < math.inf:
            raise RepeatlabError(f"OptimConfig.weight_decay must be >= 0 and finite, got {self.weight_decay!r}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise RepeatlabError(f"OptimConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0 < self.eps < math.inf:
            raise RepeatlabError(f"OptimConfig.eps must be > 0 and finite, got {self.eps!r}")
        if not (isinstance(self.embedding_lr_scale, (int, float)) and 0 < self.embedding_lr_scale < math.inf):
            raise RepeatlabError(f"OptimConfig.embedding_lr_scale must be > 0 and finite, got {self.embedding_lr_scale!r}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise RepeatlabError(f"OptimConfig.grad_clip must be > 0 and finite, or null, got {self.grad_clip!r}")


@dataclass(kw_only=True, frozen=True)
class InterventionConfig:
    """Replace an activation, or some of its heads, at a named hook point during part of training.

    Applied to every forward pass of the training steps ``start_step <= step < stop_step`` (step = the
    update that takes the model from ``step`` to ``step + 1``), and, with ``in_evals``, to the evaluations
    and probes of those steps, so the logged curves describe the model as it is being trained. Gradients
    flow around the replaced values, never through them. ``train.interventions`` applies the hooks.
    """

    hook: str
    """Hook name, e.g. ``blocks.0.attn.z`` (``repeatlab.models.hook_names`` lists them)."""
    heads: tuple[int, ...] = ()
    """Heads to replace at a per-head hook (``blocks.{i}.attn.{q,k,v,z,pattern}``); empty = the whole activation."""
    mode: InterventionMode = "zero"
    """``zero``; ``mean``: the (detached) mean over the batch and positions of the current forward pass;
    ``clamp``: the constant ``value``; ``reference``: what the ``reference`` run's model computes at this hook point
    for the same input (Singh et al. 2024's clamping of a sub-circuit to its trained state)."""
    value: float = 0.0
    """The constant of ``clamp`` mode."""
    reference: str | None = added_later(None)
    """Run directory of mode ``reference``: a finished run of the same model shape and data, whose final weights
    supply the values."""
    start_step: int = 0
    """First training step with the intervention."""
    stop_step: int | None = None
    """First training step without it again; ``None`` = until the end of the run."""
    in_evals: bool = True
    """Also apply it at the evaluations (losses and probes) of steps in the range; false measures the bare weights."""

    def __post_init__(self) -> None:
        if not isinstance(self.hook, str) or not _HOOK_NAME.fullmatch(self.hook):
            raise RepeatlabError(f"InterventionConfig.hook must be a hook name such as blocks.0.attn.z, got {self.hook!r}")
        for head in self.heads:
            _positive_int("InterventionConfig", "heads", head, allow_zero=True)
        if len(set(self.heads)) != len(self.heads):
            raise RepeatlabError(f"InterventionConfig.heads lists a head twice: {list(self.heads)}")
        if self.mode not in get_args(InterventionMode):
            raise RepeatlabError(f"InterventionConfig.mode must be zero, mean or clamp, got {self.mode!r}")
        if self.mode != "clamp" and self.value != 0.0:
            raise RepeatlabError(f"InterventionConfig.value is only used by mode clamp, got value={self.value!r} "
                             f"with mode {self.mode!r}")
        if (self.mode == "reference") != (self.reference is not None):
            raise RepeatlabError(f"InterventionConfig.reference (a run directory) is needed by mode reference and only "
                             f"by it, got reference={self.reference!r} with mode {self.mode!r}")
        if self.reference is not None and (not isinstance(self.reference, str) or not self.reference):
            raise RepeatlabError(f"InterventionConfig.reference must be a run directory, got {self.reference!r}")
        _positive_int("InterventionConfig", "start_step", self.start_step, allow_zero=True)
        if self.stop_step is not None:
            _positive_int("InterventionConfig", "stop_step", self.stop_step)
            if self.stop_step <= self.start_step:
                raise RepeatlabError(f"InterventionConfig.stop_step={self.stop_step} must exceed "
                                 f"start_step={self.start_step}")

    def active(self, step: int, *, evaluating: bool = False) -> bool:
        """Whether it applies at ``step`` (a training step, or the evaluation after ``step`` updates)."""
        if evaluating and not self.in_evals:
            return False
        return self.start_step <= step and (self.stop_step is None or step < self.stop_step)


@dataclass(kw_only=True, frozen=True)
class TrainConfig:
    """Batch size, evaluation and checkpoint schedules, device and precision of the training loop."""

    batch_tokens: int = 8192
    """Global batch in tokens (all processes and accumulation steps together); a multiple of the context."""
    micro_batch_tokens: int | None = None
    """Tokens per forward/backward pass on one process; ``None`` = the whole per-process batch at once.
    The per-process batch must be a multiple of it (the quotient is the gradient-accumulation count)."""
    n_log_evals: int = 20
    """Evaluations at log-spaced steps 1, ..., n_steps (resolves early training); 0 disables them."""
    eval_every: int | None = None
    """Also evaluate every this many steps; ``None`` = only log-spaced steps, step 0 and the final step."""
    eval_test_sequences: int = 64
    """Fixed sample of clean test-split sequences for the test loss."""
    eval_repeated_sequences: int = 64
    """Fixed sample of repeated-subset sequences for the repeated loss (unused for controls)."""
    eval_seed: int = 0
    """Seed of the evaluation samples (kept apart from ``seed`` so runs with different seeds share them)."""
    checkpoint_every: int = 1000
    """Save a resumable checkpoint every this many optimizer steps."""
    keep_checkpoints: int = 2
    """Keep the last K checkpoints; older ones are deleted after a newer one is complete."""
    device: Device = "auto"
    """``auto`` = CUDA when available, else CPU. Under ``torchrun``, CUDA means ``cuda:LOCAL_RANK``."""
    precision: Precision = "auto"
    """``auto`` = bf16 autocast on CUDA, float32 on CPU."""
    compile: bool = False
    """``torch.compile`` the model together with its cross-entropy (``train.objective``), so the unembedding and
    the loss fuse: about 1.2-1.4x a tiny model's CPU step at one thread, after a 20-120 s compilation per process
    and shape (docs/performance.md). Needs a C++ compiler on CPU; off by default because the compilation costs
    more than a short run gains."""
    seed: int = 0
    """Seed of the model initialisation and of every RNG the loop uses."""
    cpu_threads: int | None = None
    """Threads for CPU ops during the run (``torch.set_num_threads``, restored afterwards); ``None`` keeps
    torch's default. 1 is fastest for tiny models on a busy machine, where threads wait on each other."""
    probe_metrics: tuple[ProbeMetric, ...] = ()
    """Probe scores logged at every evaluation (``induction.max``, ``icl.score``, ...), so a phase change is a
    curve; computed by evaluators that ``repeatlab.dynamics.train_with_probes`` (and the CLI) pass to ``train``."""
    probe_sequences: int = 32
    """Random sequences per attention probe, and test contexts of the ICL score, at each evaluation."""
    extra_evals: dict[str, str] = field(default_factory=dict)
    """More held-out losses, logged as ``{name}_loss``: name -> ``python-stdlib`` (the Python standard
    library's own ``.py`` files), a prepared dataset directory (its test split) or any corpus source; each is
    tokenized with this run's tokenizer and sampled like the test loss (``eval_test_sequences``)."""
    interventions: tuple[InterventionConfig, ...] = ()
    """Activations zeroed, mean-ablated or clamped during (part of) training (``InterventionConfig``)."""

    def __post_init__(self) -> None:
        if self.cpu_threads is not None:
            _positive_int("TrainConfig", "cpu_threads", self.cpu_threads)
        for name in ("batch_tokens", "eval_test_sequences", "checkpoint_every", "keep_checkpoints"):
            _positive_int("TrainConfig", name, getattr(self, name))
        _positive_int("TrainConfig", "n_log_evals", self.n_log_evals, allow_zero=True)
        _positive_int("TrainConfig", "eval_repeated_sequences", self.eval_repeated_sequences, allow_zero=True)
        for name in ("seed", "eval_seed"):
            check_seed(f"TrainConfig.{name}", getattr(self, name))
        if self.micro_batch_tokens is not None:
            _positive_int("TrainConfig", "micro_batch_tokens", self.micro_batch_tokens)
            if self.micro_batch_tokens > self.batch_tokens:
                raise RepeatlabError(
                    f"TrainConfig.micro_batch_tokens={self.micro_batch_tokens} exceeds batch_tokens={self.batch_tokens}"
                )
        if self.eval_every is not None:
            _positive_int("TrainConfig", "eval_every", self.eval_every)
        if self.device not in ("auto", "cpu", "cuda"):
            raise RepeatlabError(f"TrainConfig.device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise RepeatlabError(f"TrainConfig.precision must be auto, fp32 or bf16, got {self.precision!r}")
        if not isinstance(self.compile, bool):
            raise RepeatlabError(f"TrainConfig.compile must be true or false, got {self.compile!r}")
        for name in self.probe_metrics:
            if name not in PROBE_METRICS:
                raise RepeatlabError(f"TrainConfig.probe_metrics: unknown probe {name!r}; "
                                 f"valid: {', '.join(PROBE_METRICS)}")
        if len(set(self.probe_metrics)) != len(self.probe_metrics):
            raise RepeatlabError(f"TrainConfig.probe_metrics lists a probe twice: {list(self.probe_metrics)}")
        _positive_int("TrainConfig", "probe_sequences", self.probe_sequences)
        for name, source in self.extra_evals.items():
            if not _EVAL_NAME.fullmatch(name) or name in RESERVED_EVAL_NAMES:
                raise RepeatlabError(f"TrainConfig.extra_evals: name {name!r} must be lower-case letters, digits and _ "
                                 f"and not one of {sorted(RESERVED_EVAL_NAMES)}")
            if not isinstance(source, str) or not source:
                raise RepeatlabError(f"TrainConfig.extra_evals.{name} must be a non-empty source, got {source!r}")
        for item in self.interventions:
            if not isinstance(item, InterventionConfig):
                raise RepeatlabError(f"TrainConfig.interventions holds a {type(item).__name__}, not an InterventionConfig")
        if self.interventions and self.compile:
            # Hooks added to a compiled model after its first call are not seen (models/hooks.py).
            raise RepeatlabError("TrainConfig.interventions cannot be combined with compile=true; set compile=false")


@dataclass(kw_only=True, frozen=True)
class RunConfig:
    """One training run: which prepared dataset and mixture, which model size, and how to train it."""

    dataset: str
    """Prepared dataset directory (``repeatlab data prepare``)."""
    mixture: str
    """Mixture directory built over that dataset (``repeatlab data mix``)."""
    model: str
    """A size name from ``repeatlab.models.sizes.SIZES``; vocabulary and context come from the dataset."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser and learning-rate schedule."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Batch, evaluation, checkpoint and device settings."""
    init_from: str | None = None
    """Run directory whose weights start this run (fine-tuning) instead of a fresh initialisation; the optimizer
    and the schedule start fresh. Its model size, vocabulary, context and tokenizer must match this run's."""
    init_checkpoint: str = "final"
    """Weights of ``init_from`` to start from: ``final`` or a checkpoint name such as ``step_0000120``."""

    def __post_init__(self) -> None:
        for name in ("dataset", "mixture", "model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise RepeatlabError(f"RunConfig.{name} must be a non-empty string, got {value!r}")
        if not isinstance(self.optim, OptimConfig):
            raise RepeatlabError(f"RunConfig.optim must be an OptimConfig, got {type(self.optim).__name__}")
        if not isinstance(self.train, TrainConfig):
            raise RepeatlabError(f"RunConfig.train must be a TrainConfig, got {type(self.train).__name__}")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise RepeatlabError(f"RunConfig.init_from must be a run directory or null, got {self.init_from!r}")
        if self.init_checkpoint != "final" and not re.fullmatch(r"step_\d{7,}", self.init_checkpoint):
            raise RepeatlabError(f"RunConfig.init_checkpoint must be 'final' or a checkpoint name such as step_0000120, "
                             f"got {self.init_checkpoint!r}")

    def resolved(self) -> RunConfig:
        """The same run with absolute data paths, so the stored config does not depend on the cwd."""
        init_from = str(Path(self.init_from).resolve()) if self.init_from is not None else None
        interventions = tuple(item if item.reference is None else replace(item, reference=str(Path(item.reference)
                                                                                               .resolve()))
                              for item in self.train.interventions)
        return replace(self, dataset=str(Path(self.dataset).resolve()), mixture=str(Path(self.mixture).resolve()),
                       init_from=init_from, train=replace(self.train, interventions=interventions))
