"""The probe registry and the one input builder: names, needs, and inputs drawn only when a probe needs them."""

from __future__ import annotations

from typing import get_args

import pytest
import torch

from repeatlab.data.mixture import Mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.errors import RepeatlabError
from repeatlab.models import GPT, ModelConfig
from repeatlab.probes import ProbeConfig, ProbeInputs, build_inputs, run_probes
from repeatlab.probes.registry import PROBES, TRAINING_METRICS, ProbeName, needs_of, probes_of_metrics
from repeatlab.train.config import PROBE_METRICS


def test_every_name_list_is_the_registry() -> None:
    assert get_args(ProbeName) == tuple(PROBES)
    # repeatlab.train sits below the probes and keeps the names as data; they must be the registry's.
    assert PROBE_METRICS == TRAINING_METRICS


def test_needs_follow_the_selection() -> None:
    assert needs_of(ProbeConfig(probes=("ablation",))) == {"induction_tokens", "test_rows", "paragraphs"}
    assert needs_of(ProbeConfig(probes=("ablation",), ablation_heads=((0, 1),))) == {"test_rows", "paragraphs"}
    assert needs_of(ProbeConfig(probes=("ov_copying",))) == set()
    assert probes_of_metrics(["previous_token", "icl", "duplicate_token"]) == ("induction", "icl")
    with pytest.raises(RepeatlabError, match="unknown probe metric.s. copying"):
        probes_of_metrics(["copying"])


def test_inputs_are_drawn_only_when_needed_and_alike_whatever_else_runs(prepared: PreparedDataset,
                                                                         mixture: Mixture) -> None:
    def draw(*probes: ProbeName) -> ProbeInputs:
        return build_inputs(ProbeConfig(probes=probes, n_random_sequences=4, n_test_sequences=4),
                            model_context=prepared.context, vocab_size=prepared.vocab_size, dataset=prepared,
                            mixture=mixture)

    icl = draw("icl")
    assert icl.random_tokens == {} and icl.paragraphs is None and icl.start_token is None
    assert set(icl.record) == {"test_sequence_ids"}
    alone, together = draw("induction"), draw("induction", "prefix_matching", "icl", "copying")
    assert set(alone.random_tokens) == {"induction"}
    assert torch.equal(alone.random_tokens["induction"], together.random_tokens["induction"])
    assert torch.equal(icl.test_rows, together.test_rows)
    assert together.record["start_token"] == prepared.tokenizer.eot_id


def test_training_only_probes_are_refused_by_the_suite(prepared: PreparedDataset) -> None:
    model = GPT(ModelConfig(n_layer=1, d_model=16, n_head=2, vocab_size=prepared.vocab_size, context=prepared.context,
                            mlp=False))
    with pytest.raises(RepeatlabError, match="classification probe runs only during training"):
        run_probes(model, prepared, None, ProbeConfig(probes=("classification",)))


def test_fewer_sequences_are_the_first_rows_of_more(prepared: PreparedDataset) -> None:
    """A curve's default 32 induction sequences are the first 32 of ``probes.json``'s default 64."""
    def induction(n: int) -> torch.Tensor:
        config = ProbeConfig(probes=("induction",), n_random_sequences=n)
        inputs = build_inputs(config, model_context=prepared.context, vocab_size=prepared.vocab_size, dataset=prepared)
        return inputs.random_tokens["induction"]

    assert torch.equal(induction(64)[:32], induction(32))
