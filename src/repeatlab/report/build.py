"""Assemble a report from a directory: load it, analyse it once, run every section builder."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from repeatlab.io import atomic_write_text, check_output_file
from repeatlab.report.analysis import Analysis, ReportOptions
from repeatlab.report.html import render_html
from repeatlab.report.load import SweepData, load_sweep
from repeatlab.report.model import Report, Section, format_count
from repeatlab.report.sections import RUN_SECTIONS, SECTIONS, SectionBuilder


def build_report(
    data: SweepData, options: ReportOptions | None = None, sections: Sequence[SectionBuilder] | None = None
) -> Report:
    """Run each section builder on the sweep's analysis; a builder that hits bad data yields a 'missing' note.

    ``ValueError`` is the library's "these numbers cannot give that" signal (a failed fit, an empty column); any
    other exception is a bug and propagates.
    """
    analysis = Analysis(data=data, options=options or ReportOptions())
    builders = sections if sections is not None else (RUN_SECTIONS if data.is_single_run else SECTIONS)
    built: list[Section] = []
    for builder in builders:
        try:
            section = builder(analysis)
        except ValueError as exc:
            name = builder.__name__.removesuffix("_section")
            section = Section(key=re.sub(r"[^a-zA-Z0-9]+", "-", name), title=name.replace("_", " ").capitalize(),
                              missing=(f"could not be built: {exc}",))
        if section is not None:
            built.append(section)
    return Report(title=_title(data), source=str(data.path), facts=_facts(analysis), sections=tuple(built))


def write_report(source: str | Path, out: str | Path, options: ReportOptions | None = None) -> Report:
    """Read ``source`` (a sweep or run directory) and write its report to ``out`` atomically, as one HTML file.

    ``out`` is checked to be a writable file path before the report is built."""
    check_output_file(out, example="report.html")
    report = build_report(load_sweep(source), options)
    atomic_write_text(out, render_html(report))
    return report


def _title(data: SweepData) -> str:
    """Names a sweep by its grid (a directory called ``sweep`` says nothing), a run by its directory."""
    if data.is_single_run:
        return f"repeatlab report: run {data.path.resolve().name}"
    grid_name = (data.grid or {}).get("name")
    name = grid_name if isinstance(grid_name, str) and grid_name else data.path.resolve().name
    return f"repeatlab report: sweep {name}"


def _facts(an: Analysis) -> tuple[tuple[str, str], ...]:
    results = an.data.results
    facts = [("runs", str(len(results))), ("finished", str(len(an.done)))]
    if "status" in results:
        for status in ("failed", "running", "pending"):
            n = int((results["status"] == status).sum())
            if n:
                facts.append((status, str(n)))
    if an.sizes:
        facts.append(("model sizes", ", ".join(f"{s} ({format_count(an.size_params(s))})" for s in an.sizes)))
    if an.reference_fraction is not None:
        facts.append(("reference repeated fraction", f"{100 * an.reference_fraction:g}%"))
    return tuple(facts)
