"""Effective model size: inverting the controls' curve of each metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repeatlab.report.effective import (
    COPYING,
    PREFIX_MATCHING,
    TEST_LOSS,
    ControlCurve,
    add_effective_sizes,
    control_curve,
)


def controls(params: list[float], loss) -> pd.DataFrame:
    n = np.asarray(params, dtype=float)
    return pd.DataFrame({"params": n, "test_loss": loss(n), "probe_prefix_matching_max": 1 - 0.6 * (2e4 / n) ** 0.3})


def law(n):
    return 1.8 + (3e4 / n) ** 0.35


def test_power_fit_inverts_to_the_true_size() -> None:
    curve = control_curve(controls([5e4, 1e5, 8e5, 3e6], law), TEST_LOSS)
    assert isinstance(curve, ControlCurve) and curve.method == "power-law fit"
    target = np.array([7e4, 2e5, 1e6])
    assert curve.effective_params(law(target)) == pytest.approx(target, rel=1e-3)


def test_controls_have_multiplier_one_and_worse_runs_less() -> None:
    table = controls([5e4, 1e5, 8e5, 3e6], law)
    curves = {"test": control_curve(table, TEST_LOSS)}
    runs = table.assign(test_loss=lambda t: t["test_loss"] + np.array([0.0, 0.05, 0.0, 0.1]))
    out = add_effective_sizes(runs, curves, (TEST_LOSS,))
    assert out["mult_test"].iloc[0] == pytest.approx(1.0, rel=1e-3)
    assert out["mult_test"].iloc[1] < 1 and out["mult_test"].iloc[3] < out["mult_test"].iloc[1]
    assert set(out["method_test"]) == {"power-law fit"}


def test_few_sizes_interpolate_and_say_so() -> None:
    curve = control_curve(controls([5e4, 1e5, 8e5], law), TEST_LOSS)
    assert isinstance(curve, ControlCurve) and curve.method == "interpolation" and curve.fit is None
    # Exact at the controls, monotone between and beyond them.
    assert curve.effective_params(law(np.array([5e4, 8e5]))) == pytest.approx([5e4, 8e5])
    values = curve.effective_params(law(np.array([3e4, 2e5, 4e5, 2e6])))
    assert np.all(np.diff(values) > 0)
    assert control_curve(controls([5e4], law), TEST_LOSS) == "needs control runs of at least 2 model sizes (found 1)"


def test_scores_that_rise_with_size_use_the_deficit() -> None:
    table = controls([5e4, 1e5, 8e5, 3e6], law)
    curve = control_curve(table, PREFIX_MATCHING)
    assert isinstance(curve, ControlCurve)
    score = table["probe_prefix_matching_max"].to_numpy()
    assert curve.effective_params(score) == pytest.approx(table["params"], rel=1e-2)
    assert curve.scaling is not None and curve.scaling.higher_is_better


def test_missing_metric_gives_a_reason() -> None:
    table = controls([5e4, 1e5, 8e5, 3e6], law)
    assert "no probe_copying_repeated_copies_loss values" in control_curve(table, COPYING)


def test_a_metric_not_explained_by_size_is_not_inverted() -> None:
    table = controls([5e4, 1e5, 8e5, 3e6], lambda n: 2.0 + 0.01 * np.array([1.0, -1.0, 1.0, -1.0]))
    assert "is not explained by size" in control_curve(table, TEST_LOSS)
    assert "does not improve steadily" in control_curve(table.iloc[:3], TEST_LOSS)


def test_every_metric_of_a_sweep_is_inverted(tmp_path, synth) -> None:
    from repeatlab.report import Analysis, load_sweep

    spec = synth.SweepSpec(sizes=synth.SIZES[:3], epochs=(10, 100), with_probes=False)
    table = Analysis(data=load_sweep(synth.write_sweep(tmp_path / "s", spec))).repeated
    for key in ("test", "copying", "prefix_matching", "induction"):
        assert table[f"mult_{key}"].notna().all(), key
        assert set(table[f"method_{key}"]) == {"interpolation"}  # three sizes: no power law
