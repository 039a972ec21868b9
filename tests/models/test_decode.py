"""KV-cached decoding reproduces the full forward pass position by position (float64, random models)."""

from __future__ import annotations

import pytest
import torch

from repeatlab.models import GPT, ModelConfig, hooks
from repeatlab.models.decode import prefill, step


def random_model(mlp: bool) -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(n_layer=3, d_model=24, n_head=4, vocab_size=29, context=12, mlp=mlp)
    model = GPT(config).double().eval()
    with torch.no_grad():  # far-from-uniform attention and non-trivial LayerNorms, so positions matter
        for p in model.parameters():
            p.mul_(8.0) if p.ndim == 2 else p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("mlp", [True, False])
@torch.no_grad()
def test_cached_steps_equal_the_full_forward(mlp: bool) -> None:
    model = random_model(mlp)
    tokens = torch.randint(0, 29, (3, 12), generator=torch.Generator().manual_seed(1))
    full = model(tokens)  # [3, 12, V]
    logits, cache = prefill(model, tokens[:, :5])
    torch.testing.assert_close(logits, full[:, 4], rtol=0, atol=1e-10)
    assert cache.n_tokens == 5 and len(cache.keys) == 3 and cache.keys[0].shape == (3, 4, 5, 6)
    for pos in range(5, 12):
        logits, cache = step(model, cache, tokens[:, pos])
        torch.testing.assert_close(logits, full[:, pos], rtol=0, atol=1e-10)
    assert cache.n_tokens == 12


@torch.no_grad()
def test_decoding_past_the_context_raises() -> None:
    model = random_model(mlp=True)
    tokens = torch.zeros(2, 12, dtype=torch.long)
    _, cache = prefill(model, tokens)
    with pytest.raises(ValueError, match="context is 12"):
        step(model, cache, tokens[:, 0])
    with pytest.raises(ValueError, match="context is 12"):
        prefill(model, torch.zeros(2, 13, dtype=torch.long))


@torch.no_grad()
def test_refuses_a_hooked_model_and_mismatched_rows() -> None:
    model = random_model(mlp=False)
    tokens = torch.zeros(2, 4, dtype=torch.long)
    with hooks(model, {"blocks.1.attn.z": lambda z, _name: z * 0}), pytest.raises(ValueError, match="blocks.1.attn.z"):
        prefill(model, tokens)
    _, cache = prefill(model, tokens)
    with pytest.raises(ValueError, match="one token per cached row"):
        step(model, cache, tokens[:1, 0])
