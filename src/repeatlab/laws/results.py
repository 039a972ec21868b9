"""What a fit returns: the best law, every distinct local minimum, the fit's quality, bootstrap intervals and
how well each constant is determined.

These are plain frozen dataclasses so a fit can be printed, compared in a test and written to JSON with
``to_dict`` (and read back with ``repeatlab.config.from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from repeatlab.config import to_dict
from repeatlab.errors import RepeatlabError
from repeatlab.laws.forms import ChinchillaLaw, DataConstrainedLaw, PowerLaw

LawT = TypeVar("LawT", PowerLaw, ChinchillaLaw, DataConstrainedLaw)
Form = Literal["power", "chinchilla", "data-constrained"]


class JsonResult:
    """Mixin for result dataclasses: ``to_dict`` gives plain JSON-ready data (``repeatlab.io.write_json`` it)."""

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


class FitError(RepeatlabError):
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
class ConstantProfile:
    """The objective profiled over one constant, and what it says about that constant."""

    constant: str
    """The law's field name (A, B, E, alpha, beta, r_d_star, r_n_star)."""
    best: float
    """Its value in the best fit."""
    values: tuple[float, ...]
    """Values it was held at (log-spaced around ``best``, which is among them)."""
    objectives: tuple[float, ...]
    """The objective minimised over every other fitted parameter, at each of ``values``."""
    low: float
    """Smallest profiled value whose objective is within the tolerance of the best."""
    high: float
    """Largest such value."""
    identified: bool
    """Whether that region closes inside the profiled range; if not, the data do not bound the constant."""
    verdict: str
    """The finding in one plain sentence."""


@dataclass(frozen=True, kw_only=True)
class Identification(Generic[LawT]):
    """How well a fit is determined (``repeatlab.laws.identify``)."""

    level: float
    """Likelihood-ratio level that sets ``tolerance``."""
    tolerance: float
    """Relative rise of the objective below which two fits are indistinguishable on these data."""
    basins: tuple[LocalMinimum[LawT], ...]
    """Every distinct local minimum within the tolerance of the best, best first."""
    profiles: tuple[ConstantProfile, ...]
    """One per fitted constant."""
    lowest_profiled: float
    """The lowest objective any profile reached (never above the fit's: the best value is on every profile)."""
    went_lower: bool
    """Whether a profile went clearly below the fit (by more than ``repeatlab.laws.identify.LOWER_RTOL``): the
    grid of starts missed a deeper basin, and a wider grid would find a better fit."""


@dataclass(frozen=True, kw_only=True)
class DroppedRun:
    """A run an outlier rule left out of the fit."""

    row: int
    """Its row in the table given to the fit (0-based)."""
    params: float
    """N."""
    loss: float
    """Its loss."""


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
    dropped: tuple[DroppedRun, ...] = ()
    """Runs left out before fitting (``FitConfig.drop_highest_loss``), in row order; ``n_points`` excludes them."""
    bootstrap: BootstrapSummary | None = None
    """Bootstrap intervals, when requested."""
    identification: Identification[LawT] | None = None
    """Profiles, the basins as good as the best and a verdict per constant, when requested."""

    @property
    def most_reached(self) -> LocalMinimum[LawT]:
        """The basin most starts end in: what a fit that stops its starts early tends to report (ties: the lower)."""
        return max(self.minima, key=lambda minimum: minimum.n_starts)
