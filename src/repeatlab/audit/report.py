"""The audit's result: one typed object, its JSON form, and the file it is saved to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repeatlab.audit.config import AuditConfig
from repeatlab.audit.cost import CostEstimate
from repeatlab.audit.exact import ExactDuplicates
from repeatlab.audit.neardup import NearDuplicates
from repeatlab.audit.span_stats import SpanStats
from repeatlab.config import to_dict
from repeatlab.io import write_json

REPORT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class AuditReport:
    """How much of a corpus is repeated, how often, and (with a training plan) what that predicts."""

    source: str
    config: AuditConfig
    n_documents: int
    n_bytes: int
    n_tokens: int
    exact: ExactDuplicates
    spans: SpanStats
    near: NearDuplicates
    cost: CostEstimate | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds per stage."""
    peak_rss_mb: float = 0.0
    """Peak resident memory of this process when the audit finished."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: every field, plus the derived shares a reader would otherwise recompute."""
        data = to_dict(self)
        data["version"] = REPORT_VERSION
        data["spans"]["repeated_token_share"] = self.spans.repeated_token_share
        return data


def write_report(report: AuditReport, path: str | Path) -> None:
    """Save the report as JSON atomically: a failed or interrupted audit leaves no partial file."""
    write_json(path, report.to_dict())
