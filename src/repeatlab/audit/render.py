"""The audit for people: rich tables for the terminal.

Corpus text is always escaped for the terminal (``text.for_terminal``); numbers are formatted here and nowhere
else.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from repeatlab.audit.cost import CostEstimate, human
from repeatlab.audit.report import AuditReport
from repeatlab.audit.text import for_terminal


def print_report(report: AuditReport, console: Console) -> None:
    """Overview, exact duplicates, repeated spans, near-duplicates and (if planned) the cost estimate."""
    console.print(_overview(report))
    console.print(_exact(report))
    console.print(_coverage(report))
    console.print(_top_spans(report))
    console.print(_near(report))
    if report.cost is not None:
        console.print(_cost(report.cost))
        for line in report.cost.summary:
            console.print(f"• {line}", highlight=False, markup=False)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _overview(r: AuditReport) -> Table:
    table = Table(title=f"audit of {r.source}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in r.timings_s.items())
    rows = [
        ("documents", f"{r.n_documents:,}"),
        ("tokens", f"{r.n_tokens:,} ({r.config.tokenizer})"),
        ("text", f"{r.n_bytes / 2**20:,.1f} MiB"),
        ("repeated tokens", f"{100 * r.spans.repeated_token_share:.2f}% in spans of >= {r.spans.min_span_tokens} "
                            f"tokens seen twice or more ({r.spans.method})"),
        ("exact duplicates", f"{r.exact.n_redundant_documents:,} redundant documents "
                             f"({100 * r.exact.redundant_token_share:.2f}% of tokens)"),
        ("near duplicates", f"{r.near.n_documents_in_clusters:,} documents in {r.near.n_clusters:,} clusters"),
        ("time", f"{sum(r.timings_s.values()):.1f} s ({stages})"),
        ("peak memory", f"{r.peak_rss_mb:,.0f} MiB"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def _exact(r: AuditReport) -> Table:
    table = _table(f"exact duplicate documents: {r.exact.n_groups:,} texts occur more than once",
                   "copies", "tokens", "documents", "text")
    for g in r.exact.groups:
        table.add_row(str(g.count), f"{g.n_tokens:,}", ", ".join(map(str, g.documents)), for_terminal(g.preview))
    return table


def _coverage(r: AuditReport) -> Table:
    s = r.spans
    table = _table(f"tokens by repetition count k (most repeated {s.min_span_tokens}-token span covering them)",
                   "k", "tokens", "share", "distinct spans")
    for b in s.buckets:
        distinct = sum(n for k, n in s.window_histogram if b.k_min <= k <= b.k_max)
        k = str(b.k_min) if b.k_min == b.k_max else f"{b.k_min}-{b.k_max}"
        table.add_row(k, f"{b.n_tokens:,}", f"{100 * b.token_share:.3f}%", f"{distinct:,}")
    return table


def _top_spans(r: AuditReport) -> Table:
    table = _table("most repeated spans", "count", "tokens", "first doc", "text")
    for span in r.spans.top_spans:
        table.add_row(str(span.count), f"{span.n_tokens:,}", str(span.first_document), span.text_terminal)
    return table


def _near(r: AuditReport) -> Table:
    n = r.near
    c = n.config
    title = (f"near-duplicate documents: Jaccard >= {c.threshold} on {c.shingle_size}-word shingles, "
             f"MinHash {c.num_perm} permutations, LSH {n.bands}x{n.rows}; {n.n_pairs:,} pairs of "
             f"{n.n_candidate_pairs:,} candidates")
    table = _table(title, "documents", "min similarity", "members", "text")
    for cluster in n.clusters:
        table.add_row(str(cluster.size), f"{cluster.min_similarity:.2f}", ", ".join(map(str, cluster.documents)),
                      for_terminal(cluster.preview))
    return table


def _cost(c: CostEstimate) -> Table:
    left, right = c.band_epochs
    table = _table(f"training repeats for {human(c.plan.n_params)} params, {human(c.plan.n_train_tokens)} tokens "
                   f"(band E {left:,.0f}-{right:,.0f})", "times seen E", "share of training tokens", "band")
    for b in c.buckets:
        table.add_row(f"{_times(b.epochs_min)}-{_times(b.epochs_max)}", f"{100 * b.token_share:.3f}%", b.placement)
    return table


def _times(epochs: float) -> str:
    return f"{epochs:,.0f}" if epochs >= 1 else f"{epochs:.3g}"
