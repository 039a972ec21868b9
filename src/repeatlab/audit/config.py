"""What an audit measures and how: span length, near-duplicate settings, backend and memory knobs.

Every number that changes a result (span length, similarity threshold, permutations, shingle size,
seed) is written into the report next to the result, so two audits can be compared honestly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from repeatlab.config import check_int
from repeatlab.errors import RepeatlabError

MAX_SHINGLE_SIZE = 256
"""The longest shingle, in words (near-duplicate detection uses about 5; the cost grows with the length)."""

MAX_SPAN_TOKENS = 2**31 - 1
"""The longest ``min_span_tokens``: 2^31 - 1 tokens, longer than any document; the span counters index windows
with machine integers, which a larger value overflows."""

SpanMethod = Literal["hash", "suffix-array"]
Backend = Literal["local", "ray"]


@dataclass(kw_only=True, frozen=True)
class NearDupConfig:
    """MinHash LSH over word shingles (datasketch's ``affine32`` MinHash and its LSH band optimiser)."""

    threshold: float = 0.8
    """Estimated Jaccard similarity of word-shingle sets at or above which two documents are near-duplicates."""
    num_perm: int = 128
    """MinHash permutations; the estimate's standard error is about sqrt(J (1 - J) / num_perm)."""
    shingle_size: int = 5
    """Words per shingle (words are runs of non-whitespace bytes, ASCII-lowercased)."""
    seed: int = 1
    """Seed of the MinHash permutations (datasketch's default is 1)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise RepeatlabError(f"threshold must be in (0, 1), got {self.threshold}")
        if not 2 <= self.num_perm <= 1024:
            raise RepeatlabError(f"num_perm must be in [2, 1024], got {self.num_perm}")
        check_int("shingle_size", self.shingle_size, 1, MAX_SHINGLE_SIZE,
                  reason="each word of a shingle is one more pass over every word of the corpus")
        if self.seed < 0:
            raise RepeatlabError(f"seed must be non-negative, got {self.seed}")


@dataclass(kw_only=True, frozen=True)
class AuditConfig:
    """One corpus audit: exact duplicate documents, repeated token spans, near-duplicate documents."""

    tokenizer: str = "byte"
    """``byte`` (one token per UTF-8 byte, exact, no training) or a path to a tokenizer.json / its directory."""
    text_field: str = "text"
    """Text field of JSONL/Parquet/hf sources."""
    min_span_tokens: int = 50
    """Shortest repeated span counted, in tokens; spans never cross a document boundary."""
    span_method: SpanMethod = "hash"
    """``hash``: sharded exact counting by 96-bit rolling hashes, memory bounded by ``bucket_mb``;
    ``suffix-array``: the reference (pydivsufsort + Kasai LCP), about 13 bytes per token in one piece."""
    near_dup: NearDupConfig = field(default_factory=NearDupConfig)
    """Near-duplicate document settings."""
    top_k: int = 20
    """How many of the most repeated spans and largest duplicate groups to keep in the report."""
    backend: Backend = "local"
    """``local`` runs the per-document stages in this process; ``ray`` shards them over Ray tasks."""
    ray_address: str | None = None
    """Ray cluster to join with ``backend="ray"`` (None: the running one, or a new local instance)."""
    batch_mb: int = 16
    """Documents are processed in batches of about this many MB of text (also the Ray task size)."""
    bucket_mb: int = 2048
    """Working memory of one hash bucket in the span stage; more buckets (and spill files) when the corpus is larger."""
    tmp_dir: str | None = None
    """Where the span stage spills hash buckets (about 16 bytes per token; default: the system temp dir)."""

    def __post_init__(self) -> None:
        if not self.tokenizer:
            raise RepeatlabError("tokenizer must be 'byte' or a path to a tokenizer.json, got ''")
        if not self.text_field:
            raise RepeatlabError("text_field must not be empty")
        check_int("min_span_tokens", self.min_span_tokens, 2, MAX_SPAN_TOKENS,
                  reason="the span counters index windows with machine integers")
        if self.span_method not in ("hash", "suffix-array"):
            raise RepeatlabError(f"span_method must be 'hash' or 'suffix-array', got {self.span_method!r}")
        if self.top_k < 1:
            raise RepeatlabError(f"top_k must be at least 1, got {self.top_k}")
        if self.backend not in ("local", "ray"):
            raise RepeatlabError(f"backend must be 'local' or 'ray', got {self.backend!r}")
        if self.batch_mb < 1:
            raise RepeatlabError(f"batch_mb must be at least 1, got {self.batch_mb}")
        if self.bucket_mb < 16:
            raise RepeatlabError(f"bucket_mb must be at least 16, got {self.bucket_mb}")
