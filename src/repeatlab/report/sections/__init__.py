"""The report's sections, in page order; each is one function of the analysis that returns a ``Section``.

A builder returns ``None`` when its section does not apply to the sweep (no data-constrained runs, nothing
repeated). To add a section (an audit, a new figure), write one such function and add it to ``SECTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable

from repeatlab.report.analysis import Analysis
from repeatlab.report.model import Section
from repeatlab.report.sections.corpus import samples_section
from repeatlab.report.sections.curves import curves_section
from repeatlab.report.sections.damage import damage_section
from repeatlab.report.sections.degradation import degradation_section, heatmap_section
from repeatlab.report.sections.dynamics import DYNAMICS_SECTIONS, probe_curves_section
from repeatlab.report.sections.findings import findings_section
from repeatlab.report.sections.heads import heads_section
from repeatlab.report.sections.overview import overview_section
from repeatlab.report.sections.paired import paired_section
from repeatlab.report.sections.regression import regression_section
from repeatlab.report.sections.scaling import data_constrained_section, scaling_section
from repeatlab.report.sections.testbeds import TESTBED_SECTIONS, classification_curves_section

SectionBuilder = Callable[[Analysis], Section | None]

SECTIONS: tuple[SectionBuilder, ...] = (
    overview_section,
    findings_section,
    degradation_section,
    heatmap_section,
    curves_section,
    *DYNAMICS_SECTIONS,
    *TESTBED_SECTIONS,
    regression_section,
    damage_section,
    paired_section,
    heads_section,
    scaling_section,
    data_constrained_section,
    samples_section,
)

RUN_SECTIONS: tuple[SectionBuilder, ...] = (
    overview_section,
    findings_section,
    curves_section,
    probe_curves_section,
    classification_curves_section,
    regression_section,
    heads_section,
    samples_section,
)
"""Sections of a single-run report (the sweep-level figures need many runs)."""

__all__ = ["RUN_SECTIONS", "SECTIONS", "SectionBuilder"]
