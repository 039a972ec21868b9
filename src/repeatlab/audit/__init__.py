"""Corpus audit: how much of a corpus is repeated, how often, and how bad that is for a planned model.

``audit_corpus(source, AuditConfig(...), plan=TrainingPlan(...))`` returns an ``AuditReport``:
exact duplicate documents, repeated token spans (counts, histograms, coverage by repetition count,
the most repeated spans), near-duplicate documents (MinHash LSH) and, with a plan, the share of
training tokens inside the predicted poor-performance band (Hernandez et al. 2022).

Exactness: exact duplicates are equal 128-bit BLAKE2b digests; span counts are exact up to a 96-bit
hash collision with ``span_method="hash"`` (checked against the suffix array in the tests) and exact
with ``"suffix-array"``; near-duplicates are candidate pairs from LSH whose estimated Jaccard
similarity (MinHash, ``num_perm`` permutations) reaches the threshold, so they are estimates.

Memory on one machine (``span_method="hash"``, the default):
- the scan streams ``batch_mb`` batches and keeps, per document, a 16-byte digest and a
  ``4 * num_perm``-byte signature (512 bytes by default), plus the token ids: 1 byte per token for
  ``byte``, 2 or 4 for a tokenizer.json;
- the span stage adds 4 bytes per token (the window counts) and one hash bucket of at most
  ``bucket_mb`` (2 GiB by default), and spills about 16 bytes per token to ``tmp_dir`` when there is
  more than one bucket; the concatenation of batches briefly holds the tokens twice.
So a byte-level audit needs roughly 6 bytes per corpus byte plus ``bucket_mb``: about 8 GB for 1 GB
of text. ``span_method="suffix-array"`` needs about 13 bytes per token and is meant as the reference.

Beyond one machine: ``backend="ray"`` runs the per-document stages (digests, MinHash, tokenising) as
Ray tasks over a cluster; grouping digests and banding signatures stay on the driver (~0.5 KB per
document). Span counting needs the whole token stream in one process; for a corpus larger than one
machine holds (about a quarter of its RAM in text), audit shards separately: span counts are then
exact within each shard and repeats across shards are not counted.
"""

from repeatlab.audit.config import AuditConfig, NearDupConfig
from repeatlab.audit.cost import CostEstimate, TrainingPlan, estimate_cost
from repeatlab.audit.exact import ExactDuplicates, find_exact_duplicates
from repeatlab.audit.neardup import NearDuplicates, find_near_duplicates, near_duplicate_pairs
from repeatlab.audit.pipeline import audit_corpus
from repeatlab.audit.render import print_report
from repeatlab.audit.report import AuditReport, write_report
from repeatlab.audit.span_stats import SpanStats, summarize_spans
from repeatlab.audit.spans_hash import count_windows_hashed
from repeatlab.audit.spans_sa import count_windows_suffix_array
from repeatlab.audit.stream import TokenStream

__all__ = [
    "AuditConfig",
    "AuditReport",
    "CostEstimate",
    "ExactDuplicates",
    "NearDupConfig",
    "NearDuplicates",
    "SpanStats",
    "TokenStream",
    "TrainingPlan",
    "audit_corpus",
    "count_windows_hashed",
    "count_windows_suffix_array",
    "estimate_cost",
    "find_exact_duplicates",
    "find_near_duplicates",
    "near_duplicate_pairs",
    "print_report",
    "summarize_spans",
    "write_report",
]
