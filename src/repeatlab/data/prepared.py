"""A prepared dataset on disk: token memmaps for the training pool and the test split.

Layout of a prepared directory::

    meta.json        source, counts, vocabulary size, dtype, context, seed, tokenizer provenance
    tokenizer.json   the tokenizer used (loads in transformers.PreTrainedTokenizerFast)
    train.bin        training-pool tokens, documents joined by end-of-text
    test.bin         test-split tokens, same format

Sequences are fixed windows over the token stream: sequence ``i`` is the ``context + 1`` tokens
starting at ``i * context`` (inputs are the first ``context``, targets the last ``context``), so
consecutive sequences share one boundary token and no token is wasted. Views are strided over a
memmap, so a 10^9-token pool is never read into RAM.

A vector dataset (``meta.json`` has ``d_vector``: in-context regression, ``repeatlab.data.regression``) stores
float32 vectors instead of token ids and has no tokenizer; its sequences are disjoint blocks of ``context``
vectors, ``[n_sequences, context, d_vector]``, and ``n_tokens`` counts vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from repeatlab.data.tokens import TextTokenizer, load_tokenizer
from repeatlab.errors import RepeatlabError
from repeatlab.io import read_json

Split = Literal["train", "test"]
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"


def n_sequences_for(n_tokens: int, context: int) -> int:
    """Number of full ``context + 1``-token windows with stride ``context`` in ``n_tokens`` tokens."""
    return max((n_tokens - 1) // context, 0)


def sequence_view(tokens: np.ndarray, context: int) -> np.ndarray:
    """A zero-copy ``[n_sequences, context + 1]`` view of overlapping windows over ``tokens``."""
    n = n_sequences_for(len(tokens), context)
    stride = tokens.strides[0]
    return np.lib.stride_tricks.as_strided(tokens, shape=(n, context + 1), strides=(context * stride, stride), writeable=False)


@dataclass(frozen=True)
class PreparedDataset:
    """Read-only access to a prepared directory (see module docstring)."""

    path: Path
    meta: dict[str, Any]

    @property
    def context(self) -> int:
        return int(self.meta["context"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    @property
    def d_vector(self) -> int | None:
        """Width of a vector dataset's vectors; ``None`` for token data."""
        value = self.meta.get("d_vector")
        return None if value is None else int(value)

    def n_sequences(self, split: Split) -> int:
        return int(self.meta[split]["n_sequences"])

    def tokens(self, split: Split) -> np.ndarray:
        """The split's token stream as a read-only memmap (opened on first use)."""
        if split not in self._memmaps:
            self._memmaps[split] = self._open(split)
        return self._memmaps[split]

    def sequences(self, split: Split) -> np.ndarray:
        """``[n_sequences, context + 1]`` strided view (vector data: ``[n_sequences, context, d_vector]``); index it
        with sequence ids to read rows."""
        if self.d_vector is not None:
            return self.tokens(split).reshape(self.n_sequences(split), self.context, self.d_vector)
        return sequence_view(self.tokens(split), self.context)

    @cached_property
    def _memmaps(self) -> dict[str, np.ndarray]:
        return {}

    def _open(self, split: Split) -> np.ndarray:
        self.check_tokens_file(split)
        shape = None if self.d_vector is None else (int(self.meta[split]["n_tokens"]), self.d_vector)
        return np.memmap(self.path / f"{split}.bin", dtype=self.dtype, mode="r", shape=shape)

    def check_tokens_file(self, split: Split) -> None:
        """Refuse a split whose token file is missing or not the size ``meta.json`` gives it (truncated, replaced)."""
        file = self.path / f"{split}.bin"
        expected = int(self.meta[split]["n_tokens"]) * (self.d_vector or 1) * self.dtype.itemsize
        if not file.is_file() or file.stat().st_size != expected or expected == 0:
            raise RepeatlabError(
                f"{file} is missing or has the wrong size (expected {expected} bytes); "
                f"the prepared dataset is corrupt: run 'repeatlab data prepare' again"
            )

    @cached_property
    def tokenizer(self) -> TextTokenizer:
        return load_tokenizer(self.path / TOKENIZER_FILE)


def load_prepared(path: str | Path) -> PreparedDataset:
    """Open a directory written by ``prepare_dataset``, with a clear error if it is not one."""
    path = Path(path)
    if not (path / META_FILE).is_file():
        raise FileNotFoundError(
            f"{path} is not a prepared dataset (no {META_FILE}); create one with 'repeatlab data prepare'"
        )
    meta = read_json(path / META_FILE)
    if not isinstance(meta, dict) or meta.get("kind") != "prepared":
        kind = meta.get("kind") if isinstance(meta, dict) else None
        raise RepeatlabError(f"{path / META_FILE} does not describe a prepared dataset (kind={kind!r})")
    _check_meta(path / META_FILE, meta)
    dataset = PreparedDataset(path=path, meta=meta)
    for split in ("train", "test"):
        dataset.check_tokens_file(split)  # a stat each: damage is found at load, not inside a later command
    if dataset.d_vector is None:  # a vector dataset has no tokenizer
        _check_tokenizer(dataset)
    return dataset


def _check_tokenizer(dataset: PreparedDataset) -> None:
    """Refuse a ``tokenizer.json`` that is missing, does not load, or disagrees with ``meta.json``; loading it
    here (a few milliseconds; it is cached) finds the damage before a command decodes or exports anything."""
    file = dataset.path / TOKENIZER_FILE
    fix = "the prepared dataset is corrupt: run 'repeatlab data prepare' again"
    if not file.is_file():
        raise RepeatlabError(f"{file} is missing; {fix}")
    try:
        tokenizer = dataset.tokenizer
    except RepeatlabError as exc:
        detail = " ".join(str(exc).split())  # tokenizers' own message may span lines
        if not detail.startswith(str(file)):  # a loaded tokenizer that lacks end-of-text: its fix is not ours
            detail = f"{file}: {detail.split('; ')[0]}"
        raise RepeatlabError(f"{detail}; {fix}") from None
    eot_id = dataset.meta.get("eot_id", tokenizer.eot_id)
    if tokenizer.vocab_size != dataset.vocab_size or tokenizer.eot_id != eot_id:
        raise RepeatlabError(
            f"{file} ({tokenizer.vocab_size} tokens, end-of-text {tokenizer.eot_id}) does not match {META_FILE} "
            f"(vocab_size {dataset.vocab_size}, eot_id {eot_id}); {fix}"
        )


def _check_meta(file: Path, meta: dict[str, Any]) -> None:
    """Refuse a ``meta.json`` that lacks a field the dataset is read through, or holds one of the wrong type."""
    def fail(what: str) -> None:
        raise RepeatlabError(f"{file} is corrupt: {what}; run 'repeatlab data prepare' again")

    for key in ("context", "vocab_size", "seed"):
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool) or meta[key] < 0:
            fail(f"{key} is {meta.get(key)!r}, not a non-negative integer")
    if meta["context"] < 1:
        fail("context is 0")
    if not isinstance(meta.get("source"), str):
        fail(f"source is {meta.get('source')!r}, not a string")
    vectors = meta.get("d_vector")
    if vectors is not None and (not isinstance(vectors, int) or isinstance(vectors, bool) or vectors < 1):
        fail(f"d_vector is {vectors!r}, not a positive integer")
    try:
        dtype = np.dtype(meta.get("dtype"))
    except TypeError:
        dtype = None
    if vectors is None and (dtype is None or dtype.kind not in "iu"):
        fail(f"dtype is {meta.get('dtype')!r}, not an integer type")
    if vectors is not None and dtype != np.float32:
        fail(f"dtype is {meta.get('dtype')!r}; the vectors of a vector dataset are float32")
    for split in ("train", "test"):
        counts = meta.get(split)
        if not isinstance(counts, dict) or any(not isinstance(counts.get(k), int) or counts[k] < 0
                                               for k in ("n_tokens", "n_sequences")):
            fail(f"{split} has no whole n_tokens and n_sequences")
        expected = (counts["n_tokens"] // meta["context"] if vectors is not None
                    else n_sequences_for(counts["n_tokens"], meta["context"]))
        if counts["n_sequences"] != expected or (vectors is not None and counts["n_tokens"] % meta["context"]):
            fail(f"{split}.n_sequences = {counts['n_sequences']} does not fit {counts['n_tokens']} tokens at "
                 f"context {meta['context']}")
