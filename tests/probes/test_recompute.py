"""The probes agree with plain re-computations from raw attention patterns, weights and logits (random models)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repeatlab.models import GPT, ModelConfig, hook_names, run_with_cache
from repeatlab.probes import (
    attention_scores,
    candidate_tokens,
    copying_eval,
    greedy_matches,
    icl_score,
    memorisation,
    ov_copying_scores,
    repeated_random_tokens,
)


def random_model(mlp: bool = True, seed: int = 0, **overrides: int) -> GPT:
    torch.manual_seed(seed)
    fields = dict(n_layer=2, d_model=48, n_head=3, vocab_size=40, context=64, mlp=mlp) | overrides
    model = GPT(ModelConfig(**fields)).eval()  # type: ignore[arg-type]
    with torch.no_grad():  # make the patterns far from uniform, LayerNorm weights non-trivial
        for p in model.parameters():
            p.mul_(8.0) if p.ndim == 2 else p.add_(0.3 * torch.randn_like(p))
    return model


def plain_score(patterns: torch.Tensor, tokens: torch.Tensor, targets) -> torch.Tensor:  # noqa: ANN001
    """Loops: for every query with a target, the attention mass on its targets; then the mean."""
    B, H, T, _ = patterns.shape
    total, count = torch.zeros(H, dtype=torch.float64), 0
    for b in range(B):
        toks = tokens[b].tolist()
        for q in range(T):
            keys = [k for k in range(q + 1) if targets(toks, q, k)]
            if keys:
                total += patterns[b, :, q, keys].double().sum(-1)
                count += 1
    return (total / count).float()


TARGETS = {
    "induction": lambda t, q, k: k >= 1 and t[k - 1] == t[q],
    "prefix_matching": lambda t, q, k: k >= 1 and t[k - 1] == t[q],
    "previous_token": lambda t, q, k: k == q - 1,
    "duplicate_token": lambda t, q, k: k < q and t[k] == t[q],
}


@pytest.mark.parametrize("mlp", [True, False])
def test_attention_scores_match_loops_over_raw_patterns(mlp: bool) -> None:
    model = random_model(mlp)
    cands = candidate_tokens(40, exclude=[0])
    gen = torch.Generator().manual_seed(0)
    tokens = repeated_random_tokens(cands, n_sequences=5, length=12, n_repeats=2, start_token=0, generator=gen)
    tokens[:, 5] = tokens[:, 3]  # a repeat inside the first half, so queries with targets differ per pattern
    scores = attention_scores(model, tokens, list(TARGETS), batch_size=2)
    _, cache = run_with_cache(model, tokens, [n for n in hook_names(model) if n.endswith("attn.pattern")])
    for name, rule in TARGETS.items():
        assert scores[name].shape == (2, 3)
        for layer in range(2):
            expected = plain_score(cache[f"blocks.{layer}.attn.pattern"], tokens, rule)
            torch.testing.assert_close(scores[name][layer], expected, rtol=1e-5, atol=1e-6)


def test_induction_score_is_the_transformerlens_stripe_on_clean_repeats() -> None:
    model = random_model(seed=1)
    N = 15
    tokens = repeated_random_tokens(candidate_tokens(40, exclude=[0]), n_sequences=4, length=N, n_repeats=2,
                                    start_token=0, generator=torch.Generator().manual_seed(1))
    score = attention_scores(model, tokens, ["induction"])["induction"]
    _, cache = run_with_cache(model, tokens, ["blocks.0.attn.pattern", "blocks.1.attn.pattern"])
    for layer in range(2):
        pattern = cache[f"blocks.{layer}.attn.pattern"]  # [B, H, T, T]
        stripe = pattern.diagonal(offset=-(N - 1), dim1=-2, dim2=-1)[..., -N:]  # queries N+1..2N, keys q-N+1
        torch.testing.assert_close(score[layer], stripe.mean(dim=(0, 2)), rtol=1e-5, atol=1e-6)


def test_ov_copying_matches_the_full_vocab_circuit() -> None:
    model = random_model(seed=2)
    D, H, Dh, V = 48, 3, 16, 40
    W_E = model.wte.weight.detach().double()
    P = torch.eye(D, dtype=torch.float64) - 1 / D
    C = torch.eye(V, dtype=torch.float64) - 1 / V
    W_U = P @ torch.diag(model.ln_f.weight.detach().double()) @ W_E.T @ C  # [D, V]
    scores = ov_copying_scores(model)
    for layer, block in enumerate(model.blocks):
        W_in = W_E @ P @ torch.diag(block.ln_1.weight.detach().double())  # [V, D]
        W_V = block.attn.c_attn.weight.detach().double()[2 * D :]  # [H*Dh, D] (out, in)
        W_O = block.attn.c_proj.weight.detach().double()  # [D, H*Dh] (out, in)
        for h in range(H):
            hs = slice(h * Dh, (h + 1) * Dh)
            full = W_in @ W_V[hs].T @ W_O[:, hs].T @ W_U  # [V, V]
            eig = torch.linalg.eigvals(full)
            expected = eig.real.sum() / eig.abs().sum()
            assert scores[layer, h] == pytest.approx(float(expected), abs=1e-5)


def test_icl_and_copying_losses_match_cross_entropy_of_logits() -> None:
    model = random_model(seed=3)
    rows = torch.randint(0, 40, (6, 65), generator=torch.Generator().manual_seed(3))
    result = icl_score(model, rows, batch_size=4)
    with torch.no_grad():
        ce = F.cross_entropy(model(rows[:, :-1]).transpose(1, 2), rows[:, 1:], reduction="none")  # [6, 64]
    early, late = result.positions
    assert (early, late) == (6, 62)  # round(50 * 64 / 512), round(500 * 64 / 512)
    assert result.score == pytest.approx(float(ce[:, late - 1].mean() - ce[:, early - 1].mean()), abs=1e-5)
    assert result.test_loss == pytest.approx(float(ce.mean()), abs=1e-5)
    para = rows[:2, 1:6]  # [2, 5]
    copying = copying_eval(model, para, n_copies=4, start_token=0)
    seq = torch.cat([torch.zeros(2, 1, dtype=torch.long), para.repeat(1, 4)], dim=1)  # [2, 21]
    with torch.no_grad():
        ce = F.cross_entropy(model(seq[:, :-1]).transpose(1, 2), seq[:, 1:], reduction="none")  # [2, 20]
    for copy in range(4):
        assert copying.loss_per_copy[copy] == pytest.approx(float(ce[:, 5 * copy : 5 * copy + 5].mean()), abs=1e-5)


def naive_greedy(model: GPT, prefix: torch.Tensor, n: int) -> torch.Tensor:
    seq = prefix.clone()
    with torch.no_grad():
        for _ in range(n):
            seq = torch.cat([seq, model(seq[None])[0, -1].argmax()[None]])
    return seq[len(prefix) :]


@pytest.mark.parametrize("mlp", [True, False])
def test_memorisation_matches_naive_greedy_decoding(mlp: bool) -> None:
    """Cached decoding from each batch's earliest miss equals decoding every row from scratch with full passes."""
    model = random_model(mlp=mlp, seed=4, vocab_size=12)
    gen = torch.Generator().manual_seed(4)
    rows = torch.randint(0, 12, (9, 20), generator=gen)
    # Batches of 3: [random, memorised, right for 3], [right for 7, memorised, right for 5], [all memorised].
    # The middle batch decodes from position 5 with rows that miss at different positions.
    for i, n_right in ((1, 8), (2, 3), (3, 7), (4, 8), (5, 5), (6, 8), (7, 8), (8, 8)):
        greedy = naive_greedy(model, rows[i, :8], 8)
        rows[i, 8 : 8 + n_right] = greedy[:n_right]
        if n_right < 8:
            rows[i, 8 + n_right] = (greedy[n_right] + 1) % 12  # the first miss
    hits = greedy_matches(model, rows, prefix_tokens=8, continuation_tokens=8, batch_size=3)
    for i in range(9):
        expected = naive_greedy(model, rows[i, :8], 8) == rows[i, 8:16]
        assert torch.equal(hits[i], expected), i
    first_miss = [int(h.int().argmin()) if not h.all() else 8 for h in hits[1:]]
    assert first_miss == [8, 3, 7, 8, 5, 8, 8, 8]
    result = memorisation(model, rows, prefix_tokens=8, continuation_tokens=8)
    assert result.exact_match_rate == pytest.approx(float(hits.all(1).double().mean()))
    assert result.exact_match_rate >= 5 / 9
    assert result.token_match_rate == pytest.approx(float(hits.double().mean()))


def test_ov_copying_is_zero_for_a_circuit_that_is_zero_up_to_rounding() -> None:
    model = random_model(seed=3)
    D, Dh = 48, 16
    with torch.no_grad():
        # Head 0 of layer 0 reads only the all-ones direction of the normalised stream (LayerNorm's weight folded
        # in), which LayerNorm's centring removes: its circuit is zero in exact arithmetic and tiny in float64,
        # where its eigenvalue ratio is noise (such a head once scored 0.999).
        gamma = model.blocks[0].ln_1.weight  # [D]
        value_rows = model.blocks[0].attn.c_attn.weight[2 * D : 2 * D + Dh]  # [Dh, D] (out, in)
        value_rows.copy_(torch.randn(Dh, 1) / gamma[None, :])
    scores = ov_copying_scores(model)
    assert scores[0, 0] == 0.0
    assert scores[0, 1] != 0.0 and scores[1].abs().sum() > 0
