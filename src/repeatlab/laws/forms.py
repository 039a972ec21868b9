"""The functional forms of the scaling laws, as typed, validated values, and the published constants.

Each law is a frozen dataclass whose fields are the constants of the paper that introduced it, so a
fitted law and a published one are the same kind of object and can be compared, serialised and used
to predict. Everything here is a pure function of numbers: fitting lives in ``repeatlab.laws.fit``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from repeatlab.errors import RepeatlabError

FloatArray = NDArray[np.float64]


def _require_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise RepeatlabError(f"{owner}.{name} must be a positive finite number, got {value!r}")


def _as_positive_array(name: str, values: ArrayLike) -> FloatArray:
    """Inputs to a law are counts (parameters, tokens, FLOPs): reject zeros, negatives and NaN early."""
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise RepeatlabError(f"{name} must be positive and finite, got {values!r}")
    return array


@dataclass(frozen=True, kw_only=True)
class PowerLaw:
    """L(N) = E + (N_c / N)^alpha: loss against parameter count at fixed (ample) data."""

    E: float
    """Irreducible loss the curve approaches as N grows (0 for Kaplan et al.'s pure power law)."""
    n_c: float
    """Scale constant, in parameters."""
    alpha: float
    """Exponent: how fast loss falls with N."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.E) and self.E >= 0):
            raise RepeatlabError(f"PowerLaw.E must be a non-negative finite number, got {self.E!r}")
        _require_positive("PowerLaw", n_c=self.n_c, alpha=self.alpha)

    def loss(self, n_params: ArrayLike) -> FloatArray:
        n = _as_positive_array("n_params", n_params)
        return self.E + (self.n_c / n) ** self.alpha

    def params_for_loss(self, loss: ArrayLike) -> FloatArray:
        """Invert the law: the parameter count whose predicted loss is ``loss``.

        A loss at or below E is out of reach of any model on this curve: the answer is ``inf``.
        """
        value = np.asarray(loss, dtype=np.float64)
        if np.any(~np.isfinite(value)):
            raise RepeatlabError(f"loss must be finite, got {loss!r}")
        excess = value - self.E
        with np.errstate(divide="ignore"):
            return np.where(excess > 0, self.n_c / np.maximum(excess, np.finfo(float).tiny) ** (1 / self.alpha), np.inf)


@dataclass(frozen=True, kw_only=True)
class ChinchillaLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, Approach 3)."""

    A: float
    """Coefficient of the parameter term."""
    B: float
    """Coefficient of the data term."""
    E: float
    """Irreducible loss."""
    alpha: float
    """Parameter exponent."""
    beta: float
    """Data exponent."""

    def __post_init__(self) -> None:
        _require_positive("ChinchillaLaw", A=self.A, B=self.B, E=self.E, alpha=self.alpha, beta=self.beta)

    def loss(self, n_params: ArrayLike, n_tokens: ArrayLike) -> FloatArray:
        n = _as_positive_array("n_params", n_params)
        d = _as_positive_array("n_tokens", n_tokens)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    @property
    def params_exponent(self) -> float:
        """a in N_opt ∝ C^a: beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def _g(self) -> float:
        # G of Hoffmann et al. eq. 4: N_opt = G (C/6)^a, D_opt = (C/6)^b / G.
        return (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))

    def compute_optimal(self, flops: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """The loss-minimising (N, D) for a budget of C = 6 N D FLOPs, with unlimited fresh data."""
        c = _as_positive_array("flops", flops)
        a = self.params_exponent
        n_opt = self._g * (c / 6) ** a
        d_opt = (c / 6) ** (1 - a) / self._g
        return n_opt, d_opt

    def optimal_params_for_tokens(self, n_tokens: ArrayLike) -> FloatArray:
        """The N that is compute-optimal when trained on ``n_tokens`` tokens (datablations' N_opt(U))."""
        d = _as_positive_array("n_tokens", n_tokens)
        with np.errstate(over="ignore"):  # inf is the right answer when beta/alpha is large: no cap on N
            return (d * self._g) ** (self.beta / self.alpha) * self._g


@dataclass(frozen=True, kw_only=True)
class DataConstrainedLaw:
    """Muennighoff et al. 2023: the Chinchilla form evaluated at effective data D' and parameters N'.

    D' = U + U R_D* (1 - exp(-R_D / R_D*)) with R_D = max(D / U - 1, 0) repeated epochs, so repeated tokens are
    worth less and less; N' is built the same way from U_N = min(N, N_opt(U)), the largest model the unique data
    can feed compute-optimally, and R_N = max(N / U_N - 1, 0) "excess" parameters.
    """

    base: ChinchillaLaw
    """The single-epoch law; it also defines N_opt(U) for U_N."""
    r_d_star: float
    """R_D*: repeated epochs at which the value of repeated data has decayed by 1 - 1/e."""
    r_n_star: float
    """R_N*: the same decay constant for excess parameters."""

    def __post_init__(self) -> None:
        _require_positive("DataConstrainedLaw", r_d_star=self.r_d_star, r_n_star=self.r_n_star)

    def effective_tokens(self, n_tokens: ArrayLike, unique_tokens: ArrayLike) -> FloatArray:
        d = _as_positive_array("n_tokens", n_tokens)
        u = _as_positive_array("unique_tokens", unique_tokens)
        r_d = np.maximum(d / u - 1, 0)
        return u + u * self.r_d_star * (1 - np.exp(-r_d / self.r_d_star))

    def effective_params(self, n_params: ArrayLike, unique_tokens: ArrayLike) -> FloatArray:
        n = _as_positive_array("n_params", n_params)
        u = _as_positive_array("unique_tokens", unique_tokens)
        u_n = np.minimum(n, self.base.optimal_params_for_tokens(u))
        r_n = np.maximum(n / u_n - 1, 0)
        return u_n + u_n * self.r_n_star * (1 - np.exp(-r_n / self.r_n_star))

    def loss(self, n_params: ArrayLike, n_tokens: ArrayLike, unique_tokens: ArrayLike) -> FloatArray:
        """Predicted loss of N parameters trained for D tokens drawn from U unique ones.

        Like datablations' ``scaling_law``, U must not exceed D (a run sees at most D distinct tokens: pass
        ``min(U, D)`` when the pool is larger than the run).
        """
        d = _as_positive_array("n_tokens", n_tokens)
        u = _as_positive_array("unique_tokens", unique_tokens)
        if np.any(u > d * (1 + 1e-12)):
            raise RepeatlabError("unique_tokens must not exceed n_tokens (pass min(U, D))")
        n_eff = self.effective_params(n_params, u)
        d_eff = self.effective_tokens(d, u)
        return self.base.E + self.base.A / n_eff**self.base.alpha + self.base.B / d_eff**self.base.beta


# Published constants ------------------------------------------------------------------------------------------

KAPLAN_2020 = PowerLaw(E=0.0, n_c=8.8e13, alpha=0.076)
"""Kaplan et al. 2020, eq. 1.1: L(N) = (N_c / N)^alpha_N for non-embedding parameters, ample data."""

BESIROGLU_2024 = ChinchillaLaw(A=482.01, B=2085.43, E=1.817, alpha=0.3478, beta=0.3658)
"""Besiroglu et al. 2024's headline corrected fit of Hoffmann et al.'s Approach 3, on 240 points digitised from
Hoffmann's Figure 4 (epoch-research/analyzing-chinchilla; tests/laws/data/README.md). Hoffmann's own
406.4/410.7/1.69/0.34/0.28 came from an optimiser stopped early and is deliberately not offered."""

BESIROGLU_2024_REPLICATE_EXACTLY = ChinchillaLaw(A=477.84, B=2143.86, E=1.8172, alpha=0.34731, beta=0.36718)
"""The same paper's "replicate exactly" fit (Hoffmann's objective and grid of starts, L-BFGS-B), which
``repeatlab laws fit --form chinchilla`` reproduces on those points (tests/laws/test_published.py); A and B are
weakly determined (a few tenths of a percent), E, alpha and beta to three or four digits."""

DATABLATIONS_C4_BASE = ChinchillaLaw(
    A=math.exp(6.255414), B=math.exp(7.3049974), E=math.exp(0.6254804), alpha=0.3526596, beta=0.3526596
)
"""Muennighoff et al. 2023's Chinchilla-form fit to Hoffmann et al.'s C4 points (alpha tied to beta)."""

DATABLATIONS_C4 = DataConstrainedLaw(base=DATABLATIONS_C4_BASE, r_d_star=15.387756, r_n_star=5.309743)
"""Muennighoff et al. 2023's data-constrained law, the constants of their README."""
