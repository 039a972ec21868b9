"""Document-level stages: datasketch-identical MinHash, near-duplicates by known edits, exact duplicates."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from repeatlab.audit import minhash
from repeatlab.audit.config import AuditConfig, NearDupConfig
from repeatlab.audit.exact import find_exact_duplicates
from repeatlab.audit.neardup import find_near_duplicates, lsh_bands, near_duplicate_pairs
from repeatlab.audit.scan import scan_batch, tokenize
from repeatlab.audit.text import for_terminal
from repeatlab.data.tokens import byte_tokenizer

from .conftest import Planted, byte_stream, random_words, shingle_jaccard, substitute


def _decode(ids: np.ndarray) -> str:
    return bytes(ids.astype(np.uint8)).decode("utf-8", "replace")


def test_signatures_equal_datasketch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minhash, "_BLOCK", 7)  # documents straddle blocks
    rng = np.random.default_rng(0)
    docs = [" ".join(random_words(rng, n)).encode() for n in (1, 3, 4, 5, 6, 40, 2)] + [b"Same SAME same", b"x"]
    hashes, bounds = minhash.shingle_hashes(docs, 5)
    sigs = minhash.signatures(hashes, bounds, 64, 3)
    for i in range(len(docs)):
        reference = MinHash(num_perm=64, seed=3, hashfunc=int)
        reference.update_batch(hashes[bounds[i] : bounds[i + 1]].tolist())
        np.testing.assert_array_equal(sigs[i], reference.hashvalues)


def test_shingles_match_the_definition() -> None:
    docs = [b"The quick  brown\tfox jumps over THE quick brown fox", b"one two", b"a b c d e"]
    hashes, bounds = minhash.shingle_hashes(docs, 3)
    for i, doc in enumerate(docs):
        words = doc.lower().split()
        expected = {tuple(words[j : j + 3]) for j in range(max(len(words) - 2, 1))}
        assert len(set(hashes[bounds[i] : bounds[i + 1]].tolist())) == len(expected)
    # case and whitespace do not matter; word order does
    same, _ = minhash.shingle_hashes([b"A b  C d", b"a B c\nd", b"b a c d"], 4)
    assert same[0] == same[1] != same[2]


def test_byte_tokens_are_what_the_byte_tokenizer_returns() -> None:
    texts = ["héllo <|endoftext|> wörld", "plain", "tab\tand\nnewline ✓"]
    stream = tokenize(texts, [t.encode() for t in texts], "byte")
    ids = byte_tokenizer().encode_batch(texts)
    assert stream.tokens.tolist() == [i for doc in ids for i in doc]
    assert np.diff(stream.doc_offsets).tolist() == [len(i) for i in ids]


def test_near_duplicates_found_above_threshold_and_not_below() -> None:
    rng = np.random.default_rng(1)
    base = [random_words(rng, 200) for _ in range(30)]
    close = " ".join(substitute(base[0], 2, rng))  # J ~ 0.90
    far = " ".join(substitute(base[1], 8, rng))  # J ~ 0.66
    docs = [" ".join(words) for words in base] + [close, far]
    assert shingle_jaccard(docs[0], close) > 0.88 and 0.6 < shingle_jaccard(docs[1], far) < 0.7
    config = AuditConfig(near_dup=NearDupConfig(threshold=0.8))
    scan = scan_batch(docs, config)
    everyone = np.ones(len(docs), np.bool_)
    pairs, similarity, _ = near_duplicate_pairs(scan.signatures, everyone, config.near_dup)
    assert pairs.tolist() == [[0, 30]] and similarity[0] == pytest.approx(0.9, abs=0.08)
    loose = NearDupConfig(threshold=0.5)
    pairs, similarity, _ = near_duplicate_pairs(scan_batch(docs, config).signatures, everyone, loose)
    assert pairs.tolist() == [[0, 30], [1, 31]]
    assert similarity[1] == pytest.approx(shingle_jaccard(docs[1], far), abs=0.12)
    report = find_near_duplicates(scan.signatures, everyone, scan.stream, config.near_dup, top_k=5, decode=_decode)
    assert (report.n_pairs, report.n_clusters, report.n_documents_in_clusters) == (1, 1, 2)
    assert report.clusters[0].documents == [0, 30] and report.clusters[0].min_similarity >= 0.8
    assert (report.bands, report.rows) == lsh_bands(config.near_dup)


def test_exact_duplicates_counted(planted: Planted) -> None:
    docs = [*planted.documents, planted.documents[0], "<b>[red]x[/red]</b>\n", "<b>[red]x[/red]</b>\n"]
    stream = byte_stream(docs)
    scan = scan_batch(docs, AuditConfig())
    result, first_copy = find_exact_duplicates(scan.digests, stream, top_k=5, decode=_decode)
    assert result.n_groups == 3 and result.n_redundant_documents == 3 + 1 + 1
    assert dict(result.count_histogram) == {4: 1, 2: 2}
    top = result.groups[0]
    assert top.count == 4 and docs[top.documents[0]] == planted.dup_doc and len(top.documents) == 4
    assert first_copy.sum() == len(docs) - 5
    redundant = 3 * len(planted.dup_doc) + len(docs[0].encode()) + len(docs[-1].encode())
    assert result.redundant_token_share == pytest.approx(redundant / stream.n_tokens)
    markup = result.groups[-1]
    assert markup.preview == "<b>[red]x[/red]</b>\n"
    assert for_terminal(markup.preview) == "<b>\\[red]x\\[/red]</b>\\n"
