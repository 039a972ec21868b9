"""``repeatlab models`` lists every size (lives here because the models engineer owns the command)."""

from __future__ import annotations

from typer.testing import CliRunner

from repeatlab.cli.__main__ import app
from repeatlab.models.sizes import SIZES


def test_models_command_lists_sizes() -> None:
    result = CliRunner().invoke(app, ["models", "--vocab-size", "8192", "--context", "256"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in SIZES:
        assert name in result.output
    assert "805M" in result.output and "1.57M" in result.output


def test_models_command_rejects_bad_context() -> None:
    result = CliRunner().invoke(app, ["models", "--context", "0"])
    assert result.exit_code == 2
