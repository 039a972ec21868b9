"""What a fit returns: the best law, every distinct local minimum, the fit's quality and bootstrap intervals.

These are plain frozen dataclasses so a fit can be printed, compared in a test and written to JSON with
``to_dict`` (and read back with ``repeatlab.config.from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from repeatlab.config import to_dict
from repeatlab.laws.forms import ChinchillaLaw, DataConstrainedLaw, PowerLaw

LawT = TypeVar("LawT", PowerLaw, ChinchillaLaw, DataConstrainedLaw)
Form = Literal["power", "chinchilla", "data-constrained"]


class JsonResult:
    """Mixin for result dataclasses: ``to_dict`` gives plain JSON-ready data (``repeatlab.io.write_json`` it)."""

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


class FitError(ValueError):
    """A fit could not be done: too few points, bad values, or no start of the grid converged."""


@dataclass(frozen=True, kw_only=True)
class LocalMinimum(Generic[LawT]):
    """One basin the grid of starts found."""

    law: LawT
    """The law at the lowest point found in this basin."""
    objective: float
    """Summed Huber loss there."""
    r_squared: float
    """1 - SS_res / SS_tot of the losses this law predicts."""
    n_starts: int
    """How many starts ended in this basin."""


@dataclass(frozen=True, kw_only=True)
class Interval:
    """A two-sided bootstrap percentile interval."""

    low: float
    high: float


@dataclass(frozen=True, kw_only=True)
class BootstrapSummary:
    """Refits of the law on resamples of the runs (drawn with replacement), started from the best fit."""

    n_resamples: int
    """Resamples drawn."""
    n_converged: int
    """Resamples whose refit converged; only these enter the intervals."""
    seed: int
    """Seed of the resampling generator: the same seed gives the same intervals."""
    level: float
    """Coverage of the intervals (0.95 for 2.5th to 97.5th percentiles)."""
    intervals: dict[str, Interval]
    """Interval of each fitted constant, by the law's field name."""


@dataclass(frozen=True, kw_only=True)
class LawFit(JsonResult, Generic[LawT]):
    """The result of fitting one functional form to a table of runs."""

    form: Form
    """Which functional form was fitted."""
    law: LawT
    """The best law: the lowest objective over all starts."""
    objective: float
    """Summed Huber loss (on log loss) of ``law``."""
    r_squared: float
    """1 - SS_res / SS_tot of the predicted losses (not log losses) of ``law``."""
    n_points: int
    """Runs fitted."""
    n_starts: int
    """Starting points in the grid."""
    n_converged: int
    """Starts whose optimisation converged."""
    minima: tuple[LocalMinimum[LawT], ...]
    """Every distinct local minimum found, best first (the first is ``law``)."""
    bootstrap: BootstrapSummary | None = None
    """Bootstrap intervals, when requested."""
