"""The tokenised corpus as the span stage sees it: one flat token array plus document offsets.

No separator token is stored: document boundaries live in ``doc_offsets`` only, and a token window
counts as a span only if it lies inside one document. That keeps byte corpora in ``uint8`` (1 byte
per token, and the fast path of libdivsufsort) instead of widening them for an end-of-text id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from repeatlab.data.tokens import token_dtype


@dataclass(frozen=True)
class TokenStream:
    """Concatenated token ids of every document, and where each document starts."""

    tokens: NDArray[np.unsignedinteger]
    """Token ids of all documents back to back (uint8 for bytes, else uint16/uint32)."""
    doc_offsets: NDArray[np.int64]
    """``n_documents + 1`` offsets: document ``i`` is ``tokens[doc_offsets[i]:doc_offsets[i + 1]]``."""
    vocab_size: int
    """Ids are below this (256 for bytes)."""

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_documents(self) -> int:
        return int(self.doc_offsets.shape[0] - 1)

    def document_of(self, positions: NDArray[np.int64]) -> NDArray[np.int64]:
        """Index of the document holding each token position."""
        return np.searchsorted(self.doc_offsets, positions, side="right").astype(np.int64) - 1


def stream_dtype(vocab_size: int) -> np.dtype:
    """uint8 for byte ids, else the data layer's uint16/uint32 choice."""
    return np.dtype(np.uint8) if vocab_size <= 256 else token_dtype(vocab_size)


def concat_streams(parts: list[TokenStream], vocab_size: int) -> TokenStream:
    """Join per-batch streams in order, shifting each batch's offsets."""
    dtype = stream_dtype(vocab_size)
    if not parts:
        return TokenStream(np.zeros(0, dtype), np.zeros(1, np.int64), vocab_size)
    tokens = np.concatenate([p.tokens.astype(dtype, copy=False) for p in parts])
    lengths = np.concatenate([np.diff(p.doc_offsets) for p in parts])
    offsets = np.zeros(lengths.shape[0] + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TokenStream(tokens, offsets, vocab_size)


def window_mask(doc_offsets: NDArray[np.int64], start: int, stop: int, span: int) -> NDArray[np.bool_]:
    """For positions ``start..stop-1``: does the ``span``-token window starting there stay in its document?

    Built from the few documents the range touches (``np.repeat`` of their end offsets), so it costs
    O(stop - start) and never a search per position.
    """
    if stop <= start:
        return np.zeros(0, np.bool_)
    first = int(np.searchsorted(doc_offsets, start, side="right")) - 1
    last = int(np.searchsorted(doc_offsets, stop - 1, side="right")) - 1
    starts = np.maximum(doc_offsets[first : last + 1], start)
    ends = doc_offsets[first + 1 : last + 2]
    lengths = np.minimum(ends, stop) - starts
    doc_end = np.repeat(ends, lengths)
    return np.arange(start, stop, dtype=np.int64) + span <= doc_end
