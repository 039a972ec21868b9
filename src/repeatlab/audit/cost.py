"""What the measured repetition predicts for a planned model: the poor-performance band, in plain words.

Hernandez et al. 2022 find that repeating a small share of the data many times hurts most when the
repeat count E sits in a band that moves with model size N (non-embedding parameters):
``E_left(N) = k_left N^-alpha_left`` to ``E_right(N) = k_right N^-alpha_right``. The published
boundaries are the default; a boundary fitted to the user's own sweep (any object with those four
attributes, e.g. from ``repeatlab.laws``) replaces them, and if it can also predict an effective-size
multiplier for a (repeated fraction, epochs) pair, that prediction is reported.

Placement: training for T tokens on a corpus of C tokens is T/C whole-corpus epochs, so a token
whose repetition count in the corpus is k is seen ``E = k T / C`` times in training. Tokens are
bucketed by E (log2-spaced) and each bucket's share of training tokens is its repeated fraction f.
Whole-corpus epochs (T > C) are valued with Muennighoff et al.'s data-constrained law
(``repeatlab.laws.forms.DATABLATIONS_C4``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from repeatlab.io import read_json
from repeatlab.laws.forms import DATABLATIONS_C4

BandPlacement = Literal["below", "partly", "inside", "above"]


@dataclass(frozen=True, kw_only=True)
class PoorPerformanceBoundary:
    """The band of repeat counts E that hurts a model of N non-embedding parameters most."""

    k_left: float
    alpha_left: float
    k_right: float
    alpha_right: float
    source: str = "fitted"
    """Where the constants come from, quoted in the report."""

    def __post_init__(self) -> None:
        for name in ("k_left", "alpha_left", "k_right", "alpha_right"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if name.startswith("k_") and value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")

    def left(self, n_params: float) -> float:
        return self.k_left * n_params**-self.alpha_left

    def right(self, n_params: float) -> float:
        return self.k_right * n_params**-self.alpha_right

    @classmethod
    def from_fitted(cls, fitted: Any, *, source: str = "fitted") -> PoorPerformanceBoundary:
        """Copy the four constants from any object that has them (a fitted boundary from a sweep)."""
        missing = [n for n in ("k_left", "alpha_left", "k_right", "alpha_right") if not hasattr(fitted, n)]
        if missing:
            raise ValueError(f"fitted boundary {type(fitted).__name__} lacks {', '.join(missing)}")
        return cls(
            k_left=float(fitted.k_left),
            alpha_left=float(fitted.alpha_left),
            k_right=float(fitted.k_right),
            alpha_right=float(fitted.alpha_right),
            source=source,
        )

    @classmethod
    def from_json(cls, path: str | Path) -> PoorPerformanceBoundary:
        """Read ``{"k_left": .., "alpha_left": .., "k_right": .., "alpha_right": ..}`` (``source`` optional)."""
        data = read_json(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object with k_left, alpha_left, k_right, alpha_right")
        keys = {"k_left", "alpha_left", "k_right", "alpha_right", "source"}
        unknown = sorted(set(data) - keys)
        if unknown:
            raise ValueError(f"{path}: unknown key {unknown[0]!r}; expected {', '.join(sorted(keys))}")
        missing = sorted(keys - {"source"} - set(data))
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)}")
        return cls(**{**data, "source": str(data.get("source", f"fitted ({path})"))})


PUBLISHED_BOUNDARIES = PoorPerformanceBoundary(
    k_left=4.2e6, alpha_left=0.56, k_right=5.1e7, alpha_right=0.50, source="Hernandez et al. 2022 (published)"
)
"""Hernandez et al. 2022's published poor-performance region: E from 4.2e6 N^-0.56 to 5.1e7 N^-0.50."""


@runtime_checkable
class EffectiveSizeModel(Protocol):
    """A fitted sweep that predicts how large a model trained on repeated data effectively is."""

    def effective_size_multiplier(self, n_params: float, repeated_fraction: float, repeated_epochs: float) -> float:
        """N_effective / N for a run with share ``repeated_fraction`` of tokens seen ``repeated_epochs`` times."""
        ...


@dataclass(frozen=True, kw_only=True)
class TrainingPlan:
    """The model the corpus is meant for."""

    n_params: float
    """Non-embedding parameters N."""
    n_train_tokens: float
    """Training tokens T, counted with the audit's tokenizer (bytes for ``byte``)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.n_params) and self.n_params > 0):
            raise ValueError(f"n_params must be positive, got {self.n_params}")
        if not (math.isfinite(self.n_train_tokens) and self.n_train_tokens > 0):
            raise ValueError(f"n_train_tokens must be positive, got {self.n_train_tokens}")


@dataclass(frozen=True, kw_only=True)
class EpochBucket:
    """Training tokens seen between ``epochs_min`` and ``epochs_max`` times."""

    epochs_min: float
    epochs_max: float
    token_share: float
    """Share of training tokens: the repeated fraction f of this bucket."""
    placement: BandPlacement


@dataclass(frozen=True, kw_only=True)
class CostEstimate:
    """The corpus's repetition placed against the poor-performance band of the planned model."""

    plan: TrainingPlan
    boundary: PoorPerformanceBoundary
    band_epochs: tuple[float, float]
    corpus_tokens: int
    corpus_epochs: float
    buckets: list[EpochBucket]
    share_in_band: float
    share_above_band: float
    in_band_epochs: tuple[float, float] | None
    """Smallest and largest E among tokens inside the band (None if none)."""
    effective_data_tokens: float | None
    """Data-constrained D' for the whole-corpus epochs (None below one epoch)."""
    effective_size_multiplier: float | None
    """From a fitted sweep that provides one, at the in-band (f, token-weighted geometric mean E)."""
    summary: list[str]


def estimate_cost(
    token_histogram: list[tuple[int, int]],
    plan: TrainingPlan,
    *,
    boundary: PoorPerformanceBoundary = PUBLISHED_BOUNDARIES,
    size_model: EffectiveSizeModel | None = None,
) -> CostEstimate:
    """Place tokens by training repeat count ``E = k T / C`` against ``boundary`` for ``plan.n_params``."""
    corpus_tokens = sum(n for _, n in token_histogram)
    if corpus_tokens == 0:
        raise ValueError("the audit counted no tokens; there is nothing to estimate")
    epochs = plan.n_train_tokens / corpus_tokens
    left, right = boundary.left(plan.n_params), boundary.right(plan.n_params)
    if left >= right:
        raise ValueError(
            f"the boundary ({boundary.source}) gives an empty band at N={plan.n_params:g}: "
            f"left E {left:g} >= right E {right:g}"
        )
    seen = [(k * epochs, n / corpus_tokens) for k, n in token_histogram]
    inside = [(e, f) for e, f in seen if left <= e <= right]
    share_in = sum(f for _, f in inside)
    share_above = sum(f for e, f in seen if e > right)
    in_band = (min(e for e, _ in inside), max(e for e, _ in inside)) if inside else None
    multiplier = None
    if size_model is not None and inside:
        mean_log_e = sum(f * math.log(e) for e, f in inside) / share_in
        multiplier = float(size_model.effective_size_multiplier(plan.n_params, share_in, math.exp(mean_log_e)))
    effective = None
    if epochs > 1:
        effective = float(DATABLATIONS_C4.effective_tokens(plan.n_train_tokens, corpus_tokens))
    estimate = CostEstimate(
        plan=plan,
        boundary=boundary,
        band_epochs=(left, right),
        corpus_tokens=corpus_tokens,
        corpus_epochs=epochs,
        buckets=_buckets(seen, left, right),
        share_in_band=share_in,
        share_above_band=share_above,
        in_band_epochs=in_band,
        effective_data_tokens=effective,
        effective_size_multiplier=multiplier,
        summary=[],
    )
    return dataclasses.replace(estimate, summary=_summary(estimate))


def _buckets(seen: list[tuple[float, float]], left: float, right: float) -> list[EpochBucket]:
    """Log2-spaced buckets of E, each with its token share and where it sits against [left, right]."""
    by_exponent: dict[int, float] = {}
    for e, f in seen:
        j = math.floor(math.log2(e))
        by_exponent[j] = by_exponent.get(j, 0.0) + f
    out = []
    for j in sorted(by_exponent):
        lo, hi = 2.0**j, 2.0 ** (j + 1)
        if hi <= left:
            placement: BandPlacement = "below"
        elif lo > right:
            placement = "above"
        elif lo >= left and hi <= right:
            placement = "inside"
        else:
            placement = "partly"
        out.append(EpochBucket(epochs_min=lo, epochs_max=hi, token_share=by_exponent[j], placement=placement))
    return out


def _summary(c: CostEstimate) -> list[str]:
    """The estimate in a few plain sentences."""
    n = human(c.plan.n_params)
    left, right = c.band_epochs
    band = f"E between {left:,.0f} and {right:,.0f}"
    lines = [
        f"Training a {n}-parameter model on {human(c.plan.n_train_tokens)} tokens of this "
        f"{human(c.corpus_tokens)}-token corpus is {c.corpus_epochs:.3g} epochs; "
        f"the poor-performance band ({c.boundary.source}) for {n} parameters is {band}."
    ]
    if c.in_band_epochs is not None:
        lo, hi = c.in_band_epochs
        lines.append(
            f"{100 * c.share_in_band:.1f}% of your training tokens are repeats seen {lo:,.0f}-{hi:,.0f} times, "
            f"inside the predicted poor-performance band for a {n} model ({band})."
        )
    else:
        lines.append(f"None of your training tokens is repeated inside the predicted poor-performance band ({band}).")
    if c.corpus_epochs >= left:
        lines.append(
            f"Even text that occurs once is seen {c.corpus_epochs:.3g} times. The band was measured for a small "
            f"repeated subset among fresh data; with the whole corpus repeated, the data-constrained estimate "
            f"is the better guide."
        )
    if c.share_above_band > 0:
        lines.append(
            f"{100 * c.share_above_band:.1f}% are seen more than {right:,.0f} times, past the band: Hernandez et al. "
            f"saw less damage there (so little distinct text is memorised), but that compute teaches nothing new."
        )
    if c.effective_size_multiplier is not None:
        lines.append(
            f"The fitted sweep predicts an effective model size of {c.effective_size_multiplier:.2f}x "
            f"({human(c.effective_size_multiplier * c.plan.n_params)} parameters)."
        )
    if c.effective_data_tokens is not None:
        lines.append(
            f"Repeating the whole corpus {c.corpus_epochs:.3g} times is worth {human(c.effective_data_tokens)} "
            f"fresh tokens ({100 * c.effective_data_tokens / c.plan.n_train_tokens:.0f}% of the "
            f"{human(c.plan.n_train_tokens)}) by the data-constrained law (Muennighoff et al. 2023)."
        )
    return lines


def human(value: float) -> str:
    """125000000 -> '125M'; three significant digits."""
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"
