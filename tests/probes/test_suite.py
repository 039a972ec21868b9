"""``run_probes`` end to end on a prepared dataset and mixture: layout, determinism, recorded choices, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from repeatlab.data.mixture import Mixture, MixtureSpec, build_mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.models import GPT, ModelConfig
from repeatlab.probes import PROBE_NAMES, ProbeConfig, run_probes

SMALL = dict(n_random_sequences=8, n_test_sequences=8, n_copy_paragraphs=2, n_memorisation_sequences=6, batch_size=8,
             memorisation_continuation_tokens=8)


def make_model(prepared: PreparedDataset, **overrides: object) -> GPT:
    torch.manual_seed(0)
    fields: dict[str, object] = dict(n_layer=2, d_model=32, n_head=4, vocab_size=prepared.vocab_size,
                                     context=prepared.context, mlp=False)
    fields.update(overrides)
    return GPT(ModelConfig(**fields))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def results(prepared: PreparedDataset, mixture: Mixture) -> dict:
    return run_probes(make_model(prepared), prepared, mixture, ProbeConfig(**SMALL)).to_dict()  # type: ignore[arg-type]


def test_all_probes_report_per_head_arrays_and_scalars(results: dict) -> None:
    json.dumps(results, allow_nan=False)  # strict JSON: no NaN or tensors
    assert set(results["heads"]) == {"induction", "previous_token", "duplicate_token", "prefix_matching", "ov_copying"}
    for name, entry in results["heads"].items():
        per_head = np.array(entry["per_head"])
        assert per_head.shape == (2, 4), name
        assert entry["max"] == pytest.approx(per_head.max())
        top = entry["top_heads"][0]
        assert per_head[top["layer"], top["head"]] == pytest.approx(per_head.max())
    assert results["icl"]["positions"] == [12, 125] == results["inputs"]["icl_positions"]
    assert len(results["icl"]["loss_by_position"]) == 128
    assert len(results["copying"]["loss_per_copy"]) == 11
    assert set(results["memorisation"]) == {"repeated", "seen_once", "test"}
    assert results["ablation"]["mode"] == "mean" and len(results["ablation"]["heads"]) == 2
    assert results["ablation"]["baseline"]["icl_score"] == pytest.approx(results["icl"]["score"])
    summary = results["summary"]
    for key in ("induction.max", "icl.score", "test_loss", "copying.repeated_copies_loss",
                "memorisation.repeated.exact_match_rate", "ablation.delta.icl_score"):
        assert key in summary, key


def test_recorded_choices_point_into_the_test_split(results: dict, prepared: PreparedDataset) -> None:
    test = prepared.sequences("test")
    eot = prepared.tokenizer.eot_id
    for para in results["copying"]["paragraphs"]:
        assert para["n_tokens"] == 128 // 11
        tokens = test[para["sequence_id"], para["offset"] : para["offset"] + para["n_tokens"]]
        assert len(tokens) == para["n_tokens"] and eot not in tokens
    assert len(results["inputs"]["test_sequence_ids"]) == 8
    assert results["inputs"]["start_token"] == eot


def test_memorisation_groups_follow_the_mixture(results: dict, mixture: Mixture, prepared: PreparedDataset) -> None:
    counts = np.bincount(mixture.order, minlength=prepared.n_sequences("train"))
    memo = results["memorisation"]
    assert set(memo["repeated"]["sequence_ids"]) <= set(mixture.repeated_ids.tolist())
    assert all(counts[i] == 1 for i in memo["seen_once"]["sequence_ids"])
    assert max(memo["test"]["sequence_ids"]) < prepared.n_sequences("test")
    for group in memo.values():
        assert group["n_sequences"] == 6 and 0 <= group["token_match_rate"] <= 1


def test_deterministic_and_independent_of_other_probes(prepared: PreparedDataset, mixture: Mixture, results: dict) -> None:
    model = make_model(prepared)
    again = run_probes(model, prepared, mixture, ProbeConfig(**SMALL)).to_dict()  # type: ignore[arg-type]
    assert again == results
    alone = run_probes(model, prepared, mixture, ProbeConfig(probes=("icl", "copying"), **SMALL)).to_dict()  # type: ignore[arg-type]
    assert alone["icl"] == results["icl"] and alone["copying"] == results["copying"]
    assert alone["heads"] == {} and alone["memorisation"] is None
    other = run_probes(model, prepared, mixture, ProbeConfig(probes=("icl", "copying"), seed=1, **SMALL)).to_dict()  # type: ignore[arg-type]
    assert other["inputs"]["test_sequence_ids"] != results["inputs"]["test_sequence_ids"]


def test_model_state_is_left_alone(prepared: PreparedDataset, mixture: Mixture) -> None:
    model = make_model(prepared).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run_probes(model, prepared, mixture, ProbeConfig(probes=("induction", "ablation"), **SMALL))  # type: ignore[arg-type]
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p._forward_hooks for p in model.modules())


def test_model_only_probes_need_no_dataset(prepared: PreparedDataset) -> None:
    config = ProbeConfig(probes=("induction", "prefix_matching", "ov_copying"), start_token=0, n_random_sequences=4)
    result = run_probes(make_model(prepared), config=config)
    assert result.inputs["random_tokens"]["n_candidate_tokens"] == prepared.vocab_size - 1


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (dict(induction_tokens=64), "induction probe needs sequences of 129 tokens but the model's context is 128"),
        (dict(prefix_matching_tokens=40), "prefix_matching probe needs sequences of 161 tokens"),
        (dict(copy_paragraph_tokens=20), "copying probe needs sequences of 220 tokens"),
        (dict(memorisation_prefix_tokens=200), "memorisation probe needs sequences of 208 tokens"),
        (dict(icl_positions=(12, 300)), r"ICL positions \(12, 300\) must satisfy"),
        (dict(ablation_heads=((2, 0),)), "head 2.0 does not exist: the model has layers 0..1"),
        (dict(ablation_heads=((1, 4),)), "head 1.4 does not exist"),
    ],
)
def test_bad_settings_for_this_model_raise(prepared: PreparedDataset, mixture: Mixture, config: dict, match: str) -> None:
    probes = {"induction_tokens": "induction", "prefix_matching_tokens": "prefix_matching",
              "copy_paragraph_tokens": "copying", "memorisation_prefix_tokens": "memorisation",
              "icl_positions": "icl", "ablation_heads": "ablation"}[next(iter(config))]
    with pytest.raises(ValueError, match=match):
        run_probes(make_model(prepared), prepared, mixture, ProbeConfig(probes=(probes,), **config, **SMALL))  # type: ignore[arg-type]


def test_missing_inputs_raise(prepared: PreparedDataset, mixture: Mixture) -> None:
    model = make_model(prepared)
    with pytest.raises(ValueError, match="the icl probe needs the run's prepared dataset"):
        run_probes(model, None, None, ProbeConfig(probes=("icl",)))
    with pytest.raises(ValueError, match="start_token must be given"):
        run_probes(model, None, None, ProbeConfig(probes=("induction",)))
    with pytest.raises(ValueError, match="needs the run's mixture"):
        run_probes(model, prepared, None, ProbeConfig(probes=("memorisation",)))
    with pytest.raises(ValueError, match="vocabulary"):
        run_probes(make_model(prepared, vocab_size=300), prepared, mixture, ProbeConfig(probes=("icl",)))
    with pytest.raises(ValueError, match="dataset's context \\(128\\) exceeds the model's \\(64\\)"):
        run_probes(make_model(prepared, context=64), prepared, mixture, ProbeConfig(probes=("icl",)))


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        (dict(probes=("induction", "inductoin")), "probes"),
        (dict(probes=()), "probes"),
        (dict(seed=-1), "seed"),
        (dict(batch_size=0), "batch_size"),
        (dict(n_copies=1), "n_copies"),
        (dict(prefix_matching_repeats=1), "prefix_matching_repeats"),
        (dict(exclude_token_fraction=0.5), "exclude_token_fraction"),
        (dict(icl_positions=(50, 50)), "icl_positions"),
        (dict(ablation_mode="half"), "ablation_mode"),
        (dict(ablation_heads=((-1, 0),)), "ablation_heads"),
    ],
)
def test_config_validation_names_the_field(fields: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"ProbeConfig.{name}"):
        ProbeConfig(**fields)


def test_probe_names_are_complete() -> None:
    assert PROBE_NAMES == ("induction", "prefix_matching", "ov_copying", "icl", "copying", "memorisation", "ablation",
                           "regression")
    assert ProbeConfig().probes == PROBE_NAMES[:-1]  # the default: every token probe


def test_control_mixture_has_no_repeated_group(prepared: PreparedDataset) -> None:
    control = build_mixture(prepared, MixtureSpec(total_tokens=64 * 128, seed=1))
    config = ProbeConfig(probes=("memorisation",), n_memorisation_sequences=3, memorisation_continuation_tokens=4)
    memo = run_probes(make_model(prepared), prepared, control, config).to_dict()["memorisation"]
    assert memo["repeated"] == {"n_sequences": 0, "exact_match_rate": None, "token_match_rate": None, "sequence_ids": []}
    assert memo["seen_once"]["n_sequences"] == 3
