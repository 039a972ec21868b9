"""Detection patterns: pure functions from tokens to the attention a head *should* pay, looked up by score name.

A pattern function takes ``tokens [B, T]`` and returns a boolean ``[B, T, T]`` mask whose entry
``[b, q, k]`` says that key ``k`` is a target of query ``q``. It depends only on the tokens (never on
the model), so the same mask scores every head, and a test can re-derive it by hand.

The score of a head (``heads.attention_scores``) is the attention mass a query puts on its targets,
averaged over the queries that have at least one target. That is the mean of Olsson et al.'s
per-position quantity; TransformerLens's head detector instead divides the masked attention by the
total attention of *all* queries (targets or not), so its induction score of a perfect induction head
on a sequence repeated twice is about 0.5 where ours is 1 (``attention_scores(..., queries="all")`` gives
TransformerLens's number; ``heads.QueryAverage`` has the conversion).

Every pattern is causal (``k <= q``): a target the query cannot see would cap the score below 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from repeatlab.errors import RepeatlabError

PatternFn = Callable[[Tensor], Tensor]


def _check(tokens: Tensor) -> None:
    if tokens.ndim != 2:
        raise RepeatlabError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")


def _causal(T: int, device: torch.device) -> Tensor:
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()  # [Tq, Tk]


def previous_token_pattern(tokens: Tensor) -> Tensor:
    """Each query's target is the position just before it (query 0 has none)."""
    _check(tokens)
    B, T = tokens.shape
    mask = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril(-1).triu(-1)  # [Tq, Tk], k == q - 1
    return mask.expand(B, T, T)  # [B, Tq, Tk]


def duplicate_token_pattern(tokens: Tensor) -> Tensor:
    """Targets are earlier positions holding the same token as the query."""
    _check(tokens)
    same = tokens[:, :, None] == tokens[:, None, :]  # [B, Tq, Tk]
    return same & _causal(tokens.shape[1], tokens.device).tril(-1)  # strictly earlier keys


def induction_pattern(tokens: Tensor) -> Tensor:
    """Targets are the tokens that *followed* earlier occurrences of the query's token.

    Key ``k`` is a target of query ``q`` when ``tokens[k - 1] == tokens[q]`` and ``k <= q``: on
    ``[s, A, B, …, A, B]`` the second ``A`` attends to the first ``B``. All earlier occurrences count,
    so on Olsson et al.'s four-fold repeats this is their prefix-matching target set.
    """
    _check(tokens)
    B, T = tokens.shape
    mask = torch.zeros(B, T, T, dtype=torch.bool, device=tokens.device)  # [B, Tq, Tk]
    mask[:, :, 1:] = tokens[:, :, None] == tokens[:, None, :-1]  # key k matches via tokens[k - 1]
    return mask & _causal(T, tokens.device)


# Score name -> pattern. Prefix matching shares the induction target set; it differs in the sequences it
# is measured on (25 tokens repeated 4 times, see ``sequences.py``), not in which keys count.
PATTERNS: dict[str, PatternFn] = {
    "induction": induction_pattern,
    "previous_token": previous_token_pattern,
    "duplicate_token": duplicate_token_pattern,
    "prefix_matching": induction_pattern,
}


def get_pattern(name: str) -> PatternFn:
    """The pattern function of a score name, or a ``ValueError`` listing the valid names."""
    try:
        return PATTERNS[name]
    except KeyError:
        raise RepeatlabError(f"unknown detection pattern {name!r}; valid names are: {', '.join(PATTERNS)}") from None


__all__ = [
    "PATTERNS",
    "PatternFn",
    "duplicate_token_pattern",
    "get_pattern",
    "induction_pattern",
    "previous_token_pattern",
]
