"""``build_inputs``: the one place probe inputs are drawn, for a checkpoint and for curves during training alike.

Every random choice comes from ``probe_generator(config.seed, what)``, so one probe's inputs never depend on
which other probes run, and ``run_probes`` and the step evaluators of ``repeatlab.dynamics`` score the same
sequences whenever their ``ProbeConfig`` is the same. What to draw is the union of the selected probes' needs
(``probes.registry``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

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
from repeatlab.data.mixture import Mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.errors import RepeatlabError
from repeatlab.probes.config import ProbeConfig
from repeatlab.probes.heads import check_context
from repeatlab.probes.icl import choose_paragraphs, icl_positions
from repeatlab.probes.regression import RegressionInputs, regression_inputs
from repeatlab.probes.registry import PROBES, START_TOKEN_INPUTS, InputKind, needs_of
from repeatlab.probes.sequences import MAX_FREQUENCY_TOKENS, candidate_tokens, repeated_random_tokens, token_frequencies

PAIR_ROWS = "test"
"""Key of ``ProbeInputs.classification`` rows that holds the test-split rows of ``probes.pair_scores``."""
DATASET_INPUTS: frozenset[InputKind] = frozenset({"test_rows", "paragraphs", "memorisation_rows",
                                                  "classification_sets", "regression_rows"})
"""Inputs read from the run's prepared dataset (random sequences need it only for token frequencies)."""


def probe_generator(seed: int, probe: str) -> torch.Generator:
    """A CPU generator for one probe: same ``(seed, probe)``, same stream, whatever else runs."""
    # CPU generators keep only 32 bits of a seed, so (seed, probe) is hashed into 32 bits.
    return torch.Generator().manual_seed(zlib.crc32(f"{probe}:{seed}".encode()))


@dataclass(frozen=True)
class ProbeInputs:
    """What the selected probes read; a field is empty when no selected probe needs it."""

    start_token: int | None = None
    random_tokens: dict[str, Tensor] = field(default_factory=dict)
    """``induction`` -> ``[n, 1 + 2 L]``; ``prefix_matching`` -> ``[n, 1 + R L]``: a start token, L tokens repeated."""
    test_rows: Tensor | None = None
    """``[n, context + 1]`` test-split rows (ICL score, test loss, the mean of mean ablation)."""
    icl_positions: tuple[int, int] | None = None
    paragraphs: Tensor | None = None
    """``[n, length]`` test-split paragraphs of the copying eval."""
    memorisation: dict[str, tuple[np.ndarray, Tensor]] = field(default_factory=dict)
    """Group (repeated, seen_once, test) -> sequence ids and their rows ``[n, context + 1]``."""
    classification: tuple[ClassificationTask, dict[str, Tensor]] | None = None
    """The task and its rows ``{name: [n, context + 1]}``: the evaluation sets and the pair-score test rows."""
    regression: RegressionInputs | None = None
    record: dict[str, Any] = field(default_factory=dict)
    """The choices made, as ``probes.json`` records them under ``inputs``."""


def build_inputs(
    config: ProbeConfig,
    *,
    model_context: int,
    vocab_size: int | None,
    dataset: PreparedDataset | None = None,
    mixture: Mixture | None = None,
) -> ProbeInputs:
    """Draw the inputs of the probes in ``config`` after checking they can be drawn.

    ``vocab_size`` is the model's (``None`` for a vector model). Raises ``RepeatlabError`` naming the probe
    when an input is missing or a sequence does not fit.
    """
    needs = needs_of(config)
    _check_sources(config, needs, dataset, mixture, model_context, vocab_size)
    check_lengths(config, model_context=model_context, data_context=dataset.context if dataset else None)
    out: dict[str, Any] = {"record": {}}
    record = out["record"]
    if vocab_size is not None and needs & START_TOKEN_INPUTS:
        start = config.start_token if config.start_token is not None else end_of_text(dataset)
        if not 0 <= start < vocab_size:
            raise RepeatlabError(f"start token {start} is outside the model's vocabulary of {vocab_size}")
        out["start_token"] = record["start_token"] = start
        if needs & {"induction_tokens", "prefix_matching_tokens"}:
            out["random_tokens"] = _random_tokens(config, needs, dataset, vocab_size, start, record)
    if dataset is None:
        return ProbeInputs(**out)
    if "test_rows" in needs:
        ids = sample_ids(dataset.n_sequences("test"), config.n_test_sequences, probe_generator(config.seed, "icl"))
        record["test_sequence_ids"] = ids.tolist()
        out["test_rows"] = rows_of(dataset.sequences("test"), ids)
        out["icl_positions"] = config.icl_positions or icl_positions(dataset.context)
    if "paragraphs" in needs:
        out["paragraphs"], record["copy_paragraphs"] = choose_paragraphs(
            dataset.sequences("test"), n_paragraphs=config.n_copy_paragraphs,
            length=paragraph_tokens(model_context, dataset.context, config), eot_id=end_of_text(dataset),
            generator=probe_generator(config.seed, "copying"),
        )
    if "memorisation_rows" in needs and mixture is not None:
        out["memorisation"] = _memorisation_rows(dataset, mixture, config)
    if "classification_sets" in needs:
        task = dataset_task(dataset)
        sets = {name: torch.from_numpy(load_eval_sequences(dataset, name)) for name in EVAL_SETS}
        out["classification"] = task, {**sets, PAIR_ROWS: torch.from_numpy(pair_score_sequences(dataset))}
    if "regression_rows" in needs:
        regression = regression_inputs(dataset, n_sequences=config.n_test_sequences, seed=config.seed)
        out["regression"] = regression
        record.update(n_test_sequences=len(regression.rows), gd_lr=regression.gd_lr)
    return ProbeInputs(**out)


def check_lengths(config: ProbeConfig, *, model_context: int, data_context: int | None) -> None:
    """Fail before any work when a selected probe needs longer sequences than the model or data have.

    A pure function of the settings and the two contexts (``data_context`` is ``None`` without a dataset), so a
    sweep checks its probes when its grid is loaded, before it trains anything (``sweeps.grid``).
    """
    needs = needs_of(config)
    if "induction_tokens" in needs:
        check_context(model_context, 1 + 2 * config.induction_tokens, "induction")
    if "prefix_matching_tokens" in needs:
        check_context(model_context, 1 + config.prefix_matching_tokens * config.prefix_matching_repeats,
                      "prefix_matching")
    if data_context is None:
        return
    if "test_rows" in needs:
        early, late = config.icl_positions or icl_positions(data_context)
        if late > data_context:
            raise RepeatlabError(
                f"ICL positions {(early, late)} must satisfy 1 <= early < late <= {data_context} "
                f"(the context length)"
            )
    if "paragraphs" in needs:
        check_context(model_context, config.n_copies * paragraph_tokens(model_context, data_context, config),
                      "copying")
    needed = config.memorisation_prefix_tokens + config.memorisation_continuation_tokens
    if "memorisation_rows" in needs and needed > data_context + 1:
        raise RepeatlabError(
            f"the memorisation probe needs sequences of {needed} tokens but the dataset's context is "
            f"{data_context}; lower memorisation_prefix_tokens/memorisation_continuation_tokens"
        )


def end_of_text(dataset: PreparedDataset | None) -> int:
    """The dataset's end-of-text id, from its metadata when recorded there (no tokenizer load needed)."""
    if dataset is None:
        raise RepeatlabError("without a dataset, ProbeConfig.start_token must be given")
    return int(dataset.meta["eot_id"]) if "eot_id" in dataset.meta else dataset.tokenizer.eot_id


def paragraph_tokens(model_context: int, data_context: int, config: ProbeConfig) -> int:
    """Tokens per copying paragraph: ``copy_paragraph_tokens``, or as many as fill the context ``n_copies`` times."""
    length = config.copy_paragraph_tokens or min(model_context, data_context) // config.n_copies
    if length < 1:
        raise RepeatlabError(f"the copying probe needs a context of at least {config.n_copies} tokens")
    return length


def sample_ids(n_total: int, n: int, generator: torch.Generator) -> np.ndarray:
    """Up to ``n`` distinct ids in ``[0, n_total)``, sorted (memmap reads go front to back)."""
    return np.sort(torch.randperm(n_total, generator=generator)[:n].numpy()).astype(np.int64)


def rows_of(sequences: np.ndarray, ids: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(sequences[ids]).astype(np.int64))  # [n, context + 1]


def _check_sources(
    config: ProbeConfig, needs: frozenset[InputKind], dataset: PreparedDataset | None, mixture: Mixture | None,
    model_context: int, vocab_size: int | None,
) -> None:
    if vocab_size is None and needs & START_TOKEN_INPUTS:
        names = [name for name in config.probes if set(PROBES[name].needs) & START_TOKEN_INPUTS]
        raise RepeatlabError(f"the {', '.join(names)} probe(s) read tokens and this is a vector model "
                             f"(in-context regression)")
    from_dataset = needs & DATASET_INPUTS
    if dataset is None and from_dataset:
        names = sorted(name for name in config.probes if set(PROBES[name].needs) & from_dataset)
        raise RepeatlabError(f"the {', '.join(names)} probe{' needs' if len(names) == 1 else 's need'} the run's "
                             f"prepared dataset")
    if dataset is not None and vocab_size is not None:
        if dataset.vocab_size != vocab_size:
            raise RepeatlabError(f"the dataset's vocabulary ({dataset.vocab_size}) differs from the model's ({vocab_size})")
        if from_dataset and dataset.context > model_context:
            raise RepeatlabError(f"the dataset's context ({dataset.context}) exceeds the model's ({model_context})")
    if "memorisation_rows" in needs and mixture is None:
        raise RepeatlabError("the memorisation probe needs the run's mixture (its repeated subset)")


def _random_tokens(
    config: ProbeConfig, needs: frozenset[InputKind], dataset: PreparedDataset | None, vocab_size: int,
    start: int, record: dict[str, Any],
) -> dict[str, Tensor]:
    """The induction and prefix-matching sequences, from the tokens the training pool uses (Olsson et al.'s cut)."""
    frequencies = token_frequencies(dataset.tokens("train"), vocab_size) if dataset else None
    candidates = candidate_tokens(vocab_size, exclude=[start], frequencies=frequencies,
                                  exclude_fraction=config.exclude_token_fraction)
    record["random_tokens"] = {
        "n_candidate_tokens": len(candidates),
        "frequencies_from": f"training pool, first {MAX_FREQUENCY_TOKENS:,} tokens" if dataset else None,
        "exclude_token_fraction": config.exclude_token_fraction if dataset else 0.0,
    }
    shapes = {"induction": (config.induction_tokens, 2),
              "prefix_matching": (config.prefix_matching_tokens, config.prefix_matching_repeats)}
    return {
        probe: repeated_random_tokens(candidates, n_sequences=config.n_random_sequences, length=length,
                                      n_repeats=n_repeats, start_token=start,
                                      generator=probe_generator(config.seed, probe))
        for probe, (length, n_repeats) in shapes.items() if f"{probe}_tokens" in needs
    }


def _memorisation_rows(
    dataset: PreparedDataset, mixture: Mixture, config: ProbeConfig
) -> dict[str, tuple[np.ndarray, Tensor]]:
    """Samples of the repeated subset, of the pool's sequences seen once, and of the test split."""
    n_pool = dataset.n_sequences("train")
    counts = np.bincount(mixture.order, minlength=n_pool)
    if len(counts) > n_pool:
        raise RepeatlabError(f"the mixture refers to training sequence {len(counts) - 1}, but the pool holds {n_pool}")
    groups = {
        "repeated": ("train", np.asarray(mixture.repeated_ids, dtype=np.int64)),
        "seen_once": ("train", np.flatnonzero(counts == 1)),
        "test": ("test", np.arange(dataset.n_sequences("test"))),
    }
    out = {}
    for group, (split, pool_ids) in groups.items():
        pick = sample_ids(len(pool_ids), config.n_memorisation_sequences,
                          probe_generator(config.seed, f"memorisation.{group}"))
        ids = pool_ids[pick]
        out[group] = ids, rows_of(dataset.sequences(split), ids)
    return out


__all__ = ["DATASET_INPUTS", "PAIR_ROWS", "ProbeInputs", "build_inputs", "check_lengths", "end_of_text",
           "paragraph_tokens", "probe_generator", "rows_of", "sample_ids"]
