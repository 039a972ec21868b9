"""Effective model size: inverting the controls' scaling for loss and for other metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repeatlab.laws import FitError, PowerLaw, effective_sizes, fit_metric_scaling

LOSS = PowerLaw(E=1.7, n_c=2.4e8, alpha=0.3)
COPY = PowerLaw(E=0.4, n_c=5e8, alpha=0.35)  # loss on copied text
PREFIX = PowerLaw(E=0.05, n_c=3e6, alpha=0.25)  # 1 - prefix-matching score
SIZES = np.array([1e7, 3e7, 1e8, 3e8, 1e9, 3e9])


def _sweep() -> pd.DataFrame:
    """Controls on the laws above, and one 800M repeated run that performs like a 400M model on test loss,
    a 100M one on copying and a 200M one on prefix matching."""
    controls = pd.DataFrame(
        {
            "params": SIZES,
            "loss": LOSS.loss(SIZES),
            "copy_loss": COPY.loss(SIZES),
            "prefix_score": 1 - PREFIX.loss(SIZES),
            "repeated_fraction": 0.0,
        }
    )
    degraded = pd.DataFrame(
        {
            "params": [8e8],
            "loss": LOSS.loss(4e8),
            "copy_loss": COPY.loss(1e8),
            "prefix_score": 1 - PREFIX.loss(2e8),
            "repeated_fraction": [0.1],
        }
    )
    return pd.concat([controls, degraded], ignore_index=True)


def test_copying_is_damaged_more_than_test_loss() -> None:
    sweep = _sweep()
    scalings = [
        fit_metric_scaling(sweep, "loss"),
        fit_metric_scaling(sweep, "copy_loss"),
        fit_metric_scaling(sweep, "prefix_score", higher_is_better=True),
    ]
    sizes = {s.metric: s for s in effective_sizes(sweep, scalings)}
    assert set(sizes) == {"loss", "copy_loss", "prefix_score"}
    assert sizes["loss"].run == 6 and sizes["loss"].n_params == 8e8
    assert sizes["loss"].multiplier == pytest.approx(0.5, rel=1e-3)
    assert sizes["copy_loss"].multiplier == pytest.approx(0.125, rel=1e-3)
    assert sizes["prefix_score"].multiplier == pytest.approx(0.25, rel=1e-3)
    assert sizes["copy_loss"].effective_params == pytest.approx(1e8, rel=1e-3)


def test_scaling_is_fitted_on_the_controls_only() -> None:
    scaling = fit_metric_scaling(_sweep(), "loss")
    assert scaling.fit.n_points == len(SIZES)
    assert scaling.fit.law.alpha == pytest.approx(LOSS.alpha, rel=1e-4)


def test_a_loss_below_the_asymptote_has_infinite_effective_size() -> None:
    scaling = fit_metric_scaling(_sweep(), "loss")
    assert scaling.effective_params(1.0) == np.inf


def test_scores_outside_zero_one_and_missing_values_are_rejected() -> None:
    sweep = _sweep()
    with pytest.raises(FitError, match="score in \\[0, 1\\)"):
        fit_metric_scaling(sweep, "copy_loss", higher_is_better=True)
    sweep.loc[0, "copy_loss"] = np.nan
    with pytest.raises(FitError, match="missing \\(NaN\\) on 1 control"):
        fit_metric_scaling(sweep, "copy_loss")
