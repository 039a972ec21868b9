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
ICL as ``icl.score``, ``icl.loss_early`` and ``icl.loss_late``. Inputs are drawn once, from seeds derived
from ``train.eval_seed``, so every evaluation (and every run sharing the eval seed) scores the same
sequences, and the tokens come from the run's own pool (Olsson et al.'s frequency cut, as ``run_probes``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from repeatlab.data.classification import (
    EVAL_SETS,
    ClassificationTask,
    dataset_task,
    load_eval_sequences,
    pair_score_sequences,
)
from repeatlab.data.loader import eval_sequence_ids
from repeatlab.data.prepared import PreparedDataset, load_prepared
from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.probes import attention_scores, candidate_tokens, icl_positions, icl_score, repeated_random_tokens
from repeatlab.probes import token_frequencies
from repeatlab.probes.classification import pair_scores, query_induction_scores, query_score
from repeatlab.probes.regression import RegressionInputs, compare_to_gd, regression_inputs
from repeatlab.train.config import RunConfig
from repeatlab.train.trainer import StepEvaluator

INDUCTION_TOKENS, PREFIX_MATCHING_TOKENS, PREFIX_MATCHING_REPEATS = 50, 25, 4
"""Olsson et al.'s lengths, shortened to fit a shorter context."""
EXCLUDE_TOKEN_FRACTION = 0.1
BATCH_SIZE = 32
_INDUCTION_GROUP = ("induction", "previous_token", "duplicate_token")
PAIR_ROWS = "test"
"""Key of the classification inputs that holds the test-split rows of ``probes.pair_scores``."""


def head_metrics(name: str, scores: Tensor) -> dict[str, float]:
    """``{name}.max``, ``{name}.mean`` and ``{name}.L{layer}H{head}`` of a ``[n_layers, n_heads]`` score."""
    out = {f"{name}.max": float(scores.max()), f"{name}.mean": float(scores.mean())}
    for layer, row in enumerate(scores.tolist()):
        for head, value in enumerate(row):
            out[f"{name}.L{layer}H{head}"] = float(value)
    return out


def _generator(seed: int, what: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"dynamics.{what}:{seed}".encode()))


class AttentionProbe:
    """Attention-pattern scores of fixed token sequences, computed once per evaluation step and shared."""

    def __init__(self, tokens: Tensor, names: Sequence[str]) -> None:
        self.tokens, self.names = tokens, list(names)
        self._step: int | None = None
        self._scores: dict[str, Tensor] = {}

    def scores(self, model: GPT, step: int) -> dict[str, Tensor]:
        # Cached by step: the evaluators of one evaluation see the same model, so one forward pass serves all.
        if self._step != step:
            self._scores = attention_scores(model, self.tokens, self.names, batch_size=BATCH_SIZE)
            self._step = step
        return self._scores

    def evaluator(self, name: str) -> StepEvaluator:
        def evaluate(model: GPT, step: int) -> dict[str, float]:
            return head_metrics(name, self.scores(model, step)[name])

        return evaluate


def _icl_evaluator(rows: Tensor, positions: tuple[int, int]) -> StepEvaluator:
    def evaluate(model: GPT, _step: int) -> dict[str, float]:
        result = icl_score(model, rows, positions=positions, batch_size=BATCH_SIZE)
        return {"icl.score": result.score, "icl.loss_early": result.loss_early, "icl.loss_late": result.loss_late}

    return evaluate


def _classification_evaluator(task: ClassificationTask, sets: dict[str, Tensor]) -> StepEvaluator:
    def evaluate(model: GPT, _step: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in EVAL_SETS:
            score = query_score(model, sets[name], task)
            out[f"classification.{name}_accuracy"], out[f"classification.{name}_loss"] = score.accuracy, score.loss
        out.update({f"classification.{name}_accuracy": value
                    for name, value in pair_scores(model, sets[PAIR_ROWS], task).items()})
        out.update(head_metrics("classification.induction", query_induction_scores(model, sets["icl"], task)))
        return out

    return evaluate


def _regression_evaluator(inputs: RegressionInputs) -> StepEvaluator:
    def evaluate(model: GPT, _step: int) -> dict[str, float]:
        return compare_to_gd(model, inputs.rows, gd_lr=inputs.gd_lr, n_steps=inputs.n_steps).metrics()

    return evaluate


@dataclass(frozen=True)
class ProbeInputs:
    """The fixed inputs of a run's probe evaluators: drawn once from the run's data and ``train.eval_seed``."""

    induction: Tensor | None
    """``[n, 1 + 2 L]`` random sequences of L tokens repeated twice (induction, previous/duplicate-token)."""
    prefix_matching: Tensor | None
    """``[n, 1 + 4 L]`` four-fold repeats (prefix matching)."""
    icl_rows: Tensor | None
    """``[n, context + 1]`` test contexts (ICL score)."""
    icl_positions: tuple[int, int] | None
    classification: tuple[ClassificationTask, dict[str, Tensor]] | None = None
    """The task and its rows ``{name: [n, context + 1]}``: the evaluation sets and the test rows of the pair scores
    (in-context classification datasets only)."""
    regression: RegressionInputs | None = None
    """Test rows and the tuned step size of one GD step (in-context regression only)."""


def probe_inputs(config: RunConfig, dataset: PreparedDataset) -> ProbeInputs:
    """Draw the inputs that ``config.train.probe_metrics`` needs; ``ValueError`` names a probe the context is
    too short for."""
    names, context, vocab = set(config.train.probe_metrics), dataset.context, dataset.vocab_size
    n, seed = config.train.probe_sequences, config.train.eval_seed
    induction = prefix = rows = positions = None
    if names & {*_INDUCTION_GROUP, "prefix_matching"}:
        start = int(dataset.meta["eot_id"]) if "eot_id" in dataset.meta else dataset.tokenizer.eot_id
        frequencies = token_frequencies(dataset.tokens("train"), vocab)
        candidates = candidate_tokens(vocab, exclude=[start], frequencies=frequencies,
                                      exclude_fraction=EXCLUDE_TOKEN_FRACTION)
    if names & set(_INDUCTION_GROUP):
        length = _length(min(INDUCTION_TOKENS, (context - 1) // 2), "induction", context)
        induction = repeated_random_tokens(candidates, n_sequences=n, length=length, n_repeats=2, start_token=start,
                                           generator=_generator(seed, "induction"))
    if "prefix_matching" in names:
        length = _length(min(PREFIX_MATCHING_TOKENS, (context - 1) // PREFIX_MATCHING_REPEATS), "prefix_matching",
                         context)
        prefix = repeated_random_tokens(candidates, n_sequences=n, length=length, n_repeats=PREFIX_MATCHING_REPEATS,
                                        start_token=start, generator=_generator(seed, "prefix_matching"))
    if "icl" in names:
        try:
            positions = icl_positions(context)
        except ValueError as exc:
            raise RepeatlabError(f"train.probe_metrics: icl cannot be measured: {exc}") from None
        ids = eval_sequence_ids(dataset.n_sequences("test"), n, seed)
        rows = torch.from_numpy(np.asarray(dataset.sequences("test")[ids]).astype(np.int64))  # [n, context + 1]
    classification = None
    if "classification" in names:
        try:
            task = dataset_task(dataset)
        except ValueError as exc:
            raise RepeatlabError(f"train.probe_metrics: classification cannot be measured: {exc}") from None
        sets = {name: torch.from_numpy(load_eval_sequences(dataset, name)) for name in EVAL_SETS}
        classification = task, {**sets, PAIR_ROWS: torch.from_numpy(pair_score_sequences(dataset))}
    regression = None
    if "regression" in names:
        try:
            regression = regression_inputs(dataset, n_sequences=n, seed=seed)
        except ValueError as exc:
            raise RepeatlabError(f"train.probe_metrics: regression cannot be measured: {exc}") from None
    return ProbeInputs(induction=induction, prefix_matching=prefix, icl_rows=rows, icl_positions=positions,
                       classification=classification, regression=regression)


def probe_evaluators(config: RunConfig, dataset: PreparedDataset | None = None) -> dict[str, StepEvaluator]:
    """The step evaluators of ``config.train.probe_metrics`` over the run's dataset (loaded when not given)."""
    names = config.train.probe_metrics
    if not names:
        return {}
    inputs = probe_inputs(config, dataset if dataset is not None else load_prepared(config.dataset))
    evaluators: dict[str, StepEvaluator] = {}
    induction = [name for name in _INDUCTION_GROUP if name in names]
    if inputs.induction is not None and induction:
        shared = AttentionProbe(inputs.induction, induction)
        evaluators.update({name: shared.evaluator(name) for name in induction})
    if inputs.prefix_matching is not None:
        evaluators["prefix_matching"] = AttentionProbe(inputs.prefix_matching, ["prefix_matching"]).evaluator(
            "prefix_matching")
    if inputs.icl_rows is not None and inputs.icl_positions is not None:
        evaluators["icl"] = _icl_evaluator(inputs.icl_rows, inputs.icl_positions)
    if inputs.classification is not None:
        evaluators["classification"] = _classification_evaluator(*inputs.classification)
    if inputs.regression is not None:
        evaluators["regression"] = _regression_evaluator(inputs.regression)
    return evaluators


def _length(length: int, probe: str, context: int) -> int:
    if length < 2:
        raise RepeatlabError(f"train.probe_metrics: the {probe} probe needs a longer context than {context} tokens")
    return length


__all__ = ["AttentionProbe", "ProbeInputs", "head_metrics", "probe_evaluators", "probe_inputs"]
