"""Robust multi-start fits of the scaling laws to a table of runs.

The recipe is Hoffmann et al.'s Approach 3 as Besiroglu et al. (2024) corrected it: minimise the *sum* (not the
mean, which stops L-BFGS early) of Huber losses (delta 1e-3) of log-loss residuals, with L-BFGS-B, from every
point of a grid of starts, and keep the lowest. All starts run together (``repeatlab.laws.optim``). The endpoints
are grouped into distinct local minima and all of them are returned: scaling-law objectives have several basins
(datablations' has two almost equally deep), and which one "the" fit lands in depends on the grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from repeatlab.errors import RepeatlabError
from repeatlab.laws.bootstrap import BootstrapConfig, bootstrap_law
from repeatlab.laws.forms import DATABLATIONS_C4_BASE, ChinchillaLaw, DataConstrainedLaw, FloatArray, PowerLaw
from repeatlab.laws.identify import IdentifyConfig, identify_law
from repeatlab.laws.objective import ChinchillaModel, DataConstrainedModel, LogLossModel, PowerModel, huber_objective
from repeatlab.laws.optim import OptimizerConfig, minimize_batch
from repeatlab.laws.results import DroppedRun, FitError, Form, LawFit, LawT, LocalMinimum
from repeatlab.laws.table import RunsLike, RunTable, as_run_table, require_spread

StartGrid = Mapping[str, Sequence[float]]
"""Starting values for each fitted parameter, by name; the starts are their Cartesian product. Parameters are
those of the log-sum-exp form: a, b, e (logs of A, B, E), alpha, beta, and r_d_star, r_n_star."""

HOFFMANN_GRID: StartGrid = {
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
"""Hoffmann et al.'s 4,500 starts (as Besiroglu et al. read them from the paper)."""

POWER_GRID: StartGrid = {k: HOFFMANN_GRID[k] for k in ("a", "e", "alpha")}
"""The parameter-term half of Hoffmann et al.'s grid (a = alpha log N_c)."""

DATABLATIONS_DECAY_GRID: StartGrid = {"r_d_star": (20 / 3, 40 / 3, 20.0), "r_n_star": (20 / 3, 40 / 3, 20.0)}
"""The datablations notebook's grid, ``numpy.linspace(0, 20, 4)`` for both constants, without the 0 (the form is
0/0 there; the notebook's runs from it were NaN). Run to convergence, 8 of its 9 starts end in the published basin
(R_D* 15.4, R_N* 5.3) and one, (20, 6.67), in a lower one (47.0, 2.33); the notebook's float32 torch L-BFGS stopped
that start after 55 iterations at (19.6, 3.3), short of any minimum, so its lowest was the published point
(``tests/laws/data/datablations_reference_fit.py`` reruns it; docs/laws.md)."""

DECAY_GRID: StartGrid = {
    "r_d_star": (1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0),
    "r_n_star": (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0),
}
"""A wider grid, log-spaced over the plausible range, that reaches every basin of the published data."""

DATA_CONSTRAINED_FULL_GRID: StartGrid = {
    "a": (0.0, 10.0, 20.0),
    "b": (0.0, 10.0, 20.0),
    "e": (-1.0, 0.0, 1.0),
    "alpha": (0.2, 0.5, 1.0),
    "beta": (0.2, 0.5, 1.0),
    "r_d_star": (2.0, 15.0, 60.0),
    "r_n_star": (1.0, 5.0, 20.0),
}
"""Starts for fitting all seven constants at once (a coarser base grid times a coarser decay grid)."""


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """Objective and optimiser settings shared by every form."""

    huber_delta: float = 1e-3
    """Residuals (in log loss) beyond this are penalised linearly, not quadratically."""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    """Stopping rules of the batched L-BFGS-B."""
    minima_tol: float = 1e-4
    """Two endpoints belong to one minimum when their predicted log losses differ by at most this on every run."""
    drop_highest_loss: int = 0
    """Leave out the runs with this many highest losses before fitting (``RunTable.highest_loss_mask``): Besiroglu
    et al. 2024 drop 5 of the 245 Chinchilla points this way. The fit reports which runs went (``LawFit.dropped``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.drop_highest_loss, int) or self.drop_highest_loss < 0:
            raise RepeatlabError(
                f"FitConfig.drop_highest_loss must be a non-negative integer, got {self.drop_highest_loss!r}"
            )
        if not (np.isfinite(self.huber_delta) and self.huber_delta > 0):
            raise RepeatlabError(f"FitConfig.huber_delta must be positive, got {self.huber_delta!r}")
        if not (np.isfinite(self.minima_tol) and self.minima_tol > 0):
            raise RepeatlabError(f"FitConfig.minima_tol must be positive, got {self.minima_tol!r}")


def fit_power_law(
    runs: RunsLike,
    *,
    metric: str = "loss",
    controls_only: bool = True,
    grid: StartGrid = POWER_GRID,
    config: FitConfig | None = None,
    bootstrap: BootstrapConfig | None = None,
) -> LawFit[PowerLaw]:
    """Fit L(N) = E + (N_c / N)^alpha to ``metric`` against parameter count.

    Args:
        controls_only: fit only the runs without repetition (``RunTable.control_mask``): the law describes
            models trained on fresh data, and the degraded runs are what it is later compared with.
    """
    table = as_run_table(runs)
    if metric != "loss" and config is not None and config.drop_highest_loss:
        raise FitError(f"drop_highest_loss drops by the loss column; it cannot be combined with metric={metric!r}")
    rows = np.arange(len(table))
    if controls_only:
        rows = np.flatnonzero(table.control_mask())
        table = table.controls()
    table, dropped = _drop_outliers(table, rows, config)
    require_spread(table, ("params",), "power")
    values = table.column(metric)
    if np.any(~np.isfinite(values)) or np.any(values <= 0):
        raise FitError(f"{metric} must be positive and finite on every run fitted")
    model = PowerModel(np.log(table.params))

    def predict(law: PowerLaw) -> FloatArray:
        return law.loss(table.params)

    return _fit("power", model, values, predict, grid, config, bootstrap, _power_values, dropped, None)


def fit_chinchilla(
    runs: RunsLike,
    *,
    grid: StartGrid = HOFFMANN_GRID,
    config: FitConfig | None = None,
    bootstrap: BootstrapConfig | None = None,
    identify: IdentifyConfig | None = None,
) -> LawFit[ChinchillaLaw]:
    """Fit L(N, D) = E + A / N^alpha + B / D^beta (Approach 3) to runs with ``params``, ``tokens``, ``loss``.

    Args:
        identify: also profile each constant and say how well the data determine it (``LawFit.identification``).
    """
    table, dropped = _drop_outliers(as_run_table(runs), None, config)
    require_spread(table, ("params", "tokens"), "chinchilla")
    tokens = table.column("tokens")
    model = ChinchillaModel(np.log(table.params), np.log(tokens))

    def predict(law: ChinchillaLaw) -> FloatArray:
        return law.loss(table.params, tokens)

    values = _chinchilla_values
    return _fit("chinchilla", model, table.loss, predict, grid, config, bootstrap, values, dropped, identify)


def fit_data_constrained(
    runs: RunsLike,
    *,
    base: ChinchillaLaw | None = DATABLATIONS_C4_BASE,
    grid: StartGrid | None = None,
    config: FitConfig | None = None,
    bootstrap: BootstrapConfig | None = None,
    identify: IdentifyConfig | None = None,
) -> LawFit[DataConstrainedLaw]:
    """Fit Muennighoff et al.'s data-constrained law to runs with ``params``, ``tokens``, ``unique_tokens``, ``loss``.

    Args:
        base: the single-epoch coefficients to hold fixed while R_D* and R_N* are fitted (the published recipe);
            ``None`` fits all seven constants.
        grid: starts; by default ``DECAY_GRID``, or ``DATA_CONSTRAINED_FULL_GRID`` when ``base`` is None.
        identify: also profile each fitted constant and say how well the data determine it.
    """
    table, dropped = _drop_outliers(as_run_table(runs), None, config)
    require_spread(table, ("params", "unique_tokens"), "data-constrained")
    tokens, unique = table.column("tokens"), table.column("unique_tokens")
    model = DataConstrainedModel(np.log(table.params), np.log(unique), np.maximum(tokens / unique - 1, 0), base)
    grid = grid if grid is not None else (DECAY_GRID if base is not None else DATA_CONSTRAINED_FULL_GRID)

    def predict(law: DataConstrainedLaw) -> FloatArray:
        return law.loss(table.params, tokens, unique)

    def values(law: DataConstrainedLaw) -> dict[str, float]:
        fitted = {"r_d_star": law.r_d_star, "r_n_star": law.r_n_star}
        return fitted if base is not None else {**_chinchilla_values(law.base), **fitted}

    return _fit("data-constrained", model, table.loss, predict, grid, config, bootstrap, values, dropped, identify)


def grid_points(grid: StartGrid, names: Sequence[str]) -> FloatArray:
    """The Cartesian product of ``grid`` as a [S, P] array, columns in the order of ``names``."""
    if set(grid) != set(names):
        raise RepeatlabError(f"the start grid must give values for exactly {', '.join(names)}; got {', '.join(grid)}")
    for name in names:
        if len(grid[name]) == 0 or not np.all(np.isfinite(np.asarray(grid[name], dtype=float))):
            raise RepeatlabError(f"the start grid's {name!r} values must be a non-empty list of finite numbers")
    return np.array(list(itertools.product(*(grid[name] for name in names))), dtype=np.float64)


def _drop_outliers(
    table: RunTable, rows: np.ndarray | None, config: FitConfig | None
) -> tuple[RunTable, tuple[DroppedRun, ...]]:
    """Apply ``config.drop_highest_loss``; ``rows`` are the table's rows in the caller's input (None: 0..n-1)."""
    count = (config or FitConfig()).drop_highest_loss
    if count == 0:
        return table, ()
    drop = table.highest_loss_mask(count)
    rows = np.arange(len(table)) if rows is None else rows
    dropped = tuple(
        DroppedRun(row=int(rows[i]), params=float(table.params[i]), loss=float(table.loss[i]))
        for i in np.flatnonzero(drop)
    )
    return table.select(~drop), dropped


def _fit(
    form: Form,
    model: LogLossModel[LawT],
    losses: FloatArray,
    predict: Callable[[LawT], FloatArray],
    grid: StartGrid,
    config: FitConfig | None,
    bootstrap: BootstrapConfig | None,
    values: Callable[[LawT], dict[str, float]],
    dropped: tuple[DroppedRun, ...],
    identify: IdentifyConfig | None,
) -> LawFit[LawT]:
    config = config or FitConfig()
    n_free = len(model.names)
    if len(losses) <= n_free:
        raise FitError(
            f"the {form} fit has {n_free} free parameters and needs at least {n_free + 1} runs; got {len(losses)}"
        )
    log_loss = np.log(losses)
    starts = grid_points(grid, model.names)
    objective = huber_objective(model, log_loss, delta=config.huber_delta)
    result = minimize_batch(objective, starts, lower=model.lower, upper=model.upper, config=config.optimizer)
    ok = result.converged & np.isfinite(result.fun)
    minima = _distinct_minima(
        model, result.x[ok], result.fun[ok], config.minima_tol, lambda law: _r_squared(losses, predict(law))
    )
    if not minima:
        raise FitError(
            f"none of the {len(starts)} starts of the {form} fit converged to a valid law "
            f"({int(ok.sum())} converged); widen the grid or raise OptimizerConfig.max_iter"
        )
    best, best_theta = minima[0]
    summary = None
    if bootstrap is not None:
        summary = bootstrap_law(
            model,
            log_loss,
            best_theta,
            delta=config.huber_delta,
            optimizer=config.optimizer,
            config=bootstrap,
            values=values,
        )
    identification = None
    if identify is not None:
        identification = identify_law(
            model, log_loss, minima, delta=config.huber_delta, optimizer=config.optimizer, config=identify
        )
    return LawFit(
        form=form,
        law=best.law,
        objective=best.objective,
        r_squared=best.r_squared,
        n_points=len(losses),
        n_starts=len(starts),
        n_converged=int(ok.sum()),
        minima=tuple(minimum for minimum, _ in minima),
        dropped=dropped,
        bootstrap=summary,
        identification=identification,
    )


def _distinct_minima(
    model: LogLossModel[LawT], x: FloatArray, fun: FloatArray, tol: float, r_squared: Callable[[LawT], float]
) -> list[tuple[LocalMinimum[LawT], FloatArray]]:
    """Group converged endpoints into basins, best first; endpoints that are not a valid law are dropped.

    Endpoints are compared by what they predict, not by their parameters: in a flat valley (A and B of the
    Chinchilla fit) or along a vanishing term (E -> 0) many parameter vectors are one and the same fit.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        predictions = model.log_predict(x)[0]
    remaining = np.argsort(fun, kind="stable")
    minima = []
    while remaining.size:
        best = remaining[0]
        same = np.max(np.abs(predictions[remaining] - predictions[best]), axis=1) <= tol
        same[0] = True  # even if its own prediction overflowed
        remaining = remaining[~same]
        try:
            law = model.to_law(x[best])
        except ValueError:  # e.g. an exponent driven onto its bound at 0: a degenerate corner, not a law
            continue
        minimum = LocalMinimum(law=law, objective=float(fun[best]), r_squared=r_squared(law), n_starts=int(same.sum()))
        minima.append((minimum, x[best]))
    return minima


def _r_squared(observed: FloatArray, predicted: FloatArray) -> float:
    return 1 - float(np.sum((observed - predicted) ** 2) / np.sum((observed - observed.mean()) ** 2))


def _power_values(law: PowerLaw) -> dict[str, float]:
    return {"E": law.E, "n_c": law.n_c, "alpha": law.alpha}


def _chinchilla_values(law: ChinchillaLaw) -> dict[str, float]:
    return {"A": law.A, "B": law.B, "E": law.E, "alpha": law.alpha, "beta": law.beta}
