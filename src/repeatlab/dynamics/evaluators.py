"""Probe scores at every evaluation of a run, so the induction-head phase change is a curve, not an end point.

``probe_evaluators(config)`` turns the names in ``TrainConfig.probe_metrics`` into the step evaluators that
``repeatlab.train.train`` merges into each metrics record:

- ``induction``, ``previous_token``, ``duplicate_token``: attention-pattern scores (``probes.attention_scores``)
  on ``train.probe_sequences`` random sequences of ``min(50, (context - 1) // 2)`` tokens repeated twice;
  the three share one forward pass per evaluation.
- ``prefix_matching``: the same score on Olsson et al.'s four-fold repeats of ``min(25, (context - 1) // 4)``
  tokens.
- ``icl``: the in-context-learning score (``probes.icl_score``) on ``train.probe_sequences`` test contexts.
- ``classification``: on an in-context classification dataset (``repeatlab.data.classification``), query-label
  accuracy and loss on its ``icl`` and ``iwl`` evaluation sets (``probes.classification``), logged as
  ``classification.{set}_accuracy`` and ``classification.{set}_loss``; in-weights accuracy at first occurrences
  and in-context accuracy at repeats on test sequences (``probes.pair_scores``), logged as
  ``classification.iwl_first_accuracy`` and ``classification.icl_repeat_accuracy``; and the query's
  induction-head score (``probes.query_induction_scores``) as a head score named ``classification.induction``.
- ``regression``: on an in-context regression dataset (``repeatlab.data.regression``), the model against one step
  of gradient descent on each context (``probes.compare_to_gd``, its fields logged as ``regression.{field}``) on
  ``train.probe_sequences`` test sequences, the step size tuned once on the task's tuning sequences.

Each head score is logged as ``{name}.max``, ``{name}.mean`` and one ``{name}.L{layer}H{head}`` per head;
ICL as ``icl.score``, ``icl.loss_early`` and ``icl.loss_late``. The settings are a ``ProbeConfig``
(``curve_probe_config``: seed ``train.eval_seed``, ``train.probe_sequences`` sequences), the inputs are drawn
once by ``probes.build_inputs`` and measured by ``probes.suite.measure``, as in ``run_probes``: every evaluation
(and every run sharing the eval seed) scores the same sequences, and ``run_probes`` with the same config on the
final weights gives the curve's last point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from torch import Tensor

from repeatlab.data.classification import EVAL_SETS
from repeatlab.data.prepared import PreparedDataset, load_prepared
from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.probes.classification import pair_scores, query_induction_scores, query_score
from repeatlab.probes.config import ProbeConfig
from repeatlab.probes.inputs import PAIR_ROWS, ProbeInputs, build_inputs
from repeatlab.probes.registry import PROBES, probes_of_metrics
from repeatlab.probes.suite import measure
from repeatlab.train.config import RunConfig
from repeatlab.train.trainer import StepEvaluator

_DEFAULTS = ProbeConfig()


def head_metrics(name: str, scores: Tensor) -> dict[str, float]:
    """``{name}.max``, ``{name}.mean`` and ``{name}.L{layer}H{head}`` of a ``[n_layers, n_heads]`` score."""
    out = {f"{name}.max": float(scores.max()), f"{name}.mean": float(scores.mean())}
    for layer, row in enumerate(scores.tolist()):
        for head, value in enumerate(row):
            out[f"{name}.L{layer}H{head}"] = float(value)
    return out


def curve_probe_config(config: RunConfig, context: int) -> ProbeConfig:
    """The probe settings of a run's curves: ``ProbeConfig`` defaults, seeded by ``train.eval_seed``, with
    ``train.probe_sequences`` sequences and Olsson et al.'s lengths shortened to fit ``context``."""
    probes = probes_of_metrics(config.train.probe_metrics)
    lengths: dict[str, int] = {}
    if "induction" in probes:
        lengths["induction_tokens"] = _length(min(_DEFAULTS.induction_tokens, (context - 1) // 2), "induction",
                                              context)
    if "prefix_matching" in probes:
        repeats = _DEFAULTS.prefix_matching_repeats
        lengths["prefix_matching_tokens"] = _length(min(_DEFAULTS.prefix_matching_tokens, (context - 1) // repeats),
                                                    "prefix_matching", context)
    n = config.train.probe_sequences
    return replace(_DEFAULTS, probes=probes, seed=config.train.eval_seed, n_random_sequences=n, n_test_sequences=n,
                   **lengths)


def probe_evaluators(config: RunConfig, dataset: PreparedDataset | None = None) -> dict[str, StepEvaluator]:
    """The step evaluators of ``config.train.probe_metrics`` over the run's dataset (loaded when not given)."""
    if not config.train.probe_metrics:
        return {}
    dataset = dataset if dataset is not None else load_prepared(config.dataset)
    probe_config = curve_probe_config(config, dataset.context)
    inputs = _inputs(probe_config, dataset)
    evaluators: dict[str, StepEvaluator] = {}
    for probe in probe_config.probes:
        shared = _StepMeasure(probe, inputs, probe_config)
        for metric in PROBES[probe].metrics:
            if metric in config.train.probe_metrics:
                evaluators[metric] = shared.evaluator(_METRICS[metric])
    return evaluators


Measured = dict[str, Any]
"""What one probe measured: ``ProbeResults`` fields (``probes.suite.measure``), or the classification metrics."""


class _StepMeasure:
    """One probe measured once per evaluation step and shared by the metrics it yields (one forward pass)."""

    def __init__(self, probe: str, inputs: ProbeInputs, config: ProbeConfig) -> None:
        self.probe, self.inputs, self.config = probe, inputs, config
        self._step: int | None = None
        self._measured: Measured = {}

    def at(self, model: GPT, step: int) -> Measured:
        # Cached by step: the evaluators of one evaluation see the same model.
        if self._step != step:
            if self.probe in _TRAINING_ONLY:
                self._measured = _TRAINING_ONLY[self.probe](model, self.inputs)
            else:
                self._measured = measure(self.probe, model, self.inputs, self.config)
            self._step = step
        return self._measured

    def evaluator(self, metrics: Callable[[Measured], dict[str, float]]) -> StepEvaluator:
        def evaluate(model: GPT, step: int) -> dict[str, float]:
            return metrics(self.at(model, step))

        return evaluate


def _classification(model: GPT, inputs: ProbeInputs) -> Measured:
    """Query accuracy and loss on each evaluation set, the pair scores, and the query's induction-head score."""
    assert inputs.classification is not None  # the classification probe's needs
    task, sets = inputs.classification
    out: dict[str, float] = {}
    for name in EVAL_SETS:
        score = query_score(model, sets[name], task)
        out[f"classification.{name}_accuracy"], out[f"classification.{name}_loss"] = score.accuracy, score.loss
    out.update({f"classification.{name}_accuracy": value
                for name, value in pair_scores(model, sets[PAIR_ROWS], task).items()})
    out.update(head_metrics("classification.induction", query_induction_scores(model, sets["icl"], task)))
    return {"classification": out}


_TRAINING_ONLY: dict[str, Callable[[GPT, ProbeInputs], Measured]] = {"classification": _classification}
"""Probes measured only during training (``Probe.checkpoint`` false); ``probes.suite.measure`` does the rest."""


def _head(name: str) -> Callable[[Measured], dict[str, float]]:
    return lambda measured: head_metrics(name, measured["head_scores"][name])


_METRICS: dict[str, Callable[[Measured], dict[str, float]]] = {
    **{name: _head(name) for name in ("induction", "previous_token", "duplicate_token", "prefix_matching")},
    "icl": lambda m: {"icl.score": m["icl"].score, "icl.loss_early": m["icl"].loss_early,
                      "icl.loss_late": m["icl"].loss_late},
    "classification": lambda m: m["classification"],
    "regression": lambda m: m["regression"].metrics(),
}
"""How each name of ``train.probe_metrics`` reads its probe's measurement."""


def _inputs(config: ProbeConfig, dataset: PreparedDataset) -> ProbeInputs:
    vocab_size = None if dataset.d_vector is not None else dataset.vocab_size
    try:
        return build_inputs(config, model_context=dataset.context, vocab_size=vocab_size, dataset=dataset)
    except RepeatlabError as exc:
        raise RepeatlabError(f"train.probe_metrics: {exc}") from None


def _length(length: int, probe: str, context: int) -> int:
    if length < 2:
        raise RepeatlabError(f"train.probe_metrics: the {probe} probe needs a longer context than {context} tokens")
    return length


__all__ = ["curve_probe_config", "head_metrics", "probe_evaluators"]
