"""The functional forms: published values, invariants of the compute-optimal split, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repeatlab.laws import (
    BESIROGLU_2024,
    BESIROGLU_2024_REPLICATE_EXACTLY,
    DATABLATIONS_C4,
    DATABLATIONS_C4_BASE,
    KAPLAN_2020,
    ChinchillaLaw,
    DataConstrainedLaw,
    PowerLaw,
)


def test_datablations_readme_predictions_exact() -> None:
    # datablations README: scaling_law(6.34e9, 242e9, 25e9) and scaling_law(8.67e9, 178e9, 25e9).
    assert DATABLATIONS_C4.loss(6.34e9, 242e9, 25e9) == pytest.approx(2.2256440889984477, rel=1e-12)
    assert DATABLATIONS_C4.loss(8.67e9, 178e9, 25e9) == pytest.approx(2.2269634075087867, rel=1e-12)


def test_datablations_base_constants_are_the_published_logs() -> None:
    assert math.log(DATABLATIONS_C4_BASE.A) == pytest.approx(6.255414)
    assert math.log(DATABLATIONS_C4_BASE.B) == pytest.approx(7.3049974)
    assert math.log(DATABLATIONS_C4_BASE.E) == pytest.approx(0.6254804)


def test_compute_optimal_spends_the_budget_and_is_the_minimum() -> None:
    law = BESIROGLU_2024
    for flops in (1e19, 1e21, 1e24):
        n, d = law.compute_optimal(flops)
        assert 6 * n * d == pytest.approx(flops, rel=1e-12)
        # Moving along the iso-FLOP line in either direction can only raise the loss.
        for factor in (0.9, 1.1):
            assert law.loss(n * factor, d / factor) > law.loss(n, d)


def test_compute_optimal_exponent_and_tokens_per_parameter() -> None:
    # Besiroglu et al.: a = beta / (alpha + beta) = 0.513, about 20 tokens per parameter.
    assert BESIROGLU_2024.params_exponent == pytest.approx(0.513, abs=1e-3)
    n, d = BESIROGLU_2024.compute_optimal(1e23)
    assert 15 < d / n < 30


def test_optimal_params_for_tokens_inverts_the_optimal_tokens() -> None:
    law = ChinchillaLaw(A=400.0, B=1800.0, E=1.8, alpha=0.34, beta=0.37)
    n, d = law.compute_optimal(np.array([1e20, 1e22]))
    np.testing.assert_allclose(law.optimal_params_for_tokens(d), n, rtol=1e-10)


def test_data_constrained_reduces_to_chinchilla_without_repetition() -> None:
    # One epoch (U = D) and a model small enough for its data: N' = N and D' = D.
    n, d = 1e8, 5e9
    assert DATABLATIONS_C4.loss(n, d, d) == pytest.approx(DATABLATIONS_C4.base.loss(n, d), rel=1e-12)


def test_repeated_tokens_are_worth_less_and_saturate() -> None:
    law = DATABLATIONS_C4
    u = 1e9
    d_eff = law.effective_tokens(u * np.array([1, 2, 5, 50, 1e4]), u)
    assert np.all(np.diff(d_eff) > 0)
    assert d_eff[1] < 2 * u
    assert d_eff[-1] == pytest.approx(u * (1 + law.r_d_star), rel=1e-6)


def test_power_law_inversion_round_trips() -> None:
    law = PowerLaw(E=1.7, n_c=2.4e8, alpha=0.3)
    n = np.array([1e6, 3e7, 8e9])
    np.testing.assert_allclose(law.params_for_loss(law.loss(n)), n, rtol=1e-10)
    assert law.params_for_loss(1.7) == np.inf
    assert KAPLAN_2020.params_for_loss(KAPLAN_2020.loss(1e9)) == pytest.approx(1e9)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: PowerLaw(E=-1.0, n_c=1e8, alpha=0.3), "E"),
        (lambda: PowerLaw(E=1.0, n_c=1e8, alpha=0.0), "alpha"),
        (lambda: ChinchillaLaw(A=400.0, B=float("nan"), E=1.8, alpha=0.3, beta=0.3), "B"),
        (lambda: DataConstrainedLaw(base=DATABLATIONS_C4_BASE, r_d_star=0.0, r_n_star=5.0), "r_d_star"),
    ],
)
def test_invalid_constants_name_the_field(make, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make()


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_params"):
        BESIROGLU_2024.loss(0.0, 1e9)
    with pytest.raises(ValueError, match="n_tokens"):
        BESIROGLU_2024.loss(1e9, float("nan"))
    with pytest.raises(ValueError, match="unique_tokens must not exceed"):
        DATABLATIONS_C4.loss(1e9, 1e9, 2e9)


def test_both_published_besiroglu_fits_are_whole() -> None:
    # tests/laws/data/README.md: the headline fit and the "replicate exactly" fit, each with its own E.
    headline, exact = BESIROGLU_2024, BESIROGLU_2024_REPLICATE_EXACTLY
    assert (headline.A, headline.B, headline.E, headline.alpha, headline.beta) == (482.01, 2085.43, 1.817, 0.3478,
                                                                                   0.3658)
    assert (exact.A, exact.B, exact.E, exact.alpha, exact.beta) == (477.84, 2143.86, 1.8172, 0.34731, 0.36718)
