"""Span counting: hash buckets and suffix array agree with brute force and recover planted repeats exactly."""

from __future__ import annotations

import numpy as np
import pytest

from repeatlab.audit import spans_hash
from repeatlab.audit.span_stats import log_buckets, summarize_spans
from repeatlab.audit.spans_hash import count_windows_hashed
from repeatlab.audit.spans_sa import count_windows_suffix_array
from repeatlab.audit.stream import TokenStream
from repeatlab.audit.text import truncate
from repeatlab.data.corpus import iter_documents
from repeatlab.data.tokens import train_bpe

from .conftest import SPAN, Planted, brute_force_counts, byte_stream


def _decode(ids: np.ndarray) -> str:
    return bytes(ids.astype(np.uint8)).decode("utf-8", "replace")


def _small_alphabet_stream(seed: int = 0) -> TokenStream:
    """Many accidental repeats: 4 symbols, documents of 1..300 tokens (some shorter than the span)."""
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, 4, int(rng.integers(1, 300))).astype(np.uint8) for _ in range(400)]
    offsets = np.zeros(len(docs) + 1, np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    return TokenStream(np.concatenate(docs), offsets, 256)


@pytest.mark.parametrize("span", [2, 7, 12, 40])
def test_both_counters_equal_brute_force(span: int) -> None:
    stream = _small_alphabet_stream()
    expected = brute_force_counts(stream, span)
    np.testing.assert_array_equal(count_windows_suffix_array(stream, span), expected)
    np.testing.assert_array_equal(count_windows_hashed(stream, span), expected)


def test_hashed_counter_spill_buckets_and_chunks_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force many disk buckets, sub-tables and chunk boundaries: the counts must not change."""
    stream = _small_alphabet_stream(seed=1)
    expected = brute_force_counts(stream, 9)
    monkeypatch.setattr(spans_hash, "_CHUNK", 997)
    monkeypatch.setattr(spans_hash, "_SUB_RECORDS", 50)
    monkeypatch.setattr(spans_hash, "_BYTES_PER_BUCKET_RECORD", 16 * 2**20 // 2000)  # ~2000 records per bucket
    assert spans_hash._bucket_count(stream.n_tokens, 16) > 1
    np.testing.assert_array_equal(count_windows_hashed(stream, 9, bucket_mb=16), expected)


def test_collisions_of_the_grouping_hash_are_split_by_the_check_hash() -> None:
    h1 = np.array([5, 5, 5, 5, 9, 9], np.uint64)  # every record collides on h1 ...
    h2 = np.array([1, 2, 1, 1, 3, 3], np.uint32)  # ... but (h1, h2) tells the windows apart
    np.testing.assert_array_equal(spans_hash._group_sizes_table(h1, h2), [3, 1, 3, 3, 2, 2])


def test_planted_spans_recovered_exactly(planted: Planted) -> None:
    stream = byte_stream(planted.documents)
    for counts, method in ((count_windows_hashed(stream, SPAN), "hash"),
                           (count_windows_suffix_array(stream, SPAN), "suffix-array")):
        stats = summarize_spans(counts, stream, SPAN, method=method, top_k=5, decode=_decode)
        assert dict(stats.token_histogram) == planted.expected_token_histogram()
        windows = dict(stats.window_histogram)
        assert windows[7] == len(planted.span_a) - SPAN + 1
        assert windows[3] == len(planted.span_b) - SPAN + 1
        assert windows[4] == len(planted.dup_doc) - SPAN + 1
        assert set(windows) == {1, 3, 4, 7}
        top = [(s.count, s.n_tokens, s.text) for s in stats.top_spans]
        assert top == [
            (7, len(planted.span_a), planted.span_a),
            (4, len(planted.dup_doc), truncate(planted.dup_doc)),
            (3, len(planted.span_b), planted.span_b),
        ]
        expected_repeated = 1 - planted.expected_token_histogram()[1] / stream.n_tokens
        assert stats.repeated_token_share == pytest.approx(expected_repeated)


def test_token_coverage_is_max_count_of_covering_windows() -> None:
    stream = _small_alphabet_stream(seed=2)
    span = 6
    counts = count_windows_hashed(stream, span)
    stats = summarize_spans(counts, stream, span, method="hash", top_k=3, decode=_decode)
    coverage = np.ones(stream.n_tokens, np.int64)
    for p in np.flatnonzero(counts):
        coverage[p : p + span] = np.maximum(coverage[p : p + span], counts[p])
    values, freq = np.unique(coverage, return_counts=True)
    assert stats.token_histogram == list(zip(values.tolist(), freq.tolist(), strict=True))
    assert sum(b.n_tokens for b in stats.buckets) == stream.n_tokens


def test_log_buckets_are_powers_of_two() -> None:
    buckets = log_buckets([(1, 10), (2, 4), (3, 2), (9, 1)], 17)
    assert [(b.k_min, b.k_max, b.n_tokens) for b in buckets] == [(1, 1, 10), (2, 3, 6), (4, 7, 0), (8, 15, 1)]


def test_builtin_slice_bytes_and_bpe_agree_with_suffix_array() -> None:
    docs = []
    for doc in iter_documents("builtin:wiki"):
        docs.append(doc)
        if len(docs) == 500:
            break
    stream = byte_stream(docs)
    np.testing.assert_array_equal(count_windows_hashed(stream, 30), count_windows_suffix_array(stream, 30))
    tokenizer = train_bpe(docs, 400)
    ids = tokenizer.encode_batch(docs)
    offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum([len(i) for i in ids], out=offsets[1:])
    wide = TokenStream(np.concatenate([np.asarray(i, np.uint16) for i in ids]), offsets, tokenizer.vocab_size)
    hashed = count_windows_hashed(wide, 8)
    np.testing.assert_array_equal(hashed, count_windows_suffix_array(wide, 8))
    assert hashed.max() >= 2  # the slice does repeat itself
