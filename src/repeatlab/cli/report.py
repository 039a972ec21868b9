"""``repeatlab report``: one offline HTML file of a sweep's (or a run's) figures, numbers and findings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from repeatlab.cli.common import console
from repeatlab.cli.errors import user_errors
from repeatlab.report import ReportOptions, write_report


@user_errors
def report(
    path: Annotated[Path, typer.Argument(help="Sweep directory (results.parquet, runs/) or a single run directory")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file to write", show_default="DIR/report.html")] = None,
    fraction: Annotated[
        float | None,
        typer.Option(help="Repeated fraction held fixed in the degradation and copying figures",
                     show_default="the best-covered one"),
    ] = None,
    curve_run: Annotated[
        list[str] | None,
        typer.Option(help="Run id whose learning curves to show; repeat it for several",
                     show_default="each size's worst repeated run"),
    ] = None,
) -> None:
    """Write one HTML file (no network, images inlined) with the figures of Hernandez et al. 2022 and Muennighoff et
    al. 2023 drawn from the sweep's own numbers; a partial sweep gives a partial report that says what is missing."""
    options = ReportOptions(repeated_fraction=fraction, curve_runs=tuple(curve_run or ()))
    target = out if out is not None else path / "report.html"
    result = write_report(path, target, options)
    figures = sum(section.figure is not None for section in result.sections)
    console.print(f"wrote {escape(str(target))}: {len(result.sections)} sections, {figures} figures", highlight=False)
    if result.missing:
        console.print(f"[yellow]partial:[/] {len(result.missing)} item(s) could not be shown; they are listed at the top "
                      "of the report", highlight=False)
