"""``repeatlab laws`` and ``repeatlab plan``: thin commands over the library, table or JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from repeatlab.cli import laws, plan
from repeatlab.laws import DATABLATIONS_C4

DATA = Path(__file__).parent / "data"
runner = CliRunner()


@pytest.fixture(scope="module")
def plan_app() -> typer.Typer:
    app = typer.Typer()
    app.command("plan")(plan.plan)
    app.command("unused")(lambda: None)  # a second command keeps "plan" a named subcommand
    return app


def test_predict_defaults_to_the_published_constants() -> None:
    args = ["predict", "--form", "data-constrained", "--params", "6.34B", "--tokens", "242B", "--unique-tokens", "25B"]
    result = runner.invoke(laws.app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["loss"] == pytest.approx(2.2256440889984477, rel=1e-12)


def test_fit_then_predict_from_the_saved_fit(tmp_path: Path) -> None:
    out = tmp_path / "fit.json"
    table = str(DATA / "datablations_c4_runs.csv")
    args = ["fit", table, "--form", "data-constrained", "--column", "val_loss=loss", "--grid", "paper"]
    result = runner.invoke(laws.app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "local minima" in result.output and "r_d_star" in result.output
    saved = json.loads(out.read_text())
    assert saved["form"] == "data-constrained" and len(saved["minima"]) >= 2
    args = ["predict", "--form", "data-constrained", "--from", str(out), "--params", "1B", "--tokens", "40B"]
    predicted = runner.invoke(laws.app, [*args, "--unique-tokens", "10B", "--json"])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.output)["law"]["r_d_star"] == saved["law"]["r_d_star"]


def test_fit_json_with_bootstrap_intervals(tmp_path: Path) -> None:
    table = tmp_path / "controls.csv"
    n = [1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9]
    loss = [1.7 + (2.4e8 / x) ** 0.3 for x in n]
    table.write_text("params,loss\n" + "".join(f"{a},{b}\n" for a, b in zip(n, loss, strict=True)))
    result = runner.invoke(laws.app, ["fit", str(table), "--form", "power", "--bootstrap", "50", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["law"]["alpha"] == pytest.approx(0.3, rel=1e-3)
    assert set(data["bootstrap"]["intervals"]) == {"E", "n_c", "alpha"}


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = runner.invoke(laws.app, ["fit", str(tmp_path / "none.csv"), "--form", "chinchilla"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    no_tokens = runner.invoke(laws.app, ["predict", "--form", "chinchilla", "--params", "1B"])
    assert no_tokens.exit_code == 2 and "--tokens is required" in no_tokens.output


def test_plan_compute_table_and_json(plan_app: typer.Typer) -> None:
    shown = runner.invoke(plan_app, ["plan", "--unique-tokens", "25B", "--flops", "1e22"])
    assert shown.exit_code == 0, shown.output
    assert "data-constrained" in shown.output and "Chinchilla" in shown.output
    data = json.loads(runner.invoke(plan_app, ["plan", "--unique-tokens", "25B", "--flops", "1e22", "--json"]).output)
    assert data["compute"]["data_constrained"]["n_params"] == pytest.approx(7.02e9, rel=2e-3)
    assert data["compute"]["data_constrained"]["loss"] < DATABLATIONS_C4.loss(9.2e9, 1e22 / 6 / 9.2e9, 25e9)


def test_plan_repeats(plan_app: typer.Typer) -> None:
    args = ["plan", "--params", "800M", "--total-tokens", "100B", "--repeated-fraction", "0.1", "--repeats", "100"]
    data = json.loads(runner.invoke(plan_app, [*args, "--repeats", "1", "--json"]).output)
    assert [(r["repeats"], r["in_poor_region"]) for r in data["repeats"]["repeats"]] == [(1.0, False), (100.0, True)]
    incomplete = runner.invoke(plan_app, ["plan", "--params", "800M"])
    assert incomplete.exit_code == 2 and "go together" in incomplete.output


def test_commands_are_registered_on_the_main_app() -> None:
    from repeatlab.cli.__main__ import app

    assert runner.invoke(app, ["laws", "--help"]).exit_code == 0
    assert runner.invoke(app, ["plan", "--help"]).exit_code == 0
