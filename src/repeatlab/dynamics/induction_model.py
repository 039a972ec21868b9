"""A model of induction-head formation on the in-context classification task, after Reddy 2023.

Reddy reduces the induction head that solves his task to two parameters, and traces its abrupt emergence to
three logits nested inside one another and learned one after the other. This module is our reading of that idea,
written from the task's own statistics (``data.classification.ClassificationTask``), not a transcription of his
equations (we had only the paper's abstract and summary):

* ``xi``, the induction head's *copy* strength, the outer logit: the labels it attends to gain ``xi`` times their
  attention, so the correct label gets ``u = xi a`` and each distractor label ``v = xi (1 - a) / D``;
* ``beta``, its *match*, the middle logit: the query attends to the labels of the ``B`` context items of its own
  class with weight ``a = B e^(beta p) / (B e^(beta p) + D)`` against the ``D = N - B`` other pairs (``N =
  n_pairs - 1`` context pairs);
* ``alpha``, the previous-token head, the inner logit: each label position attends to its own item with weight
  ``p = e^alpha / (e^alpha + N)``, and the match can only use what that head copied (``beta p``);
* beside them, in-weights learning: one logit ``w_k`` per class on its fixed label, which competes with the copy;
* and the label prior ``lambda``, a logit shared by the ``L`` label tokens against the rest of the vocabulary: the
  answer is a label. At initialisation every token is equally likely (loss ``ln V``), and this is learned first,
  taking the loss to about ``ln L``: the first step of the curriculum, which the nested logits then continue.

``(beta, xi)`` are the induction head's two parameters; ``alpha`` is what it is built on. Gradient descent on the
expected cross-entropy at the query (classes drawn by the task's Zipf law; a ``relabel_fraction`` of sequences with
fresh labels, where ``w_k`` points to a wrong label) gives the dynamics, and the nesting gives the plateau: at
``alpha = beta = 0`` only the copy has a gradient (it earns ``a = B / N`` of the context); ``beta``'s gradient is
proportional to ``xi p``, and ``alpha``'s to ``xi beta``, so each logit starts to move only once the one outside it
has grown, and when the inner ones move, ``a`` rises and with it every gradient: a long, slow start, then an abrupt
drop of the loss. In-weights learning competes: each ``w_k`` learns at a rate proportional to its class's
frequency, fast for few classes, and once the weights answer the query the copy's gradient dies (the loss is
already low). So the burstiness ``B`` (through ``a``) and the number of classes ``K`` (through ``w``'s rate) decide
which mechanism wins, as in the network.

``fit_induction_model`` fits the constants that map the model onto a network's training (the time scale per step,
the in-weights rate and the initial copy strength) to the network's query losses on the task's ``icl`` and ``iwl``
sets, jointly over runs of several tasks, so that one set of constants must reproduce every task's curves: the
dependence on K and B is then the model's prediction, not a fit per cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from repeatlab.data.classification import ClassificationTask
from repeatlab.errors import RepeatlabError


@dataclass(frozen=True, kw_only=True)
class InductionConstants:
    """What maps the model onto a network's training: ``lr`` (model time per training step), ``iwl_rate`` (the
    in-weights logits' rate relative to the head's) and ``xi0`` (the copy strength at initialisation)."""

    lr: float
    iwl_rate: float
    xi0: float


@dataclass(frozen=True)
class _Task:
    """The task's statistics the model reads."""

    context_pairs: int
    burstiness: int
    n_labels: int
    class_probs: np.ndarray
    """Probability of one class of each group of equally frequent classes (one group when alpha = 0): classes of
    equal frequency have equal logits throughout, so each group is simulated once."""
    class_mass: np.ndarray
    """Total probability of each group (sums to 1): the weights of the expected loss."""
    relabel_fraction: float
    vocab_size: int
    """Every token the network can answer (classes, labels, end of text): the label prior's competitors."""

    @classmethod
    def of(cls, task: ClassificationTask) -> _Task:
        if task.burstiness >= task.n_pairs - 1:
            raise RepeatlabError(f"the model needs at least one distractor pair: burstiness {task.burstiness} with "
                             f"{task.n_pairs - 1} context pairs")
        if task.n_labels < task.n_pairs + 1:
            raise RepeatlabError(f"the model needs more labels ({task.n_labels}) than context pairs + 1 ({task.n_pairs})")
        probs, counts = np.unique(task.class_probabilities, return_counts=True)
        return cls(task.n_pairs - 1, task.burstiness, task.n_labels, probs, probs * counts, task.relabel_fraction,
                   task.vocab_size)

    @property
    def distractors(self) -> int:
        return self.context_pairs - self.burstiness

    @property
    def non_labels(self) -> int:
        return self.vocab_size - self.n_labels


@dataclass(frozen=True)
class State:
    """The model's parameters (or their gradients): the three nested logits, the label prior and the in-weights
    logits (one per group of equally frequent classes)."""

    alpha: float
    beta: float
    xi: float
    prior: float
    w: np.ndarray

    def step(self, grad: State, lr: float, iwl_rate: float) -> State:
        return State(self.alpha - lr * grad.alpha, self.beta - lr * grad.beta, self.xi - lr * grad.xi,
                     self.prior - lr * grad.prior, self.w - lr * iwl_rate * grad.w)


def _previous_token(alpha: float, task: _Task) -> float:
    """The previous-token head's attention on the previous token, against the ``n_pairs`` other candidates."""
    return np.exp(alpha) / (np.exp(alpha) + task.context_pairs)


def _copy_logits(state: State, task: _Task) -> tuple[float, float, float, float]:
    """``(p, a, u, v)``: previous-token attention, attention on the query's class, the correct label's copy logit
    and each distractor's."""
    p = _previous_token(state.alpha, task)
    match = task.burstiness * np.exp(state.beta * p)
    a = match / (match + task.distractors)
    return p, a, state.xi * a, state.xi * (1.0 - a) / task.distractors


def _gradients(state: State, task: _Task) -> tuple[State, float]:
    """The gradient of the expected training loss at ``state``, and the loss.

    Every label token gets the prior ``lambda`` over the ``V - L`` other tokens of the vocabulary; among the labels,
    fixed-label sequences give the correct one ``u + w``, the ``d`` distractors ``v`` and the rest 0, relabelled
    ones the correct label ``u``, the class's fixed (now wrong) label ``w``, the distractors ``v``, the rest 0."""
    prev, a, u, v = _copy_logits(state, task)
    d, p, mass, r, w = task.distractors, task.class_probs, task.class_mass, task.relabel_fraction, state.w
    scale, others = np.exp(state.prior), task.non_labels
    labels_fixed = np.exp(u + w) + d * np.exp(v) + (task.n_labels - 1 - d)
    labels_relabel = np.exp(u) + np.exp(w) + d * np.exp(v) + (task.n_labels - 2 - d)
    z_fixed, z_relabel = scale * labels_fixed + others, scale * labels_relabel + others
    loss = float(mass @ ((1 - r) * (np.log(z_fixed) - u - w) + r * (np.log(z_relabel) - u))) - state.prior
    correct_fixed, correct_relabel = scale * np.exp(u + w) / z_fixed, scale * np.exp(u) / z_relabel
    grad_u = float(mass @ ((1 - r) * (correct_fixed - 1) + r * (correct_relabel - 1)))
    grad_v = float(mass @ (d * scale * np.exp(v) * ((1 - r) / z_fixed + r / z_relabel)))
    grad_prior = float(mass @ ((1 - r) * scale * labels_fixed / z_fixed + r * scale * labels_relabel / z_relabel)) - 1
    grad_w = p * ((1 - r) * (correct_fixed - 1) + r * scale * np.exp(w) / z_relabel)
    grad_xi = grad_u * a + grad_v * (1 - a) / d
    grad_match = state.xi * a * (1 - a) * (grad_u - grad_v / d)  # d loss / d (beta p)
    return State(grad_match * state.beta * prev * (1 - prev), grad_match * prev, grad_xi, grad_prior, grad_w), loss


def eval_losses(state: State, task: _Task) -> tuple[float, float]:
    """The query's expected cross-entropy on the ``icl`` set (class in context, fresh labels) and the ``iwl`` set
    (class absent, fixed labels: the head spreads ``xi`` over the ``N`` pairs' labels)."""
    _, _, u, v = _copy_logits(state, task)
    d, mass, n, w = task.distractors, task.class_mass, task.context_pairs, state.w
    scale, others = np.exp(state.prior), task.non_labels
    icl = np.log(scale * (np.exp(u) + np.exp(w) + d * np.exp(v) + (task.n_labels - 2 - d)) + others) - u
    iwl = np.log(scale * (np.exp(w) + n * np.exp(state.xi / n) + (task.n_labels - 1 - n)) + others) - w
    return float(mass @ icl) - state.prior, float(mass @ iwl) - state.prior


@dataclass(frozen=True)
class ModelCurves:
    """The model's trajectory at the requested steps."""

    steps: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    xi: np.ndarray
    prior: np.ndarray
    icl_loss: np.ndarray
    iwl_loss: np.ndarray
    train_loss: np.ndarray


def simulate(task: ClassificationTask, constants: InductionConstants, steps: Sequence[int]) -> ModelCurves:
    """Gradient descent from ``alpha = beta = lambda = 0``, ``xi = xi0``, ``w = 0`` (every token equally likely,
    as at initialisation), one model step per training step; the state after ``s`` steps for each ``s`` in
    ``steps``."""
    stats = _Task.of(task)
    wanted = np.asarray(sorted(set(int(s) for s in steps)), dtype=np.int64)
    if len(wanted) == 0 or wanted[0] < 0:
        raise RepeatlabError(f"steps must be non-negative, got {list(steps)}")
    state = State(0.0, 0.0, constants.xi0, 0.0, np.zeros(len(stats.class_probs)))
    rows: dict[str, list[float]] = {name: [] for name in ("alpha", "beta", "xi", "prior", "icl", "iwl", "train")}
    index = 0
    for step in range(int(wanted[-1]) + 1):
        grad, loss = _gradients(state, stats)
        if step == wanted[index]:
            icl, iwl = eval_losses(state, stats)
            for name, value in zip(rows, (state.alpha, state.beta, state.xi, state.prior, icl, iwl, loss)):
                rows[name].append(value)
            index += 1
            if index == len(wanted):
                break
        state = state.step(grad, constants.lr, constants.iwl_rate)
    return ModelCurves(wanted, *(np.asarray(rows[name]) for name in rows))


@dataclass(frozen=True)
class MeasuredCurves:
    """One network run's query losses on the ``icl`` and ``iwl`` sets at logged steps."""

    task: ClassificationTask
    steps: np.ndarray
    icl_loss: np.ndarray
    iwl_loss: np.ndarray


@dataclass(frozen=True)
class InductionFit:
    """Fitted constants and, per run, the model's curves and how much of the measured curves' variance they
    explain (``r2`` over the two losses together)."""

    constants: InductionConstants
    curves: tuple[ModelCurves, ...]
    r2: tuple[float, ...]
    rmse: float
    at_bounds: tuple[str, ...]
    """Constants the fit pushed to the edge of its search range (``LOG_BOUNDS``): a sign the model cannot
    describe the curves with sensible values, rather than a measurement of that constant."""


LOG_BOUNDS = (-20.0, 8.0)
"""Natural-log range the constants are searched in (about 2e-9 to 3e3)."""


def r_squared(run: MeasuredCurves, curve: ModelCurves) -> float:
    """Share of the variance of ``run``'s two loss curves together that ``curve`` explains (can be negative)."""
    measured = np.concatenate([run.icl_loss, run.iwl_loss])
    modelled = np.concatenate([curve.icl_loss, curve.iwl_loss])
    total = float(np.sum((measured - measured.mean()) ** 2))
    return 1.0 - float(np.sum((measured - modelled) ** 2)) / total if total > 0 else float("nan")


def _residuals(constants: InductionConstants, runs: Sequence[MeasuredCurves]) -> tuple[list[ModelCurves], np.ndarray]:
    curves = [simulate(run.task, constants, run.steps) for run in runs]
    residuals = [np.concatenate([c.icl_loss - r.icl_loss, c.iwl_loss - r.iwl_loss]) for c, r in zip(curves, runs)]
    return curves, np.concatenate(residuals)


def _constants(log_params: np.ndarray) -> InductionConstants:
    lr, iwl_rate, xi0 = np.exp(np.clip(log_params, *LOG_BOUNDS))
    return InductionConstants(lr=float(lr), iwl_rate=float(iwl_rate), xi0=float(xi0))


def fit_induction_model(runs: Sequence[MeasuredCurves], *, starts: Sequence[Mapping[str, float]] | None = None,
                        ) -> InductionFit:
    """Least-squares fit of ``InductionConstants``, shared by ``runs``, to their ``icl`` and ``iwl`` query losses;
    Nelder-Mead in log space from each start (default: a small grid), the best kept."""
    if not runs:
        raise RepeatlabError("fit_induction_model needs at least one run")
    grid = starts or [{"lr": lr, "iwl_rate": rate, "xi0": 0.1} for lr in (0.03, 0.3) for rate in (1.0, 30.0)]

    def objective(log_params: np.ndarray) -> float:
        _, residual = _residuals(_constants(log_params), runs)
        value = float(np.mean(residual ** 2))
        return value if np.isfinite(value) else 1e12

    best = None
    for start in grid:
        x0 = np.log([start["lr"], start["iwl_rate"], start["xi0"]])
        result = minimize(objective, x0, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400})
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    constants = _constants(best.x)
    curves, residual = _residuals(constants, runs)
    edge = [name for name, value in zip(("lr", "iwl_rate", "xi0"), best.x)
            if not LOG_BOUNDS[0] + 1e-3 < value < LOG_BOUNDS[1] - 1e-3]
    return InductionFit(constants=constants, curves=tuple(curves),
                        r2=tuple(r_squared(run, curve) for run, curve in zip(runs, curves)),
                        rmse=float(np.sqrt(np.mean(residual ** 2))), at_bounds=tuple(edge))


__all__ = ["LOG_BOUNDS", "InductionConstants", "InductionFit", "MeasuredCurves", "ModelCurves", "State",
           "eval_losses", "fit_induction_model", "r_squared", "simulate"]
