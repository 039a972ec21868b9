"""``repeatlab demo``: the main job on the built-in corpus (see ``repeatlab.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repeatlab.cli.common import console
from repeatlab.cli.errors import user_errors
from repeatlab.cli.sweep import ProgressView
from repeatlab.demo import DEMO_PRESET, run_demo


@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Directory for the sweep and the report")] = Path("runs/demo"),
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: the preset's)")] = None,
) -> None:
    """Run the cpu-tiny sweep on the built-in corpus, probe and fit it, and write the HTML report."""
    console.print(f"repeatlab demo: the {DEMO_PRESET} sweep on the built-in corpus, in {out}")
    view = ProgressView()
    try:
        result = run_demo(out, workers=workers, progress=view.update)
    finally:
        view.close()
    console.print(f"\nreport: {result.report_path.resolve()}")
    for line in result.findings:
        console.print(f"  - {line}", highlight=False, soft_wrap=True)
    console.print(f"demo finished in {result.seconds / 60:.1f} min ({result.n_failed} failed runs)")
    if result.n_failed:
        raise typer.Exit(code=1)
