"""Random probe sequences: structure, candidate tokens and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repeatlab.probes.sequences import candidate_tokens, repeated_random_tokens, token_frequencies


def test_repeated_structure_and_no_repeats_within_a_half() -> None:
    cands = candidate_tokens(100, exclude=[99])
    seqs = repeated_random_tokens(cands, n_sequences=8, length=25, n_repeats=4, start_token=99,
                                  generator=torch.Generator().manual_seed(0))
    assert seqs.shape == (8, 101)
    assert (seqs[:, 0] == 99).all() and not (seqs[:, 1:] == 99).any()
    chunks = seqs[:, 1:].view(8, 4, 25)
    assert (chunks == chunks[:, :1]).all()
    for row in chunks[:, 0]:
        assert len(set(row.tolist())) == 25


def test_small_pool_draws_with_replacement() -> None:
    seqs = repeated_random_tokens(torch.tensor([3, 4]), n_sequences=2, length=10, n_repeats=2, start_token=0,
                                  generator=torch.Generator().manual_seed(0))
    assert set(seqs[:, 1:].flatten().tolist()) <= {3, 4}


def test_deterministic_given_generator_seed() -> None:
    cands = candidate_tokens(50)
    make = lambda seed: repeated_random_tokens(cands, n_sequences=4, length=10, n_repeats=2, start_token=0,  # noqa: E731
                                               generator=torch.Generator().manual_seed(seed))
    assert torch.equal(make(3), make(3))
    assert not torch.equal(make(3), make(4))


def test_candidates_drop_most_least_common_and_unseen() -> None:
    stream = np.concatenate([np.full(100 - t, t) for t in range(20)])  # token t occurs 100 - t times; 20..29 never
    freqs = token_frequencies(stream, 30)
    cands = candidate_tokens(30, frequencies=freqs, exclude_fraction=0.1, exclude=[5]).tolist()
    assert cands == [t for t in range(2, 18) if t != 5]


def test_candidate_errors() -> None:
    with pytest.raises(ValueError, match="exclude_fraction"):
        candidate_tokens(10, exclude_fraction=0.5)
    with pytest.raises(ValueError, match="candidate token"):
        candidate_tokens(2, exclude=[0, 1])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        token_frequencies(np.array([0, 12]), 10)
