"""Synthetic corpora with planted repetition at known counts and lengths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from repeatlab.audit.stream import TokenStream

SPAN = 20
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def random_words(rng: np.random.Generator, n_words: int) -> list[str]:
    """Random lowercase 'words': no 20-byte window or 5-word shingle repeats by accident."""
    return ["".join(rng.choice(LETTERS, size=int(rng.integers(3, 9)))) for _ in range(n_words)]


def random_text(rng: np.random.Generator, n_chars: int) -> str:
    return " ".join(random_words(rng, n_chars // 6 + 1))[:n_chars].strip() or "x"


@dataclass
class Planted:
    """Documents plus the truth about their repetition (byte tokens, span length SPAN)."""

    documents: list[str]
    span_a: str  # planted 7 times inside documents
    span_b: str  # planted 3 times
    dup_doc: str  # a whole document present 4 times

    def expected_token_histogram(self) -> dict[int, int]:
        n_tokens = sum(len(d.encode()) for d in self.documents)
        planted = {7: 7 * len(self.span_a), 3: 3 * len(self.span_b), 4: 4 * len(self.dup_doc)}
        return {1: n_tokens - sum(planted.values()), **planted}


def make_planted(seed: int = 0, n_background: int = 60) -> Planted:
    rng = np.random.default_rng(seed)
    span_a, span_b, dup_doc = random_text(rng, 90), random_text(rng, 60), random_text(rng, 150)
    docs = [random_text(rng, int(rng.integers(100, 500))) for _ in range(n_background)]
    # Distinct uppercase letters around each occurrence: no window that straddles an occurrence repeats.
    for i, (left, right) in enumerate(zip("ABCDEFG", "HIJKLMN", strict=True)):
        docs[3 * i] = docs[3 * i][:40] + left + span_a + right + docs[3 * i][40:]
    for i, (left, right) in enumerate(zip("OPQ", "RST", strict=True)):
        docs[3 * i + 1] = docs[3 * i + 1][:30] + left + span_b + right + docs[3 * i + 1][30:]
    for i in range(4):
        docs.insert(10 * i + 5, dup_doc)
    return Planted(docs, span_a, span_b, dup_doc)


def byte_stream(documents: list[str]) -> TokenStream:
    encoded = [d.encode() for d in documents]
    tokens = np.frombuffer(b"".join(encoded), np.uint8)
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return TokenStream(tokens, offsets, 256)


def brute_force_counts(stream: TokenStream, span: int) -> np.ndarray:
    """Reference: a dict of window bytes, one Python loop per position."""
    seen: dict[bytes, int] = {}
    starts = []
    for d in range(stream.n_documents):
        lo, hi = int(stream.doc_offsets[d]), int(stream.doc_offsets[d + 1])
        for p in range(lo, hi - span + 1):
            key = stream.tokens[p : p + span].tobytes()
            seen[key] = seen.get(key, 0) + 1
            starts.append((p, key))
    counts = np.zeros(stream.n_tokens, np.uint32)
    for p, key in starts:
        counts[p] = seen[key]
    return counts


def substitute(words: list[str], n_edits: int, rng: np.random.Generator) -> list[str]:
    """Replace ``n_edits`` words, at least 5 apart and away from the ends, by fresh random words."""
    out = list(words)
    for i in range(n_edits):
        out[10 + 12 * i] = "".join(rng.choice(LETTERS, size=10))
    return out


def shingle_jaccard(a: str, b: str, k: int = 5) -> float:
    """Exact Jaccard similarity of word k-shingle sets (the definition the MinHash estimates)."""

    def shingles(text: str) -> set[tuple[bytes, ...]]:
        words = text.encode().lower().split()
        if len(words) < k:
            return {tuple(words)}
        return {tuple(words[j : j + k]) for j in range(len(words) - k + 1)}

    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


@pytest.fixture()
def planted() -> Planted:
    return make_planted()


@pytest.fixture()
def planted_jsonl(tmp_path: Path, planted: Planted) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps({"text": d}) for d in planted.documents) + "\n", encoding="utf-8")
    return path
