"""``repeatlab sweep``: run a grid of training runs, show where it stands, rebuild its results table."""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from repeatlab.cli.common import console, refuse_without
from repeatlab.cli.errors import OneLineUsageErrors, user_errors
from repeatlab.sweeps.results import collect as collect_results
from repeatlab.sweeps.results import run_rows
from repeatlab.sweeps.driver import run_sweep
from repeatlab.config import parse_overrides
from repeatlab.sweeps.estimate import check_timing, estimate_sweep
from repeatlab.sweeps.grid import expand_grid, load_grid, preset_names
from repeatlab.io import is_locked, lock_file_of
from repeatlab.layout import DATA_DIR, variant_dir
from repeatlab.records import STATUSES

app = typer.Typer(help="Run grids of training runs (size x repetition x seed) and collect their results.",
                  no_args_is_help=True, cls=OneLineUsageErrors)

GridArg = Annotated[str, typer.Argument(help=f"A grid TOML file or a preset name ({', '.join(preset_names())})")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Replace a grid field, KEY=TOML value, e.g. --set "
                                                              "data.source=x.txt or --set 'seeds=[0, 1]' "
                                                              "(repeatable)")]


@app.command()
@user_errors
def run(
    grid: GridArg,
    out: Annotated[Path, typer.Option(help="Sweep directory (created; run again to resume)")],
    backend: Annotated[str, typer.Option(help="local (worker processes here) or ray")] = "local",
    workers: Annotated[int | None, typer.Option(help="Local worker processes (default: the grid's "
                                                     "resources.local_workers); Ray: most runs in flight")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address to join (HOST:PORT or auto)")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Run failed runs again (otherwise they are skipped)")] = False,
    set_: SetOpt = None,
) -> None:
    """Run every unfinished run of GRID in OUT; stop at any time and run the same command to resume."""
    config = load_grid(grid, overrides=parse_overrides(set_ or []))
    view = ProgressView()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill`, `timeout` and schedulers stop it like Ctrl-C
    try:
        result = run_sweep(config, out, backend=backend,  # type: ignore[arg-type]  # checked in run_sweep
                           workers=workers, address=address, retry_failed=retry_failed, progress=view.update)
    except KeyboardInterrupt:
        view.close()
        console.print(f"interrupted; run the same command again to resume ({out})")
        raise typer.Exit(code=130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    view.close()
    frame = result.results
    counts = {s: int((frame["status"] == s).sum()) for s in STATUSES} if len(frame) else {}
    console.print(f"{out}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; results in {out / 'results.parquet'}")
    if result.n_failed:
        console.print("failed runs are listed by 'repeatlab sweep status'; rerun with --retry-failed to retry them")
        raise typer.Exit(code=1)


@app.command()
@user_errors
def status(sweep_dir: Annotated[Path, typer.Argument(help="A sweep directory")]) -> None:
    """Print a table of the sweep's runs (done, running, failed, pending) with their key metrics."""
    frame = run_rows(sweep_dir)
    table = Table(title=f"sweep {sweep_dir}", title_justify="left")
    for name in ("run", "model", "kind", "f", "E", "U", "seed", "status", "test loss", "repeated loss", "time",
                 "error"):
        table.add_column(name, justify="right" if name in ("f", "E", "U", "test loss", "repeated loss", "time")
                         else "left", overflow="fold")
    for row in frame.to_dict("records"):
        table.add_row(
            row["run_id"], row["model"], row["kind"], _fmt(row["repeated_fraction"], "{:g}"),
            _fmt(row["repeated_epochs"], "{:.0f}"), _fmt(row["unique_tokens"], "{:,.0f}"), str(row["seed"]),
            _styled(row["status"]), _fmt(row["test_loss"], "{:.4f}"), _fmt(row["repeated_loss"], "{:.4f}"),
            _fmt(row["wall_time_s"], "{:.0f} s"), (row["error"] or "")[:120],
        )
    console.print(table)
    counts = {s: int((frame["status"] == s).sum()) for s in STATUSES}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    if is_locked(lock_file_of(sweep_dir)):
        console.print("a 'repeatlab sweep run' is working on this directory now")


@app.command()
@user_errors
def collect(sweep_dir: Annotated[Path, typer.Argument(help="A sweep directory")]) -> None:
    """Rebuild DIR/results.parquet from the run directories (any time, even while a sweep runs)."""
    frame = collect_results(sweep_dir)
    laws = [c for c in frame.columns if c.startswith("n_eff")]
    console.print(f"wrote {sweep_dir / 'results.parquet'}: {len(frame)} runs, {len(frame.columns)} columns"
                  + (f" (law columns: {', '.join(laws)})" if laws else " (no law columns: fewer than 2 control sizes done)"))


@app.command()
@user_errors
def plan(
    grid: GridArg,
    measure: Annotated[bool, typer.Option(help="Time a few training steps of each size and estimate the sweep")] = False,
    steps: Annotated[int | None, typer.Option(help="Steps timed per size with --measure (default 10)")] = None,
    workers: Annotated[int | None, typer.Option(help="Workers the estimate of --measure assumes (default: the "
                                                     "grid's)")] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Where --measure prepares data (default: a temp dir)")] = None,
    set_: SetOpt = None,
) -> None:
    """List the runs of GRID; with --measure, estimate how long the sweep takes on this machine."""
    refuse_without("--steps", steps, "--measure", given=measure, purpose="it sets how many steps are timed")
    refuse_without("--workers", workers, "--measure", given=measure, purpose="the estimate assumes that many")
    refuse_without("--work-dir", work_dir, "--measure", given=measure, purpose="the data the timing trains on")
    steps = 10 if steps is None else steps
    if measure:
        check_timing(steps, workers)
    config = load_grid(grid, overrides=parse_overrides(set_ or []))
    specs = expand_grid(config)
    console.print(f"grid {config.name} ({config.kind}): {len(specs)} runs; presets: {', '.join(preset_names())}")
    for name, updates in config.data_variants.items():
        fields = ", ".join(f"{key} = {value!r}" for key, value in updates.items()) or "the [data] task as is"
        console.print(f"  data variant {name}: {fields} (prepared into {variant_dir(DATA_DIR, name)}/)")
    for spec in specs:
        console.print(f"  {spec.run_id}  {spec.point.label()}")
    if measure:
        estimate = estimate_sweep(config, steps=steps, workers=workers, work_dir=work_dir,
                                  progress=lambda text: console.print(escape(text)))
        for size, rate in estimate.tokens_per_s.items():
            console.print(f"  {size}: {rate:,.0f} tokens/s per run ({estimate.threads} threads)")
        console.print(f"estimated wall time with {estimate.workers} worker(s): {estimate.wall_s / 60:.1f} min "
                      f"(training {estimate.train_s / 60:.1f} min of run time + {estimate.overhead_s:.0f} s per run "
                      f"for evaluation, probes and start-up)")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _fmt(value: Any, spec: str) -> str:
    """``spec``-formatted number, or blank for a missing value (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return spec.format(float(value))


def _styled(status: str) -> str:
    colour = {"done": "green", "running": "cyan", "failed": "red", "pending": "yellow"}[status]
    return f"[{colour}]{status}[/]"


class ProgressView:
    """A rich progress bar on a terminal; plain lines otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.task: Any = None
        self.finished = 0
        self.total = 0

    def update(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "plan":
            self.total = event["total"]
            self.finished = event["done"] + event["failed"]
            console.print(f"{event['total']} runs: {event['done']} done, {event['failed']} failed (skipped), "
                          f"{event['todo']} to run")
            if console.is_terminal and event["todo"]:
                self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), console=console)
                self.bar.start()
                self.task = self.bar.add_task("sweep", total=self.total, completed=self.finished)
        elif kind == "message":
            console.print(escape(event["text"]))  # plain text: "[data]" is a grid table, not markup
        elif kind == "start":
            self._line(f"start   {event['run_id']}  {event['label']}")
        elif kind == "retry":
            self._line(f"retry   {event['run_id']}  {event['label']}: {event['reason']}")
        elif kind == "finish":
            self.finished += 1
            detail = (f"test loss {event['test_loss']:.4f}" if event.get("test_loss") is not None else "")
            if event["status"] == "failed":
                detail = f"[red]{escape(event['error'])}[/]"
            self._line(f"{event['status']:<7} {event['run_id']}  {event['label']}  {detail}"
                       f"  [{self.finished}/{self.total}]")
            if self.bar is not None:
                self.bar.update(self.task, completed=self.finished)

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)
        else:
            console.print(text, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
