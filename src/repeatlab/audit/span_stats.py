"""From per-position window counts to what the audit reports about repeated spans.

A token's *repetition count* is the largest occurrence count among the N-token windows that cover
it (1 if none is repeated, or its document is shorter than N). Counting by the most repeated
covering window means a token inside a span seen 40 times counts as seen 40 times even where the
span overlaps a rarer one. All of it is vectorised over chunks of the count array.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import maximum_filter1d

from repeatlab.audit.stream import TokenStream
from repeatlab.audit.text import PREVIEW_CHARS, for_terminal, truncate

_CHUNK = 1 << 22
_MAX_RUNS_SCANNED = 1_000_000  # bound on candidate runs read while collecting distinct top spans


@dataclass(frozen=True, kw_only=True)
class CountBucket:
    """Tokens whose repetition count k lies in ``[k_min, k_max]`` (log2-spaced: 1, 2-3, 4-7, ...)."""

    k_min: int
    k_max: int
    n_tokens: int
    token_share: float


@dataclass(frozen=True, kw_only=True)
class RepeatedSpan:
    """A maximal run of repeated windows: every N-token window inside it occurs ``count`` times."""

    count: int
    n_tokens: int
    first_document: int
    text: str
    """Decoded text, truncated (raw: escape it before display)."""

    @property
    def text_terminal(self) -> str:
        return for_terminal(self.text)


@dataclass(frozen=True, kw_only=True)
class SpanStats:
    """Repeated spans of at least ``min_span_tokens`` tokens."""

    min_span_tokens: int
    method: str
    n_tokens: int
    n_windows: int
    """In-document windows of ``min_span_tokens`` tokens."""
    window_histogram: list[tuple[int, int]]
    """(k, number of distinct windows that occur exactly k times), k ascending."""
    token_histogram: list[tuple[int, int]]
    """(k, number of tokens whose repetition count is k), k ascending; sums to ``n_tokens``."""
    buckets: list[CountBucket]
    top_spans: list[RepeatedSpan]

    @property
    def repeated_token_share(self) -> float:
        """Share of corpus tokens inside some window that occurs at least twice."""
        repeated = sum(n for k, n in self.token_histogram if k >= 2)
        return repeated / self.n_tokens if self.n_tokens else 0.0


def summarize_spans(
    counts: NDArray[np.uint32],
    stream: TokenStream,
    span: int,
    *,
    method: str,
    top_k: int,
    decode: Callable[[NDArray[np.unsignedinteger]], str],
) -> SpanStats:
    """Histograms, log buckets and the most repeated distinct spans from ``count_windows_*`` output."""
    window_positions = _bincount_chunks(counts, lambda lo, hi: counts[lo:hi])
    token_counts = _bincount_chunks(counts, lambda lo, hi: _coverage(counts, lo, hi, span))
    window_histogram = [
        (k, int(window_positions[k]) // k) for k in np.flatnonzero(window_positions).tolist() if k >= 1
    ]
    token_histogram = [(k, int(token_counts[k])) for k in np.flatnonzero(token_counts).tolist()]
    return SpanStats(
        min_span_tokens=span,
        method=method,
        n_tokens=stream.n_tokens,
        n_windows=int(window_positions[1:].sum()),
        window_histogram=window_histogram,
        token_histogram=token_histogram,
        buckets=log_buckets(token_histogram, stream.n_tokens),
        top_spans=_top_spans(counts, stream, span, top_k, decode),
    )


def log_buckets(histogram: list[tuple[int, int]], total: int) -> list[CountBucket]:
    """Group a (k, n) histogram into buckets [1], [2, 3], [4, 7], ... up to the largest k."""
    if not histogram:
        return []
    k_max = max(k for k, _ in histogram)
    buckets = []
    lo = 1
    while lo <= k_max:
        hi = 2 * lo - 1
        n = sum(count for k, count in histogram if lo <= k <= hi)
        buckets.append(CountBucket(k_min=lo, k_max=hi, n_tokens=n, token_share=n / total if total else 0.0))
        lo *= 2
    return buckets


def _coverage(counts: NDArray[np.uint32], lo: int, hi: int, span: int) -> NDArray[np.uint32]:
    """Repetition count of tokens lo..hi-1: max count over the windows starting in [i - span + 1, i]."""
    left = max(0, lo - span + 1)
    window = maximum_filter1d(counts[left:hi], span, mode="constant", cval=0, origin=(span - 1) // 2)
    return np.maximum(window[lo - left :], 1)


def _bincount_chunks(counts: NDArray[np.uint32], values: Callable[[int, int], np.ndarray]) -> NDArray[np.int64]:
    """np.bincount over chunks (a single call would widen the whole array to int64)."""
    total = np.zeros(1, np.int64)
    for lo in range(0, counts.shape[0], _CHUNK):
        part = np.bincount(values(lo, min(lo + _CHUNK, counts.shape[0])))
        if part.shape[0] > total.shape[0]:
            total = np.pad(total, (0, part.shape[0] - total.shape[0]))
        total[: part.shape[0]] += part
    return total


def _runs(counts: NDArray[np.uint32]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Starts and (inclusive) ends of runs of equal counts >= 2; runs never cross documents because
    the last N - 1 positions of every document have count 0."""
    n = counts.shape[0]
    starts, ends = [], []
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        c = counts[lo:hi]
        prev = np.concatenate(([counts[lo - 1] if lo else 0], c[:-1]))
        nxt = np.concatenate((c[1:], [counts[hi] if hi < n else 0]))
        repeated = c >= 2
        starts.append(np.flatnonzero(repeated & (c != prev)) + lo)
        ends.append(np.flatnonzero(repeated & (c != nxt)) + lo)
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts).astype(np.int64), np.concatenate(ends).astype(np.int64)


def _top_spans(
    counts: NDArray[np.uint32],
    stream: TokenStream,
    span: int,
    top_k: int,
    decode: Callable[[NDArray[np.unsignedinteger]], str],
) -> list[RepeatedSpan]:
    """The ``top_k`` distinct runs with the highest count (then the longest).

    One entry per distinct text, and none that overlaps an occurrence of an entry already taken:
    otherwise the list fills with shifted copies of one phrase ("regarded as one of the greatest",
    "egarded as one of the greatest a", ...), each a run of a slightly lower count.
    """
    starts, ends = _runs(counts)
    if starts.size == 0:
        return []
    run_counts = counts[starts].astype(np.int64)
    lengths = ends - starts + span
    order = np.lexsort((-lengths, -run_counts))[:_MAX_RUNS_SCANNED]
    seen: set[bytes] = set()
    claimed = _Intervals()
    spans: list[RepeatedSpan] = []
    for i in order.tolist():
        lo, hi = int(starts[i]), int(starts[i] + lengths[i])
        if claimed.overlaps(lo, hi):
            continue
        ids = stream.tokens[lo:hi]
        key = hashlib.blake2b(ids.tobytes(), digest_size=16).digest()
        claimed.add(lo, hi)
        if key in seen:
            continue
        seen.add(key)
        spans.append(
            RepeatedSpan(
                count=int(run_counts[i]),
                n_tokens=hi - lo,
                first_document=int(stream.document_of(np.array([lo]))[0]),
                text=truncate(decode(ids[: 4 * PREVIEW_CHARS])),
            )
        )
        if len(spans) == top_k:
            break
    return spans


class _Intervals:
    """Disjoint half-open intervals, sorted, with overlap queries (bisect on starts)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def overlaps(self, lo: int, hi: int) -> bool:
        i = bisect.bisect_right(self.starts, hi - 1) - 1
        return i >= 0 and self.ends[i] > lo

    def add(self, lo: int, hi: int) -> None:
        i = bisect.bisect_left(self.starts, lo)
        self.starts.insert(i, lo)
        self.ends.insert(i, hi)
