"""The pieces of a training run and its two operations: ``train_step`` and ``maybe_eval``.

``Trainer`` owns the model, the AdamW optimizer, the data loader, the evaluator and the progress
counters; each is built by a small factory below. The learning rate is a pure function of the step
(``train.schedule``) and the batch of a step a pure function of the step (``data.loader``), so a
restored ``Trainer`` continues exactly where the saved one stopped. ``train.run`` drives the loop.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from repeatlab.data.loader import MixtureLoader
from repeatlab.data.mixture import Mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.models.sizes import model_config
from repeatlab.train.checkpoint import ModelState, RNGState, Stateful
from repeatlab.train.config import OptimConfig, RunConfig
from repeatlab.train.distributed import World
from repeatlab.train.interventions import check_interventions, intervened
from repeatlab.train.memory import check_memory
from repeatlab.train.metrics import Evaluator
from repeatlab.train.objective import TrainingLoss
from repeatlab.train.plan import BatchPlan, plan_batches
from repeatlab.train.schedule import eval_steps, learning_rate

# Losses stay on the device between checks (no per-step sync on GPU); check at least this often.
_MAX_PENDING_LOSSES = 32

StepEvaluator = Callable[[GPT, int], dict[str, float]]
"""``(model, step) -> {metric: value}``: extra numbers for the metrics record of an evaluation (probe scores).
Called in eval mode without gradients, with the interventions of that step in place."""


class TrainingDiverged(RepeatlabError):
    """The training loss became NaN or infinite; the message names the step."""


@dataclass
class Progress:
    """Counters that advance with training and must survive a restart."""

    step: int = 0
    tokens_seen: int = 0
    wall_time_s: float = 0.0
    """Wall-clock seconds of the run (training, evaluation and checkpointing), summed over restarts."""
    train_time_s: float = 0.0
    """Seconds spent in training steps only (excludes evaluation and checkpoints)."""
    probe_time_s: float = 0.0
    """Seconds spent in the step evaluators (probes during training), summed over restarts."""
    loss_sum: float = 0.0
    """Sum of per-step training losses since the last evaluation."""
    loss_steps: int = 0
    tokens_at_eval: int = 0
    train_time_at_eval: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def model_shape(size: str, dataset: PreparedDataset) -> ModelConfig:
    """The shape of model ``size`` over ``dataset``: its vocabulary and context (and vector width, for vectors)."""
    return model_config(size, vocab_size=dataset.vocab_size, context=dataset.context, d_vector=dataset.d_vector)


def build_model(
    config: RunConfig, dataset: PreparedDataset, world: World, init_state: Mapping[str, Tensor] | None = None
) -> GPT:
    """A freshly initialised model, seeded on the CPU so every device and process starts identically; with
    ``init_state`` (the weights of ``config.init_from``) those weights replace the initial ones exactly."""
    shape = model_shape(config.model, dataset)
    torch.manual_seed(config.train.seed)  # also with init_state: the RNG then advances as in a fresh run
    model = GPT(shape)
    if init_state is not None:
        model.load_state_dict(init_state, strict=True)
    return model.to(world.device)


def build_optimizer(model: GPT, optim: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only; the fused kernel on CUDA. With an
    ``embedding_lr_scale`` the embeddings get a group of their own, whose ``lr_scale`` ``train_step`` applies."""
    params = [p for p in model.parameters() if p.requires_grad]
    embeddings = {id(p) for p in model.embedding_parameters()} if optim.embedding_lr_scale != 1.0 else set()
    groups = [
        {"params": [p for p in params if p.dim() >= 2 and id(p) not in embeddings], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    if embeddings:
        groups.append({"params": [p for p in params if id(p) in embeddings], "weight_decay": optim.weight_decay,
                       "lr_scale": optim.embedding_lr_scale})
    return torch.optim.AdamW(
        groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps, fused=device.type == "cuda" or None
    )


def wrap_model(model: GPT, world: World, *, compile: bool) -> tuple[nn.Module, DistributedDataParallel | None]:
    """The module the training step calls, ``(inputs, targets) -> loss``: the model with its loss
    (``TrainingLoss``), wrapped in DDP across processes, then compiled as one unit if asked; and the DDP
    wrapper itself (whose ``no_sync`` skips the gradient all-reduce between accumulation steps)."""
    ddp = None
    module: nn.Module = TrainingLoss(model)
    if world.distributed:
        ddp = DistributedDataParallel(module, device_ids=[world.device.index] if world.device.type == "cuda" else None)
        module = ddp
    if compile:
        module = cast(nn.Module, torch.compile(module))
    return module, ddp


def _check_evaluators(config: RunConfig, evaluators: Mapping[str, StepEvaluator]) -> None:
    """The evaluators must be exactly those the config names, so the metrics a run logs follow from its config."""
    wanted = set(config.train.probe_metrics)
    missing, extra = sorted(wanted - set(evaluators)), sorted(set(evaluators) - wanted)
    if missing:
        raise RepeatlabError(
            f"train.probe_metrics lists {', '.join(missing)} but no evaluator computes it; train through "
            f"repeatlab.dynamics.train_with_probes (or 'repeatlab train'), which supplies the probe evaluators"
        )
    if extra:
        raise RepeatlabError(f"evaluators were given for {', '.join(extra)}, which train.probe_metrics does not list; "
                         f"add them to the config so that the run's identity names what it logs")


class Trainer:
    """Model, optimizer, data and counters of one run (see the module docstring)."""

    def __init__(
        self,
        config: RunConfig,
        world: World,
        *,
        dataset: PreparedDataset,
        mixture: Mixture,
        init_state: Mapping[str, Tensor] | None = None,
        extra_evals: Mapping[str, np.ndarray] | None = None,
        evaluators: Mapping[str, StepEvaluator] | None = None,
        references: Mapping[str, GPT] | None = None,
    ) -> None:
        """``init_state``: starting weights (``config.init_from``); ``extra_evals``: ``{name: [n, context + 1]}``
        token rows of ``config.train.extra_evals``; ``evaluators``: one per name in ``config.train.probe_metrics``;
        ``references``: the model of each run that an intervention of mode ``reference`` names."""
        self.config, self.world = config, world
        self.references = dict(references or {})
        self.evaluators = dict(evaluators or {})
        _check_evaluators(config, self.evaluators)
        self.plan: BatchPlan = plan_batches(
            config.train, context=dataset.context, world_size=world.world_size, n_sequences=mixture.n_sequences
        )
        self.loader = MixtureLoader(dataset, mixture, batch_size=self.plan.batch_sequences)
        self.model = build_model(config, dataset, world, init_state)
        check_interventions(self.model, config.train.interventions)
        check_memory(self.model, self.plan, world)  # before DDP: the probe runs a bare backward pass
        self.module, self.ddp = wrap_model(self.model, world, compile=config.train.compile)
        self.optimizer = build_optimizer(self.model, config.optim, world.device)
        self.evaluator = Evaluator(
            dataset,
            mixture,
            world,
            test_sequences=config.train.eval_test_sequences,
            repeated_sequences=config.train.eval_repeated_sequences,
            batch_sequences=self.plan.micro_batch_sequences,
            seed=config.train.eval_seed,
            extra=extra_evals,
        )
        self.eval_at = set(eval_steps(self.plan.n_steps, n_log_evals=config.train.n_log_evals,
                                      eval_every=config.train.eval_every))
        self.progress, self.rng = Progress(), RNGState()
        self._pending: list[Tensor] = []
        self._clock = time.perf_counter()

    @property
    def step(self) -> int:
        return self.progress.step

    def states(self) -> dict[str, Stateful]:
        """Everything a checkpoint must hold, by name, with the loss and time counters brought up to date
        (so a diverged loss is caught before it can be saved)."""
        self.check_losses()
        self.tick()
        return {"model": ModelState(self.model), "optimizer": self.optimizer, "loader": self.loader,
                "progress": self.progress, "rng": self.rng}

    def train_step(self) -> None:
        """One optimizer update on the global batch of the current step (this process's slice of it)."""
        started = time.perf_counter()
        step, plan = self.progress.step, self.plan
        lr = learning_rate(step, optim=self.config.optim, n_steps=plan.n_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        batch = self.loader.batch(step)
        rows = plan.rank_slice(self.world.rank)
        inputs = batch.inputs[rows].to(self.world.device, non_blocking=True)  # [b, T]
        targets = batch.targets[rows].to(self.world.device, non_blocking=True)  # [b, T]
        step_loss = torch.zeros((), device=self.world.device)
        with intervened(self.model, self.config.train.interventions, step, references=self.references):
            for i in range(plan.grad_accum):
                micro = slice(i * plan.micro_batch_sequences, (i + 1) * plan.micro_batch_sequences)
                loss = self._forward_backward(inputs[micro], targets[micro], sync=i == plan.grad_accum - 1)
                step_loss += loss.detach()
        if self.config.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._pending.append(step_loss / plan.grad_accum)
        self.progress.step = step + 1
        self.progress.tokens_seen += plan.batch_tokens
        self.loader.next_step = step + 1
        if len(self._pending) >= _MAX_PENDING_LOSSES:
            self.check_losses()
        self.progress.train_time_s += time.perf_counter() - started

    def _forward_backward(self, inputs: Tensor, targets: Tensor, *, sync: bool) -> Tensor:
        """Loss of one micro-batch, backpropagated with the 1/grad_accum scale; DDP all-reduces on ``sync``."""
        with self.ddp.no_sync() if self.ddp is not None and not sync else contextlib.nullcontext():
            with self.world.autocast():
                loss = self.module(inputs, targets)  # []
            (loss / self.plan.grad_accum).backward()
        return loss

    def check_losses(self) -> None:
        """Move pending losses to the host (averaged over processes); raise if one is not finite."""
        if not self._pending:
            return
        started = time.perf_counter()
        losses = torch.stack(self._pending).double()  # [n_pending]
        self._pending = []
        if self.world.distributed:
            torch.distributed.all_reduce(losses)
            losses /= self.world.world_size
        values = losses.tolist()
        first_step = self.progress.step - len(values) + 1
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the training loss became {value} at step {first_step + offset}; training stopped at step "
                    f"{self.progress.step} and nothing after the last checkpoint was saved. Lower optim.lr or "
                    f"raise optim.warmup_steps, then start again (the run resumes from its last good checkpoint)"
                )
        self.progress.loss_sum += sum(values)
        self.progress.loss_steps += len(values)
        self.progress.train_time_s += time.perf_counter() - started

    def maybe_eval(self) -> dict[str, Any] | None:
        """Evaluate at scheduled steps; returns the metrics record (or ``None`` off the schedule)."""
        if self.progress.step not in self.eval_at:
            return None
        self.check_losses()
        p = self.progress
        with intervened(self.model, self.config.train.interventions, p.step, evaluating=True,
                        references=self.references):
            losses = self.evaluator.evaluate(self.model)
            scores = self._run_evaluators()
        tokens = p.tokens_seen - p.tokens_at_eval
        seconds = p.train_time_s - p.train_time_at_eval
        record = {
            "step": p.step,
            "tokens_seen": p.tokens_seen,
            "train_loss": p.loss_sum / p.loss_steps if p.loss_steps else None,
            **losses,
            "lr": learning_rate(max(p.step - 1, 0), optim=self.config.optim, n_steps=self.plan.n_steps),
            "wall_time_s": round(self.tick(), 3),
            "train_time_s": round(p.train_time_s, 3),
            "tokens_per_s": round(tokens / seconds, 1) if tokens and seconds > 0 else None,
        }
        if self.evaluators:
            clash = sorted(set(record) & set(scores))
            if clash:
                raise RepeatlabError(f"a step evaluator returned {clash[0]!r}, which the metrics record already holds")
            record.update(scores)
            record["probe_time_s"] = round(p.probe_time_s, 3)
        p.loss_sum, p.loss_steps, p.tokens_at_eval, p.train_time_at_eval = 0.0, 0, p.tokens_seen, p.train_time_s
        return record

    @torch.no_grad()
    def _run_evaluators(self) -> dict[str, float]:
        """Every step evaluator's numbers, in eval mode; their time is added to ``progress.probe_time_s``."""
        if not self.evaluators:
            return {}
        started = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        scores: dict[str, float] = {}
        try:
            for name in self.config.train.probe_metrics:
                scores.update(self.evaluators[name](self.model, self.progress.step))
        finally:
            self.model.train(was_training)
        self.progress.probe_time_s += time.perf_counter() - started
        return scores

    def tick(self) -> float:
        """Add the wall time since the last call to ``progress.wall_time_s`` and return the total."""
        now = time.perf_counter()
        self.progress.wall_time_s += now - self._clock
        self._clock = now
        return self.progress.wall_time_s
