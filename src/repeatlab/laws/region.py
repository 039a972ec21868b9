"""The poor-performance region of Hernandez et al. 2022 (Fig. 4): how many repeats do the most harm.

Repeating a small subset of the training data a moderate number of times hurts test loss most; too few repeats
do little and too many make the subset so small it is merely memorised. For each model size of a sweep, the
band of repeated epochs where the degradation (loss minus the control's loss at the same size) is at least half
its maximum is found; its two edges, across sizes, follow power laws E = k N^alpha, which are fitted here. The
published edges are offered as ``HERNANDEZ_2022``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from repeatlab.errors import RepeatlabError
from repeatlab.laws.forms import FloatArray
from repeatlab.laws.results import JsonResult
from repeatlab.laws.table import RunsLike, as_run_table


@dataclass(frozen=True, kw_only=True)
class BoundaryLaw:
    """E(N) = k N^alpha: one edge of the region, in repeated epochs, as a function of parameters."""

    k: float
    """Repeated epochs at N = 1 (a fit constant; only meaningful with alpha)."""
    alpha: float
    """Exponent in N (negative: bigger models are hurt by fewer repeats)."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.k) and self.k > 0):
            raise RepeatlabError(f"BoundaryLaw.k must be positive and finite, got {self.k!r}")
        if not np.isfinite(self.alpha):
            raise RepeatlabError(f"BoundaryLaw.alpha must be finite, got {self.alpha!r}")

    def epochs(self, n_params: ArrayLike) -> FloatArray:
        return self.k * np.asarray(n_params, dtype=np.float64) ** self.alpha


@dataclass(frozen=True, kw_only=True)
class PoorRegion(JsonResult):
    """The band of repeated epochs between two boundary laws: the one definition that ``plan``, ``audit`` and the
    report all use."""

    left: BoundaryLaw
    """Fewest repeats in the band."""
    right: BoundaryLaw
    """Most repeats in the band."""
    source: str = "fitted"
    """Where the constants come from, quoted wherever the band is."""

    @classmethod
    def from_json(cls, path: str | Path) -> PoorRegion:
        """Read ``{"left": {"k": .., "alpha": ..}, "right": {..}, "source": ..}`` (``source`` optional), the
        layout of ``PoorRegion.to_dict()``; a ``PoorRegionFit``'s JSON is accepted too (its two edge laws)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RepeatlabError(f"cannot read the poor-performance region {path}: {exc}") from None
        if isinstance(data, dict) and {"k_left", "alpha_left"} & set(data):
            raise RepeatlabError(
                f"{path} uses the retired layout k_left/alpha_left/k_right/alpha_right (E = k N^-alpha); write "
                '{"left": {"k": K_LEFT, "alpha": -ALPHA_LEFT}, "right": {"k": K_RIGHT, "alpha": -ALPHA_RIGHT}} '
                "(E = k N^alpha, exponents negative)"
            )
        allowed = {"left", "right", "source"} | {f.name for f in dataclasses.fields(PoorRegionFit)}
        if not isinstance(data, dict) or not {"left", "right"} <= set(data) or set(data) - allowed:
            raise RepeatlabError(f'{path} must hold {{"left": {{"k": .., "alpha": ..}}, "right": {{..}}}} and optionally '
                             f'"source"; got keys {sorted(data) if isinstance(data, dict) else type(data).__name__}')
        edges = {}
        for edge in ("left", "right"):
            law = data[edge]
            if law is None:
                raise RepeatlabError(f"{path}: the fit has no {edge} edge (fewer than two model sizes with an uncensored "
                                 f"{edge} edge); the sweep needs more sizes or a wider range of repeated epochs")
            if not isinstance(law, dict) or set(law) != {"k", "alpha"}:
                raise RepeatlabError(f'{path}: "{edge}" must be {{"k": .., "alpha": ..}}, got {law!r}')
            if not all(isinstance(law[key], int | float) and not isinstance(law[key], bool) for key in ("k", "alpha")):
                raise RepeatlabError(f'{path}: "{edge}" needs numbers for k and alpha, got {law!r}')
            edges[edge] = BoundaryLaw(k=float(law["k"]), alpha=float(law["alpha"]))
        return cls(**edges, source=str(data.get("source", f"fitted ({path})")))

    def band(self, n_params: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(first, last) repeated epochs of the band for models of ``n_params`` parameters."""
        return self.left.epochs(n_params), self.right.epochs(n_params)

    def contains(self, n_params: ArrayLike, epochs: ArrayLike) -> NDArray[np.bool_]:
        first, last = self.band(n_params)
        value = np.asarray(epochs, dtype=np.float64)
        return (value >= first) & (value <= last)


HERNANDEZ_2022 = PoorRegion(left=BoundaryLaw(k=4.2e6, alpha=-0.56), right=BoundaryLaw(k=5.1e7, alpha=-0.50),
                            source="Hernandez et al. 2022 (published)")
"""The boundaries Hernandez et al. 2022 fitted to their sweep (Fig. 4)."""


@dataclass(frozen=True, kw_only=True)
class SizeBand:
    """The band found for one model size."""

    n_params: float
    """Model size."""
    peak_epochs: float
    """Repeated epochs of the worst run."""
    max_degradation: float
    """Its loss minus the control's loss."""
    left_epochs: float
    """Where degradation first reaches ``fraction`` of the maximum (log-interpolated between runs)."""
    right_epochs: float
    """Where it last does."""
    left_censored: bool
    """The band already starts at the fewest repeats tried: the true edge is at or below ``left_epochs``."""
    right_censored: bool
    """The band runs to the most repeats tried: the true edge is at or above ``right_epochs``."""


@dataclass(frozen=True, kw_only=True)
class PoorRegionFit(JsonResult):
    """Bands per model size and the power laws through their edges."""

    fraction: float
    """Share of the maximum degradation that defines the band (0.5 in Hernandez et al.)."""
    bands: tuple[SizeBand, ...]
    """One per model size that repetition hurt, smallest first."""
    unharmed_sizes: tuple[float, ...]
    """Model sizes where no repeated run was worse than the control."""
    left: BoundaryLaw | None
    """Fit of the left edges (None with fewer than two uncensored edges)."""
    right: BoundaryLaw | None
    """Fit of the right edges (None with fewer than two uncensored edges)."""


def find_poor_region(
    runs: RunsLike, *, fraction: float = 0.5, repeated_fraction: float | None = None
) -> PoorRegionFit:
    """Find the band of harmful repeat counts for each model size of a sweep and fit its edges across sizes.

    The table needs ``params``, ``loss``, ``repeated_fraction`` (0 marks the controls) and ``repeated_epochs``.
    Repeated runs with the same size and epochs (seeds) are averaged.

    Args:
        repeated_fraction: keep only repeated runs with this fraction; required when the sweep mixes fractions,
            since a band is a curve over epochs at one fraction.
    """
    if not 0 < fraction < 1:
        raise RepeatlabError(f"fraction must be in (0, 1), got {fraction!r}")
    table = as_run_table(runs)
    share = table.column("repeated_fraction")
    epochs = table.column("repeated_epochs")
    control = table.control_mask()
    repeated = ~control if repeated_fraction is None else ~control & np.isclose(share, repeated_fraction)
    if not repeated.any():
        raise RepeatlabError("the sweep has no repeated runs" + ("" if repeated_fraction is None else " at that fraction"))
    if np.unique(share[repeated]).size > 1:
        raise RepeatlabError(
            f"the sweep mixes repeated fractions {sorted(set(share[repeated].tolist()))}: pass repeated_fraction"
        )
    if np.any(epochs[repeated] <= 0):
        raise RepeatlabError("repeated_epochs must be positive on repeated runs")

    bands, unharmed = [], []
    for n_params in np.unique(table.params[repeated]):
        at_size = np.isclose(table.params, n_params)
        if not (control & at_size).any():
            raise RepeatlabError(f"no control run (repeated_fraction 0) for the model size {n_params:.4g}")
        baseline = table.loss[control & at_size].mean()
        rows = repeated & at_size
        grid = np.unique(epochs[rows])
        degradation = np.array([table.loss[rows & (epochs == e)].mean() for e in grid]) - baseline
        if degradation.max() <= 0:
            unharmed.append(float(n_params))
            continue
        bands.append(_band(float(n_params), grid, degradation, fraction))
    return PoorRegionFit(
        fraction=fraction,
        bands=tuple(bands),
        unharmed_sizes=tuple(unharmed),
        left=_fit_edge([(b.n_params, b.left_epochs) for b in bands if not b.left_censored]),
        right=_fit_edge([(b.n_params, b.right_epochs) for b in bands if not b.right_censored]),
    )


def _band(n_params: float, epochs: FloatArray, degradation: FloatArray, fraction: float) -> SizeBand:
    peak = int(np.argmax(degradation))
    threshold = fraction * degradation[peak]
    log_e = np.log(epochs)
    left = peak
    while left > 0 and degradation[left - 1] >= threshold:
        left -= 1
    right = peak
    while right < len(epochs) - 1 and degradation[right + 1] >= threshold:
        right += 1

    def crossing(inside: int, outside: int) -> float:
        # Linear in degradation against log epochs, between the last point in the band and the first out of it.
        share = (degradation[inside] - threshold) / (degradation[inside] - degradation[outside])
        return float(np.exp(log_e[inside] + share * (log_e[outside] - log_e[inside])))

    return SizeBand(
        n_params=n_params,
        peak_epochs=float(epochs[peak]),
        max_degradation=float(degradation[peak]),
        left_epochs=float(epochs[0]) if left == 0 else crossing(left, left - 1),
        right_epochs=float(epochs[-1]) if right == len(epochs) - 1 else crossing(right, right + 1),
        left_censored=left == 0,
        right_censored=right == len(epochs) - 1,
    )


def _fit_edge(points: list[tuple[float, float]]) -> BoundaryLaw | None:
    """Least squares in log-log space through (N, epochs) points; None below two distinct sizes."""
    if len({n for n, _ in points}) < 2:
        return None
    log_n, log_e = np.log(np.array(points)).T
    alpha, log_k = np.polyfit(log_n, log_e, 1)
    return BoundaryLaw(k=float(np.exp(log_k)), alpha=float(alpha))
