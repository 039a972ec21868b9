"""Random-token sequences for the attention probes, and the token pool they are drawn from.

Olsson et al. (2022) draw the tokens of their prefix-matching sequences "excluding the most common and
the least common tokens": the most common ones (spaces, "the", punctuation) get special attention from
many heads, and the rarest ones have barely trained embeddings, so either would measure something other
than the mechanism. The paper gives no cut-off; here the ``exclude_fraction`` most and least frequent
of the tokens that occur in the training pool are dropped, and tokens that never occur are dropped too
(their embeddings are still at initialisation). Without frequencies (a bare model) every token but the
start token is a candidate, as in TransformerLens's ``generate_repeated_tokens``.

Within one repeat, tokens are drawn without replacement whenever the pool is large enough, so each
token occurs exactly once per repeat and the induction targets are unambiguous (TransformerLens draws
with replacement; on a 50k vocabulary the difference is negligible).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from repeatlab.errors import RepeatlabError

# Enough to rank a 50k vocabulary well; reading more of a 10^9-token pool would only cost time.
MAX_FREQUENCY_TOKENS = 10_000_000


def token_frequencies(tokens: np.ndarray, vocab_size: int, *, max_tokens: int = MAX_FREQUENCY_TOKENS) -> np.ndarray:
    """Counts ``[vocab_size]`` of each token id in (the first ``max_tokens`` of) a token stream.

    The training pool is packed in a seeded random document order, so its first tokens are a random
    sample of documents.
    """
    sample = np.asarray(tokens[:max_tokens])
    if sample.size and int(sample.max()) >= vocab_size:
        raise RepeatlabError(f"token id {int(sample.max())} is outside the vocabulary of {vocab_size} tokens")
    return np.bincount(sample.astype(np.int64), minlength=vocab_size)


def candidate_tokens(
    vocab_size: int,
    *,
    exclude: Iterable[int] = (),
    frequencies: np.ndarray | None = None,
    exclude_fraction: float = 0.1,
) -> Tensor:
    """Sorted int64 ids that random probe sequences may use.

    Args:
        exclude: ids never to use (the start token).
        frequencies: token counts from ``token_frequencies``; ``None`` keeps every id.
        exclude_fraction: share of the occurring tokens dropped at *each* end of the frequency ranking.
    """
    if not 0.0 <= exclude_fraction < 0.5:
        raise RepeatlabError(f"exclude_fraction must be in [0, 0.5), got {exclude_fraction!r}")
    keep = np.ones(vocab_size, dtype=bool)
    if frequencies is not None:
        if frequencies.shape != (vocab_size,):
            raise RepeatlabError(f"frequencies must have shape ({vocab_size},), got {frequencies.shape}")
        occurring = np.flatnonzero(frequencies > 0)
        # Stable sort on (count, id) so ties never depend on the platform.
        ranked = occurring[np.argsort(frequencies[occurring], kind="stable")]
        n_drop = int(exclude_fraction * len(ranked))
        keep[:] = False
        keep[ranked[n_drop : len(ranked) - n_drop]] = True
    for token in exclude:
        if 0 <= token < vocab_size:
            keep[token] = False
    ids = np.flatnonzero(keep)
    if len(ids) < 2:
        raise RepeatlabError(
            f"only {len(ids)} candidate token(s) remain for random probe sequences; lower exclude_fraction"
        )
    return torch.from_numpy(ids.astype(np.int64))


def repeated_random_tokens(
    candidates: Tensor,
    *,
    n_sequences: int,
    length: int,
    n_repeats: int,
    start_token: int,
    generator: torch.Generator,
) -> Tensor:
    """``[n_sequences, 1 + length * n_repeats]``: a start token, then ``length`` random tokens repeated.

    ``n_repeats=2`` gives the induction sequences; ``length=25, n_repeats=4`` Olsson et al.'s
    prefix-matching sequences.
    """
    for name, value in (("n_sequences", n_sequences), ("length", length), ("n_repeats", n_repeats)):
        if value < 1:
            raise RepeatlabError(f"{name} must be at least 1, got {value}")
    n_candidates = len(candidates)
    if n_candidates >= length:
        # Without replacement within a repeat: a random permutation prefix per sequence.
        keys = torch.rand(n_sequences, n_candidates, generator=generator)  # [N, n_candidates]
        index = keys.argsort(dim=1)[:, :length]  # [N, length]
    else:
        index = torch.randint(n_candidates, (n_sequences, length), generator=generator)  # [N, length]
    chunk = candidates[index]  # [N, length]
    start = torch.full((n_sequences, 1), start_token, dtype=torch.int64)  # [N, 1]
    return torch.cat([start, chunk.repeat(1, n_repeats)], dim=1)  # [N, 1 + length * n_repeats]


__all__ = ["MAX_FREQUENCY_TOKENS", "candidate_tokens", "repeated_random_tokens", "token_frequencies"]
