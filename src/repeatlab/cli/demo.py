"""``repeatlab demo`` and ``repeatlab reproduce``: a preset's sweep, report and findings (see ``repeatlab.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repeatlab.cli.common import console
from repeatlab.cli.errors import user_errors
from repeatlab.cli.sweep import ProgressView
from repeatlab.config import ConfigError
from repeatlab.demo import DEMO_PRESET, REPRODUCTIONS, DemoResult, run_demo
from repeatlab.sweeps import load_grid
from repeatlab.sweeps.grid import check_workers


@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Directory for the sweep and the report")] = Path("runs/demo"),
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: the preset's)")] = None,
) -> None:
    """Run the cpu-tiny sweep on the built-in corpus, probe and fit it, and write the HTML report."""
    _check_workers(workers)
    console.print(f"repeatlab demo: the {DEMO_PRESET} sweep on the built-in corpus, in {out}")
    _show(_run(out, None, workers), "demo")


@user_errors
def reproduce(
    name: Annotated[str, typer.Argument(help=f"Which reproduction: {', '.join(REPRODUCTIONS)}")],
    out: Annotated[Path | None, typer.Option(help="Directory for the sweep and the report (default runs/PRESET)")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: the preset's)")] = None,
) -> None:
    """Run a reproduction preset of Hernandez et al. 2022 (cpu: f = 0.1 on two CPU cores), its report and findings;
    stop at any time, the same command resumes."""
    if name not in REPRODUCTIONS:
        raise ConfigError(f"unknown reproduction {name!r}; choose one of: {', '.join(REPRODUCTIONS)}")
    _check_workers(workers)
    preset = REPRODUCTIONS[name]
    out = out or Path("runs") / preset
    console.print(f"repeatlab reproduce {name}: the {preset} sweep, in {out} (docs/reproduction.md)")
    _show(_run(out, preset, workers), f"reproduce {name}")


def _check_workers(workers: int | None) -> None:
    """Before the banner: the sweep checks ``--workers`` too, but only after the command has said what it runs."""
    if workers is not None:
        check_workers("--workers", workers)


def _run(out: Path, preset: str | None, workers: int | None) -> DemoResult:
    view = ProgressView()
    try:
        return run_demo(out, grid=load_grid(preset) if preset else None, workers=workers, progress=view.update)
    finally:
        view.close()


def _show(result: DemoResult, what: str) -> None:
    console.print(f"\nreport: {result.report_path.resolve()}")
    for line in result.findings:
        console.print(f"  - {line}", highlight=False, soft_wrap=True)
    console.print(f"{what} finished in {result.seconds / 60:.1f} min ({result.n_failed} failed runs)")
    if result.n_failed:
        raise typer.Exit(code=1)
