"""The synthetic induction corpus: documents with a copied span, written as a loadable prepared dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.prepared import load_prepared
from repeatlab.data.synthetic import (
    EOT_ID,
    INDUCTION_CONTEXT,
    N_LETTERS,
    SPAN,
    induction_documents,
    write_induction_dataset,
)


def longest_repeat(doc: np.ndarray) -> int:
    """Length of the longest span that occurs twice (non-overlapping starts) in ``doc``."""
    best = 0
    for i in range(len(doc)):
        for j in range(i + 1, len(doc)):
            k = 0
            while j + k < len(doc) and i + k < j and doc[i + k] == doc[j + k]:
                k += 1
            best = max(best, k)
    return best


def test_every_document_holds_a_copied_span() -> None:
    docs = induction_documents(50, seed=3)
    assert docs.shape == (50, INDUCTION_CONTEXT - 1) and docs.min() >= 0 and docs.max() < N_LETTERS
    assert all(longest_repeat(doc) >= SPAN[0] for doc in docs)
    assert np.array_equal(docs, induction_documents(50, seed=3))
    assert not np.array_equal(docs, induction_documents(50, seed=4))


def test_dataset_loads_and_is_written_atomically(tmp_path: Path) -> None:
    dataset = load_prepared(write_induction_dataset(tmp_path / "ind", n_train=65, n_test=8))
    assert dataset.vocab_size == N_LETTERS + 1 and dataset.context == INDUCTION_CONTEXT
    assert dataset.n_sequences("train") == 64
    train = np.fromfile(tmp_path / "ind" / "train.bin", dtype=np.uint16)
    assert (train[INDUCTION_CONTEXT - 1 :: INDUCTION_CONTEXT] == EOT_ID).all()  # one document per window
    assert dataset.tokenizer.decode([26, 19, 1, 28, 9]).split() == ["a", "T", "B", "c", "J"]  # letters, not bytes
    with pytest.raises(FileExistsError):
        write_induction_dataset(tmp_path / "ind", n_train=65, n_test=8)
