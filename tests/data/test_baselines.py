"""The bigram baseline: exact on a stream whose bigram law is known, smoothing chosen without the test split."""

from __future__ import annotations

import numpy as np
import pytest

from repeatlab.data.baselines import SMOOTHING_GRID, bigram_baseline, bigram_counts, bigram_cross_entropy


def _markov_stream(transition: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    out[0] = 0
    for i in range(1, n):
        out[i] = rng.choice(len(transition), p=transition[out[i - 1]])
    return out


def test_the_baseline_recovers_the_entropy_rate_of_a_markov_chain() -> None:
    transition = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.5, 0.0, 0.5]])
    stationary = np.linalg.matrix_power(transition, 200)[0]
    rate = -sum(stationary[i] * transition[i, j] * np.log(transition[i, j])
                for i in range(3) for j in range(3) if transition[i, j] > 0)
    train, test = _markov_stream(transition, 60_000, 0), _markov_stream(transition, 20_000, 1)
    result = bigram_baseline(train, test, vocab_size=3)
    assert result.test_loss == pytest.approx(rate, abs=0.02)
    assert result.smoothing in SMOOTHING_GRID and result.n_train_tokens == 60_000


def test_counts_and_cross_entropy_by_hand() -> None:
    counts = bigram_counts(np.array([0, 1, 0, 1, 1]), vocab_size=2)
    assert counts.tolist() == [[0, 2], [1, 1]]
    # p(1|0) = (2 + 1) / (2 + 2), p(0|1) = (1 + 1) / (2 + 2) with add-1 smoothing
    assert bigram_cross_entropy(counts, np.array([0, 1, 0]), 1.0) == pytest.approx(-(np.log(0.75) + np.log(0.5)) / 2)
    with pytest.raises(ValueError, match="token ids must lie in"):
        bigram_counts(np.array([0, 5]), vocab_size=2)
    with pytest.raises(ValueError, match="smoothing must be > 0"):
        bigram_cross_entropy(counts, np.array([0, 1]), 0.0)
