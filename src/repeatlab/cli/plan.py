"""``repeatlab plan``: size a run under a data constraint, or check repeat counts against the poor region."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from repeatlab.cli.common import console, parse_count
from repeatlab.cli.errors import user_errors
from repeatlab.errors import RepeatlabError
from repeatlab.laws import ComputePlan, RepeatPlan, plan_compute, plan_repeats


@user_errors
def plan(
    unique_tokens: Annotated[str | None, typer.Option(help="U: unique tokens available, e.g. 25B")] = None,
    flops: Annotated[str | None, typer.Option(help="C: training FLOPs, e.g. 1e22")] = None,
    params: Annotated[str | None, typer.Option(help="N: model parameters, e.g. 800M")] = None,
    total_tokens: Annotated[str | None, typer.Option(help="T: tokens seen in training, e.g. 100B")] = None,
    repeated_fraction: Annotated[float | None, typer.Option(help="f: share of tokens from a repeated subset")] = None,
    repeats: Annotated[list[str] | None, typer.Option(help="A repeat count to check; repeatable")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
) -> None:
    """With --unique-tokens and --flops: the loss-optimal N, D and epochs under the data-constrained law, beside
    Chinchilla's single-epoch choice. With --params, --total-tokens and --repeated-fraction: which repeat counts
    of the repeated subset fall in the predicted poor-performance region (Hernandez et al. 2022)."""
    compute_mode = unique_tokens is not None or flops is not None
    repeat_mode = params is not None or total_tokens is not None or repeated_fraction is not None
    if compute_mode and (unique_tokens is None or flops is None):
        raise RepeatlabError("--unique-tokens and --flops go together")
    if repeat_mode and (params is None or total_tokens is None or repeated_fraction is None):
        raise RepeatlabError("--params, --total-tokens and --repeated-fraction go together")
    if not (compute_mode or repeat_mode):
        raise RepeatlabError("give --unique-tokens and --flops, or --params, --total-tokens and --repeated-fraction")
    output: dict[str, Any] = {}
    if unique_tokens is not None and flops is not None:
        compute = plan_compute(unique_tokens=float(parse_count(unique_tokens)), flops=float(parse_count(flops)))
        output["compute"] = compute.to_dict()
        if not as_json:
            _print_compute(compute)
    if params is not None and total_tokens is not None and repeated_fraction is not None:
        repeat = plan_repeats(
            n_params=float(parse_count(params)),
            total_tokens=float(parse_count(total_tokens)),
            repeated_fraction=repeated_fraction,
            repeats=[float(parse_count(r)) for r in repeats] if repeats else None,
        )
        output["repeats"] = repeat.to_dict()
        if not as_json:
            _print_repeats(repeat)
    if as_json:
        typer.echo(json.dumps(output, indent=2))


def _print_compute(plan: ComputePlan) -> None:
    table = Table(
        title=f"C = {plan.flops:.3g} FLOPs, U = {plan.unique_tokens:.3g} unique tokens (datablations C4 law)",
        title_justify="left",
    )
    for name in ("allocation", "params N", "tokens D", "epochs D/U", "predicted loss"):
        table.add_column(name, justify="right" if name != "allocation" else "left")
    choices = (("data-constrained optimum", plan.data_constrained), ("Chinchilla (1 epoch)", plan.chinchilla))
    for label, choice in choices:
        table.add_row(
            label, f"{choice.n_params:.4g}", f"{choice.n_tokens:.4g}", f"{choice.epochs:.3g}", f"{choice.loss:.4f}"
        )
    console.print(table)
    console.print(f"Chinchilla's choice with unlimited fresh data would reach {plan.chinchilla_fresh_loss:.4f}.")


def _print_repeats(plan: RepeatPlan) -> None:
    first, last = plan.band_epochs
    table = Table(
        title=(
            f"N = {plan.n_params:.3g}, T = {plan.total_tokens:.3g}, f = {plan.repeated_fraction:g}: "
            f"poor-performance band {first:.3g} to {last:.3g} repeats (Hernandez et al. 2022)"
        ),
        title_justify="left",
    )
    for name in ("repeats", "repeated subset (tokens)", "in poor region"):
        table.add_column(name, justify="right")
    for risk in plan.repeats:
        flag = "[bold red]yes[/]" if risk.in_poor_region else "no"
        table.add_row(f"{risk.repeats:g}", f"{risk.repeated_unique_tokens:.3g}", flag)
    console.print(table)
