"""Entry point of the ``repeatlab`` command; each subcommand group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="repeatlab",
    help="Study what repeated data does to language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Subcommand registration: one line per module (keep sorted).
from repeatlab.cli import audit as _audit; app.command("audit")(_audit.audit)  # noqa: E702
from repeatlab.cli import demo as _demo; app.command("demo")(_demo.demo)  # noqa: E702
from repeatlab.cli import data as _data; app.add_typer(_data.app, name="data")  # noqa: E702
from repeatlab.cli import export as _export; app.command("export")(_export.export)  # noqa: E702
from repeatlab.cli import laws as _laws; app.add_typer(_laws.app, name="laws")  # noqa: E702
from repeatlab.cli import models as _models; app.command("models")(_models.models)  # noqa: E702
from repeatlab.cli import plan as _plan; app.command("plan")(_plan.plan)  # noqa: E702
from repeatlab.cli import probe as _probe; app.command("probe")(_probe.probe)  # noqa: E702
from repeatlab.cli import report as _report; app.command("report")(_report.report)  # noqa: E702
from repeatlab.cli import sweep as _sweep; app.add_typer(_sweep.app, name="sweep")  # noqa: E702
from repeatlab.cli import train as _train; app.command("train")(_train.train)  # noqa: E702


def main() -> None:
    app()


if __name__ == "__main__":
    main()
