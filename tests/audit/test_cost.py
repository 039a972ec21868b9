"""Cost estimate: the band, placement of training repeats, data-constrained value, a fitted region."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from repeatlab.audit.cost import TrainingPlan, estimate_cost
from repeatlab.laws import HERNANDEZ_2022, PoorRegion, find_poor_region, plan_repeats


def test_published_band_for_125m() -> None:
    left, right = (float(v) for v in HERNANDEZ_2022.band(125e6))
    assert left == pytest.approx(4.2e6 * 125e6**-0.56) and right == pytest.approx(5.1e7 * 125e6**-0.50)
    assert 100 < left < right < 5000


def test_training_repeats_placed_against_the_band() -> None:
    # Corpus of 1,000 tokens: 900 unique, 60 repeated 10x, 40 repeated 1,000x; train on 2 epochs.
    histogram = [(1, 900), (10, 60), (1000, 40)]
    plan = TrainingPlan(n_params=125e6, n_train_tokens=2000)
    left, right = (float(v) for v in HERNANDEZ_2022.band(125e6))
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


def test_below_one_epoch_has_no_data_constrained_term_and_nothing_in_band() -> None:
    estimate = estimate_cost([(1, 990), (3, 10)], TrainingPlan(n_params=1e9, n_train_tokens=500))
    assert estimate.effective_data_tokens is None and estimate.in_band_epochs is None
    assert any("None of your training tokens" in s for s in estimate.summary)


def test_a_region_fitted_to_a_sweep_is_read_back_and_used(tmp_path: Path) -> None:
    """The JSON of a real ``find_poor_region`` fit drives the estimate, and ``plan`` and ``audit`` use the same band.
    Half-maximum edges at E = 100 and 10,000 for N = 1e6 and at 10 and 1,000 for N = 1e8: E = k N^-0.5."""
    rows = [{"params": n, "loss": 3.0, "repeated_fraction": 0.0, "repeated_epochs": 0.0} for n in (1e6, 1e8)]
    for n, bump in ((1e6, [0, 0, 0.1, 0.2, 0.1, 0]), (1e8, [0, 0.1, 0.2, 0.1, 0, 0])):
        rows += [{"params": n, "loss": 3.0 + d, "repeated_fraction": 0.1, "repeated_epochs": 10.0**i}
                 for i, d in enumerate(bump)]
    path = tmp_path / "region.json"
    path.write_text(json.dumps(find_poor_region(pd.DataFrame(rows)).to_dict()))
    region = PoorRegion.from_json(path)
    assert region.source == f"fitted ({path})"
    estimate = estimate_cost([(1, 800), (500, 200)], TrainingPlan(n_params=1e8, n_train_tokens=1000), region=region)
    assert estimate.band_epochs == (pytest.approx(10.0), pytest.approx(1000.0))
    assert estimate.share_in_band == pytest.approx(0.2)
    assert any(f"band (fitted ({path})) for 100M parameters is E between 10 and 1,000" in s for s in estimate.summary)
    risks = plan_repeats(n_params=1e8, total_tokens=1e9, repeated_fraction=0.1, repeats=[9.0, 11.0, 999.0, 1001.0],
                         region=region).repeats
    assert [r.in_poor_region for r in risks] == [False, True, True, False]


def test_region_json_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"left": {"k": 1e6, "alpha": -0.5}, "right": {"k": 1e7, "alpha": -0.5},
                                "source": "my sweep"}))
    region = PoorRegion.from_json(path)
    assert float(region.right.epochs(1e6)) == pytest.approx(1e4) and region.source == "my sweep"
    assert estimate_cost([(1, 10)], TrainingPlan(n_params=1e6, n_train_tokens=10), region=region).band_epochs == (
        pytest.approx(1e3), pytest.approx(1e4))
    for data, message in [
        ({"k_left": 1e6, "alpha_left": 0.5, "k_right": 1e7, "alpha_right": 0.5}, "retired layout"),
        ({"left": {"k": 1e6, "alpha": -0.5}}, "must hold"),
        ({"left": None, "right": {"k": 1e7, "alpha": -0.5}}, "no left edge"),
        ({"left": {"k": -1.0, "alpha": -0.5}, "right": {"k": 1e7, "alpha": -0.5}}, "k must be positive"),
        ({"left": {"k": 1e6}, "right": {"k": 1e7, "alpha": -0.5}}, '"left" must be'),
        ({"left": {"k": "big", "alpha": -0.5}, "right": {"k": 1e7, "alpha": -0.5}}, "needs numbers"),
    ]:
        path.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=message):
            PoorRegion.from_json(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="cannot read the poor-performance region"):
        PoorRegion.from_json(path)
    with pytest.raises(ValueError, match="n_train_tokens"):
        TrainingPlan(n_params=1e6, n_train_tokens=0)
