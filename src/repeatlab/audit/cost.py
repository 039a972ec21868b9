"""What the measured repetition predicts for a planned model: the poor-performance band, in plain words.

Hernandez et al. 2022 find that repeating a small share of the data many times hurts most when the
repeat count E sits in a band that moves with model size N (non-embedding parameters), the poor-performance
region that ``repeatlab.laws.region`` defines. The published region is the default; one fitted to the user's
own sweep (``PoorRegion.from_json``) replaces it.

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
from typing import Literal

from repeatlab.errors import RepeatlabError
from repeatlab.laws.forms import DATABLATIONS_C4
from repeatlab.laws.region import HERNANDEZ_2022, PoorRegion

BandPlacement = Literal["below", "partly", "inside", "above"]


@dataclass(frozen=True, kw_only=True)
class TrainingPlan:
    """The model the corpus is meant for."""

    n_params: float
    """Non-embedding parameters N."""
    n_train_tokens: float
    """Training tokens T, counted with the audit's tokenizer (bytes for ``byte``)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.n_params) and self.n_params > 0):
            raise RepeatlabError(f"n_params must be positive, got {self.n_params}")
        if not (math.isfinite(self.n_train_tokens) and self.n_train_tokens > 0):
            raise RepeatlabError(f"n_train_tokens must be positive, got {self.n_train_tokens}")


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
    region: PoorRegion
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
    summary: list[str]


def estimate_cost(
    token_histogram: list[tuple[int, int]],
    plan: TrainingPlan,
    *,
    region: PoorRegion = HERNANDEZ_2022,
) -> CostEstimate:
    """Place tokens by training repeat count ``E = k T / C`` against ``region``'s band for ``plan.n_params``."""
    corpus_tokens = sum(n for _, n in token_histogram)
    if corpus_tokens == 0:
        raise RepeatlabError("the audit counted no tokens; there is nothing to estimate")
    epochs = plan.n_train_tokens / corpus_tokens
    left, right = (float(edge) for edge in region.band(plan.n_params))
    if left >= right:
        raise RepeatlabError(
            f"the poor-performance region ({region.source}) gives an empty band at N={plan.n_params:g}: "
            f"left E {left:g} >= right E {right:g}"
        )
    seen = [(k * epochs, n / corpus_tokens) for k, n in token_histogram]
    inside = [(e, f) for e, f in seen if left <= e <= right]
    share_in = sum(f for _, f in inside)
    share_above = sum(f for e, f in seen if e > right)
    in_band = (min(e for e, _ in inside), max(e for e, _ in inside)) if inside else None
    effective = None
    if epochs > 1:
        effective = float(DATABLATIONS_C4.effective_tokens(plan.n_train_tokens, corpus_tokens))
    estimate = CostEstimate(
        plan=plan,
        region=region,
        band_epochs=(left, right),
        corpus_tokens=corpus_tokens,
        corpus_epochs=epochs,
        buckets=_buckets(seen, left, right),
        share_in_band=share_in,
        share_above_band=share_above,
        in_band_epochs=in_band,
        effective_data_tokens=effective,
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
        f"the poor-performance band ({c.region.source}) for {n} parameters is {band}."
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
