"""Detection patterns are pure functions of the tokens with the documented targets."""

from __future__ import annotations

import pytest
import torch

from repeatlab.probes.patterns import PATTERNS, get_pattern


def targets(name: str, tokens: list[int]) -> set[tuple[int, int]]:
    mask = PATTERNS[name](torch.tensor([tokens]))[0]
    return {(int(q), int(k)) for q, k in mask.nonzero()}


def test_induction_targets_follow_earlier_occurrences() -> None:
    # s A B C A B C: the second A (pos 4) attends to the first B (pos 2), and so on.
    assert targets("induction", [9, 1, 2, 3, 1, 2, 3]) == {(4, 2), (5, 3), (6, 4)}


def test_prefix_matching_counts_every_earlier_repeat() -> None:
    tokens = [9, 1, 2, 1, 2, 1, 2]
    assert targets("prefix_matching", tokens) == {(3, 2), (4, 3), (5, 2), (5, 4), (6, 3), (6, 5)}


def test_previous_and_duplicate_targets() -> None:
    assert targets("previous_token", [5, 6, 7]) == {(1, 0), (2, 1)}
    assert targets("duplicate_token", [5, 6, 5, 5]) == {(2, 0), (3, 0), (3, 2)}


def test_induction_includes_key_equal_to_query() -> None:
    # tokens[q - 1] == tokens[q]: the token after the earlier occurrence is the query itself.
    assert (2, 2) in targets("induction", [0, 4, 4])


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_patterns_are_causal_pure_and_batched(name: str) -> None:
    tokens = torch.randint(0, 5, (3, 12), generator=torch.Generator().manual_seed(1))
    before = tokens.clone()
    mask = PATTERNS[name](tokens)
    assert mask.shape == (3, 12, 12) and mask.dtype == torch.bool
    assert not mask.triu(diagonal=1).any()
    assert torch.equal(tokens, before)
    assert torch.equal(mask, PATTERNS[name](tokens))
    for b in range(3):  # each row of the batch depends only on its own tokens
        assert torch.equal(mask[b], PATTERNS[name](tokens[b : b + 1])[0])


def test_unknown_pattern_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="valid names are: induction"):
        get_pattern("inductoin")
    with pytest.raises(ValueError, match=r"\[batch, pos\]"):
        PATTERNS["induction"](torch.zeros(4, dtype=torch.long))
