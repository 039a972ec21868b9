"""Entry point of the ``repeatlab`` command; each subcommand lives in its own module."""

from __future__ import annotations

import typer

from repeatlab.cli import audit, data, demo, export, laws, models, plan, probe, report, sweep, train
from repeatlab.cli.errors import OneLineUsageErrors

app = typer.Typer(
    name="repeatlab",
    help="Study what repeated data does to language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=OneLineUsageErrors,
)

app.command("demo")(demo.demo)
app.command("reproduce")(demo.reproduce)
app.add_typer(data.app, name="data")
app.command("models")(models.models)
app.command("train")(train.train)
app.command("export")(export.export)
app.command("probe")(probe.probe)
app.add_typer(laws.app, name="laws")
app.command("plan")(plan.plan)
app.add_typer(sweep.app, name="sweep")
app.command("report")(report.report)
app.command("audit")(audit.audit)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
