"""Turn a corpus into a prepared dataset: test split by document, tokenizer, packed token memmaps.

The test split is drawn *before* anything can be repeated, and every training document whose
exact text also occurs in the test split is removed (and counted), so test loss is clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from repeatlab.config import to_dict
from repeatlab.data.corpus import load_corpus
from repeatlab.data.prepared import PreparedDataset, load_prepared, n_sequences_for
from repeatlab.data.tokens import TextTokenizer, byte_tokenizer, token_dtype, train_bpe
from repeatlab.io import atomic_directory, write_json

_ENCODE_CHUNK_DOCS = 2048


@dataclass(kw_only=True, frozen=True)
class PrepareConfig:
    """How to turn a corpus source into a prepared dataset."""

    source: str = "builtin"
    """Corpus source (see ``repeatlab.data.corpus``)."""
    text_field: str = "text"
    """Field/column holding the text in JSONL, Parquet and hf: sources."""
    tokenizer: Literal["bpe", "byte"] = "bpe"
    """``bpe``: byte-level BPE trained on the training documents; ``byte``: one token per byte."""
    vocab_size: int = 8192
    """BPE vocabulary size including the end-of-text token (ignored for ``byte``)."""
    context: int = 256
    """Tokens per training sequence (the model's context window)."""
    test_fraction: float = 0.05
    """Share of documents held out as the clean test split."""
    seed: int = 0
    """Seed of the document split."""

    def __post_init__(self) -> None:
        if self.context < 2:
            raise ValueError(f"context must be at least 2 tokens, got {self.context}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.tokenizer == "bpe" and not 300 <= self.vocab_size <= 2**32:
            raise ValueError(f"vocab_size must be between 300 and 2^32 for BPE, got {self.vocab_size}")


@dataclass(frozen=True)
class DocumentSplit:
    """Indices of the corpus documents in each split, in packing order."""

    train: np.ndarray
    test: np.ndarray
    n_train_removed_as_test_duplicates: int


def split_documents(documents: Sequence[str], test_fraction: float, seed: int) -> DocumentSplit:
    """Seeded split by document; training documents equal to a test document are dropped."""
    n = len(documents)
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n - n_test < 1:
        raise ValueError(
            f"corpus too small for the asked split: {n} documents with test_fraction={test_fraction} "
            f"leaves {n_test} test and {n - n_test} training documents; add documents or change --test-fraction"
        )
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    test_texts = {documents[i] for i in test}
    keep = np.fromiter((documents[i] not in test_texts for i in train), dtype=bool, count=len(train))
    return DocumentSplit(train=train[keep], test=test, n_train_removed_as_test_duplicates=int((~keep).sum()))


def prepare_dataset(
    config: PrepareConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> PreparedDataset:
    """Read, split, tokenize and pack a corpus into ``out``; nothing is left at ``out`` on error."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    corpus = load_corpus(config.source, text_field=config.text_field)
    say(f"read {corpus.n_documents:,} documents ({corpus.n_chars / 1e6:.1f}M characters) from {corpus.source}")
    split = split_documents(corpus.documents, config.test_fraction, config.seed)
    train_docs = [corpus.documents[i] for i in split.train]
    test_docs = [corpus.documents[i] for i in split.test]
    if config.tokenizer == "byte":
        tokenizer = byte_tokenizer()
    else:
        say(f"training a {config.vocab_size:,}-token byte-level BPE on {len(train_docs):,} training documents")
        tokenizer = train_bpe(train_docs, config.vocab_size)
    dtype = token_dtype(tokenizer.vocab_size)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        stats = {}
        for name, docs in (("train", train_docs), ("test", test_docs)):
            n_tokens = _write_tokens(tokenizer, docs, tmp / f"{name}.bin", dtype)
            n_seq = n_sequences_for(n_tokens, config.context)
            if n_seq < 1:
                raise ValueError(
                    f"corpus too small for the asked split: the {name} split has {n_tokens} tokens, fewer than "
                    f"one sequence of context {config.context} + 1; use a smaller --context or a larger corpus"
                    + (" or --test-fraction" if name == "test" else "")
                )
            stats[name] = {
                "n_documents": len(docs),
                "n_tokens": n_tokens,
                "n_sequences": n_seq,
                "n_chars": sum(len(d) for d in docs),
            }
            say(f"{name}: {len(docs):,} documents, {n_tokens:,} tokens, {n_seq:,} sequences")
        tokenizer.save(tmp / "tokenizer.json")
        meta = {
            "kind": "prepared",
            "source": corpus.source,
            "config": to_dict(config),
            "tokenizer": config.tokenizer,
            "vocab_size": tokenizer.vocab_size,
            "eot_id": tokenizer.eot_id,
            "dtype": dtype.name,
            "context": config.context,
            "seed": config.seed,
            "n_documents": corpus.n_documents,
            "n_train_removed_as_test_duplicates": split.n_train_removed_as_test_duplicates,
            "train": stats["train"],
            "test": stats["test"],
            "seconds": round(time.perf_counter() - started, 3),
        }
        write_json(tmp / "meta.json", meta)
    return load_prepared(out)


def _write_tokens(tokenizer: TextTokenizer, documents: Sequence[str], path: Path, dtype: np.dtype) -> int:
    """Stream packed tokens to ``path`` chunk by chunk, so memory stays bounded by one chunk."""
    n_tokens = 0
    with open(path, "wb") as handle:
        for start in range(0, len(documents), _ENCODE_CHUNK_DOCS):
            packed = tokenizer.pack(documents[start : start + _ENCODE_CHUNK_DOCS])
            handle.write(packed.astype(dtype, copy=False).tobytes())
            n_tokens += len(packed)
    return n_tokens
