"""HTML reports of sweeps and runs: one offline file with the figures of Hernandez et al. 2022 and Muennighoff et
al. 2023, each drawn from the sweep's own numbers, and findings computed from them.

``write_report(DIR, "report.html")`` is the whole job; ``load_sweep`` + ``build_report`` + ``render_html`` are its
steps. Reports read run records only: no model is ever loaded.
"""

from __future__ import annotations

from repeatlab.report.analysis import Analysis, ReportOptions
from repeatlab.report.build import build_report, write_report
from repeatlab.report.html import render_html
from repeatlab.report.load import RunRecord, SweepData, load_sweep
from repeatlab.report.model import Figure, Report, Section, Table
from repeatlab.report.sections import RUN_SECTIONS, SECTIONS, SectionBuilder

__all__ = [
    "RUN_SECTIONS", "SECTIONS", "Analysis", "Figure", "Report", "ReportOptions", "RunRecord", "Section",
    "SectionBuilder", "SweepData", "Table", "build_report", "load_sweep", "render_html", "write_report",
]
