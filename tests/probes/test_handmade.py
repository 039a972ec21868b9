"""Validation on a hand-built induction circuit: the probes must find the heads from behaviour alone.

``conftest.build_handmade`` sets the weights of a two-layer attention-only GPT so that head 0.1 is a
previous-token head and head 1.2 an induction head (nothing is trained). The probes are not told which
heads these are.
"""

from __future__ import annotations

import pytest
import torch

from repeatlab.probes import (
    ProbeConfig,
    ablated,
    attention_scores,
    candidate_tokens,
    copying_eval,
    head_ablation,
    icl_score,
    repeated_random_tokens,
    run_probes,
    top_heads,
)


def random_rows(handmade, n: int, length: int, n_repeats: int, seed: int) -> torch.Tensor:  # noqa: ANN001
    cands = candidate_tokens(handmade.model.config.vocab_size, exclude=[handmade.start_token])
    return repeated_random_tokens(cands, n_sequences=n, length=length, n_repeats=n_repeats,
                                  start_token=handmade.start_token, generator=torch.Generator().manual_seed(seed))


def test_probes_name_exactly_the_built_heads(handmade) -> None:  # noqa: ANN001
    config = ProbeConfig(probes=("induction", "prefix_matching", "ov_copying"), start_token=handmade.start_token,
                         n_random_sequences=16)
    scores = run_probes(handmade.model, config=config).head_scores
    induction, previous = scores["induction"], scores["previous_token"]
    assert top_heads(induction, 1) == [handmade.induction_head]
    assert top_heads(previous, 1) == [handmade.previous_token_head]
    assert top_heads(scores["prefix_matching"], 1) == [handmade.induction_head]
    assert top_heads(scores["ov_copying"], 1) == [handmade.induction_head]
    assert induction[handmade.induction_head] > 0.9
    assert previous[handmade.previous_token_head] > 0.9
    assert scores["prefix_matching"][handmade.induction_head] > 0.9
    assert scores["ov_copying"][handmade.induction_head] > 0.9
    for name, own in (("induction", handmade.induction_head), ("previous_token", handmade.previous_token_head),
                      ("prefix_matching", handmade.induction_head)):
        others = scores[name].clone()
        others[own] = 0
        assert others.max() < 0.1, name
    assert scores["duplicate_token"].max() < 0.1


def test_ablating_the_induction_head_destroys_copying(handmade) -> None:  # noqa: ANN001
    model, start = handmade.model, handmade.start_token
    paragraphs = random_rows(handmade, 3, 11, 1, seed=1)[:, 1:]  # [3, 11]: 11 copies fill the context of 128
    intact = copying_eval(model, paragraphs, start_token=start)
    assert intact.repeated_copies_loss < 0.1 < 3.0 < intact.first_copy_loss
    with ablated(model, [handmade.induction_head], mode="zero"):
        broken = copying_eval(model, paragraphs, start_token=start)
    assert broken.repeated_copies_loss > 0.9 * broken.first_copy_loss
    with ablated(model, [handmade.bos_head, (1, 0)], mode="zero"):  # heads that do nothing for copying
        same = copying_eval(model, paragraphs, start_token=start)
    assert abs(same.repeated_copies_loss - intact.repeated_copies_loss) < 1e-4


def test_head_ablation_reports_icl_and_copying_changes(handmade) -> None:  # noqa: ANN001
    test_rows = random_rows(handmade, 8, 64, 3, seed=2)[:, :129]  # [8, context + 1], repeats after 64 tokens
    paragraphs = random_rows(handmade, 2, 11, 1, seed=3)[:, 1:]
    icl = icl_score(handmade.model, test_rows)
    assert icl.positions == (12, 125)  # (50, 500) scaled to context 128
    assert icl.score < -2.0
    result = head_ablation(handmade.model, [handmade.induction_head], mode="mean", test_rows=test_rows,
                           paragraphs=paragraphs, start_token=handmade.start_token)
    assert result.baseline["icl_score"] == icl.score
    assert result.delta["icl_score"] > 2.0 and abs(result.ablated["icl_score"]) < 0.5
    assert result.delta["repeated_copies_loss"] > 2.0
    control = head_ablation(handmade.model, [(1, 0)], mode="mean", test_rows=test_rows, paragraphs=paragraphs,
                            start_token=handmade.start_token)
    assert max(abs(d) for d in control.delta.values()) < 1e-4


def test_ablation_hooks_are_removed(handmade) -> None:  # noqa: ANN001
    tokens = random_rows(handmade, 2, 20, 2, seed=4)
    before = attention_scores(handmade.model, tokens, ["induction"])["induction"]
    with ablated(handmade.model, [(0, 1)], mode="zero"):
        during = attention_scores(handmade.model, tokens, ["induction"])["induction"]
    after = attention_scores(handmade.model, tokens, ["induction"])["induction"]
    assert during[handmade.induction_head] < 0.5  # without the previous-token head, no induction
    torch.testing.assert_close(before, after)


def test_all_queries_average_is_targeted_times_the_targeted_share(handmade) -> None:  # noqa: ANN001
    """TransformerLens's normalisation (every query) against repeatlab's (queries with a target), exactly."""
    rows = random_rows(handmade, 6, 15, 2, seed=3)  # [6, 31]: previous token targets 30 of 31, induction 15
    for name, n_targeted in (("induction", 15), ("previous_token", 30)):
        targeted = attention_scores(handmade.model, rows, [name], batch_size=4)[name]
        every = attention_scores(handmade.model, rows, [name], batch_size=4, queries="all")[name]
        torch.testing.assert_close(every, targeted * n_targeted / rows.shape[1], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="queries must be one of targeted, all"):
        attention_scores(handmade.model, rows, ["induction"], queries="some")  # type: ignore[arg-type]
