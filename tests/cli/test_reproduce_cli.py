"""``repeatlab reproduce``: every name maps to a shipped preset; an unknown name is one line naming the choices."""

from __future__ import annotations

from typer.testing import CliRunner

from repeatlab.cli.__main__ import app
from repeatlab.demo import REPRODUCTIONS
from repeatlab.sweeps import load_grid

runner = CliRunner()


def test_every_reproduction_is_a_shipped_preset() -> None:
    for name, preset in REPRODUCTIONS.items():
        assert load_grid(preset).name == preset, name


def test_unknown_reproduction_is_refused_naming_the_choices(tmp_path) -> None:
    result = runner.invoke(app, ["reproduce", "gpu-huge", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "unknown reproduction 'gpu-huge'" in result.output and "cpu" in result.output
    assert not (tmp_path / "out").exists()
