"""``repeatlab laws``: fit a scaling law to a table of runs, or predict a loss from a published or fitted law."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from repeatlab.cli.common import console, parse_count, refuse_without
from repeatlab.cli.errors import OneLineUsageErrors, user_errors
from repeatlab.config import from_dict, to_dict
from repeatlab.errors import RepeatlabError
from repeatlab.io import check_output_file, read_json, write_json
from repeatlab.laws import (
    BESIROGLU_2024,
    DATABLATIONS_C4,
    DATABLATIONS_DECAY_GRID,
    KAPLAN_2020,
    BootstrapConfig,
    ChinchillaLaw,
    DataConstrainedLaw,
    FitConfig,
    Identification,
    IdentifyConfig,
    LawFit,
    PowerLaw,
    fit_chinchilla,
    fit_data_constrained,
    fit_power_law,
    load_runs,
)
from repeatlab.laws.identify import tolerance

app = typer.Typer(help="Fit scaling laws to runs and predict losses.", no_args_is_help=True, cls=OneLineUsageErrors)


class LawForm(enum.StrEnum):
    power = "power"
    chinchilla = "chinchilla"
    data_constrained = "data-constrained"


class DecayGrid(enum.StrEnum):
    wide = "wide"
    paper = "paper"


_LAW_TYPES: dict[LawForm, type[PowerLaw] | type[ChinchillaLaw] | type[DataConstrainedLaw]] = {
    LawForm.power: PowerLaw,
    LawForm.chinchilla: ChinchillaLaw,
    LawForm.data_constrained: DataConstrainedLaw,
}
_PUBLISHED = {LawForm.power: KAPLAN_2020, LawForm.chinchilla: BESIROGLU_2024, LawForm.data_constrained: DATABLATIONS_C4}


@app.command()
@user_errors
def fit(
    table: Annotated[Path, typer.Argument(help="CSV/Parquet table of runs: params, tokens, unique_tokens, loss")],
    form: Annotated[LawForm, typer.Option(help="Functional form to fit")],
    column: Annotated[
        list[str] | None, typer.Option(help="Rename a column, FILE_NAME=NAME (e.g. val_loss=loss); repeatable")
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for intervals (0: none)")] = 0,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the bootstrap resampling (with --bootstrap; default 0)")
    ] = None,
    metric: Annotated[str, typer.Option(help="power: the column to fit against N")] = "loss",
    fit_base: Annotated[bool, typer.Option(help="data-constrained: also fit A, B, E, alpha, beta")] = False,
    grid: Annotated[
        DecayGrid,
        typer.Option(
            help="data-constrained: wide grid, or the datablations paper's 9 starts (8 reach its published basin, "
            "one a lower one its float32 optimiser stopped short of)"
        ),
    ] = DecayGrid.wide,
    drop_highest_loss: Annotated[
        int, typer.Option(help="Leave out the runs with this many highest losses (Besiroglu et al. 2024 drop 5)")
    ] = 0,
    huber_delta: Annotated[
        float, typer.Option(help="Huber loss threshold on log-loss residuals (quadratic below, linear above)")
    ] = 1e-3,
    identify: Annotated[
        bool,
        typer.Option(
            help="chinchilla, data-constrained: profile each constant, list the basins as good as the best and say "
            "which constants the data do not determine"
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the fit as JSON here (for laws predict --from)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Fit a law with the summed-Huber multi-start L-BFGS-B recipe; power fits use the control runs only."""
    if out is not None:
        check_output_file(out, example="fit.json")  # before the (multi-start) fit
    refuse_without("--seed", seed, "--bootstrap N", given=bootstrap != 0, purpose="it seeds the bootstrap resampling")
    config = BootstrapConfig(n_resamples=bootstrap, seed=seed or 0) if bootstrap else None
    runs = load_runs(table, columns=_renames(column or []))
    fit_config = FitConfig(huber_delta=huber_delta, drop_highest_loss=drop_highest_loss)
    identify_config = IdentifyConfig() if identify else None
    result: LawFit[Any]
    if form is LawForm.power:
        if identify:
            raise RepeatlabError("--identify works for the chinchilla and data-constrained forms, not power")
        result = fit_power_law(runs, metric=metric, config=fit_config, bootstrap=config)
    elif form is LawForm.chinchilla:
        result = fit_chinchilla(runs, config=fit_config, bootstrap=config, identify=identify_config)
    else:
        if fit_base and grid is DecayGrid.paper:
            raise RepeatlabError("--grid paper holds the base constants fixed; it cannot be combined with --fit-base")
        result = fit_data_constrained(
            runs,
            base=None if fit_base else DATABLATIONS_C4.base,
            grid=DATABLATIONS_DECAY_GRID if grid is DecayGrid.paper else None,
            config=fit_config,
            bootstrap=config,
            identify=identify_config,
        )
    if out is not None:
        write_json(out, result.to_dict())
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print_fit(result, huber_delta=huber_delta)


@app.command()
@user_errors
def predict(
    form: Annotated[LawForm, typer.Option(help="Functional form")],
    params: Annotated[str, typer.Option(help="N, e.g. 6.34B")],
    tokens: Annotated[str | None, typer.Option(help="D, tokens seen (chinchilla, data-constrained)")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="U, unique tokens (data-constrained)")] = None,
    from_fit: Annotated[
        Path | None, typer.Option("--from", help="A fit written by laws fit --out (default: published constants)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Predict a loss; by default with Kaplan (power), Besiroglu et al. (chinchilla) or datablations' C4 constants."""
    law = _load_law(form, from_fit) if from_fit is not None else _PUBLISHED[form]
    n = float(parse_count(params))
    if isinstance(law, PowerLaw):
        loss = float(law.loss(n))
    else:
        if tokens is None:
            raise RepeatlabError(f"--tokens is required for the {form.value} form")
        d = float(parse_count(tokens))
        if isinstance(law, ChinchillaLaw):
            loss = float(law.loss(n, d))
        else:
            if unique_tokens is None:
                raise RepeatlabError("--unique-tokens is required for the data-constrained form")
            loss = float(law.loss(n, d, min(float(parse_count(unique_tokens)), d)))
    if as_json:
        typer.echo(json.dumps({"form": form.value, "loss": loss, "law": to_dict(law)}, indent=2))
    else:
        constants = ", ".join(f"{name}={value:.6g}" for name, value in _constants(law).items())
        source = str(from_fit) if from_fit is not None else "published"
        console.print(f"predicted loss: [bold]{loss:.6f}[/]  ({form.value}, {source}: {constants})", highlight=False)


def _renames(pairs: list[str]) -> dict[str, str]:
    renames = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise RepeatlabError(f"--column takes FILE_NAME=NAME, got {pair!r}")
        renames[old] = new
    return renames


def _load_law(form: LawForm, path: Path) -> PowerLaw | ChinchillaLaw | DataConstrainedLaw:
    data = read_json(path)
    if not isinstance(data, dict) or "law" not in data or data.get("form") != form.value:
        raise RepeatlabError(f"{path} is not a {form.value} fit written by `repeatlab laws fit --out`")
    return from_dict(_LAW_TYPES[form], data["law"], where=str(path))


def _constants(law: PowerLaw | ChinchillaLaw | DataConstrainedLaw) -> dict[str, float]:
    """The law's constants, flat (a data-constrained law's base constants first)."""
    values = to_dict(law)
    base = values.pop("base", {})
    return {**base, **values}


def _print_fit(result: LawFit[Any], *, huber_delta: float) -> None:
    table = Table(title=f"{result.form} fit", title_justify="left")
    table.add_column("constant", style="bold")
    table.add_column("value", justify="right")
    boot = result.bootstrap
    if boot is not None:
        table.add_column(f"{boot.level:.0%} interval ({boot.n_converged} refits)", justify="right")
    for name, value in _constants(result.law).items():
        row = [name, f"{value:.6g}"]
        if boot is not None:
            interval = boot.intervals.get(name)
            row.append("fixed" if interval is None else f"({interval.low:.4g}, {interval.high:.4g})")
        table.add_row(*row)
    console.print(table)
    if result.dropped:
        shown = ", ".join(f"{run.row} (N {run.params:.3g}, loss {run.loss:.4g})" for run in result.dropped)
        console.print(
            f"dropped {len(result.dropped)} of {result.n_points + len(result.dropped)} runs "
            f"(the highest losses), by row: {shown}",
            highlight=False,
        )
    console.print(
        f"objective {result.objective:.6g}   R^2 {result.r_squared:.4f}   runs {result.n_points}   "
        f"starts {result.n_converged}/{result.n_starts} converged   distinct minima {len(result.minima)}"
    )
    close = tolerance(result.objective, result.n_points, delta=huber_delta, level=IdentifyConfig().level)
    if len(result.minima) > 1:
        minima = Table(title="local minima (best first)", title_justify="left")
        for name in ("objective", "R^2", "starts", "constants"):
            minima.add_column(name)
        for minimum in result.minima[:10]:
            row = [f"{minimum.objective:.8g}", f"{minimum.r_squared:.4f}", str(minimum.n_starts), _shown(minimum.law)]
            minima.add_row(*row)
        console.print(minima)
        if len(result.minima) > 10:
            console.print(f"... and {len(result.minima) - 10} more (see --json)")
        modal = result.most_reached
        if modal is not result.minima[0] and modal.objective <= result.objective * (1 + close):
            console.print(
                f"Most starts ({modal.n_starts} of {result.n_converged}) end in the basin at {_shown(modal.law)}, "
                f"objective {modal.objective / result.objective - 1:.3%} above the best: as good on these data, and "
                "the one a fit that stops its starts early is likely to report.",
                highlight=False,
            )
    if result.identification is not None:
        _print_identification(result, result.identification)


def _shown(law: PowerLaw | ChinchillaLaw | DataConstrainedLaw) -> str:
    """The constants a fit moved, short (a data-constrained law's fixed base is left out)."""
    return ", ".join(f"{k}={v:.4g}" for k, v in to_dict(law).items() if k != "base")


def _print_identification(result: LawFit[Any], found: Identification[Any]) -> None:
    boot = result.bootstrap
    table = Table(
        title=f"how well the data determine each constant (tolerance {found.tolerance:.2%} of the objective, "
        f"a {found.level:.0%} likelihood-ratio rule)",
        title_justify="left",
    )
    for name in ("constant", "best", "within tolerance (profile)", "bootstrap interval", "identified"):
        table.add_column(name)
    for profile in found.profiles:
        interval = None if boot is None else boot.intervals.get(profile.constant)
        table.add_row(
            profile.constant,
            f"{profile.best:.4g}",
            f"{profile.low:.4g} to {profile.high:.4g}",
            "-" if interval is None else f"({interval.low:.4g}, {interval.high:.4g})",
            "yes" if profile.identified else "NO",
        )
    console.print(table)
    if boot is None:
        console.print("(--bootstrap N adds each constant's bootstrap interval)")
    basins = Table(title=f"{len(found.basins)} basin(s) within tolerance of the best", title_justify="left")
    for name in ("objective", "above best", "starts", "constants"):
        basins.add_column(name)
    for basin in found.basins:
        above = f"{basin.objective / result.objective - 1:.3%}"
        basins.add_row(f"{basin.objective:.8g}", above, str(basin.n_starts), _shown(basin.law))
    console.print(basins)
    for profile in found.profiles:
        console.print(profile.verdict, highlight=False)
    if found.went_lower:
        console.print(
            f"The profiles reached an objective of {found.lowest_profiled:.8g}, below the fit's: its grid of starts "
            "missed a deeper basin, and a wider grid would fit better.",
            highlight=False,
        )
