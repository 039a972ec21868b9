"""Exact duplicate documents: identical UTF-8 text, found by 128-bit BLAKE2b digests.

Digests are computed per document in the (shardable) scan stage; grouping them is a sort of
16-byte keys on the driver, which is small even for millions of documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from repeatlab.audit.stream import TokenStream
from repeatlab.audit.text import PREVIEW_CHARS, truncate

DIGEST_BYTES = 16
_LISTED_DOCUMENTS = 10


def document_digests(documents: list[bytes]) -> NDArray[np.uint8]:
    """``(n, 16)`` BLAKE2b digests; equal rows mean equal documents (collisions: ~2^-64 at 2^32 documents)."""
    out = np.empty((len(documents), DIGEST_BYTES), np.uint8)
    for i, doc in enumerate(documents):
        out[i] = np.frombuffer(hashlib.blake2b(doc, digest_size=DIGEST_BYTES).digest(), np.uint8)
    return out


@dataclass(frozen=True, kw_only=True)
class DuplicateGroup:
    """One text that occurs ``count`` times as a whole document."""

    count: int
    documents: list[int]
    """Indices (in corpus order) of the first few copies."""
    n_tokens: int
    """Tokens of one copy."""
    preview: str
    """Start of the text, truncated (raw: escape before display)."""


@dataclass(frozen=True, kw_only=True)
class ExactDuplicates:
    """Documents whose text occurs more than once."""

    n_documents: int
    n_groups: int
    """Distinct texts that occur at least twice."""
    n_redundant_documents: int
    """Copies beyond the first of each text: what exact deduplication would remove."""
    redundant_token_share: float
    """Share of corpus tokens in those redundant copies."""
    count_histogram: list[tuple[int, int]]
    """(k, number of distinct texts that occur exactly k times), k >= 2."""
    groups: list[DuplicateGroup]
    """The most duplicated texts (by count, then length)."""


def find_exact_duplicates(
    digests: NDArray[np.uint8],
    stream: TokenStream,
    *,
    top_k: int,
    decode: Callable[[NDArray[np.unsignedinteger]], str],
) -> tuple[ExactDuplicates, NDArray[np.bool_]]:
    """Group equal digests. Also returns a mask of first copies, the documents near-dup search looks at."""
    n = digests.shape[0]
    keys = np.ascontiguousarray(digests).view(f"V{DIGEST_BYTES}").ravel()
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    first_copy = np.zeros(n, np.bool_)
    first_copy[first] = True
    lengths = np.diff(stream.doc_offsets)
    duplicated = np.flatnonzero(counts >= 2)
    redundant_tokens = int(lengths[~first_copy].sum())
    histogram = np.bincount(counts[duplicated]) if duplicated.size else np.zeros(0, np.int64)
    order = duplicated[np.lexsort((-lengths[first[duplicated]], -counts[duplicated]))][:top_k]
    groups = []
    for group in order.tolist():
        members = np.flatnonzero(inverse == group)[:_LISTED_DOCUMENTS]
        start = int(stream.doc_offsets[members[0]])
        length = int(lengths[members[0]])
        text = decode(stream.tokens[start : start + min(length, 4 * PREVIEW_CHARS)])
        groups.append(
            DuplicateGroup(
                count=int(counts[group]), documents=members.tolist(), n_tokens=length, preview=truncate(text)
            )
        )
    result = ExactDuplicates(
        n_documents=n,
        n_groups=int(duplicated.size),
        n_redundant_documents=int(n - first.size),
        redundant_token_share=redundant_tokens / stream.n_tokens if stream.n_tokens else 0.0,
        count_histogram=[(k, int(histogram[k])) for k in np.flatnonzero(histogram).tolist()],
        groups=groups,
    )
    return result, first_copy
