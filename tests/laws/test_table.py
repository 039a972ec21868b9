"""Loading and validating run tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repeatlab.laws import load_runs


def _frame(**overrides: list[float]) -> pd.DataFrame:
    data = {"params": [1e8, 2e8, 4e8], "tokens": [2e9, 4e9, 8e9], "unique_tokens": [2e9, 1e9, 8e9]}
    data["loss"] = [3.1, 2.9, 2.7]
    data.update(overrides)
    return pd.DataFrame(data)


def test_csv_and_parquet_give_the_same_table(tmp_path: Path) -> None:
    frame = _frame(copy_loss=[4.0, 3.5, 3.0])
    frame.to_csv(tmp_path / "runs.csv", index=False)
    frame.to_parquet(tmp_path / "runs.parquet")
    a, b = load_runs(tmp_path / "runs.csv"), load_runs(tmp_path / "runs.parquet")
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.metrics["copy_loss"], b.metrics["copy_loss"])


def test_renames_and_flops_give_tokens() -> None:
    frame = pd.DataFrame({"N": [1e8, 1e9], "flops": [6e18, 6e20], "val_loss": [3.0, 2.5]})
    table = load_runs(frame, columns={"N": "params", "val_loss": "loss"})
    np.testing.assert_allclose(table.tokens, [1e10, 1e11])


def test_controls_are_runs_that_repeat_nothing() -> None:
    table = load_runs(_frame())
    np.testing.assert_array_equal(table.control_mask(), [True, False, True])
    swept = load_runs(_frame(repeated_fraction=[0.0, 0.1, 0.0]).drop(columns="unique_tokens"))
    assert len(swept.controls()) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss": [3.0, float("nan"), 2.0]}, "'loss' must be positive and finite; row 1"),
        ({"params": [1e8, -1.0, 1e9]}, "'params' must be positive"),
        ({"unique_tokens": [2e9, 5e9, 8e9]}, "row 1: unique_tokens"),
    ],
)
def test_bad_values_are_named(overrides: dict[str, list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_runs(_frame(**overrides))


def test_missing_columns_and_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a 'loss' column"):
        load_runs(_frame().drop(columns="loss"))
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="no column 'copy_loss'"):
        load_runs(_frame()).column("copy_loss")
