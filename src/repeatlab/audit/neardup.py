"""Near-duplicate documents: MinHash LSH banding, then verification of every candidate pair.

The banding parameters (b bands of r rows) are datasketch's ``MinHashLSH`` optimum for the
threshold and permutation count. Bands are grouped with a sort over all signatures at once instead
of inserting documents one by one into a Python index, and a large bucket (a template shared by
thousands of pages) adds a star of edges rather than all its pairs. A candidate pair is reported only
if its estimated Jaccard similarity (the share of equal signature values) reaches the threshold,
so LSH false positives never reach the report; pairs below the threshold are, by construction, absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from datasketch import MinHashLSH
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from repeatlab.audit.config import NearDupConfig
from repeatlab.audit.minhash import EMPTY
from repeatlab.audit.stream import TokenStream
from repeatlab.audit.text import PREVIEW_CHARS, truncate

_ALL_PAIRS_MAX = 8  # buckets up to this size contribute all their pairs, larger ones a star
_VERIFY_BLOCK = 1 << 16
_LISTED_DOCUMENTS = 10


@dataclass(frozen=True, kw_only=True)
class NearDupCluster:
    """Documents linked by near-duplicate pairs (connected components of the verified pairs)."""

    size: int
    documents: list[int]
    """The first few members, in corpus order."""
    min_similarity: float
    """Lowest estimated Jaccard similarity among the verified pairs inside the cluster."""
    preview: str


@dataclass(frozen=True, kw_only=True)
class NearDuplicates:
    """Near-duplicate documents among the first copies of exact duplicates."""

    config: NearDupConfig
    bands: int
    rows: int
    n_documents_checked: int
    n_candidate_pairs: int
    n_pairs: int
    """Verified pairs: estimated Jaccard similarity at least ``config.threshold``."""
    n_clusters: int
    n_documents_in_clusters: int
    clusters: list[NearDupCluster]
    """The largest clusters."""


def lsh_bands(config: NearDupConfig) -> tuple[int, int]:
    """datasketch's (bands, rows) minimising weighted false positive and negative probability."""
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    return lsh.b, lsh.r


def near_duplicate_pairs(
    signatures: NDArray[np.uint32], include: NDArray[np.bool_], config: NearDupConfig
) -> tuple[NDArray[np.int64], NDArray[np.float64], int]:
    """Verified pairs ``(i, j)``, i < j, their estimated similarities, and how many candidates were checked."""
    bands, rows = lsh_bands(config)
    docs = np.flatnonzero(include & (signatures != EMPTY).any(axis=1))  # a document without shingles has no set
    coefficients = np.frombuffer(np.random.default_rng(7).bytes(8 * rows), np.uint64) | np.uint64(1)
    pairs = [np.zeros((0, 2), np.int64)]
    for band in range(bands):
        block = signatures[docs, band * rows : (band + 1) * rows].astype(np.uint64)
        keys = (block * coefficients[None, :]).sum(axis=1, dtype=np.uint64)
        pairs.append(_bucket_pairs(docs, keys))
    candidates = np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0)
    similarity = np.empty(candidates.shape[0], np.float64)
    for lo in range(0, candidates.shape[0], _VERIFY_BLOCK):
        part = candidates[lo : lo + _VERIFY_BLOCK]
        similarity[lo : lo + part.shape[0]] = (signatures[part[:, 0]] == signatures[part[:, 1]]).mean(axis=1)
    keep = similarity >= config.threshold
    return candidates[keep], similarity[keep], int(candidates.shape[0])


def _bucket_pairs(docs: NDArray[np.int64], keys: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Pairs of documents sharing a band key: all pairs in small buckets, a star in large ones."""
    order = np.argsort(keys, kind="stable")
    sorted_keys, members = keys[order], docs[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    sizes = np.diff(np.append(starts, sorted_keys.shape[0]))
    out = []
    for size in range(2, _ALL_PAIRS_MAX + 1):
        group_starts = starts[sizes == size]
        if group_starts.size:
            table = members[group_starts[:, None] + np.arange(size)[None, :]]
            left, right = np.triu_indices(size, 1)
            out.append(np.stack([table[:, left].ravel(), table[:, right].ravel()], axis=1))
    large = sizes > _ALL_PAIRS_MAX
    for start, size in zip(starts[large].tolist(), sizes[large].tolist(), strict=True):
        rest = members[start + 1 : start + size]
        out.append(np.stack([np.full(rest.shape[0], members[start]), rest], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


def find_near_duplicates(
    signatures: NDArray[np.uint32],
    include: NDArray[np.bool_],
    stream: TokenStream,
    config: NearDupConfig,
    *,
    top_k: int,
    decode: Callable[[NDArray[np.unsignedinteger]], str],
) -> NearDuplicates:
    """Pairs, clusters and the largest clusters with a preview of their first document."""
    bands, rows = lsh_bands(config)
    pairs, similarity, n_candidates = near_duplicate_pairs(signatures, include, config)
    n = signatures.shape[0]
    clusters: list[NearDupCluster] = []
    n_clusters = n_in_clusters = 0
    if pairs.shape[0]:
        graph = coo_matrix((np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        linked = np.unique(pairs)
        cluster_ids, sizes = np.unique(labels[linked], return_counts=True)
        n_clusters, n_in_clusters = int(cluster_ids.size), int(linked.size)
        edge_cluster = labels[pairs[:, 0]]
        for cid, size in sorted(zip(cluster_ids.tolist(), sizes.tolist(), strict=True), key=lambda t: -t[1])[:top_k]:
            members = linked[labels[linked] == cid]
            start, end = int(stream.doc_offsets[members[0]]), int(stream.doc_offsets[members[0] + 1])
            text = decode(stream.tokens[start : min(end, start + 4 * PREVIEW_CHARS)])
            clusters.append(
                NearDupCluster(
                    size=int(size),
                    documents=members[:_LISTED_DOCUMENTS].tolist(),
                    min_similarity=float(similarity[edge_cluster == cid].min()),
                    preview=truncate(text),
                )
            )
    return NearDuplicates(
        config=config,
        bands=bands,
        rows=rows,
        n_documents_checked=int((include & (signatures != EMPTY).any(axis=1)).sum()),
        n_candidate_pairs=n_candidates,
        n_pairs=int(pairs.shape[0]),
        n_clusters=n_clusters,
        n_documents_in_clusters=n_in_clusters,
        clusters=clusters,
    )
