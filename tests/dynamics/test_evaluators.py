"""Probe scores during training: what is logged, that it is cheap, deterministic and survives resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from repeatlab.data.prepared import load_prepared
from repeatlab.dynamics import curve_probe_config, head_metrics, probe_evaluators, train_with_probes
from repeatlab.models.gpt import GPT
from repeatlab.models.sizes import model_config
from repeatlab.models.weights import load_model
from repeatlab.probes import run_probes
from repeatlab.train import train

from .conftest import tiny_config

PROBES = ("induction", "previous_token", "prefix_matching", "icl")


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_head_metrics_flatten_a_score_map() -> None:
    scores = torch.tensor([[0.1, 0.5], [0.9, 0.3]])
    assert head_metrics("induction", scores) == pytest.approx({
        "induction.max": 0.9, "induction.mean": 0.45, "induction.L0H0": 0.1, "induction.L0H1": 0.5,
        "induction.L1H0": 0.9, "induction.L1H1": 0.3})


def test_evaluators_match_the_probe_functions(text_data: Path) -> None:
    config = tiny_config(text_data, probe_metrics=PROBES)
    dataset = load_prepared(config.dataset)
    evaluators = probe_evaluators(config, dataset)
    assert set(evaluators) == set(PROBES)
    torch.manual_seed(1)
    model = GPT(model_config(config.model, vocab_size=dataset.vocab_size, context=dataset.context)).eval()
    induction = evaluators["induction"](model, 0)
    assert len([k for k in induction if k.startswith("induction.L")]) == 2 * 4
    again = probe_evaluators(config, dataset)["induction"](model, 0)
    assert again == induction  # same inputs for every evaluator built from the same config
    assert evaluators["previous_token"](model, 0)["previous_token.max"] <= 1.0
    icl = evaluators["icl"](model, 0)
    assert set(icl) == {"icl.score", "icl.loss_early", "icl.loss_late"}
    assert icl["icl.score"] == pytest.approx(icl["icl.loss_late"] - icl["icl.loss_early"])


def test_shared_forward_pass_is_recomputed_at_a_new_step(text_data: Path) -> None:
    config = tiny_config(text_data, probe_metrics=("induction",))
    dataset = load_prepared(config.dataset)
    evaluate = probe_evaluators(config, dataset)["induction"]
    torch.manual_seed(0)
    model = GPT(model_config(config.model, vocab_size=dataset.vocab_size, context=dataset.context)).eval()
    before = evaluate(model, 0)
    with torch.no_grad():
        model.blocks[1].attn.c_attn.weight.mul_(20)
    assert evaluate(model, 0) == before  # same step: the cached scores
    assert evaluate(model, 1) != before


def test_short_contexts_are_refused_by_probe_name(text_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(text_data, probe_metrics=("prefix_matching",))
    dataset = load_prepared(config.dataset)
    monkeypatch.setitem(dataset.meta, "context", 8)
    with pytest.raises(ValueError, match="prefix_matching probe needs a longer context than 8"):
        probe_evaluators(config, dataset)


def test_training_logs_probe_curves_cheaply_and_resumes_exactly(text_data: Path, tmp_path: Path) -> None:
    config = tiny_config(text_data, probe_metrics=PROBES)
    summary = train_with_probes(config, tmp_path / "reference")
    logged = records(tmp_path / "reference")
    assert [r["step"] for r in logged] == [0, 1, 3, 6, 12]
    for record in logged:
        expected = {"induction.max", "previous_token.L1H3", "prefix_matching.mean", "icl.score", "probe_time_s"}
        assert expected <= set(record)
    assert 0 < summary["probe_time_s"] < summary["wall_time_s"] and 0 < summary["probe_time_share"] < 1

    class Stop(Exception):
        pass

    def stop_at_3(event: dict[str, Any]) -> None:
        if event["event"] == "eval" and event["step"] == 3:
            raise Stop

    with pytest.raises(Stop):
        train_with_probes(config, tmp_path / "run", progress=stop_at_3)
    train_with_probes(config, tmp_path / "run")
    for ours, theirs in zip(records(tmp_path / "run"), logged, strict=True):
        assert {k: v for k, v in ours.items() if "time" not in k and k != "tokens_per_s"} == \
               {k: v for k, v in theirs.items() if "time" not in k and k != "tokens_per_s"}


def test_the_trainer_refuses_probe_metrics_without_their_evaluators(text_data: Path, tmp_path: Path) -> None:
    config = tiny_config(text_data, probe_metrics=("induction",))
    with pytest.raises(ValueError, match="train_with_probes"):
        train(config, tmp_path / "run")
    with pytest.raises(ValueError, match="does not list"):
        train(tiny_config(text_data), tmp_path / "run", evaluators={"induction": lambda model, step: {}})
    with pytest.raises(ValueError, match="already holds"):
        train(config, tmp_path / "run", evaluators={"induction": lambda model, step: {"test_loss": 0.0}})
    assert not (tmp_path / "run" / "summary.json").exists()


def test_the_last_point_of_each_curve_is_the_probe_suite_score(text_data: Path, tmp_path: Path) -> None:
    """Curves and ``probes.json`` share inputs and measurements: ``run_probes`` with the curves' settings on the
    final weights gives the last logged point, head by head."""
    config = tiny_config(text_data, probe_metrics=PROBES)
    train_with_probes(config, tmp_path / "run")
    final = records(tmp_path / "run")[-1]
    dataset = load_prepared(config.dataset)
    model = load_model(tmp_path / "run" / "model.safetensors")
    settings = curve_probe_config(config, dataset.context)
    assert (settings.seed, settings.n_random_sequences, settings.induction_tokens) == (0, 4, 15)
    results = run_probes(model, dataset, config=settings)
    for name in ("induction", "previous_token", "prefix_matching"):
        assert {k: v for k, v in final.items() if k.startswith(f"{name}.")} == head_metrics(name, results.head_scores[name])
    assert results.icl is not None
    assert (final["icl.score"], final["icl.loss_late"]) == (results.icl.score, results.icl.loss_late)
