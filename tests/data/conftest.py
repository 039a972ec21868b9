"""Tiny corpora and prepared datasets for the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.data.prepared import PreparedDataset

WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly vexing bards".split()


def make_documents(n: int, words_per_doc: int = 40) -> list[str]:
    """Distinct, deterministic pseudo-English documents (document i starts with its number)."""
    docs = []
    for i in range(n):
        body = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words_per_doc))
        docs.append(f"Document {i}. {body}.")
    return docs


@pytest.fixture()
def text_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, doc in enumerate(make_documents(150, words_per_doc=60)):
        (folder / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")
    return folder


@pytest.fixture()
def prepared(tmp_path: Path, text_dir: Path) -> PreparedDataset:
    """A byte-tokenized dataset with context 16 (about 3,000 training sequences)."""
    config = PrepareConfig(source=str(text_dir), tokenizer="byte", context=16, test_fraction=0.1, seed=0)
    return prepare_dataset(config, tmp_path / "prepared")
