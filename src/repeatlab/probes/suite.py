"""``run_probes``: every probe of a checkpoint through one call, with results that serialise to JSON.

The inputs come from ``probes.inputs.build_inputs`` (which records its choices), the probe list from
``probes.registry``; each measurement is a library function of its own module that works on plain tensors,
called through ``measure``, which the step evaluators of ``repeatlab.dynamics`` share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from repeatlab.config import to_dict
from repeatlab.data.mixture import Mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.probes.ablation import AblationResult, ablation_metrics, head_ablation
from repeatlab.probes.config import ProbeConfig
from repeatlab.probes.heads import attention_scores, check_heads, ov_copying_scores, top_heads
from repeatlab.probes.icl import CopyingResult, IclResult, copying_eval, icl_from_losses, token_losses
from repeatlab.probes.inputs import ProbeInputs, build_inputs, check_lengths, probe_generator
from repeatlab.probes.memorisation import MemorisationResult, memorisation
from repeatlab.probes.regression import GDComparison, compare_to_gd
from repeatlab.probes.registry import PROBES, VECTOR_PROBES

N_TOP_HEADS = 5
INDUCTION_SCORES = ("induction", "previous_token", "duplicate_token")
"""The head scores of the induction probe: one set of sequences, one forward pass."""


@dataclass(frozen=True)
class ProbeResults:
    """Everything ``run_probes`` measured; ``to_dict`` gives the ``probes.json`` layout."""

    config: ProbeConfig
    model: dict[str, int]
    """Shape of the probed model (layers, heads, d_model, vocabulary, context)."""
    head_scores: dict[str, Tensor] = field(default_factory=dict)
    """Score name -> ``[n_layers, n_heads]`` (induction, previous/duplicate token, prefix matching, OV copying)."""
    icl: IclResult | None = None
    copying: CopyingResult | None = None
    memorisation: dict[str, MemorisationResult] | None = None
    """Group (repeated, seen_once, test) -> result."""
    ablation: AblationResult | None = None
    regression: GDComparison | None = None
    """A vector model against one step of gradient descent on each context (``probes.regression``)."""
    inputs: dict[str, Any] = field(default_factory=dict)
    """The choices the probes made: start token, candidate tokens, test sequence ids."""

    def summary(self) -> dict[str, float | None]:
        """Flat scalar summaries, e.g. ``induction.max``, ``icl.score``, ``memorisation.repeated.exact_match_rate``."""
        out: dict[str, float | None] = {}
        for name, scores in self.head_scores.items():
            out[f"{name}.max"] = float(scores.max())
            out[f"{name}.mean"] = float(scores.mean())
        if self.icl is not None:
            out["icl.score"] = self.icl.score
            out["test_loss"] = self.icl.test_loss
        if self.copying is not None:
            out["copying.first_copy_loss"] = self.copying.first_copy_loss
            out["copying.repeated_copies_loss"] = self.copying.repeated_copies_loss
        for group, result in (self.memorisation or {}).items():
            out[f"memorisation.{group}.exact_match_rate"] = result.exact_match_rate
            out[f"memorisation.{group}.token_match_rate"] = result.token_match_rate
        if self.ablation is not None:
            for metric, delta in self.ablation.delta.items():
                out[f"ablation.delta.{metric}"] = delta
        if self.regression is not None:
            out.update(self.regression.metrics())
        return out

    def to_dict(self) -> dict[str, Any]:
        heads = {}
        for name, scores in self.head_scores.items():
            heads[name] = {
                "per_head": scores.tolist(),
                "max": float(scores.max()),
                "mean": float(scores.mean()),
                "top_heads": [
                    {"layer": layer, "head": head, "score": float(scores[layer, head])}
                    for layer, head in top_heads(scores, min(N_TOP_HEADS, scores.numel()))
                ],
            }
        return {
            "config": to_dict(self.config),
            "model": self.model,
            "summary": self.summary(),
            "heads": heads,
            "icl": self.icl.to_dict() if self.icl else None,
            "copying": self.copying.to_dict() if self.copying else None,
            "memorisation": {g: r.to_dict() for g, r in self.memorisation.items()} if self.memorisation else None,
            "ablation": self.ablation.to_dict() if self.ablation else None,
            "regression": vars(self.regression) if self.regression else None,
            "inputs": self.inputs,
        }


def run_probes(
    model: GPT,
    dataset: PreparedDataset | None = None,
    mixture: Mixture | None = None,
    config: ProbeConfig | None = None,
) -> ProbeResults:
    """Run the probes named in ``config`` on ``model`` (in eval mode, without gradients).

    ``dataset`` (the run's prepared dataset) is needed by icl, copying, memorisation, ablation and regression,
    and supplies the start token and the token frequencies of the random sequences; ``mixture`` is needed by
    memorisation. Raises ``RepeatlabError`` naming the probe when an input is missing or too short.
    """
    config = _for_model(model, config or ProbeConfig())
    if config.ablation_heads:
        check_heads(model, config.ablation_heads)
    inputs = build_inputs(config, model_context=model.config.context,
                          vocab_size=None if model.vectors else model.config.vocab_size,
                          dataset=dataset, mixture=mixture)
    head_scores: dict[str, Tensor] = {}
    measured: dict[str, Any] = {"head_scores": head_scores}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for name in (name for name in PROBES if name in config.probes):
                result = measure(name, model, inputs, config, measured)
                head_scores.update(result.pop("head_scores", {}))
                measured.update(result)
    finally:
        model.train(was_training)
    record = dict(inputs.record)
    if inputs.icl_positions is not None and "icl" in config.probes:
        record["icl_positions"] = list(inputs.icl_positions)
    return ProbeResults(config=config, model=model_shape(model), inputs=record, **measured)


def model_shape(model: GPT) -> dict[str, int]:
    """Layers, heads, width, vocabulary (``d_vector`` for a vector model) and context, as ``probes.json`` records."""
    cfg = model.config
    width = {"d_vector": cfg.d_vector or 0} if model.vectors else {"vocab_size": cfg.vocab_size}
    return {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "d_model": cfg.d_model, **width, "context": cfg.context}


def measure(
    name: str, model: GPT, inputs: ProbeInputs, config: ProbeConfig, so_far: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One probe on inputs from ``build_inputs``: the ``ProbeResults`` fields it fills (``head_scores``: a dict).

    ``so_far`` holds what the probes before it in registry order measured (ablation reuses the induction scores
    and the ICL and copying baselines). The step evaluators of ``repeatlab.dynamics`` call this too.
    """
    return _MEASURES[name](model, inputs, config, so_far or {})


def _for_model(model: GPT, config: ProbeConfig) -> ProbeConfig:
    """``config``, its default probes replaced by a vector model's; refuses probes that read the other kind and
    probes that run only during training."""
    training_only = [name for name in config.probes if not PROBES[name].checkpoint]
    if training_only:
        raise RepeatlabError(f"the {', '.join(training_only)} probe runs only during training (train.probe_metrics "
                             f"= {training_only}); leave it out of the probes of run_probes")
    config = config.for_inputs(vectors=model.vectors)
    wrong = sorted(name for name in config.probes if PROBES[name].vectors != model.vectors)
    if wrong and model.vectors:
        raise RepeatlabError(f"the {', '.join(wrong)} probe(s) read tokens and this is a vector model (in-context "
                             f"regression); probe it with probes = {list(VECTOR_PROBES)}")
    if wrong:
        raise RepeatlabError(f"the {', '.join(wrong)} probe needs a vector model (in-context regression); this "
                             f"model reads tokens")
    return config


Measure = Callable[[GPT, ProbeInputs, ProbeConfig, dict[str, Any]], dict[str, Any]]


def _induction(model: GPT, inputs: ProbeInputs, config: ProbeConfig, _so_far: dict[str, Any]) -> dict[str, Any]:
    tokens = inputs.random_tokens["induction"]
    return {"head_scores": attention_scores(model, tokens, INDUCTION_SCORES, batch_size=batch_for(config, model, tokens))}


def _prefix_matching(model: GPT, inputs: ProbeInputs, config: ProbeConfig, _so_far: dict[str, Any]) -> dict[str, Any]:
    tokens = inputs.random_tokens["prefix_matching"]
    return {"head_scores": attention_scores(model, tokens, ["prefix_matching"],
                                            batch_size=batch_for(config, model, tokens))}


def _ov_copying(model: GPT, _inputs: ProbeInputs, _config: ProbeConfig, _so_far: dict[str, Any]) -> dict[str, Any]:
    return {"head_scores": {"ov_copying": ov_copying_scores(model)}}


def _icl(model: GPT, inputs: ProbeInputs, config: ProbeConfig, _so_far: dict[str, Any]) -> dict[str, Any]:
    assert inputs.test_rows is not None and inputs.icl_positions is not None  # the icl probe's needs
    losses = token_losses(model, inputs.test_rows, batch_size=config.batch_size)
    return {"icl": icl_from_losses(losses, inputs.icl_positions)}


def _copying(model: GPT, inputs: ProbeInputs, config: ProbeConfig, _so_far: dict[str, Any]) -> dict[str, Any]:
    assert inputs.paragraphs is not None and inputs.start_token is not None  # the copying probe's needs
    return {"copying": copying_eval(model, inputs.paragraphs, n_copies=config.n_copies, start_token=inputs.start_token,
                                    records=inputs.record["copy_paragraphs"], batch_size=config.batch_size)}


def _memorisation(model: GPT, inputs: ProbeInputs, config: ProbeConfig, _so_far: dict[str, Any]) -> dict[str, Any]:
    needed = config.memorisation_prefix_tokens + config.memorisation_continuation_tokens
    return {"memorisation": {
        group: memorisation(model, rows, sequence_ids=ids.tolist(), prefix_tokens=config.memorisation_prefix_tokens,
                            continuation_tokens=config.memorisation_continuation_tokens,
                            batch_size=batch_for(config, model, rows[:, :needed]))
        for group, (ids, rows) in inputs.memorisation.items()
    }}


def _ablation(model: GPT, inputs: ProbeInputs, config: ProbeConfig, so_far: dict[str, Any]) -> dict[str, Any]:
    assert inputs.test_rows is not None and inputs.paragraphs is not None and inputs.start_token is not None
    if config.ablation_heads:
        heads = list(config.ablation_heads)
    else:
        induction = so_far.get("head_scores", {}).get("induction")
        if induction is None:
            tokens = inputs.random_tokens["induction"]
            induction = attention_scores(model, tokens, ["induction"],
                                         batch_size=batch_for(config, model, tokens))["induction"]
        heads = top_heads(induction, min(config.ablation_top_k, induction.numel()))
    icl, copying = so_far.get("icl"), so_far.get("copying")
    baseline = ablation_metrics(icl, copying) if icl is not None and copying is not None else None
    return {"ablation": head_ablation(
        model, heads, mode=config.ablation_mode, test_rows=inputs.test_rows, paragraphs=inputs.paragraphs,
        start_token=inputs.start_token, n_copies=config.n_copies, baseline=baseline, positions=inputs.icl_positions,
        batch_size=config.batch_size,
    )}


def _regression(model: GPT, inputs: ProbeInputs, _config: ProbeConfig, _so_far: dict[str, Any]) -> dict[str, Any]:
    assert inputs.regression is not None  # the regression probe's needs
    gd = inputs.regression
    return {"regression": compare_to_gd(model, gd.rows, gd_lr=gd.gd_lr, n_steps=gd.n_steps)}


_MEASURES: dict[str, Measure] = {
    "induction": _induction, "prefix_matching": _prefix_matching, "ov_copying": _ov_copying, "icl": _icl,
    "copying": _copying, "memorisation": _memorisation, "ablation": _ablation, "regression": _regression,
}
"""How ``run_probes`` measures each of its probes (``probes.registry.PROBE_NAMES``)."""


def batch_for(config: ProbeConfig, model: GPT, tokens: Tensor) -> int:
    """Sequences per pass for short probe sequences: as many tokens as ``batch_size`` full contexts."""
    return max(config.batch_size, config.batch_size * model.config.context // max(tokens.shape[1], 1))


__all__ = ["INDUCTION_SCORES", "ProbeResults", "check_lengths", "measure", "model_shape", "probe_generator",
           "run_probes"]
