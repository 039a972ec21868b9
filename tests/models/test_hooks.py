"""Hook points: names, caching, replacement, the explicit-pattern path and cleanup."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from repeatlab.models import GPT, ModelConfig, hook_names, hooks, run_with_cache


def make(mlp: bool = True) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=50, context=16, mlp=mlp)).eval()


def test_hook_names_follow_grammar() -> None:
    names = hook_names(make())
    assert names[0] == "embed" and names[-1] == "ln_final.out"
    per_block = ["resid_pre", "attn.q", "attn.k", "attn.v", "attn.pattern", "attn.z", "attn.out", "resid_mid",
                 "mlp.out", "resid_post"]
    assert names[1:-1] == [f"blocks.{i}.{n}" for i in range(2) for n in per_block]
    assert "blocks.0.mlp.out" not in hook_names(make(mlp=False))


def test_cache_shapes() -> None:
    model = make()
    tokens = torch.randint(0, 50, (2, 9))
    logits, cache = run_with_cache(model, tokens, hook_names(model))
    assert set(cache) == set(hook_names(model))
    assert cache["embed"].shape == (2, 9, 32)
    assert cache["blocks.1.attn.q"].shape == (2, 9, 4, 8)
    assert cache["blocks.1.attn.z"].shape == (2, 9, 4, 8)
    pattern = cache["blocks.0.attn.pattern"]
    assert pattern.shape == (2, 4, 9, 9)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 4, 9))
    assert torch.all(pattern.triu(diagonal=1) == 0)
    torch.testing.assert_close(cache["ln_final.out"] @ model.wte.weight.T, logits)


@pytest.mark.parametrize("mlp", [True, False])
def test_pattern_path_matches_sdpa(mlp: bool) -> None:
    model = make(mlp)
    tokens = torch.randint(0, 50, (3, 16))
    plain = model(tokens)
    with hooks(model, {f"blocks.{i}.attn.pattern": lambda p, n: None for i in range(2)}):
        explicit = model(tokens)
    torch.testing.assert_close(explicit, plain, atol=1e-5, rtol=1e-5)


def test_cached_activations_are_copies() -> None:
    model = make()
    tokens = torch.randint(0, 50, (1, 8))

    def vandal(x: Tensor, name: str) -> None:
        x.mul_(0)  # resid_pre of block 0 is the same tensor as embed: mutates it after embed was cached

    with torch.no_grad(), hooks(model, {"blocks.0.resid_pre": vandal}):
        _, cache = run_with_cache(model, tokens, ["embed"])
    assert cache["embed"].abs().sum() > 0


def test_replacing_hook_changes_output_and_ablates_head() -> None:
    model = make()
    tokens = torch.randint(0, 50, (2, 8))

    def ablate_head_1(z: Tensor, name: str) -> Tensor:
        mask = torch.ones(z.shape[2])
        mask[1] = 0
        return z * mask[:, None]

    with hooks(model, {"blocks.0.attn.z": ablate_head_1}):
        logits, cache = run_with_cache(model, tokens, ["blocks.0.attn.z"])
    assert torch.all(cache["blocks.0.attn.z"][:, :, 1] == 0)
    assert not torch.allclose(logits, model(tokens))


def test_pattern_clamp_with_autograd() -> None:
    model = make().train()
    tokens = torch.randint(0, 50, (2, 8))

    def uniform(p: Tensor, name: str) -> Tensor:
        causal = torch.ones_like(p).tril()
        return causal / causal.sum(-1, keepdim=True)

    with hooks(model, {"blocks.1.attn.pattern": uniform}):
        model(tokens).sum().backward()
    assert model.blocks[0].attn.c_attn.weight.grad is not None
    # Layer 1's pattern is fixed, so its queries and keys receive no gradient.
    q_grad = model.blocks[1].attn.c_attn.weight.grad[:64]
    assert torch.all(q_grad == 0)


def test_hooks_removed_even_on_exception() -> None:
    model = make()
    tokens = torch.randint(0, 50, (1, 4))
    with pytest.raises(RuntimeError, match="boom"):
        with hooks(model, {"embed": lambda x, n: x * 0, "blocks.0.attn.pattern": lambda p, n: None}):
            raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in model.modules())
    _, cache = run_with_cache(model, tokens, ["embed"])
    assert cache["embed"].abs().sum() > 0


def test_unknown_hook_name_lists_valid_names() -> None:
    model = make()
    with pytest.raises(ValueError, match=r"blocks\.1\.atn\.pattern.*blocks\.\{0\.\.1\}\.attn\.pattern"):
        with hooks(model, {"blocks.1.atn.pattern": lambda p, n: None}):
            pass
    assert all(not m._forward_hooks for m in model.modules())


def test_compiles_without_graph_breaks_and_hooks_registered_before_compile_apply() -> None:
    model = make()
    tokens = torch.randint(0, 50, (2, 8))
    halve = {"blocks.1.attn.z": lambda z, n: z * 0.5, "blocks.0.attn.pattern": lambda p, n: None}
    with hooks(model, halve):
        expected = model(tokens)
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(tokens), expected)
    torch._dynamo.reset()
