"""Configs of a training run: the optimiser, the training loop, and the run that ties them to data and a model.

A ``RunConfig`` is the whole identity of a run: it is written to ``config.json`` in the run directory,
and a run directory whose stored config differs from the asked one is refused (``train.run``).
Values that depend on the data (sequences per batch, gradient-accumulation steps) are derived in
``train.plan`` once the dataset's context is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16"]


def _positive_int(owner: str, name: str, value: object, *, allow_zero: bool = False) -> None:
    lower = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < lower:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{owner}.{name} must be {kind} integer, got {value!r}")


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

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"OptimConfig.lr must be > 0, got {self.lr!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"OptimConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        _positive_int("OptimConfig", "warmup_steps", self.warmup_steps, allow_zero=True)
        if not self.weight_decay >= 0:
            raise ValueError(f"OptimConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"OptimConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.eps > 0:
            raise ValueError(f"OptimConfig.eps must be > 0, got {self.eps!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"OptimConfig.grad_clip must be > 0 or null, got {self.grad_clip!r}")


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
    """Wrap the model in ``torch.compile`` (worth it on GPU; needs a C++ compiler on CPU)."""
    seed: int = 0
    """Seed of the model initialisation and of every RNG the loop uses."""
    cpu_threads: int | None = None
    """Threads for CPU ops during the run (``torch.set_num_threads``, restored afterwards); ``None`` keeps
    torch's default. 1 is fastest for tiny models on a busy machine, where threads wait on each other."""

    def __post_init__(self) -> None:
        if self.cpu_threads is not None:
            _positive_int("TrainConfig", "cpu_threads", self.cpu_threads)
        for name in ("batch_tokens", "eval_test_sequences", "checkpoint_every", "keep_checkpoints"):
            _positive_int("TrainConfig", name, getattr(self, name))
        _positive_int("TrainConfig", "n_log_evals", self.n_log_evals, allow_zero=True)
        _positive_int("TrainConfig", "eval_repeated_sequences", self.eval_repeated_sequences, allow_zero=True)
        for name in ("seed", "eval_seed"):
            _positive_int("TrainConfig", name, getattr(self, name), allow_zero=True)
        if self.micro_batch_tokens is not None:
            _positive_int("TrainConfig", "micro_batch_tokens", self.micro_batch_tokens)
            if self.micro_batch_tokens > self.batch_tokens:
                raise ValueError(
                    f"TrainConfig.micro_batch_tokens={self.micro_batch_tokens} exceeds batch_tokens={self.batch_tokens}"
                )
        if self.eval_every is not None:
            _positive_int("TrainConfig", "eval_every", self.eval_every)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"TrainConfig.device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"TrainConfig.precision must be auto, fp32 or bf16, got {self.precision!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"TrainConfig.compile must be true or false, got {self.compile!r}")


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

    def __post_init__(self) -> None:
        for name in ("dataset", "mixture", "model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"RunConfig.{name} must be a non-empty string, got {value!r}")
        if not isinstance(self.optim, OptimConfig):
            raise ValueError(f"RunConfig.optim must be an OptimConfig, got {type(self.optim).__name__}")
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"RunConfig.train must be a TrainConfig, got {type(self.train).__name__}")

    def resolved(self) -> RunConfig:
        """The same run with absolute data paths, so the stored config does not depend on the cwd."""
        return replace(self, dataset=str(Path(self.dataset).resolve()), mixture=str(Path(self.mixture).resolve()))
