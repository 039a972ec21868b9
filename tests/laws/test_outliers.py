"""Robust options: Besiroglu et al.'s rule for dropping outliers, and Huber's delta, from the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from repeatlab.cli import laws
from repeatlab.laws import BESIROGLU_2024_REPLICATE_EXACTLY, FitConfig, FitError, PowerLaw, fit_power_law, load_runs

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def test_highest_loss_rule_is_epochs_strict_inequality() -> None:
    # Epoch keeps loss < sorted(loss)[-k]: a run tied with the k-th highest goes too.
    table = load_runs(pd.DataFrame({"params": [1.0, 2.0, 3.0, 4.0, 5.0], "loss": [2.0, 5.0, 3.0, 5.0, 4.0]}))
    assert table.highest_loss_mask(0).tolist() == [False] * 5
    assert table.highest_loss_mask(1).tolist() == [False, True, False, True, False]
    assert table.highest_loss_mask(3).tolist() == [False, True, False, True, True]
    with pytest.raises(ValueError, match="non-negative integer"):
        table.highest_loss_mask(-1)
    with pytest.raises(ValueError, match="cannot drop the 5"):
        table.highest_loss_mask(5)
    with pytest.raises(ValueError, match="FitConfig.drop_highest_loss"):
        FitConfig(drop_highest_loss=-2)


def test_cli_reproduces_epochs_240_point_fit_and_says_what_it_dropped() -> None:
    table = DATA / "chinchilla_fig4_svg_points.csv"
    renames = ["--column", "Model Size=params", "--column", "Training FLOP=flops"]
    args = ["fit", str(table), "--form", "chinchilla", *renames, "--drop-highest-loss", "5"]
    result = runner.invoke(laws.app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    fit = json.loads(result.output)
    # The five rows of highest loss in Epoch's file (their nr_of_models_excluded = 5), by an independent reading.
    expected = pd.read_csv(table).nlargest(5, "loss")
    assert [run["row"] for run in fit["dropped"]] == sorted(expected.index.tolist())
    assert fit["n_points"] == 240
    published = BESIROGLU_2024_REPLICATE_EXACTLY  # A 477.84, B 2143.86, E 1.8172, alpha 0.34731, beta 0.36718
    assert fit["law"]["A"] == pytest.approx(published.A, rel=3e-3)
    assert fit["law"]["B"] == pytest.approx(published.B, rel=3e-3)
    assert fit["law"]["E"] == pytest.approx(published.E, abs=1e-4)
    assert fit["law"]["alpha"] == pytest.approx(published.alpha, abs=1e-5)
    assert fit["law"]["beta"] == pytest.approx(published.beta, abs=1e-5)
    assert fit["objective"] == pytest.approx(0.0010182740346154362, rel=1e-6)  # Epoch's notebook's best loss

    shown = runner.invoke(laws.app, args)
    assert shown.exit_code == 0, shown.output
    assert "dropped 5 of 245 runs" in " ".join(shown.output.split())


def test_huber_delta_decides_how_much_one_bad_run_pulls_the_fit(tmp_path: Path) -> None:
    true = PowerLaw(E=1.7, n_c=2.4e8, alpha=0.3)
    n = np.geomspace(1e6, 1e10, 12)
    loss = true.loss(n)
    loss[5] *= 4  # one diverged run, now the highest loss of the table
    path = tmp_path / "runs.csv"
    pd.DataFrame({"params": n, "loss": loss}).to_csv(path, index=False)

    def alpha(*extra: str) -> float:
        result = runner.invoke(laws.app, ["fit", str(path), "--form", "power", "--json", *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["law"]["alpha"]

    assert alpha() == pytest.approx(true.alpha, rel=1e-3)  # delta 1e-3: the bad run costs only linearly
    assert abs(alpha("--huber-delta", "1") - true.alpha) > 0.01  # delta 1: least squares, pulled off
    assert alpha("--huber-delta", "1", "--drop-highest-loss", "1") == pytest.approx(true.alpha, rel=1e-3)
    bad = runner.invoke(laws.app, ["fit", str(path), "--form", "power", "--huber-delta", "0"])
    assert bad.exit_code == 2 and "huber_delta" in bad.output


def test_power_fit_reports_rows_of_the_input_table_not_of_its_controls() -> None:
    frame = pd.DataFrame(
        {
            "params": [1e6, 1e6, 1e7, 1e8, 1e9, 1e10],
            "loss": [9.0, 3.5, 2.6, 2.2, 2.0, 1.9],
            "repeated_fraction": [0.1, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    fit = fit_power_law(frame, config=FitConfig(drop_highest_loss=1))
    assert [(run.row, run.loss) for run in fit.dropped] == [(1, 3.5)]  # row 0 is a repeated run, never fitted
    assert fit.n_points == 4
    frame["copying"] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    with pytest.raises(FitError, match="drops by the loss column"):
        fit_power_law(frame, metric="copying", config=FitConfig(drop_highest_loss=1))
