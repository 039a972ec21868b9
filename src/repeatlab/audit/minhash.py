"""MinHash signatures of word-shingle sets for a batch of documents, vectorised over the batch.

A document's shingles are its runs of ``shingle_size`` consecutive words (a word is a run of
non-whitespace bytes, ASCII-lowercased; a document with fewer words is one shingle). Each shingle is
reduced to a 32-bit hash with polynomial hashing over numpy arrays, never a Python loop per shingle,
and the signature is datasketch's ``affine32`` MinHash of those hashes: the MurmurHash3 finalizer,
then ``a_k * h + b_k`` modulo 2^32 with datasketch's own permutations, then the minimum. The tests
check it equals ``datasketch.MinHash(hashfunc=int).update_batch(hashes)`` bit for bit, so signatures
can be mixed with any datasketch index.
"""

from __future__ import annotations

import functools

import numpy as np
from datasketch import MinHash
from numpy.typing import NDArray

_SPACE = np.zeros(256, np.bool_)
_SPACE[list(b" \t\n\r\x0b\x0c")] = True  # exactly the bytes that bytes.split() splits on
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[ord("A") : ord("Z") + 1] += 32
_BLOCK = 1 << 15  # shingles per (block x num_perm) matrix: 16 MB at 128 permutations
_rng = np.random.default_rng(0x5EED)
_BYTE_TABLE = np.frombuffer(_rng.bytes(8 * 256), np.uint64).copy()
_BYTE_BASE = int.from_bytes(_rng.bytes(8), "little") | 1
_WORD_BASE = int.from_bytes(_rng.bytes(8), "little") | 1
EMPTY = np.uint32(2**32 - 1)
"""Signature value of a document with no shingle (datasketch's empty MinHash)."""


@functools.lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[NDArray[np.uint32], NDArray[np.uint32]]:
    """datasketch's affine32 permutation parameters (a odd, b) for ``num_perm`` and ``seed``."""
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.asarray(a, np.uint32), np.asarray(b, np.uint32)


def shingle_hashes(documents: list[bytes], shingle_size: int) -> tuple[NDArray[np.uint32], NDArray[np.int64]]:
    """32-bit hashes of every document's word shingles, grouped by document.

    Returns ``(hashes, bounds)``: document ``i``'s shingles are ``hashes[bounds[i]:bounds[i + 1]]``.
    Repeated shingles inside a document are kept (a set's MinHash ignores them).
    """
    n_docs = len(documents)
    blob = np.frombuffer(b" ".join(documents), np.uint8)
    doc_starts = np.zeros(n_docs, np.int64)
    if n_docs > 1:
        np.cumsum([len(d) + 1 for d in documents[:-1]], out=doc_starts[1:])
    word_starts, word_ends = _words(blob)
    word_hash = _word_hashes(blob, word_starts, word_ends)
    word_doc = np.searchsorted(doc_starts, word_starts, side="right") - 1
    first_word = np.zeros(n_docs + 1, np.int64)
    np.cumsum(np.bincount(word_doc, minlength=n_docs), out=first_word[1:])
    # Shingle j covers words j .. end-1: a full shingle where the document has room, else (short document)
    # one shingle of all its words, starting at its first word.
    j = np.arange(word_starts.shape[0], dtype=np.int64)
    doc_first, doc_end = first_word[word_doc], first_word[word_doc + 1]
    keep = (j + shingle_size <= doc_end) | ((j == doc_first) & (doc_end - doc_first < shingle_size))
    j, end = j[keep], doc_end[keep]
    hashes = np.zeros(j.shape[0], np.uint64)
    for i in range(shingle_size):  # sum_i word_hash[j + i] * C^i over the words the shingle holds
        inside = j + i < end
        term = word_hash[np.minimum(j + i, word_hash.shape[0] - 1)] * np.uint64(pow(_WORD_BASE, i, 2**64))
        hashes += np.where(inside, term, np.uint64(0))
    bounds = np.zeros(n_docs + 1, np.int64)
    np.cumsum(np.bincount(word_doc[j], minlength=n_docs), out=bounds[1:])
    return (hashes >> np.uint64(32)).astype(np.uint32), bounds


def signatures(
    hashes: NDArray[np.uint32], bounds: NDArray[np.int64], num_perm: int, seed: int
) -> NDArray[np.uint32]:
    """``(n_docs, num_perm)`` MinHash signatures; ``EMPTY`` rows for documents without shingles."""
    a, b = permutations(num_perm, seed)
    n_docs = bounds.shape[0] - 1
    out = np.full((n_docs, num_perm), EMPTY, np.uint32)
    mixed = _fmix32(hashes)
    nonempty = np.flatnonzero(bounds[1:] > bounds[:-1])
    starts, ends = bounds[nonempty], bounds[nonempty + 1]
    for lo in range(0, mixed.shape[0], _BLOCK):
        hi = min(lo + _BLOCK, mixed.shape[0])
        first = int(np.searchsorted(ends, lo, side="right"))
        last = int(np.searchsorted(starts, hi, side="left"))
        docs = nonempty[first:last]
        seg = np.maximum(starts[first:last], lo) - lo
        values = mixed[lo:hi, None] * a[None, :] + b[None, :]  # uint32 arithmetic wraps: modulo 2^32
        out[docs] = np.minimum(out[docs], np.minimum.reduceat(values, seg, axis=0))
    return out


def _words(blob: NDArray[np.uint8]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Start and end (exclusive) byte offsets of the runs of non-whitespace bytes."""
    word = ~_SPACE[blob]
    edges = np.diff(word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(edges == 1).astype(np.int64), np.flatnonzero(edges == -1).astype(np.int64)


def _word_hashes(blob: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Polynomial hash of each word's (lowercased) bytes, via prefix sums modulo 2^64.

    ``sum_t T[byte_t] * B^t`` over the word, divided by ``B^start`` (B is odd, hence invertible), so
    equal words hash equally wherever they sit.
    """
    n = blob.shape[0]
    powers, inverse = _powers(n + 1)
    prefix = np.zeros(n + 1, np.uint64)
    values = _BYTE_TABLE[_LOWER[blob]]
    values *= powers[:n]
    np.cumsum(values, out=prefix[1:])
    return (prefix[ends] - prefix[starts]) * inverse[starts]


_power_cache: list[NDArray[np.uint64]] = []


def _powers(size: int) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """B^t and B^-t for t < size, kept between batches (recomputing them was a fifth of the scan)."""
    if not _power_cache or _power_cache[0].shape[0] < size:
        size = -(-size // 2**22) * 2**22  # round up to 4M so batches of similar size reuse the arrays
        out = []
        for base in (_BYTE_BASE, pow(_BYTE_BASE, -1, 2**64)):
            array = np.full(size, base, np.uint64)
            array[0] = 1
            out.append(np.cumprod(array, out=array))
        _power_cache[:] = out
    return _power_cache[0], _power_cache[1]


def _fmix32(values: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine permutations."""
    h = values.astype(np.uint32, copy=True)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h
