"""``repeatlab audit``: how much of a corpus is repeated, how often, and what that predicts for a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repeatlab.audit import (
    AuditConfig,
    NearDupConfig,
    TrainingPlan,
    audit_corpus,
    print_report,
    write_report,
)
from repeatlab.cli.common import console, parse_count
from repeatlab.cli.errors import user_errors
from repeatlab.errors import RepeatlabError
from repeatlab.io import check_output_file
from repeatlab.laws.region import HERNANDEZ_2022, PoorRegion


@user_errors
def audit(
    source: Annotated[str, typer.Argument(help="builtin, python-stdlib (named sources join with +), a .txt/.jsonl/.parquet file, a directory, or hf:PATH")],
    tokenizer: Annotated[str, typer.Option(help="byte, or a tokenizer.json (or a prepared dataset dir)")] = "byte",
    min_span: Annotated[int, typer.Option(help="Shortest repeated span counted, in tokens")] = 50,
    out: Annotated[Path | None, typer.Option(help="Write the report as JSON here")] = None,
    text_field: Annotated[str, typer.Option(help="Text field of JSONL/Parquet/hf sources")] = "text",
    threshold: Annotated[float, typer.Option(help="Near-duplicate Jaccard similarity threshold")] = 0.8,
    num_perm: Annotated[int, typer.Option(help="MinHash permutations")] = 128,
    shingle_size: Annotated[int, typer.Option(help="Words per shingle")] = 5,
    n_params: Annotated[str | None, typer.Option(help="Planned non-embedding parameters, e.g. 125M")] = None,
    train_tokens: Annotated[str | None, typer.Option(help="Planned training tokens, e.g. 2.5B")] = None,
    region_json: Annotated[Path | None, typer.Option("--region", help='Poor-performance region JSON, {"left": {"k": K, "alpha": A}, "right": {...}}: E = k N^alpha')] = None,
    backend: Annotated[str, typer.Option(help="local, or ray to shard the per-document stages")] = "local",
    span_method: Annotated[str, typer.Option(help="hash (bounded memory) or suffix-array (reference)")] = "hash",
    top: Annotated[int, typer.Option(help="Spans and groups listed")] = 20,
    tmp_dir: Annotated[Path | None, typer.Option(help="Where the span stage spills hash buckets")] = None,
) -> None:
    """Audit a corpus for exact duplicate documents, repeated token spans and near-duplicates.

    With --n-params and --train-tokens (counted in --tokenizer tokens: bytes for byte), also place the
    repetition against the poor-performance band of that model (Hernandez et al. 2022, or --region: a
    fitted ``repeatlab.laws.PoorRegion`` or ``PoorRegionFit`` as JSON).
    """
    if (n_params is None) != (train_tokens is None):
        raise RepeatlabError("give both --n-params and --train-tokens for a cost estimate, or neither")
    if region_json is not None and n_params is None:
        raise RepeatlabError("--region needs --n-params and --train-tokens")
    if out is not None:
        check_output_file(out, example="audit.json")  # before the (possibly long) audit
    config = AuditConfig(
        tokenizer=tokenizer,
        text_field=text_field,
        min_span_tokens=min_span,
        span_method=span_method,  # type: ignore[arg-type]  # validated by AuditConfig
        near_dup=NearDupConfig(threshold=threshold, num_perm=num_perm, shingle_size=shingle_size),
        top_k=top,
        backend=backend,  # type: ignore[arg-type]  # validated by AuditConfig
        tmp_dir=None if tmp_dir is None else str(tmp_dir),
    )
    plan = None
    if n_params is not None and train_tokens is not None:
        plan = TrainingPlan(n_params=parse_count(n_params), n_train_tokens=parse_count(train_tokens))
    region = PoorRegion.from_json(region_json) if region_json is not None else HERNANDEZ_2022
    report = audit_corpus(source, config, plan=plan, region=region, progress=console.log)
    print_report(report, console)
    if out is not None:
        write_report(report, out)
        console.print(f"wrote {out}")
