"""``run_probes``: every probe of a checkpoint through one call, with results that serialise to JSON.

The suite only chooses inputs (random sequences, test contexts, paragraphs, memorisation samples) and
records the choices; each measurement is a library function of its own module that works on plain
tensors. Every random choice comes from a ``torch.Generator`` derived from ``(seed, probe name)``, so
one probe's result never depends on which other probes ran.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from repeatlab.config import to_dict
from repeatlab.data.mixture import Mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.probes.ablation import AblationResult, ablation_metrics, head_ablation
from repeatlab.probes.config import DATASET_PROBES, TOKEN_PROBES, VECTOR_PROBES, ProbeConfig
from repeatlab.probes.heads import attention_scores, check_context, check_heads, ov_copying_scores, top_heads
from repeatlab.probes.icl import (
    CopyingResult,
    IclResult,
    choose_paragraphs,
    copying_eval,
    icl_from_losses,
    icl_positions,
    token_losses,
)
from repeatlab.probes.memorisation import MemorisationResult, memorisation
from repeatlab.probes.regression import GDComparison, compare_to_gd, regression_inputs
from repeatlab.probes.sequences import MAX_FREQUENCY_TOKENS, candidate_tokens, repeated_random_tokens, token_frequencies

SCHEMA = "repeatlab.probes/1"
N_TOP_HEADS = 5


def probe_generator(seed: int, probe: str) -> torch.Generator:
    """A CPU generator for one probe: same ``(seed, probe)``, same stream, whatever else runs."""
    # CPU generators keep only 32 bits of a seed, so (seed, probe) is hashed into 32 bits.
    return torch.Generator().manual_seed(zlib.crc32(f"{probe}:{seed}".encode()))


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
            "schema": SCHEMA,
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

    ``dataset`` (the run's prepared dataset) is needed by icl, copying, memorisation and ablation, and
    supplies the start token and the token frequencies of the random sequences; ``mixture`` is needed
    by memorisation. Raises ``ValueError`` naming the probe when an input is missing or too short.
    """
    config = config or ProbeConfig()
    if model.vectors:
        return _vector_probes(model, dataset, config)
    if set(config.probes) & set(VECTOR_PROBES):
        raise RepeatlabError(f"the {', '.join(sorted(set(config.probes) & set(VECTOR_PROBES)))} probe needs a vector "
                             f"model (in-context regression); this model reads tokens")
    _check_inputs(model, dataset, mixture, config)
    start_token = config.start_token if config.start_token is not None else _eot(dataset)
    if not 0 <= start_token < model.config.vocab_size:
        raise RepeatlabError(f"start token {start_token} is outside the model's vocabulary of {model.config.vocab_size}")
    inputs: dict[str, Any] = {"start_token": start_token}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            head_scores, induction = _head_probes(model, dataset, config, start_token, inputs)
            measured = {}
            if dataset is not None and config.needs_dataset:
                measured = _dataset_probes(model, dataset, mixture, config, start_token, induction, inputs)
    finally:
        model.train(was_training)
    cfg = model.config
    shape = {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "d_model": cfg.d_model, "vocab_size": cfg.vocab_size,
             "context": cfg.context}
    return ProbeResults(config=config, model=shape, head_scores=head_scores, inputs=inputs, **measured)


def _vector_probes(model: GPT, dataset: PreparedDataset | None, config: ProbeConfig) -> ProbeResults:
    """The probes of a vector model: its comparison with one step of gradient descent on the test contexts."""
    token_probes = sorted(set(config.probes) - set(VECTOR_PROBES))
    if token_probes and config.probes != TOKEN_PROBES:
        raise RepeatlabError(f"the {', '.join(token_probes)} probe(s) read tokens and this is a vector model (in-context "
                             f"regression); probe it with probes = {list(VECTOR_PROBES)}")
    if dataset is None:
        raise RepeatlabError("the regression probe needs the run's prepared dataset")
    inputs = regression_inputs(dataset, n_sequences=config.n_test_sequences, seed=config.seed)
    comparison = compare_to_gd(model, inputs.rows, gd_lr=inputs.gd_lr, n_steps=inputs.n_steps)
    cfg = model.config
    shape = {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "d_model": cfg.d_model, "d_vector": cfg.d_vector or 0,
             "context": cfg.context}
    return ProbeResults(config=replace(config, probes=VECTOR_PROBES), model=shape, regression=comparison,
                        inputs={"n_test_sequences": len(inputs.rows), "gd_lr": inputs.gd_lr})


def _eot(dataset: PreparedDataset | None) -> int:
    """The dataset's end-of-text id, from its metadata when recorded there (no tokenizer load needed)."""
    if dataset is None:
        raise RepeatlabError("without a dataset, ProbeConfig.start_token must be given")
    return int(dataset.meta["eot_id"]) if "eot_id" in dataset.meta else dataset.tokenizer.eot_id


def _check_inputs(model: GPT, dataset: PreparedDataset | None, mixture: Mixture | None, config: ProbeConfig) -> None:
    if dataset is None:
        if config.needs_dataset:
            needs = sorted(set(config.probes) & DATASET_PROBES)
            raise RepeatlabError(f"the {', '.join(needs)} probe(s) need the run's prepared dataset")
    else:
        if dataset.vocab_size != model.config.vocab_size:
            raise RepeatlabError(
                f"the dataset's vocabulary ({dataset.vocab_size}) differs from the model's ({model.config.vocab_size})"
            )
        if config.needs_dataset and dataset.context > model.config.context:
            raise RepeatlabError(f"the dataset's context ({dataset.context}) exceeds the model's ({model.config.context})")
    if "memorisation" in config.probes and mixture is None:
        raise RepeatlabError("the memorisation probe needs the run's mixture (its repeated subset)")
    if config.ablation_heads:
        check_heads(model, config.ablation_heads)
    check_lengths(config, model_context=model.config.context,
                  data_context=dataset.context if dataset is not None else None)


def check_lengths(config: ProbeConfig, *, model_context: int, data_context: int | None) -> None:
    """Fail before any work when a selected probe needs longer sequences than the model or data have.

    A pure function of the settings and the two contexts (``data_context`` is ``None`` without a dataset), so a
    sweep checks its probes when its grid is loaded, before it trains anything (``sweeps.grid``).
    """
    selected = set(config.probes)
    if "induction" in selected or ("ablation" in selected and not config.ablation_heads):
        check_context(model_context, 1 + 2 * config.induction_tokens, "induction")
    if "prefix_matching" in selected:
        check_context(model_context, 1 + config.prefix_matching_tokens * config.prefix_matching_repeats,
                      "prefix_matching")
    if data_context is None:
        return
    if selected & {"icl", "ablation"}:
        early, late = config.icl_positions or icl_positions(data_context)
        if late > data_context:
            raise RepeatlabError(
                f"ICL positions {(early, late)} must satisfy 1 <= early < late <= {data_context} "
                f"(the context length)"
            )
    if selected & {"copying", "ablation"}:
        check_context(model_context, config.n_copies * _paragraph_tokens(model_context, data_context, config),
                      "copying")
    needed = config.memorisation_prefix_tokens + config.memorisation_continuation_tokens
    if "memorisation" in selected and needed > data_context + 1:
        raise RepeatlabError(
            f"the memorisation probe needs sequences of {needed} tokens but the dataset's context is "
            f"{data_context}; lower memorisation_prefix_tokens/memorisation_continuation_tokens"
        )


def _icl_positions(config: ProbeConfig, dataset: PreparedDataset) -> tuple[int, int]:
    return config.icl_positions or icl_positions(dataset.context)


def _paragraph_tokens(model_context: int, data_context: int, config: ProbeConfig) -> int:
    length = config.copy_paragraph_tokens or min(model_context, data_context) // config.n_copies
    if length < 1:
        raise RepeatlabError(f"the copying probe needs a context of at least {config.n_copies} tokens")
    return length


def _head_probes(
    model: GPT, dataset: PreparedDataset | None, config: ProbeConfig, start_token: int, inputs: dict[str, Any]
) -> tuple[dict[str, Tensor], Tensor | None]:
    """Attention and OV scores of the selected probes, and the induction scores (also when only ablation needs them)."""
    selected = set(config.probes)
    scores: dict[str, Tensor] = {}
    need_induction = "induction" in selected or ("ablation" in selected and not config.ablation_heads)
    if need_induction or "prefix_matching" in selected:
        frequencies = token_frequencies(dataset.tokens("train"), model.config.vocab_size) if dataset else None
        candidates = candidate_tokens(
            model.config.vocab_size, exclude=[start_token], frequencies=frequencies,
            exclude_fraction=config.exclude_token_fraction,
        )
        inputs["random_tokens"] = {
            "n_candidate_tokens": len(candidates),
            "frequencies_from": f"training pool, first {MAX_FREQUENCY_TOKENS:,} tokens" if dataset else None,
            "exclude_token_fraction": config.exclude_token_fraction if dataset else 0.0,
        }
    induction = None
    if need_induction:
        tokens = repeated_random_tokens(
            candidates, n_sequences=config.n_random_sequences, length=config.induction_tokens, n_repeats=2,
            start_token=start_token, generator=probe_generator(config.seed, "induction"),
        )
        names = ["induction", "previous_token", "duplicate_token"]
        induction_scores = attention_scores(model, tokens, names, batch_size=_batch_for(config, model, tokens))
        induction = induction_scores["induction"]
        if "induction" in selected:
            scores.update(induction_scores)
    if "prefix_matching" in selected:
        tokens = repeated_random_tokens(
            candidates, n_sequences=config.n_random_sequences, length=config.prefix_matching_tokens,
            n_repeats=config.prefix_matching_repeats, start_token=start_token,
            generator=probe_generator(config.seed, "prefix_matching"),
        )
        batch_size = _batch_for(config, model, tokens)
        scores.update(attention_scores(model, tokens, ["prefix_matching"], batch_size=batch_size))
    if "ov_copying" in selected:
        scores["ov_copying"] = ov_copying_scores(model)
    return scores, induction


def _dataset_probes(
    model: GPT, dataset: PreparedDataset, mixture: Mixture | None, config: ProbeConfig, start_token: int,
    induction: Tensor | None, inputs: dict[str, Any],
) -> dict[str, Any]:
    """ICL, copying, memorisation and ablation: the probes that read test or training sequences."""
    selected = set(config.probes)
    out: dict[str, Any] = {}
    if selected & {"icl", "ablation"}:
        test_rows = _test_rows(dataset, config, inputs)
    if "icl" in selected:
        positions = _icl_positions(config, dataset)
        out["icl"] = icl_from_losses(token_losses(model, test_rows, batch_size=config.batch_size), positions)
        inputs["icl_positions"] = list(positions)
    if selected & {"copying", "ablation"}:
        paragraphs, records = _paragraphs(model, dataset, config)
        inputs["copy_paragraphs"] = records
    if "copying" in selected:
        out["copying"] = copying_eval(
            model, paragraphs, n_copies=config.n_copies, start_token=start_token, records=records,
            batch_size=config.batch_size,
        )
    if "memorisation" in selected and mixture is not None:
        out["memorisation"] = _memorisation(model, dataset, mixture, config)
    if "ablation" in selected:
        if config.ablation_heads:
            heads = list(config.ablation_heads)
        elif induction is not None:
            heads = top_heads(induction, min(config.ablation_top_k, induction.numel()))
        else:
            raise RepeatlabError("head ablation needs ablation_heads or the induction scores")
        baseline = ablation_metrics(out["icl"], out["copying"]) if {"icl", "copying"} <= selected else None
        out["ablation"] = head_ablation(
            model, heads, mode=config.ablation_mode, test_rows=test_rows, paragraphs=paragraphs,
            start_token=start_token, n_copies=config.n_copies, baseline=baseline,
            positions=_icl_positions(config, dataset), batch_size=config.batch_size,
        )
    return out


def _batch_for(config: ProbeConfig, model: GPT, tokens: Tensor) -> int:
    """Sequences per pass for short probe sequences: as many tokens as ``batch_size`` full contexts."""
    return max(config.batch_size, config.batch_size * model.config.context // max(tokens.shape[1], 1))


def _sample_ids(n_total: int, n: int, generator: torch.Generator) -> np.ndarray:
    """Up to ``n`` distinct ids in ``[0, n_total)``, sorted (memmap reads go front to back)."""
    return np.sort(torch.randperm(n_total, generator=generator)[:n].numpy()).astype(np.int64)


def _rows(sequences: np.ndarray, ids: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(sequences[ids]).astype(np.int64))  # [n, context + 1]


def _test_rows(dataset: PreparedDataset, config: ProbeConfig, inputs: dict[str, Any]) -> Tensor:
    ids = _sample_ids(dataset.n_sequences("test"), config.n_test_sequences, probe_generator(config.seed, "icl"))
    inputs["test_sequence_ids"] = ids.tolist()
    return _rows(dataset.sequences("test"), ids)


def _paragraphs(model: GPT, dataset: PreparedDataset, config: ProbeConfig) -> tuple[Tensor, list[dict[str, int]]]:
    return choose_paragraphs(
        dataset.sequences("test"), n_paragraphs=config.n_copy_paragraphs,
        length=_paragraph_tokens(model.config.context, dataset.context, config),
        eot_id=_eot(dataset), generator=probe_generator(config.seed, "copying"),
    )


def _memorisation(
    model: GPT, dataset: PreparedDataset, mixture: Mixture, config: ProbeConfig
) -> dict[str, MemorisationResult]:
    needed = config.memorisation_prefix_tokens + config.memorisation_continuation_tokens
    n_pool = dataset.n_sequences("train")
    counts = np.bincount(mixture.order, minlength=n_pool)
    if len(counts) > n_pool:
        raise RepeatlabError(f"the mixture refers to training sequence {len(counts) - 1}, but the pool holds {n_pool}")
    groups = {
        "repeated": ("train", np.asarray(mixture.repeated_ids, dtype=np.int64)),
        "seen_once": ("train", np.flatnonzero(counts == 1)),
        "test": ("test", np.arange(dataset.n_sequences("test"))),
    }
    results = {}
    for group, (split, pool_ids) in groups.items():
        generator = probe_generator(config.seed, f"memorisation.{group}")
        pick = _sample_ids(len(pool_ids), config.n_memorisation_sequences, generator)
        ids = pool_ids[pick]
        rows = _rows(dataset.sequences(split), ids)
        results[group] = memorisation(
            model, rows, sequence_ids=ids.tolist(),
            prefix_tokens=config.memorisation_prefix_tokens,
            continuation_tokens=config.memorisation_continuation_tokens,
            batch_size=_batch_for(config, model, rows[:, :needed]),
        )
    return results


__all__ = ["SCHEMA", "ProbeResults", "check_lengths", "probe_generator", "run_probes"]
