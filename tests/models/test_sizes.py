"""The size registry: Hernandez et al. parameter counts, lookups and exact counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repeatlab.config import load_json, to_dict
from repeatlab.io import write_json
from repeatlab.models import GPT
from repeatlab.models.gpt import ModelConfig
from repeatlab.models.sizes import SIZES, SizeSpec, count_params, list_sizes, model_config

FORWARD_MAX_PARAMS = 20_000_000
"""Sizes above this many parameters are only built on the meta device (a CPU forward pass would be slow)."""


def test_hernandez_family_spans_1_57m_to_805m() -> None:
    hern = {name: spec for name, spec in SIZES.items() if name.startswith("hern-")}
    counts = [model_config(n, vocab_size=100, context=8).n_params_scaling_law for n in hern]
    assert counts[0] == 1_572_864 and counts[-1] == 805_306_368
    assert counts == sorted(counts) and len(counts) == 10
    for spec in hern.values():
        assert spec.d_model == 128 * spec.n_layer and spec.d_model // spec.n_head == 64 and spec.mlp


def test_gpt2_small_matches_known_parameter_count() -> None:
    assert count_params(model_config("gpt2-small", vocab_size=50257, context=1024)) == 124_439_808


def test_tiny_cpu_size_near_0_8m() -> None:
    assert model_config("tiny-4l", vocab_size=256, context=64).n_params_scaling_law == 786_432


def test_attention_only_sizes() -> None:
    for layers in (1, 2, 3):
        for name in (f"attn-only-{layers}l", f"attn-only-tiny-{layers}l"):
            config = model_config(name, vocab_size=100, context=8)
            assert not config.mlp and config.n_layer == layers


@pytest.mark.parametrize("name", list(SIZES))
def test_every_size_builds_round_trips_and_runs(name: str, tmp_path: Path) -> None:
    """litgpt's config-hub test: every named size gives a valid config that survives save/load, and the model of
    each size that fits a CPU test has the parameters count_params gives and runs one forward pass on a tiny batch
    (context 8)."""
    vectors = SIZES[name].attention == "linear"  # the linear self-attention sizes read regression vectors
    config = model_config(name, vocab_size=0 if vectors else 64, context=8, d_vector=5 if vectors else None)
    write_json(tmp_path / "model.json", to_dict(config))
    assert load_json(ModelConfig, tmp_path / "model.json") == config
    n_params, non_embedding = count_params(config), count_params(config, non_embedding=True)
    assert n_params > non_embedding > 0
    if n_params > FORWARD_MAX_PARAMS:
        return
    torch.manual_seed(0)
    model = GPT(config)  # count_params (on the meta device) counts the real model's parameters
    assert (model.n_params(), model.n_params(non_embedding=True)) == (n_params, non_embedding)
    inputs = torch.randn(2, 8, 5) if vectors else torch.randint(0, 64, (2, 8))
    with torch.no_grad():
        out = model(inputs)
    assert out.shape == ((2, 8) if vectors else (2, 8, 64))
    assert torch.isfinite(out).all()


def test_unknown_size_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model size 'hern-7l'.*hern-8l.*gpt2-small"):
        model_config("hern-7l", vocab_size=10, context=8)


def test_size_spec_validates() -> None:
    with pytest.raises(ValueError, match="n_head"):
        SizeSpec(n_layer=1, d_model=64, n_head=3)


def test_list_sizes_rows() -> None:
    rows = list_sizes(vocab_size=100, context=16)
    assert [r["name"] for r in rows] == list(SIZES)
    tiny = next(r for r in rows if r["name"] == "tiny-1l")
    assert tiny["n_params"] == count_params(model_config("tiny-1l", vocab_size=100, context=16))
