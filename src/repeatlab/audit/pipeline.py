"""``audit_corpus``: run the stages in order and assemble the report.

Stages: scan (per document: digests, MinHash, tokens; local or Ray) -> exact duplicates ->
near-duplicates -> span counts (hash buckets or suffix array) -> span statistics -> cost estimate.
Nothing is written here; the caller saves the finished report (``write_report``), so bad input
fails before any file exists.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from repeatlab.audit.config import AuditConfig
from repeatlab.audit.cost import TrainingPlan, estimate_cost
from repeatlab.audit.exact import find_exact_duplicates
from repeatlab.audit.neardup import find_near_duplicates
from repeatlab.audit.report import AuditReport
from repeatlab.audit.scan import BatchScan, decoder, iter_batches, merge_batches, scan_batch
from repeatlab.audit.span_stats import summarize_spans
from repeatlab.audit.spans_hash import count_windows_hashed
from repeatlab.audit.spans_sa import count_windows_suffix_array
from repeatlab.data.corpus import CorpusError
from repeatlab.laws.region import HERNANDEZ_2022, PoorRegion


def audit_corpus(
    source: str | Path,
    config: AuditConfig | None = None,
    *,
    plan: TrainingPlan | None = None,
    region: PoorRegion = HERNANDEZ_2022,
    progress: Callable[[str], None] | None = None,
) -> AuditReport:
    """Audit ``source`` (any corpus source the data layer reads) for exact, span and near repetition.

    With a ``plan`` the report also places the repetition against the poor-performance band of
    ``region`` (default: Hernandez et al.'s published one).
    """
    config = config or AuditConfig()
    if config.tmp_dir is not None and not Path(config.tmp_dir).is_dir():
        raise NotADirectoryError(f"tmp_dir {config.tmp_dir} is not a directory; create it or choose another")
    say = progress or (lambda _: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    text = decoder(config.tokenizer)  # load (and validate) the tokenizer before reading the corpus

    def decode(ids: NDArray[np.unsignedinteger]) -> str:
        return text.decode(ids.tolist())

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now
        say(f"{name}: {timings[name]:.1f} s")

    scanned = merge_batches(_scan(source, config), config.near_dup.num_perm)
    if scanned.stream.n_documents == 0:
        raise CorpusError(f"corpus {source!s} is empty: it holds no non-blank document")
    stream = scanned.stream
    lap("scan")
    exact, first_copy = find_exact_duplicates(scanned.digests, stream, top_k=config.top_k, decode=decode)
    lap("exact")
    near = find_near_duplicates(
        scanned.signatures, first_copy, stream, config.near_dup, top_k=config.top_k, decode=decode
    )
    lap("near")
    if config.span_method == "suffix-array":
        counts = count_windows_suffix_array(stream, config.min_span_tokens)
    else:
        counts = count_windows_hashed(
            stream, config.min_span_tokens, bucket_mb=config.bucket_mb, tmp_dir=config.tmp_dir
        )
    lap("span_counts")
    spans = summarize_spans(
        counts, stream, config.min_span_tokens, method=config.span_method, top_k=config.top_k, decode=decode
    )
    del counts
    lap("span_stats")
    cost = None
    if plan is not None:
        cost = estimate_cost(spans.token_histogram, plan, region=region)
    return AuditReport(
        source=str(source),
        config=config,
        n_documents=stream.n_documents,
        n_bytes=scanned.n_bytes,
        n_tokens=stream.n_tokens,
        exact=exact,
        spans=spans,
        near=near,
        cost=cost,
        timings_s=timings,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def _scan(source: str | Path, config: AuditConfig) -> list[BatchScan]:
    batches = iter_batches(source, config)
    if config.backend == "ray":
        from repeatlab.audit.ray_scan import ray_scan

        return list(ray_scan(batches, config))
    return [scan_batch(batch, config) for batch in batches]

