"""Shapes, causality, config validation and parameter counts of the GPT model."""

from __future__ import annotations

import pytest
import torch

from repeatlab.models import GPT, ModelConfig


def tiny(**overrides: object) -> ModelConfig:
    fields: dict[str, object] = dict(n_layer=2, d_model=32, n_head=4, vocab_size=61, context=16)
    fields.update(overrides)
    return ModelConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("mlp", [True, False])
def test_logits_shape(mlp: bool) -> None:
    torch.manual_seed(0)
    model = GPT(tiny(mlp=mlp))
    logits = model(torch.randint(0, 61, (3, 10)))
    assert logits.shape == (3, 10, 61)
    assert logits.dtype == torch.float32


@pytest.mark.parametrize("mlp", [True, False])
def test_causal(mlp: bool) -> None:
    torch.manual_seed(0)
    model = GPT(tiny(mlp=mlp)).eval()
    tokens = torch.randint(0, 61, (2, 12))
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 61
    a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_tied_unembedding_counted_once() -> None:
    model = GPT(tiny())
    names = [name for name, _ in model.named_parameters()]
    assert "wte.weight" in names and not any("lm_head" in n for n in names)
    d, v, t, n_layer = 32, 61, 16, 2
    per_layer = 12 * d * d + 13 * d  # qkv/out/fc/proj weights + their biases + 2 LayerNorms
    assert model.n_params(non_embedding=True) == n_layer * per_layer + 2 * d
    assert model.n_params() == n_layer * per_layer + 2 * d + v * d + t * d


def test_config_n_params_scaling_law_formula() -> None:
    assert tiny().n_params_scaling_law == 12 * 2 * 32**2
    assert tiny(mlp=False).n_params_scaling_law == 4 * 2 * 32**2
    assert tiny(mlp=False).d_head == 8


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_layer", 0), ("d_model", -1), ("n_head", 5), ("vocab_size", True), ("layer_norm_eps", 0.0), ("init_std", -1.0)],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        tiny(**{field: value})


def test_too_long_sequence_is_a_clear_error() -> None:
    model = GPT(tiny())
    with pytest.raises(ValueError, match="context 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_residual_projections_use_scaled_init() -> None:
    torch.manual_seed(0)
    model = GPT(tiny(n_layer=8, d_model=128, n_head=2))
    proj = model.blocks[0].attn.c_proj.weight.std().item()
    qkv = model.blocks[0].attn.c_attn.weight.std().item()
    assert abs(qkv - 0.02) < 0.002
    assert abs(proj - 0.02 / 4) < 0.001
