"""The poor-performance region: bands per size and the power laws of their edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repeatlab.laws import HERNANDEZ_2022, find_poor_region

SIZES = (1e7, 1e8, 1e9)
EPOCHS = 2.0 ** (np.arange(0, 80) / 4)  # 1 to ~1e6 repeats, four per doubling


def _sweep(control_loss: float = 3.0, depth: float = 0.2) -> pd.DataFrame:
    """Degradation is a bump in log epochs whose half-maximum edges are exactly Hernandez et al.'s boundaries."""
    rows = []
    for n in SIZES:
        left, right = (float(v) for v in HERNANDEZ_2022.band(n))
        centre, width = (np.log(left) + np.log(right)) / 2, (np.log(right) - np.log(left)) / (2 * np.sqrt(np.log(2)))
        rows.append({"params": n, "loss": control_loss, "repeated_fraction": 0.0, "repeated_epochs": 0.0})
        for e in EPOCHS:
            bump = depth * np.exp(-(((np.log(e) - centre) / width) ** 2))
            rows.append({"params": n, "loss": control_loss + bump, "repeated_fraction": 0.1, "repeated_epochs": e})
    return pd.DataFrame(rows)


def test_edges_recover_the_published_boundaries() -> None:
    region = find_poor_region(_sweep())
    assert [b.n_params for b in region.bands] == list(SIZES)
    for band in region.bands:
        left, right = (float(v) for v in HERNANDEZ_2022.band(band.n_params))
        assert band.left_epochs == pytest.approx(left, rel=0.02)
        assert band.right_epochs == pytest.approx(right, rel=0.02)
        assert band.max_degradation == pytest.approx(0.2, rel=1e-3)
        assert not (band.left_censored or band.right_censored)
    assert region.left is not None and region.right is not None
    assert region.left.alpha == pytest.approx(-0.56, abs=0.01)
    assert region.right.alpha == pytest.approx(-0.50, abs=0.01)
    assert region.left.k == pytest.approx(4.2e6, rel=0.15)
    assert region.right.k == pytest.approx(5.1e7, rel=0.15)


def test_a_band_reaching_the_end_of_the_sweep_is_censored_and_not_fitted() -> None:
    sweep = _sweep()
    short = sweep[sweep.repeated_epochs <= 100]  # every band runs past 100 repeats
    region = find_poor_region(short)
    assert all(b.right_censored and b.right_epochs == short.repeated_epochs.max() for b in region.bands)
    assert region.right is None
    assert region.left is not None


def test_unharmed_sizes_are_listed() -> None:
    sweep = _sweep()
    sweep.loc[(sweep.params == 1e9) & (sweep.repeated_fraction > 0), "loss"] = 2.9
    region = find_poor_region(sweep)
    assert region.unharmed_sizes == (1e9,)
    assert len(region.bands) == 2


def test_mixed_fractions_and_missing_controls_are_errors() -> None:
    sweep = _sweep()
    mixed = sweep.copy()
    mixed.loc[mixed.index[-1], "repeated_fraction"] = 0.5
    with pytest.raises(ValueError, match="mixes repeated fractions"):
        find_poor_region(mixed)
    assert len(find_poor_region(mixed, repeated_fraction=0.1).bands) == 3
    no_control = sweep[~((sweep.params == 1e8) & (sweep.repeated_fraction == 0))]
    with pytest.raises(ValueError, match="no control run"):
        find_poor_region(no_control)
