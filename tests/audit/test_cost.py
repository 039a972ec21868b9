"""Cost estimate: band boundaries, placement of training repeats, data-constrained value, fitted inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from repeatlab.audit.cost import PUBLISHED_BOUNDARIES, PoorPerformanceBoundary, TrainingPlan, estimate_cost


def test_published_band_for_125m() -> None:
    n = 125e6
    assert PUBLISHED_BOUNDARIES.left(n) == pytest.approx(4.2e6 * n**-0.56)
    assert PUBLISHED_BOUNDARIES.right(n) == pytest.approx(5.1e7 * n**-0.50)
    assert 100 < PUBLISHED_BOUNDARIES.left(n) < PUBLISHED_BOUNDARIES.right(n) < 5000


def test_training_repeats_placed_against_the_band() -> None:
    # Corpus of 1,000 tokens: 900 unique, 60 repeated 10x, 40 repeated 1,000x; train on 2 epochs.
    histogram = [(1, 900), (10, 60), (1000, 40)]
    plan = TrainingPlan(n_params=125e6, n_train_tokens=2000)
    left, right = PUBLISHED_BOUNDARIES.left(125e6), PUBLISHED_BOUNDARIES.right(125e6)
    estimate = estimate_cost(histogram, plan)
    assert estimate.corpus_epochs == 2 and estimate.band_epochs == (left, right)
    # E = 2 (unique), 20, 2000: only the last is inside [~123, ~4562]
    assert estimate.share_in_band == pytest.approx(0.04)
    assert estimate.in_band_epochs == (2000, 2000) and estimate.share_above_band == 0
    assert sum(b.token_share for b in estimate.buckets) == pytest.approx(1.0)
    placement = {b.epochs_min: b.placement for b in estimate.buckets}
    assert placement == {2: "below", 16: "below", 1024: "inside"}
    assert any("4.0% of your training tokens are repeats seen 2,000-2,000 times" in s for s in estimate.summary)
    # Muennighoff: D' = U + U R* (1 - exp(-R_D / R*)), R_D = epochs - 1
    r_star = 15.387756
    assert estimate.effective_data_tokens == pytest.approx(1000 + 1000 * r_star * (1 - math.exp(-1 / r_star)))
    assert estimate.effective_size_multiplier is None


def test_below_one_epoch_has_no_data_constrained_term_and_nothing_in_band() -> None:
    estimate = estimate_cost([(1, 990), (3, 10)], TrainingPlan(n_params=1e9, n_train_tokens=500))
    assert estimate.effective_data_tokens is None and estimate.in_band_epochs is None
    assert any("None of your training tokens" in s for s in estimate.summary)


class _FittedSweep:
    """Stands in for a boundary fitted by repeatlab.laws from the user's own sweep."""

    k_left, alpha_left, k_right, alpha_right = 10.0, 0.0, 100.0, 0.0

    def effective_size_multiplier(self, n_params: float, repeated_fraction: float, repeated_epochs: float) -> float:
        return 1 - repeated_fraction * math.log10(repeated_epochs) / 4


def test_fitted_boundary_and_size_model() -> None:
    sweep = _FittedSweep()
    boundary = PoorPerformanceBoundary.from_fitted(sweep, source="my sweep")
    estimate = estimate_cost([(1, 800), (50, 200)], TrainingPlan(n_params=1e8, n_train_tokens=1000),
                             boundary=boundary, size_model=sweep)
    assert estimate.band_epochs == (10, 100) and estimate.share_in_band == pytest.approx(0.2)
    assert estimate.effective_size_multiplier == pytest.approx(1 - 0.2 * math.log10(50) / 4)
    assert any("effective model size" in s for s in estimate.summary)


def test_boundary_json_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"k_left": 1e6, "alpha_left": 0.5, "k_right": 1e7, "alpha_right": 0.5}))
    assert PoorPerformanceBoundary.from_json(path).right(1e6) == pytest.approx(1e4)
    path.write_text(json.dumps({"k_left": 1e6, "alpha_left": 0.5, "k_right": 1e7}))
    with pytest.raises(ValueError, match="missing alpha_right"):
        PoorPerformanceBoundary.from_json(path)
    with pytest.raises(ValueError, match="k_left"):
        PoorPerformanceBoundary(k_left=-1, alpha_left=0.5, k_right=1, alpha_right=0.5)
    with pytest.raises(ValueError, match="n_train_tokens"):
        TrainingPlan(n_params=1e6, n_train_tokens=0)
    with pytest.raises(ValueError, match="lacks"):
        PoorPerformanceBoundary.from_fitted(object())
