"""The bigram baseline: the test loss of a smoothed bigram model estimated on the training pool.

A transformer that is not clearly below this line has learnt little more than which token follows which,
so its runs say nothing about capacity spent on memorising (the precondition of Hernandez et al. 2022's
effect). The smoothing constant of the additive (add-k) estimate is chosen by the likelihood of the last
``holdout_fraction`` of the training tokens under counts from the rest, so the test split is used only
for the reported loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repeatlab.data.prepared import PreparedDataset
from repeatlab.errors import RepeatlabError

SMOOTHING_GRID = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)
"""Add-k constants tried; the best on the held-out tail of the training tokens is used."""


@dataclass(frozen=True)
class BigramBaseline:
    """Test loss (nats per token) of the bigram model and how it was estimated."""

    test_loss: float
    smoothing: float
    n_train_tokens: int
    n_test_tokens: int


def bigram_counts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """``[vocab, vocab]`` float64 counts of (previous, next) token pairs in a stream."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise RepeatlabError(f"token ids must lie in [0, {vocab_size}), got {tokens.min()}..{tokens.max()}")
    pairs = tokens[:-1] * vocab_size + tokens[1:]
    return np.bincount(pairs, minlength=vocab_size * vocab_size).reshape(vocab_size, vocab_size).astype(np.float64)


def bigram_cross_entropy(counts: np.ndarray, tokens: np.ndarray, smoothing: float) -> float:
    """Mean ``-log p(next | previous)`` over a stream under add-``smoothing`` estimates from ``counts``."""
    if not smoothing > 0:
        raise RepeatlabError(f"smoothing must be > 0, got {smoothing!r}")
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.size < 2:
        raise RepeatlabError("a bigram loss needs at least two tokens")
    vocab = counts.shape[0]
    previous, following = tokens[:-1], tokens[1:]
    numerator = counts[previous, following] + smoothing
    denominator = counts.sum(axis=1)[previous] + smoothing * vocab
    return float(-np.mean(np.log(numerator / denominator)))


def bigram_baseline(train_tokens: np.ndarray, test_tokens: np.ndarray, vocab_size: int, *,
                    holdout_fraction: float = 0.05) -> BigramBaseline:
    """The bigram model of ``train_tokens`` scored on ``test_tokens`` (smoothing chosen on a training tail)."""
    if not 0.0 < holdout_fraction < 1.0:
        raise RepeatlabError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    train_tokens = np.asarray(train_tokens)
    cut = int(len(train_tokens) * (1 - holdout_fraction))
    if cut < 2 or len(train_tokens) - cut < 2:
        raise RepeatlabError(f"{len(train_tokens)} training tokens are too few to choose the smoothing")
    fit_counts = bigram_counts(train_tokens[:cut], vocab_size)
    smoothing = min(SMOOTHING_GRID, key=lambda k: bigram_cross_entropy(fit_counts, train_tokens[cut:], k))
    counts = bigram_counts(train_tokens, vocab_size)
    return BigramBaseline(test_loss=bigram_cross_entropy(counts, test_tokens, smoothing), smoothing=smoothing,
                          n_train_tokens=int(len(train_tokens)), n_test_tokens=int(len(test_tokens)))


def dataset_bigram_baseline(dataset: PreparedDataset) -> BigramBaseline:
    """The bigram baseline of a prepared dataset: its whole training pool against its test split."""
    return bigram_baseline(dataset.tokens("train"), dataset.tokens("test"), dataset.vocab_size)


__all__ = ["SMOOTHING_GRID", "BigramBaseline", "bigram_baseline", "bigram_counts", "bigram_cross_entropy",
           "dataset_bigram_baseline"]
