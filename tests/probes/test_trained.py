"""A two-layer attention-only model trained here, on sequences whose spans repeat, learns in-context copying.

Training data: a start token, then a random span of 4..12 tokens repeated to fill a 32-token context,
so after the first period every token is predictable from the context. The probes must see it: a top
induction score clearly above the untrained model's, a negative ICL score, and an ablation of the top
head that takes the ICL score back up (the causal check).

Caveat, measured rather than assumed: within this CPU budget (600 steps, ~10 s) the top-scoring head
is a layer-0 positional "look back one period" head, not the canonical layer-1 induction head (which
needs a previous-token head before it). It attends to the induction target of the probe because the
probe's period (10) is one of the training periods. Pattern-based induction scores (ours, Olsson et
al.'s, TransformerLens's) cannot tell the two apart on one sequence length; the hand-built model in
``test_handmade.py`` is the check that the probe finds a genuine two-layer circuit.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repeatlab.models import GPT, ModelConfig
from repeatlab.probes import attention_scores, candidate_tokens, head_ablation, icl_score, repeated_random_tokens, top_heads

VOCAB, CONTEXT, START = 33, 32, 32
CANDIDATES = candidate_tokens(VOCAB, exclude=[START])


def periodic_rows(n: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, CONTEXT + 1]``: a start token, then a random span of 4..12 tokens repeated to fill the context."""
    rows = []
    for _ in range(n):
        period = int(torch.randint(4, 13, (1,), generator=generator))
        seq = repeated_random_tokens(CANDIDATES, n_sequences=1, length=period, n_repeats=CONTEXT // period + 1,
                                     start_token=START, generator=generator)
        rows.append(seq[:, : CONTEXT + 1])
    return torch.cat(rows)


@pytest.mark.slow
def test_trained_model_develops_an_induction_head() -> None:
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, d_model=64, n_head=4, vocab_size=VOCAB, context=CONTEXT, mlp=False))
    probe = repeated_random_tokens(CANDIDATES, n_sequences=32, length=10, n_repeats=2, start_token=START,
                                   generator=torch.Generator().manual_seed(99))
    held_out = periodic_rows(64, torch.Generator().manual_seed(7))
    untrained = attention_scores(model, probe, ["induction"])["induction"]
    untrained_icl = icl_score(model, held_out).score

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    data = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(600):
        rows = periodic_rows(32, data)
        loss = F.cross_entropy(model(rows[:, :-1]).transpose(1, 2), rows[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()

    trained = attention_scores(model, probe, ["induction"])["induction"]
    icl = icl_score(model, held_out)
    assert icl.positions == (3, 31)
    assert abs(untrained_icl) < 0.3
    assert icl.score < -1.0
    assert trained.max() > max(0.3, untrained.max() + 0.2)
    best = top_heads(trained, 1)[0]
    paragraphs = periodic_rows(4, torch.Generator().manual_seed(8))[:, 1:3]  # [4, 2]: 11 copies fit in 32
    ablation = head_ablation(model, [best], mode="mean", test_rows=held_out, paragraphs=paragraphs,
                             start_token=START)
    assert ablation.delta["icl_score"] > 0.3
