"""Vector models: the GPT family with input/output heads for continuous data, and von Oswald et al.'s linear
self-attention, checked against the formula written out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repeatlab.errors import RepeatlabError
from repeatlab.models.decode import prefill
from repeatlab.models.export import export_hf
from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.models.hooks import run_with_cache
from repeatlab.models.sizes import model_config


def lsa(n_layer: int = 1, d_vector: int = 5, context: int = 7) -> GPT:
    torch.manual_seed(0)
    return GPT(model_config(f"lsa-{n_layer}l", vocab_size=0, context=context, d_vector=d_vector))


def test_forward_shapes_and_parameters() -> None:
    model = lsa(2)
    out = model(torch.randn(3, 7, 5))
    assert out.shape == (3, 7)
    assert {name for name, _ in model.named_parameters()} == {
        "w_in.weight", "w_out.weight", *(f"blocks.{i}.attn.{p}.weight" for i in range(2) for p in ("c_attn", "c_proj"))}
    assert model.n_params(non_embedding=True) == 2 * 4 * 16 * 16  # the attention matrices only
    with pytest.raises(RepeatlabError, match=r"takes \[batch, pos, 5\] vectors"):
        model(torch.zeros(3, 7, dtype=torch.long))


def test_linear_attention_is_the_written_out_formula() -> None:
    model = lsa(1)
    x = torch.randn(2, 7, 5)
    attn = model.blocks[0].attn
    h = model.w_in(x)  # [B, T, D]
    q, k, v = attn.c_attn(h).split(16, dim=-1)
    expected = torch.zeros_like(h)
    for t in range(7):
        for i in range(t + 1):  # causal: the keys up to the query, averaged
            expected[:, t] += (q[:, t] * k[:, i]).sum(-1, keepdim=True) * v[:, i] / (t + 1)
    predictions = model.w_out(h + attn.c_proj(expected)).squeeze(-1)
    torch.testing.assert_close(model(x), predictions, rtol=1e-5, atol=1e-6)


def test_the_pattern_hook_sees_the_linear_scores() -> None:
    model = lsa(1)
    x = torch.randn(2, 7, 5)
    _, cache = run_with_cache(model, x, ["blocks.0.attn.pattern"])
    pattern = cache["blocks.0.attn.pattern"]  # [B, H, Tq, Tk]
    attn, h = model.blocks[0].attn, model.w_in(x)
    q, k, _ = attn.c_attn(h).split(16, dim=-1)
    scores = (q @ k.transpose(-2, -1)).tril() / torch.arange(1, 8).unsqueeze(-1)  # [B, Tq, Tk]
    torch.testing.assert_close(pattern[:, 0], scores)


def test_vector_configs_are_validated() -> None:
    with pytest.raises(RepeatlabError, match="vocab_size must be 0 for a vector model"):
        ModelConfig(n_layer=1, d_model=8, n_head=1, vocab_size=10, context=4, d_vector=3)
    with pytest.raises(RepeatlabError, match="vocab_size must be an integer from 1 to 4,294,967,296"):
        ModelConfig(n_layer=1, d_model=8, n_head=1, vocab_size=0, context=4)
    with pytest.raises(RepeatlabError, match="attention must be one of softmax, linear"):
        ModelConfig(n_layer=1, d_model=8, n_head=1, vocab_size=10, context=4, attention="cosine")  # type: ignore[arg-type]


def test_a_linear_attention_token_model_trains_without_softmax() -> None:
    """The knobs are independent: linear attention also runs on tokens (the GPT-2 paths refuse it)."""
    config = ModelConfig(n_layer=1, d_model=8, n_head=2, vocab_size=11, context=6, attention="linear",
                         layer_norm=False)
    model = GPT(config)
    logits = model(torch.randint(0, 11, (2, 6)))
    assert logits.shape == (2, 6, 11)
    assert not config.is_gpt2


def test_gpt2_only_features_refuse_other_architectures(tmp_path: Path) -> None:
    model = lsa(1)
    with pytest.raises(RepeatlabError, match="the Hugging Face export needs a GPT-2-architecture token model"):
        export_hf(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    token_lsa = GPT(ModelConfig(n_layer=1, d_model=8, n_head=1, vocab_size=11, context=6, attention="linear"))
    with pytest.raises(RepeatlabError, match="cached decoding needs a GPT-2-architecture"):
        prefill(token_lsa, torch.zeros(1, 3, dtype=torch.long))
